"""Layered procedural renderer with exact optical flow, used by ``synthetic.py``.

A scene is a back-to-front list of ``Layer``s. Each layer paints a procedural texture as a
function of its own *local* coordinates (u, v) and moves by a per-frame affine map local -> image.
Because every pixel's colour is a function of where it sits on its layer, the true motion of a
pixel is the layer's motion, so optical flow is exact:

  backward flow at pixel p of frame t:  A[t-1] @ inv(A[t]) @ p - p   (where p was in frame t-1)
  forward flow at pixel q of frame t-1: A[t] @ inv(A[t-1]) @ q - q

A flow vector is *valid* where the same layer is visible at both ends (every bilinear neighbour of
the target point belongs to that layer, so warping never mixes layers), the target lies inside the
image, and the layer is rigid (non-rigid layers, e.g. eyelids, change appearance in place).
"""

import dataclasses
from typing import Callable, Optional

import numpy as np

# paint(u, v, t) -> (mask [N] bool, rgb [N, 3] float in [0, 255], label [N] int or scalar int).
PaintFn = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray, object]]
# iuv(u, v, t) -> [N, 3] uint8 in the RGB channel order of a DensePose IUV png (V, U, I).
IuvFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


@dataclasses.dataclass
class Layer:
  """One moving layer.

  Attributes:
    paint: the texture, see ``PaintFn``.
    transforms: [T, 2, 3] float64 affine maps from local (u, v) to image (x, y) pixel coordinates
      (pixel centres at integers).
    bbox: (u0, v0, u1, v1) local extent outside of which ``paint`` masks everything.
    inst: instance id written for this layer's pixels (Cityscapes encoding); -1 = use the label.
    rigid: False if the appearance changes in place (flow of its pixels is marked invalid).
    iuv: optional DensePose painter.
  """
  paint: PaintFn
  transforms: np.ndarray
  bbox: tuple[float, float, float, float]
  inst: int = -1
  rigid: bool = True
  iuv: Optional[IuvFn] = None


@dataclasses.dataclass
class Frame:
  """Rendered maps of one frame: rgb [H, W, 3] uint8, label [H, W] uint8, inst [H, W] int32,
  layer [H, W] int16 (index of the visible layer, -1 none), iuv [H, W, 3] uint8."""
  rgb: np.ndarray
  label: np.ndarray
  inst: np.ndarray
  layer: np.ndarray
  iuv: np.ndarray


def translation(dx: float, dy: float) -> np.ndarray:
  """[2, 3] affine map (u, v) -> (u + dx, v + dy)."""
  return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def similarity(scale_x: float, scale_y: float, angle: float, tx: float, ty: float) -> np.ndarray:
  """[2, 3] affine map: scale (per axis), rotate by ``angle`` radians, then translate."""
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c * scale_x, -s * scale_y, tx], [s * scale_x, c * scale_y, ty]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
  """[2, 3] affine ``outer ∘ inner``."""
  full = np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]])
  return full[:2]


def invert(affine: np.ndarray) -> np.ndarray:
  """[2, 3] inverse affine."""
  return np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]


def apply_affine(affine: np.ndarray, x: np.ndarray,
                 y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Maps points (x [N], y [N]) through a [2, 3] affine."""
  return (affine[0, 0] * x + affine[0, 1] * y + affine[0, 2],
          affine[1, 0] * x + affine[1, 1] * y + affine[1, 2])


def render(layers: list[Layer], t: int, height: int, width: int) -> Frame:
  """Renders frame ``t`` of ``layers`` (back to front) at ``height`` x ``width``."""
  rgb = np.zeros((height, width, 3), np.float32)
  label = np.zeros((height, width), np.uint8)
  inst = np.zeros((height, width), np.int32)
  layer_map = np.full((height, width), -1, np.int16)
  iuv = np.zeros((height, width, 3), np.uint8)
  for index, layer in enumerate(layers):
    affine = layer.transforms[t]
    u0, v0, u1, v1 = layer.bbox
    cx, cy = apply_affine(affine, np.array([u0, u1, u0, u1]), np.array([v0, v0, v1, v1]))
    x0, x1 = max(0, int(np.floor(cx.min()))), min(width, int(np.ceil(cx.max())) + 1)
    y0, y1 = max(0, int(np.floor(cy.min()))), min(height, int(np.ceil(cy.max())) + 1)
    if x0 >= x1 or y0 >= y1:
      continue
    ys, xs = np.mgrid[y0:y1, x0:x1]
    u, v = apply_affine(invert(affine), xs.ravel().astype(np.float64),
                        ys.ravel().astype(np.float64))
    mask, colour, lab = layer.paint(u, v, t)
    if not mask.any():
      continue
    yy, xx = ys.ravel()[mask], xs.ravel()[mask]
    rgb[yy, xx] = np.asarray(colour)[mask]
    lab = np.broadcast_to(np.asarray(lab), mask.shape)[mask]
    label[yy, xx] = lab
    inst[yy, xx] = lab if layer.inst < 0 else layer.inst
    layer_map[yy, xx] = index
    iuv[yy, xx] = 0
    if layer.iuv is not None:
      iuv[yy, xx] = layer.iuv(u[mask], v[mask], t)
  return Frame(np.clip(np.round(rgb), 0, 255).astype(np.uint8), label, inst, layer_map, iuv)


def layer_flow(layers: list[Layer], src_layer_map: np.ndarray, dst_layer_map: np.ndarray,
               t_src: int, t_dst: int) -> tuple[np.ndarray, np.ndarray]:
  """Exact flow from frame ``t_src`` to frame ``t_dst``.

  Args:
    layers: the scene.
    src_layer_map: [H, W] int16 visible-layer map of frame ``t_src``.
    dst_layer_map: [H, W] int16 visible-layer map of frame ``t_dst``.
    t_src, t_dst: frame indices.

  Returns:
    flow [H, W, 2] float32 pixels (dx, dy): pixel p of frame t_src shows the same surface point
    as position p + flow(p) of frame t_dst; valid [H, W] bool (see the module docstring).
  """
  height, width = src_layer_map.shape
  flow = np.zeros((height, width, 2), np.float32)
  valid = np.zeros((height, width), bool)
  for index in np.unique(src_layer_map):
    if index < 0:
      continue
    layer = layers[index]
    ys, xs = np.nonzero(src_layer_map == index)
    motion = compose(layer.transforms[t_dst], invert(layer.transforms[t_src]))
    qx, qy = apply_affine(motion, xs.astype(np.float64), ys.astype(np.float64))
    # Snap float noise so integer motions stay integers (and use one bilinear tap).
    qx = np.where(np.abs(qx - np.round(qx)) < 1e-6, np.round(qx), qx)
    qy = np.where(np.abs(qy - np.round(qy)) < 1e-6, np.round(qy), qy)
    flow[ys, xs, 0] = qx - xs
    flow[ys, xs, 1] = qy - ys
    ok = (qx >= 0) & (qx <= width - 1) & (qy >= 0) & (qy <= height - 1) & layer.rigid
    fx0 = np.clip(np.floor(qx), 0, width - 1).astype(np.int64)
    fy0 = np.clip(np.floor(qy), 0, height - 1).astype(np.int64)
    fx1 = np.where(qx > fx0, np.minimum(fx0 + 1, width - 1), fx0)
    fy1 = np.where(qy > fy0, np.minimum(fy0 + 1, height - 1), fy0)
    for ty in (fy0, fy1):
      for tx in (fx0, fx1):
        ok &= dst_layer_map[ty, tx] == index
    valid[ys, xs] = ok
  return flow, valid


# ---------------------------------------------------------------- procedural texture helpers


def smooth_noise(u: np.ndarray, v: np.ndarray, scale: float, seed: int) -> np.ndarray:
  """Smooth deterministic noise in [-1, 1] as a function of (u, v); ``scale`` = feature size."""
  rng = np.random.default_rng(seed)
  total = np.zeros_like(u, dtype=np.float64)
  for octave in range(3):
    freq = (2.0 ** octave) / scale
    angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi, 2)
    a = np.cos(angle) * u + np.sin(angle) * v
    b = -np.sin(angle) * u + np.cos(angle) * v
    total += (np.sin(a * freq * 2.1 + phase[0]) * np.cos(b * freq * 1.7 + phase[1])) / (octave + 1)
  return total / 1.84


def shade(base, amount: np.ndarray) -> np.ndarray:
  """[N, 3] colours: ``base`` RGB scaled by (1 + amount) (amount [N] in about [-0.5, 0.5])."""
  return np.asarray(base, np.float64)[None, :] * (1.0 + amount)[:, None]


def blend(a: np.ndarray, b, where: np.ndarray) -> np.ndarray:
  """Per-row choice between colour arrays ``a`` [N, 3] and ``b`` ([N, 3] or [3])."""
  b = np.broadcast_to(np.asarray(b, np.float64), a.shape)
  return np.where(where[:, None], b, a)
