"""Pose conditioning: DensePose IUV channels and OpenPose renderings, as the original.

DensePose: the IUV png read as RGB (channel 2 = part index I in 0..24). In training each part
1..24 draws a uniform number and is zeroed (all 3 channels) below ``random_drop_prob``, and
``remove_face_labels`` zeroes the head parts 23, 24; at test time nothing is zeroed.
``finalize`` maps the channels to [-1, 1] and the part channel to about I/12 - 1, with the
original's float32 operations.

OpenPose (``openpose_map``): per person, points under the confidence thresholds become (0, 0)
(face and hand edges only as a whole); then the limbs (``keypoints.HEAD_LIMBS`` unless
``basic_point_only``, then ``BODY_LIMBS``) with bw 3, the left and right hands, and the face, with
bw 1, all with end-point discs and the original's colour averaging (``drawing``). A limb or
segment is drawn only if none of its x coordinates is 0. Persons add up in uint8 (wrapping).

Training draws, in the original's order and number (drawn even at ``random_drop_prob`` 0, so that
a log of its draws replayed as the ``rng`` reproduces its output): per frame 24 DensePose parts,
then per person (with ``remove_face_labels`` and a drop probability above 0) a [5, 2] normal
jitter of the nose, eyes and ears (x5 px) and a normal shift of the face (x2 px, x then y), one
uniform per limb, one per hand and one for the face; a limb, hand or face is dropped when its
draw is <= ``random_drop_prob``. docs/conditioning.md lists these behaviours.
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
  """Zeroes the dropped parts of a [H, W, 3] uint8 IUV image (returns a new array).

  Args:
    iuv: [H, W, 3] uint8, channel 2 = part index 0..24.
    rng: training randomness (see the module docstring); None = test time: nothing is zeroed,
      not even with remove_face_labels (the original's test behaviour).
    random_drop_prob: probability of dropping each part.
    remove_face_labels: zero the head parts 23, 24 (training only).
  """
  if iuv.ndim != 3 or iuv.shape[2] != 3:
    raise ValueError(f'densepose_map expects [H, W, 3] IUV; got {iuv.shape}')
  if rng is None:
    return iuv
  drop = [part for part in range(1, kp.NUM_DENSEPOSE_PARTS + 1)
          if rng.random() < random_drop_prob]
  if remove_face_labels:
    drop += list(kp.DENSEPOSE_FACE_PARTS)
  if not drop:
    return iuv
  iuv = iuv.copy()
  iuv[np.isin(iuv[..., 2], drop)] = 0
  return iuv


def _detected(points: np.ndarray, threshold: float, edges=None) -> np.ndarray:
  """[N, 2] (x, y) of [N, 3] (x, y, confidence): (0, 0) where not confident; with ``edges``,
  only points of edges whose every point is confident."""
  out = np.zeros((len(points), 2))
  if edges is None:
    keep = points[:, 2] > threshold
    out[keep] = points[keep, :2]
  else:
    for edge in edges:
      edge = list(edge)
      if (points[edge, 2] > threshold).all():
        out[edge] = points[edge, :2]
  return out


def _draw(canvas: np.ndarray, points: np.ndarray, pair, *, bw: int, colour) -> None:
  xs, ys = points[list(pair), 0], points[list(pair), 1]
  if 0 in xs:  # x == 0 marks a missing point
    return
  curve = drawing.interp_points(xs, ys)
  if curve is not None:
    drawing.draw_edge(canvas, *curve, bw=bw, colour=colour, draw_end_points=True)


def _person_map(person: dict[str, np.ndarray], height: int, width: int,
                rng: Optional[np.random.Generator], *, random_drop_prob: float,
                remove_face_labels: bool, basic_point_only: bool,
                jitter_missing_points: bool) -> np.ndarray:
  """[H, W, 3] uint8 rendering of one person (see the module docstring)."""
  body = _detected(person['body'], kp.BODY_CONFIDENCE)
  face = _detected(person['face'], kp.FACE_CONFIDENCE, kp.OPENPOSE_FACE_EDGES)
  hands = [_detected(person[hand], kp.HAND_CONFIDENCE, [f for f, _ in kp.HAND_FINGERS])
           for hand in ('hand_left', 'hand_right')]

  def keep() -> bool:
    return rng is None or rng.random() > random_drop_prob

  if rng is not None and random_drop_prob > 0 and remove_face_labels:
    head = list(kp.HEAD_POINTS)
    head_jitter = 5 * rng.standard_normal((len(head), 2))
    face_shift = np.array([2 * rng.standard_normal(), 2 * rng.standard_normal()])
    # Undetected points stay at (0, 0), i.e. missing, unless jitter_missing_points: moved, they
    # pass the x != 0 test and draw lines to near the origin (the original's bug).
    body_moves = np.ones((len(head), 1)) if jitter_missing_points else body[head, :1] != 0
    face_moves = np.ones((len(face), 1)) if jitter_missing_points else face[:, :1] != 0
    body[head] += head_jitter * body_moves
    face += face_shift * face_moves
  canvas = np.zeros((height, width, 3), np.uint8)
  limbs = kp.BODY_LIMBS if basic_point_only else kp.HEAD_LIMBS + kp.BODY_LIMBS
  for pair, colour in limbs:
    if keep():  # one draw per limb, missing or not
      _draw(canvas, body, pair, bw=3, colour=colour)
  if not basic_point_only:
    for points in hands:
      if keep():
        for finger, colour in kp.HAND_FINGERS:
          for segment in drawing.sub_edges(finger, 2):
            _draw(canvas, points, segment, bw=1, colour=colour)
    if keep():
      for edge in kp.OPENPOSE_FACE_EDGES:
        for segment in drawing.sub_edges(edge, 2):
          _draw(canvas, face, segment, bw=1, colour=(255, 255, 255))
  return canvas


def openpose_map(people: list[dict[str, np.ndarray]], height: int, width: int,
                 rng: Optional[np.random.Generator], *, random_drop_prob: float,
                 remove_face_labels: bool, basic_point_only: bool,
                 jitter_missing_points: bool = False) -> np.ndarray:
  """[H, W, 3] uint8 OpenPose rendering of ``people`` (from ``layouts.read_openpose``).

  Args:
    people: per person {'body': [25, 3], 'face': [70, 3], 'hand_left'/'hand_right': [21, 3]}
      (x, y, confidence) in source pixels.
    height, width: canvas size.
    rng: training randomness (see the module docstring); None = test time (nothing dropped).
    random_drop_prob, remove_face_labels, basic_point_only: the original's options.
    jitter_missing_points: remove_face_labels' jitter also moves undetected points (the
      original's bug; ``config.compat.pose_jitter_missing_points``).
  """
  total = np.zeros((height, width, 3), np.uint8)
  for person in people:
    total += _person_map(person, height, width, rng, random_drop_prob=random_drop_prob,
                         remove_face_labels=remove_face_labels,
                         basic_point_only=basic_point_only,
                         jitter_missing_points=jitter_missing_points)  # uint8 wrap-around
  return total


@dataclasses.dataclass(frozen=True)
class PoseDomain:
  """Pose layout options; spatial options as in ``transforms``. Never flips.

  ``jitter_missing_points``: see ``openpose_map``.
  """
  densepose_only: bool
  openpose_only: bool
  remove_face_labels: bool
  random_drop_prob: float
  basic_point_only: bool
  resize_or_crop: str
  load_size: int
  fine_size: int
  jitter_missing_points: bool = False
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

    ``rng`` None = test time (nothing dropped)."""
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
                               random_drop_prob=self.random_drop_prob,
                               remove_face_labels=self.remove_face_labels,
                               basic_point_only=self.basic_point_only,
                               jitter_missing_points=self.jitter_missing_points)
      maps.append(transforms.apply(rendering, params, 'nearest'))
    return {'cond_raw': np.concatenate(maps, -1),
            'image': transforms.apply(image, params, 'bicubic')}

  def finalize(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """``cond`` [..., H, W, C] float32 in [-1, 1]; the DensePose part channel is about I/12 - 1.

    The original's float32 steps: ToTensor's x / 255, Normalize's (v - 0.5) / 0.5, then for the
    part channel ((v * 0.5 + 0.5) * 255 / 24 - 0.5) / 0.5 (I = 24 gives 0.9999999).
    """
    features = dict(features)
    cond = (tf.cast(features.pop('cond_raw'), tf.float32) / 255.0 - 0.5) / 0.5
    if not self.openpose_only:
      part = ((cond[..., 2:3] * 0.5 + 0.5) * 255.0 / 24.0 - 0.5) / 0.5
      cond = tf.concat([cond[..., :2], part, cond[..., 3:]], axis=-1)
    features['cond'] = cond
    return features
