"""Pose conditioning (spec 6.5): DensePose IUV channels and OpenPose renderings.

DensePose: the IUV png read as RGB (channel 2 = part index I in 0..24). In training each part
1..24 is zeroed with probability ``random_drop_prob``; ``remove_face_labels`` zeroes parts 23, 24.
``finalize`` maps the channels to [-1, 1] and channel 2 to I/12 - 1 (I/24 in [-1, 1]).

OpenPose: every person's BODY_25 limbs (colours in ``keypoints.BODY_LIMBS``), drawn with width 6
plus end-point discs and colour averaging where limbs overlap; unless ``basic_point_only`` also
hands (one colour per finger) and the face (white), thin. Points below the confidence threshold
(body 0.01, face/hands 0.1) are dropped; in training each limb, each hand and the face are dropped
with probability ``random_drop_prob``. Persons add up with uint8 wrap-around, as the original.
"""

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from input_pipeline import drawing
from input_pipeline import keypoints as kp
from input_pipeline import layouts
from input_pipeline import transforms


def densepose_map(iuv: np.ndarray, rng: Optional[np.random.Generator], *,
                  random_drop_prob: float, remove_face_labels: bool) -> np.ndarray:
  """Drops parts of a [H, W, 3] uint8 IUV image (returns a new array)."""
  iuv = iuv.copy()
  part = iuv[..., 2]
  drop = []
  if rng is not None and random_drop_prob > 0:
    drop = [i for i in range(1, kp.NUM_DENSEPOSE_PARTS + 1) if rng.random() < random_drop_prob]
  if remove_face_labels:
    drop += list(kp.DENSEPOSE_FACE_PARTS)
  if drop:
    iuv[np.isin(part, drop)] = 0
  return iuv


def _valid_points(points: np.ndarray, threshold: float) -> np.ndarray:
  points = points.copy()
  points[points[:, 2] <= threshold] = 0
  return points


def _draw_curves(canvas, points, edges, *, bw, colour, rng, drop_prob, mode, sub_size,
                 all_valid):
  for edge in edges:
    if all_valid and (points[list(edge), 0] == 0).any():
      continue  # face and hands: only whole edges whose points are all detected
    for sub in drawing.sub_edges(edge, sub_size):
      pts = points[list(sub)]
      if rng is not None and drop_prob > 0 and rng.random() <= drop_prob:
        continue
      curve = drawing.interp_points(pts[:, 0], pts[:, 1])
      if curve is not None:
        drawing.draw_edge(canvas, *curve, bw=bw, colour=colour, draw_end_points=True, mode=mode)


def openpose_map(people: list[dict[str, np.ndarray]], height: int, width: int,
                 rng: Optional[np.random.Generator], *, random_drop_prob: float,
                 remove_face_labels: bool, basic_point_only: bool) -> np.ndarray:
  """[H, W, 3] uint8 OpenPose rendering of ``people`` (from ``layouts.read_openpose``)."""
  total = np.zeros((height, width, 3), np.uint8)
  train = rng is not None and random_drop_prob > 0
  for person in people:
    canvas = np.zeros((height, width, 3), np.uint8)
    body = _valid_points(person['body'], 0.01)
    face = _valid_points(person['face'], 0.1)
    if train and remove_face_labels:
      head = list(kp.HEAD_POINTS)
      body[head, :2] += rng.normal(0, 5, (len(head), 2)) * (body[head, :1] != 0)
      face[:, :2] += rng.normal(0, 2, 2) * (face[:, :1] != 0)
    for (a, b), colour in kp.BODY_LIMBS:
      pts = body[[a, b]]
      if (pts[:, 0] == 0).any() or (train and rng.random() <= random_drop_prob):
        continue
      curve = drawing.interp_points(pts[:, 0], pts[:, 1])
      if curve is not None:
        drawing.draw_edge(canvas, *curve, bw=3, colour=colour, draw_end_points=True,
                          mode='average')
    if not basic_point_only:
      for hand in ('hand_left', 'hand_right'):
        if train and rng.random() <= random_drop_prob:
          continue
        points = _valid_points(person[hand], 0.1)
        for finger, colour in kp.HAND_FINGERS:
          _draw_curves(canvas, points, [finger], bw=1, colour=colour, rng=None, drop_prob=0,
                       mode='average', sub_size=2, all_valid=True)
      if not (train and rng.random() <= random_drop_prob):
        _draw_curves(canvas, face, kp.OPENPOSE_FACE_EDGES, bw=1, colour=(255, 255, 255),
                     rng=None, drop_prob=0, mode='set', sub_size=2, all_valid=True)
    total = total + canvas  # uint8 wrap-around, as the original
  return total


@dataclasses.dataclass(frozen=True)
class PoseDomain:
  """Pose layout options (spec 6.5); spatial options as in ``transforms``. Never flips."""
  densepose_only: bool
  openpose_only: bool
  remove_face_labels: bool
  random_drop_prob: float
  basic_point_only: bool
  resize_or_crop: str
  load_size: int
  fine_size: int
  name = 'pose'

  def __post_init__(self):
    if self.densepose_only and self.openpose_only:
      raise ValueError('densepose_only and openpose_only exclude each other')

  @property
  def cond_channels(self) -> int:
    return 3 if (self.densepose_only or self.openpose_only) else 6

  def streams(self, with_image: bool) -> tuple[str, ...]:
    del with_image  # frames give the canvas size
    return (('image',) + (() if self.openpose_only else ('densepose',)) +
            (() if self.densepose_only else ('openpose',)))

  def clip_params(self, seq: layouts.Sequence, frame_ids, rng: Optional[np.random.Generator]):
    width, height = layouts.image_size(seq.files['image'][frame_ids[0]])
    return transforms.get_params(rng, self.resize_or_crop, self.load_size, self.fine_size,
                                 width, height, flip=False, pose_centre_crop=True)

  def load_frame(self, seq: layouts.Sequence, t: int, params: transforms.SpatialParams,
                 rng: Optional[np.random.Generator],
                 source_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Frame ``t``: cond_raw [H, W, 6 or 3] uint8 (DensePose IUV then OpenPose RGB), image.

    ``rng`` None = test time (random_drop_prob treated as 0)."""
    image = layouts.read_image(seq.files['image'][t])
    height, width = image.shape[:2]
    layouts.check_size(seq.files['image'][t], (height, width), source_hw)
    maps = []
    if not self.openpose_only:
      path = seq.files['densepose'][t]
      iuv = layouts.read_image(path)
      if iuv.shape[:2] != (height, width):
        raise ValueError(f'{path}: size {iuv.shape[1]}x{iuv.shape[0]} differs from the frame '
                         f'{seq.files["image"][t]} ({width}x{height})')
      iuv = densepose_map(iuv, rng, random_drop_prob=self.random_drop_prob,
                          remove_face_labels=self.remove_face_labels)
      maps.append(transforms.apply(iuv, params, 'nearest'))
    if not self.densepose_only:
      people = layouts.read_openpose(seq.files['openpose'][t])
      rendering = openpose_map(people, height, width, rng,
                               random_drop_prob=self.random_drop_prob if rng else 0.0,
                               remove_face_labels=self.remove_face_labels,
                               basic_point_only=self.basic_point_only)
      maps.append(transforms.apply(rendering, params, 'nearest'))
    return {'cond_raw': np.concatenate(maps, -1), 'image': transforms.apply(image, params, 'cubic')}

  def finalize(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """``cond`` [..., H, W, C] float32 in [-1, 1]; the DensePose part channel becomes I/12 - 1."""
    features = dict(features)
    raw = tf.cast(features.pop('cond_raw'), tf.float32)
    cond = raw / 127.5 - 1.0
    if not self.openpose_only:
      # (v*0.5+0.5)*255/24 mapped back to [-1, 1] (spec 6.5) is I/12 - 1 for part index I.
      cond = tf.concat([cond[..., :2], raw[..., 2:3] / 12.0 - 1.0, cond[..., 3:]], axis=-1)
    features['cond'] = cond
    return features
