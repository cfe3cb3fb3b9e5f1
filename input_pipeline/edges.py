"""Edge maps of real frames (Canny), the conditioning of an edges -> video model.

``canny`` is what ``python -m input_pipeline.prepare --conditioning edges`` writes to {phase}_A:
a single-channel uint8 map, 255 on edges and 0 elsewhere, which the 'video' layout reads with
data.input_nc 1 (scaled to [-1, 1]).
"""

import cv2
import numpy as np


def canny(frame: np.ndarray, low: float = 100.0, high: float = 200.0,
          blur: int = 3) -> np.ndarray:
  """[H, W, 3] uint8 RGB -> [H, W] uint8 edge map in {0, 255}.

  Args:
    frame: the image.
    low, high: Canny hysteresis thresholds on the gradient magnitude (0..255 grey levels).
    blur: side of the Gaussian kernel smoothing the grey image first (odd; 0 or 1 = none).
  """
  if blur not in (0, 1) and (blur < 0 or blur % 2 == 0):
    raise ValueError(f'blur must be 0 or an odd kernel size, got {blur}')
  if not 0 <= low <= high:
    raise ValueError(f'Canny thresholds must satisfy 0 <= low <= high, got {low}, {high}')
  grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
  if blur > 1:
    grey = cv2.GaussianBlur(grey, (blur, blur), 0)
  return cv2.Canny(grey, low, high)
