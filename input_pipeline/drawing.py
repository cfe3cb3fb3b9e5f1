"""Curve fitting and pixel stamping for face edges and OpenPose renderings, as the original.

Curves: a sub-edge of 2 points is a least-squares line, of 3 points a least-squares parabola
(scipy's ``curve_fit``, the original's fitter, so that values at integer boundaries truncate the
same way); a parabola whose quadratic coefficient exceeds 1 in magnitude is skipped. When the
points spread more in y than in x, x and y swap roles. The curve is sampled at
``int(x_end - x_start)`` evenly spaced x positions from x_start to x_end (none if that is 0, so
the spacing is a bit over 1 px) and both coordinates are truncated to integers.

Stamping: for every offset (i, j) in ``range(-bw, bw)`` squared (asymmetric: a 2x2 block at
-1..0 for bw = 1), the whole curve shifted by (j, i), clipped to the canvas, is painted at once;
optional end-point discs use the offsets in ``range(-2bw, 2bw)`` with ``i^2 + j^2 < 4 bw^2``.
A grey canvas takes the first channel of the colour. On an RGB canvas a stamp whose pixels are
all black is painted with the colour; otherwise every pixel of the stamp, black ones included,
becomes ``(old + colour) / 2`` truncated to uint8 (the original's ``setColor``). So most curves
get a half-bright fringe, and where curves cross the result depends on the drawing order.
"""

from typing import Optional, Sequence

import numpy as np
from scipy import optimize


def _line(x, a, b):
  return a * x + b


def _parabola(x, a, b, c):
  return a * x**2 + b * x + c


def interp_points(xs, ys) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """Samples the curve through 2 or 3 points.

  Args:
    xs, ys: [N] pixel coordinates, N in {2, 3}.

  Returns:
    (curve_x, curve_y) [M] int64 with M >= 0, or None for a skipped parabola (or a fit that
    failed, where the original raises).
  """
  xs = np.asarray(xs, np.float64)
  ys = np.asarray(ys, np.float64)
  if xs.shape != ys.shape or xs.ndim != 1 or not 2 <= len(xs) <= 3:
    raise ValueError(f'interp_points expects 2 or 3 points; got x {xs.shape}, y {ys.shape}')
  if np.abs(np.diff(xs)).max() < np.abs(np.diff(ys)).max():
    swapped = interp_points(ys, xs)
    return None if swapped is None else (swapped[1], swapped[0])
  if len(xs) == 2 and xs[0] == xs[1]:  # one point twice: no samples whatever the fit
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  curve_fn = _line if len(xs) < 3 else _parabola
  try:
    # absolute_sigma: an exact fit has no residual to scale the covariance by, and scipy warns
    # about that otherwise (a global warnings filter would not be thread-safe in tf.data).
    coeffs, _ = optimize.curve_fit(curve_fn, xs, ys, absolute_sigma=True)
  except (RuntimeError, ValueError):
    return None
  if curve_fn is _parabola and abs(coeffs[0]) > 1:
    return None
  if xs[0] > xs[-1]:
    xs = xs[::-1]
  # The original passes a float count to linspace, which numpy < 1.18 truncated with int().
  curve_x = np.linspace(xs[0], xs[-1], int(xs[-1] - xs[0]))
  curve_y = curve_fn(curve_x, *coeffs)
  return curve_x.astype(np.int64), curve_y.astype(np.int64)


def _paint(canvas: np.ndarray, yy: np.ndarray, xx: np.ndarray, colour: np.ndarray) -> None:
  if canvas.ndim == 2:
    canvas[yy, xx] = colour[0]
  elif not canvas[yy, xx].any():
    canvas[yy, xx] = colour
  else:
    canvas[yy, xx] = ((canvas[yy, xx].astype(np.float64) + colour) / 2).astype(np.uint8)


def draw_edge(canvas: np.ndarray, curve_x: Optional[np.ndarray], curve_y: Optional[np.ndarray],
              *, bw: int = 1, colour: Sequence[int] = (255, 255, 255),
              draw_end_points: bool = False) -> None:
  """Stamps a sampled curve into ``canvas`` in place (see the module docstring).

  Args:
    canvas: [H, W] or [H, W, 3] uint8.
    curve_x, curve_y: [N] int pixel coordinates (from ``interp_points``); None or empty draws
      nothing.
    bw: stamp half width in pixels.
    colour: RGB triple (a grey canvas uses its first value).
    draw_end_points: add discs at the first and last points.
  """
  if curve_x is None or not len(curve_x):
    return
  if canvas.ndim not in (2, 3):
    raise ValueError(f'draw_edge expects an [H, W] or [H, W, 3] canvas; got {canvas.shape}')
  h, w = canvas.shape[:2]
  colour = np.asarray(colour, np.float64)
  for i in range(-bw, bw):
    for j in range(-bw, bw):
      _paint(canvas, np.clip(curve_y + i, 0, h - 1), np.clip(curve_x + j, 0, w - 1), colour)
  if draw_end_points:
    end_y = np.array([curve_y[0], curve_y[-1]])
    end_x = np.array([curve_x[0], curve_x[-1]])
    for i in range(-2 * bw, 2 * bw):
      for j in range(-2 * bw, 2 * bw):
        if i * i + j * j < 4 * bw * bw:
          _paint(canvas, np.clip(end_y + i, 0, h - 1), np.clip(end_x + j, 0, w - 1), colour)


def sub_edges(edge: Sequence[int], size: int) -> list[tuple[int, ...]]:
  """Windows of ``size`` indices starting every ``size - 1`` (overlapping by one point)."""
  step = size - 1
  return [tuple(edge[i:i + size]) for i in range(0, max(1, len(edge) - 1), step)]
