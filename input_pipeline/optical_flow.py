"""Classical optical flow (OpenCV's DIS) for datasets without FlowNet2 weights.

``python -m input_pipeline.prepare`` writes these flows next to the frames ({phase}_flow, the
format ``layouts.read_flow`` reads), so a model trains with ``flow.source='dataset'``: the
generator's flow learns from them as the original's learns from FlowNet2.
"""

import cv2
import numpy as np

# A pixel is reliable when following the backward flow and then the forward flow returns within
# this many pixels plus this fraction of the motion (the usual forward-backward check).
CONSISTENCY_PX = 0.5
CONSISTENCY_FRACTION = 0.05


def _grey(frame: np.ndarray) -> np.ndarray:
  return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _sample(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  return cv2.remap(field, x, y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class FlowEstimator:
  """Backward flow between consecutive frames; one DIS instance reused (``preset``: 'fast',
  'medium' or 'ultrafast')."""

  def __init__(self, preset: str = 'medium'):
    presets = {'ultrafast': cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
               'fast': cv2.DISOPTICAL_FLOW_PRESET_FAST,
               'medium': cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    if preset not in presets:
      raise ValueError(f'flow preset must be one of {sorted(presets)}, got {preset!r}')
    self._dis = cv2.DISOpticalFlow_create(presets[preset])

  def backward(self, previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flow of ``current`` back to ``previous`` ([H, W, 3] uint8 RGB each).

    Returns:
      backward [H, W, 2] float32 pixels (dx, dy): previous sampled at x + backward(x) ~= current
      (vid2vid_jax.warp semantics); valid [H, W] uint8, 1 where the forward-backward check passes
      and the pixel lands inside the previous frame.
    """
    prev_grey, cur_grey = _grey(previous), _grey(current)
    backward = self._dis.calc(cur_grey, prev_grey, None).astype(np.float32)
    forward = self._dis.calc(prev_grey, cur_grey, None).astype(np.float32)
    height, width = cur_grey.shape
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                 np.arange(height, dtype=np.float32))
    x, y = grid_x + backward[..., 0], grid_y + backward[..., 1]
    round_trip = backward + _sample(forward, x, y)
    error = np.linalg.norm(round_trip, axis=-1)
    motion = np.linalg.norm(backward, axis=-1)
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    valid = inside & (error <= CONSISTENCY_PX + CONSISTENCY_FRACTION * motion)
    return backward, valid.astype(np.uint8)
