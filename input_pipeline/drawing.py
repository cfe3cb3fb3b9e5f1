"""Curve fitting and thick-pixel edge drawing for face edges and OpenPose renderings (spec 6.4/6.5).

Curves: a sub-edge of 2 points is a line, of 3 points an exact parabola through them (rejected if
its quadratic coefficient exceeds 1 in magnitude); when the points spread more in y than in x the
roles of x and y swap. The curve is sampled at ``int(x_end - x_start)`` evenly spaced x positions
(none if that is 0) and truncated to integers.

Edges: every curve point paints the square of offsets ``-bw..bw-1`` in x and y (bw=1: a 2x2
footprint shifted up-left); end points optionally get discs of offsets ``-2bw..2bw-1`` with
``i^2 + j^2 < (2bw)^2``. Colour: ``set`` overwrites; ``average`` averages with an already painted
(non-black) pixel, as the original's setColor does for OpenPose limbs.
"""

from typing import Optional, Sequence

import numpy as np


def interp_points(xs: np.ndarray, ys: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """Samples the curve through 2 or 3 points; None if rejected or empty.

  Args:
    xs, ys: [N] float, N in {2, 3}.

  Returns:
    (curve_x, curve_y) int64 arrays, or None.
  """
  xs = np.asarray(xs, np.float64)
  ys = np.asarray(ys, np.float64)
  if np.abs(np.diff(xs)).max() < np.abs(np.diff(ys)).max():
    swapped = interp_points(ys, xs)
    return None if swapped is None else (swapped[1], swapped[0])
  if len(xs) >= 3:
    # Exact parabola through the 3 points (what a least-squares fit of a*x^2+b*x+c gives).
    try:
      coeffs = np.linalg.solve(np.vander(xs, 3), ys)
    except np.linalg.LinAlgError:
      return None
    if abs(coeffs[0]) > 1:
      return None
  else:
    if xs[0] == xs[-1]:
      return None
    slope = (ys[-1] - ys[0]) / (xs[-1] - xs[0])
    coeffs = np.array([0.0, slope, ys[0] - slope * xs[0]])
  if xs[0] > xs[-1]:
    xs = xs[::-1]
  count = int(xs[-1] - xs[0])
  if count <= 0:
    return None
  curve_x = np.linspace(xs[0], xs[-1], count)
  curve_y = np.polyval(coeffs, curve_x)
  return curve_x.astype(np.int64), curve_y.astype(np.int64)


def _footprint(bw: int, end_disc: bool) -> np.ndarray:
  if end_disc:
    r = 2 * bw
    i, j = np.mgrid[-r:r, -r:r]
    keep = i ** 2 + j ** 2 < r ** 2
    return np.stack([i[keep], j[keep]], -1)
  i, j = np.mgrid[-bw:bw, -bw:bw]
  return np.stack([i.ravel(), j.ravel()], -1)


def draw_edge(canvas: np.ndarray, curve_x: np.ndarray, curve_y: np.ndarray, *, bw: int = 1,
              colour=255, draw_end_points: bool = False, mode: str = 'set') -> None:
  """Paints a sampled curve into ``canvas`` in place.

  Args:
    canvas: [H, W] or [H, W, 3] uint8.
    curve_x, curve_y: [N] int pixel coordinates.
    bw: half width (see the module docstring).
    colour: scalar or RGB triple.
    draw_end_points: add discs at the first and last points.
    mode: 'set' or 'average'.
  """
  if len(curve_x) == 0:
    return
  h, w = canvas.shape[:2]
  pts = [np.stack([curve_y, curve_x], -1)[:, None, :] + _footprint(bw, False)[None]]
  if draw_end_points:
    ends = np.array([[curve_y[0], curve_x[0]], [curve_y[-1], curve_x[-1]]])
    pts.append(ends[:, None, :] + _footprint(bw, True)[None])
  pts = np.concatenate([p.reshape(-1, 2) for p in pts])
  pts[:, 0] = np.clip(pts[:, 0], 0, h - 1)
  pts[:, 1] = np.clip(pts[:, 1], 0, w - 1)
  pts = np.unique(pts, axis=0)
  yy, xx = pts[:, 0], pts[:, 1]
  colour = np.asarray(colour, np.float64)
  if mode == 'average' and canvas.ndim == 3:
    old = canvas[yy, xx].astype(np.float64)
    painted = old.sum(-1, keepdims=True) > 0
    canvas[yy, xx] = np.where(painted, (old + colour) / 2, colour).astype(np.uint8)
  else:
    canvas[yy, xx] = colour.astype(np.uint8)


def sub_edges(edge: Sequence[int], size: int = 3) -> list[tuple[int, ...]]:
  """Overlapping windows of ``size`` indices starting every ``size - 1`` (0, 2, 4, ... for 3)."""
  step = size - 1
  return [tuple(edge[i:i + size]) for i in range(0, max(1, len(edge) - 1), step)]
