"""Face conditioning: landmark edge curves, distance maps and background edges, as the original.

Per frame, at the source resolution: 15 upper-face points are added to the 68 landmarks; the 14
part edges (``keypoints.FACE_EDGES``) are drawn as fitted curves (``drawing``); channel 0 is their
union plus (unless ``no_canny_edge``) scikit-image Canny edges of the whole grey frame outside the
face parts, added in uint8 so that 255 + 255 wraps to 254 where they meet; channels 1..14 (unless
``no_dist_map``) are the L1 distance transforms of each edge, / 3, truncated to uint8. The maps are
then cropped to the clip's face box and resized with PIL's BILINEAR (so A holds fractional
values), the part labels with NEAREST, the frame with BICUBIC. ``finalize`` maps the maps to
[0, 1] (not [-1, 1]). docs/conditioning.md lists these behaviours.
"""

import dataclasses
from typing import Optional

import cv2
import numpy as np
from PIL import Image
from skimage import feature
import tensorflow as tf

from input_pipeline import drawing
from input_pipeline import keypoints as kp
from input_pipeline import layouts
from input_pipeline import transforms


def add_upper_face(points: np.ndarray) -> np.ndarray:
  """[68, 2] landmarks -> [83, 2]: jaw points 1..15 mirrored above the jaw line, 2/3 as far.

  On the jaw truncated to integers: baseline_y = (y0 + y16) / 2, y_new = baseline_y +
  (baseline_y - y) * 2 // 3 (float floor division), truncated to an integer; appended in reverse
  order as indices 68..82.
  """
  if points.shape != (kp.NUM_FACE_POINTS, 2):
    raise ValueError(f'add_upper_face expects [68, 2] landmarks; got {points.shape}')
  jaw = points[:17].astype(np.int32)
  baseline = (jaw[0, 1] + jaw[16, 1]) / 2
  upper = jaw[1:16].copy()
  upper[:, 1] = baseline + (baseline - upper[:, 1]) * 2 // 3  # truncated into int32
  return np.concatenate([points.astype(np.float64), upper[::-1]])


def crop_box(points: np.ndarray, width: int, height: int) -> transforms.Box:
  """The face box (x, y, w, h) of [68, 2] landmarks in a ``width`` x ``height`` frame.

  A square 2.5 times the landmarks' width, centred on their x centre and a quarter of the way down
  from their top, shifted to stay inside the frame where it fits; float arithmetic, each bound
  truncated to an integer.
  """
  if points.ndim != 2 or points.shape[1] != 2:
    raise ValueError(f'crop_box expects [N, 2] points; got {points.shape}')
  min_x, min_y = points.min(0)
  max_x, max_y = points.max(0)
  xc = (min_x + max_x) // 2
  yc = (3 * min_y + max_y) // 4
  side = (max_x - min_x) * 2.5
  xc = min(max(0, xc - side // 2) + side, width) - side // 2
  yc = min(max(0, yc - side // 2) + side, height) - side // 2
  x0, x1 = int(xc - side // 2), int(xc + side // 2)
  y0, y1 = int(yc - side // 2), int(yc + side // 2)
  if x1 <= x0 or y1 <= y0:
    raise ValueError(f'degenerate face box from landmarks spanning x {min_x}..{max_x}')
  return x0, y0, x1 - x0, y1 - y0


def part_labels(points: np.ndarray, height: int, width: int) -> np.ndarray:
  """[H, W] uint8 part map (0 = background, 1..6 = face, brows, nose, eyes, mouth, inner mouth)
  of [83, 2] points: each part's polygon filled in turn, vertices truncated to integers."""
  labels = np.zeros((height, width), np.uint8)
  for label, edges in kp.FACE_PARTS:
    polygon = points[kp.flatten(edges)].astype(np.int32)
    cv2.fillPoly(labels, [polygon], color=label)
  return labels


def canny(image: np.ndarray) -> np.ndarray:
  """[H, W] bool edges of an [H, W, 3] uint8 RGB frame: scikit-image's Canny (sigma 1) on PIL's
  grey conversion, as the original."""
  grey = np.asarray(Image.fromarray(image).convert('L'))
  return feature.canny(grey)


def face_maps(points: np.ndarray, image: Optional[np.ndarray], height: int, width: int, *,
              no_canny_edge: bool, no_dist_map: bool) -> tuple[np.ndarray, np.ndarray]:
  """Conditioning maps of one frame at the source resolution.

  Args:
    points: [68, 2] landmarks in pixels.
    image: [H, W, 3] uint8 RGB frame (for Canny edges); may be None if no_canny_edge.
    height, width: frame size.
    no_canny_edge, no_dist_map: the original's options.

  Returns:
    (maps [H, W, C] uint8 with C = 15, or 1 with no_dist_map; part labels [H, W] uint8 0..6).
  """
  points = add_upper_face(points)
  parts = part_labels(points, height, width)
  edges = np.zeros((height, width), np.uint8)
  dist = []
  for edge in kp.FACE_EDGES:
    canvas = np.zeros((height, width), np.uint8)
    for sub in drawing.sub_edges(edge, 3):
      curve = drawing.interp_points(points[list(sub), 0], points[list(sub), 1])
      if curve is not None:
        drawing.draw_edge(canvas, *curve)
    edges |= canvas
    if not no_dist_map:
      d = cv2.distanceTransform(255 - canvas, cv2.DIST_L1, 3) / 3
      dist.append(np.clip(d, 0, 255).astype(np.uint8))
  if not no_canny_edge:
    if image is None:
      raise ValueError('face_maps needs the frame for Canny edges (or no_canny_edge)')
    background = canny(image) & (parts == 0)
    edges += background.astype(np.uint8) * 255  # uint8: 255 + 255 wraps to 254, as the original
  maps = np.stack([edges] + dist, -1)
  return maps, parts


@dataclasses.dataclass(frozen=True)
class FaceDomain:
  """Face layout options; spatial options as in ``transforms``."""
  no_canny_edge: bool
  no_dist_map: bool
  resize_or_crop: str
  load_size: int
  fine_size: int
  flip: bool
  name = 'face'

  @property
  def cond_channels(self) -> int:
    return 1 if self.no_dist_map else 1 + len(kp.FACE_EDGES)

  def streams(self, with_image: bool) -> tuple[str, ...]:
    del with_image  # the frames are always read: Canny edges and sizes come from them
    return ('keypoints', 'image')

  def clip_params(self, seq: layouts.Sequence, frame_ids, rng: Optional[np.random.Generator]):
    """The face box comes from the 68 landmarks of the clip's first frame (the original does this
    per clip in training; at test time it keeps the run's very first box even for later videos,
    where we take each video's own first frame)."""
    points = layouts.read_face_keypoints(seq.files['keypoints'][frame_ids[0]])
    width, height = layouts.image_size(seq.files['image'][frame_ids[0]])
    box = crop_box(points, width, height)
    return transforms.get_params(rng, self.resize_or_crop, self.load_size, self.fine_size,
                                 box[2], box[3], flip=self.flip, pre_crop=box)

  def load_frame(self, seq: layouts.Sequence, t: int, params: transforms.SpatialParams,
                 rng: Optional[np.random.Generator],
                 source_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Frame ``t``: cond_raw [H, W, C] uint8, inst (part labels) [H, W] int32, image uint8."""
    del rng  # no per-frame randomness
    points = layouts.read_face_keypoints(seq.files['keypoints'][t])
    image = layouts.read_image(seq.files['image'][t])
    height, width = image.shape[:2]
    layouts.check_size(seq.files['image'][t], (height, width), source_hw)
    maps, parts = face_maps(points, image, height, width, no_canny_edge=self.no_canny_edge,
                            no_dist_map=self.no_dist_map)
    return {'cond_raw': transforms.apply(maps, params, 'bilinear'),
            'inst': transforms.apply(parts, params, 'nearest').astype(np.int32),
            'image': transforms.apply(image, params, 'bicubic')}

  def finalize(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """``cond`` [..., H, W, C] float32 in [0, 1]."""
    features = dict(features)
    features['cond'] = tf.cast(features.pop('cond_raw'), tf.float32) / 255.0
    return features
