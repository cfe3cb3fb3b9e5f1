"""Per-clip spatial preprocessing: one set of params for every frame of a clip.

Order: optional ``pre_crop`` in source pixels (the face box), resize to ``resize``, optional
``crop`` (random or centred; pose adds its centre crop to the middle half width), optional
horizontal ``flip``. Crops may reach outside the image: the outside is zero (PIL's crop).

Random draws, in the original's order and number (so that a log of its draws, replayed as the
``rng``, reproduces its geometry): the random scale, then with a crop mode the crop x offset (a
normal) and y offset (uniform integer), then always a flip coin, applied only where flips are
allowed.

Resampling kinds:
  nearest   id maps (labels, instances, DensePose, OpenPose renderings) and flows: PIL's NEAREST
            (pixel-centre sampling, not cv2's INTER_NEAREST which is shifted by half a pixel).
  bicubic / bilinear  PIL's BICUBIC / BILINEAR on uint8, as the original resizes its images and
            face maps (PIL widens the kernel when shrinking, i.e. it anti-aliases).
  cubic / linear  cv2: INTER_AREA when shrinking, INTER_CUBIC / INTER_LINEAR when enlarging; close
            to PIL's filters but not equal (the street and video layouts use these).
"""

import dataclasses
from typing import Optional

import cv2
import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # (x, y, width, height)

# data.resize_or_crop values (config_lib validates against this list). The original matches
# substrings: a size part ('resize', 'scaleWidth', 'scaleHeight', 'randomScaleWidth',
# 'randomScaleHeight' or none) and a crop part ('crop': fine_size squares, 'scaledCrop': fine_size
# along the scaled side, or none). A random scale needs a crop: batches (and compiled steps) hold
# clips of one size, so 'randomScaleWidth' / 'randomScaleHeight' alone are not offered.
MODES = ('scaleWidth', 'scaleWidth_and_crop', 'scaleWidth_and_scaledCrop', 'scaleHeight',
         'scaleHeight_and_crop', 'scaleHeight_and_scaledCrop', 'randomScaleWidth_and_crop',
         'randomScaleWidth_and_scaledCrop', 'randomScaleHeight_and_crop',
         'randomScaleHeight_and_scaledCrop', 'resize', 'resize_and_crop', 'crop', 'scaledCrop',
         'none')


@dataclasses.dataclass(frozen=True)
class SpatialParams:
  """Spatial transform of one clip (see the module docstring)."""
  resize: tuple[int, int]  # (width, height) after pre_crop
  pre_crop: Optional[Box] = None
  crop: Optional[Box] = None
  flip: bool = False

  @property
  def out_size(self) -> tuple[int, int]:
    """(width, height) of the output."""
    return (self.crop[2], self.crop[3]) if self.crop else self.resize


def _round_to(x: float, multiple: int) -> int:
  return int(round(x / multiple)) * multiple  # Python round (half to even), as the original


def get_params(rng: Optional[np.random.Generator], mode: str, load_size: int, fine_size: int,
               width: int, height: int, *, flip: bool, pose_centre_crop: bool = False,
               pre_crop: Optional[Box] = None) -> SpatialParams:
  """A clip's params (random ones drawn from ``rng`` in the order of the module docstring).

  Args:
    rng: randomness for random scales, crop offsets and flips (an ``np.random.Generator``, or
      anything with its ``integers``, ``standard_normal`` and ``random``); None = deterministic
      (test): centred crop_x, crop_y = 0, largest random scale, no flip.
    mode: resize_or_crop, one of ``MODES``.
    load_size, fine_size: sizes in pixels.
    width, height: size of the source (after ``pre_crop``) in pixels.
    flip: whether random flips are allowed.
    pose_centre_crop: keep the central half width (pose).
    pre_crop: optional box applied to the source first.

  Returns:
    SpatialParams.
  """
  if mode not in MODES:
    raise ValueError(f'resize_or_crop must be one of {MODES}; got {mode!r}')
  w, h = width, height
  if 'resize' in mode:
    w, h = load_size, load_size
  elif 'scaleWidth' in mode:
    w, h = load_size, load_size * height // width
  elif 'scaleHeight' in mode:
    w, h = load_size * width // height, load_size
  elif 'randomScaleWidth' in mode:
    # The original's randint(fineSize, loadSize + 1) includes loadSize + 1.
    w = int(rng.integers(fine_size, load_size + 2)) if rng is not None else load_size
    h = w * height // width
  elif 'randomScaleHeight' in mode:
    h = int(rng.integers(fine_size, load_size + 2)) if rng is not None else load_size
    w = h * width // height
  w, h = _round_to(w, 4), _round_to(h, 4)
  crop = None
  if 'crop' in mode or 'scaledCrop' in mode:
    if 'crop' in mode:
      cw, ch = fine_size, fine_size
    elif 'Width' in mode:
      cw, ch = fine_size, fine_size * height // width
    else:
      cw, ch = fine_size * width // height, fine_size
    cw, ch = _round_to(cw, 32), _round_to(ch, 32)
    x_span = (w - cw) // 2
    if rng is not None:  # drawn even when the crop turns out not to be needed, as the original
      cx = max(0, min(2 * x_span, int(rng.standard_normal() * x_span / 3 + x_span)))
      cy = int(rng.integers(0, min(max(0, h - ch), h // 8) + 1))
    else:
      cx, cy = max(0, x_span), 0
    if w > cw or h > ch:
      crop = (cx, cy, cw, ch)
  else:
    w, h = _round_to(w, 32), _round_to(h, 32)
  if w <= 0 or h <= 0:
    raise ValueError(f'resize_or_crop={mode!r} with load_size={load_size} maps a {width}x{height} '
                     f'frame to {w}x{h}')
  if pose_centre_crop:
    base = crop or (0, 0, w, h)
    bs = int(0.25 * base[2]) // 32 * 32
    if bs > 0:
      crop = (base[0] + base[2] // 2 - bs, base[1], 2 * bs, base[3])
  coin = rng is not None and rng.random() > 0.5  # drawn even where flips are off
  return SpatialParams(resize=(w, h), pre_crop=pre_crop, crop=crop, flip=bool(flip and coin))


def crop_padded(image: np.ndarray, box: Box) -> np.ndarray:
  """[h, w, ...] window of ``image`` [H, W, ...]; zeros where the box leaves the image."""
  x, y, w, h = box
  if x >= 0 and y >= 0 and x + w <= image.shape[1] and y + h <= image.shape[0]:
    return image[y:y + h, x:x + w]
  out = np.zeros((h, w) + image.shape[2:], image.dtype)
  sx0, sy0 = max(0, x), max(0, y)
  sx1, sy1 = min(image.shape[1], x + w), min(image.shape[0], y + h)
  if sx1 > sx0 and sy1 > sy0:
    out[sy0 - y:sy1 - y, sx0 - x:sx1 - x] = image[sy0:sy1, sx0:sx1]
  return out


def _nearest_rows(src: int, dst: int) -> np.ndarray:
  # PIL steps through source positions by repeated float64 addition from the first pixel centre
  # (its affine scaling), which differs from (i + 0.5) * src / dst at a few rounding boundaries.
  step = src / dst
  positions = np.add.accumulate(np.concatenate([[step * 0.5], np.full(dst - 1, step)]))
  return np.minimum(positions.astype(np.int64), src - 1)


def resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """PIL's NEAREST resize, bit for bit, of [H, W, ...] of any dtype."""
  w, h = size
  if image.shape[1] == w and image.shape[0] == h:
    return image
  rows = _nearest_rows(image.shape[0], h)
  cols = _nearest_rows(image.shape[1], w)
  return image[rows[:, None], cols[None, :]]


def resize_smooth(image: np.ndarray, size: tuple[int, int], cubic: bool) -> np.ndarray:
  """Area (shrinking) or cubic/linear (enlarging) resize of [H, W] or [H, W, C] uint8/float."""
  w, h = size
  if image.shape[1] == w and image.shape[0] == h:
    return image
  if w <= image.shape[1] and h <= image.shape[0]:
    interp = cv2.INTER_AREA
  else:
    interp = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
  channels = image.shape[2] if image.ndim == 3 else 0
  if channels > 4:  # cv2 handles at most 4 channels per call in some paths: do it in groups
    return np.concatenate([resize_smooth(image[..., i:i + 4], size, cubic)
                           for i in range(0, channels, 4)], axis=-1)
  out = cv2.resize(image, (w, h), interpolation=interp)
  return out.reshape((h, w) + image.shape[2:])


_PIL_FILTERS = {'bicubic': Image.Resampling.BICUBIC, 'bilinear': Image.Resampling.BILINEAR}


def resize_pil(image: np.ndarray, size: tuple[int, int], kind: str) -> np.ndarray:
  """PIL BICUBIC or BILINEAR resize of [H, W] or [H, W, C] uint8 (RGB at once, else per channel)."""
  if image.dtype != np.uint8:
    raise ValueError(f'resize_pil expects uint8 (what PIL resamples); got {image.dtype}')
  w, h = size
  if image.shape[1] == w and image.shape[0] == h:
    return image
  if image.ndim == 3 and image.shape[2] == 3:
    return np.asarray(Image.fromarray(image).resize((w, h), _PIL_FILTERS[kind]))
  if image.ndim == 3:
    return np.stack([resize_pil(image[..., c], size, kind) for c in range(image.shape[2])], -1)
  return np.asarray(Image.fromarray(image).resize((w, h), _PIL_FILTERS[kind]))


def apply(image: np.ndarray, params: SpatialParams, kind: str) -> np.ndarray:
  """Applies ``params`` to one frame.

  Args:
    image: [H, W] or [H, W, C] source frame (uint8 for 'bicubic' / 'bilinear').
    params: the clip's params.
    kind: 'nearest', 'bicubic', 'bilinear', 'cubic' or 'linear' (see the module docstring).

  Returns:
    The frame at ``params.out_size``, same dtype.
  """
  if params.pre_crop is not None:
    image = crop_padded(image, params.pre_crop)
  if kind == 'nearest':
    image = resize_nearest(image, params.resize)
  elif kind in _PIL_FILTERS:
    image = resize_pil(image, params.resize, kind)
  elif kind in ('cubic', 'linear'):
    image = resize_smooth(image, params.resize, cubic=kind == 'cubic')
  else:
    raise ValueError(f"kind must be 'nearest', 'bicubic', 'bilinear', 'cubic' or 'linear'; "
                     f'got {kind!r}')
  if params.crop is not None:
    image = crop_padded(image, params.crop)
  if params.flip:
    image = image[:, ::-1]
  return np.ascontiguousarray(image)


def apply_flow(flow: np.ndarray, valid: np.ndarray,
               params: SpatialParams) -> tuple[np.ndarray, np.ndarray]:
  """Applies ``params`` to a backward flow and its validity.

  Args:
    flow: [H, W, 2] float32 pixels (dx, dy) at the source size.
    valid: [H, W] float32 in {0, 1}.
    params: the clip's params.

  Returns:
    (flow [h, w, 2] in output pixels: dx scaled by the width ratio, dy by the height ratio,
    dx negated by a flip; valid [h, w], also 0 where the flow points outside the output frame).
  """
  if params.pre_crop is not None:
    flow = crop_padded(flow, params.pre_crop)
    valid = crop_padded(valid, params.pre_crop)
  src_h, src_w = flow.shape[:2]
  flow = resize_nearest(flow, params.resize)
  valid = resize_nearest(valid, params.resize)
  flow = flow * np.array([params.resize[0] / src_w, params.resize[1] / src_h], np.float32)
  if params.crop is not None:
    flow = crop_padded(flow, params.crop)
    valid = crop_padded(valid, params.crop)
  if params.flip:
    flow = flow[:, ::-1] * np.array([-1, 1], np.float32)
    valid = valid[:, ::-1]
  h, w = valid.shape
  tx = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
  ty = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
  inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
  return np.ascontiguousarray(flow, np.float32), (valid * inside).astype(np.float32)


def compose_backward(flow_a: np.ndarray, valid_a: np.ndarray, flow_b: np.ndarray,
                     valid_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Chains backward flows: a (t -> t-1) then b (t-1 -> t-2) gives t -> t-2.

  Args:
    flow_a, flow_b: [H, W, 2] float32 pixels; valid_a, valid_b: [H, W] float32 in {0, 1}.

  Returns:
    (flow [H, W, 2], valid [H, W]); b is sampled bilinearly at p + a(p) (exact for integer
    flows), and the result is valid where a is and b is at every bilinear tap.
  """
  h, w = valid_a.shape
  map_x = np.arange(w, dtype=np.float32)[None, :] + flow_a[..., 0]
  map_y = np.arange(h, dtype=np.float32)[:, None] + flow_a[..., 1]
  sampled = cv2.remap(flow_b, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
  # min over the taps: erode the validity by one pixel in the sampling sense
  eroded = cv2.erode(valid_b, np.ones((2, 2), np.uint8), anchor=(0, 0),
                     borderType=cv2.BORDER_REPLICATE)
  frac = (np.abs(map_x - np.round(map_x)) > 1e-4) | (np.abs(map_y - np.round(map_y)) > 1e-4)
  v_exact = cv2.remap(valid_b, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
  v_frac = cv2.remap(eroded, np.floor(map_x), np.floor(map_y), cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT)
  valid_sampled = np.where(frac, v_frac, v_exact)
  return flow_a + sampled, valid_a * valid_sampled
