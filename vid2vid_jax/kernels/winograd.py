"""Winograd F(2x2, 3x3) convolution with its own gradients.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016: input transform B^T,
kernel transform G, output transform A^T; the 2-D transforms are their Kronecker products,
indexed (row, column) row-major.
"""

import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax.kernels import lax_conv

_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
_INPUT = np.kron(_BT, _BT)  # [16, 16] on a tile's 4x4 pixels
_KERNEL = np.kron(_G, _G)  # [16, 9] on the 3x3 taps
_OUTPUT = np.kron(_AT, _AT)  # [4, 16] -> a tile's 2x2 outputs


def _tiles(xp: jax.Array, rows: int, cols: int) -> jax.Array:
  """[B, 2 * rows + 2, 2 * cols + 2, C] -> [16, B * rows * cols * C]: entry a * 4 + b holds
  pixel (a, b) of every 4x4 input tile (tiles start every 2 pixels), read from the
  space-to-depth view of ``xp`` as plain slices."""
  batch, channels = xp.shape[0], xp.shape[-1]
  xr = xp.reshape(batch, rows + 1, 2, cols + 1, 2, channels)
  return jnp.stack([xr[:, a // 2:a // 2 + rows, a % 2, b // 2:b // 2 + cols, b % 2]
                    for a in range(4) for b in range(4)]).reshape(16, -1)


def _untile(d_tiles: jax.Array, batch: int, rows: int, cols: int) -> jax.Array:
  """The transpose of `_tiles`: [16, B * rows * cols * C] -> [B, 2 * rows + 2, 2 * cols + 2, C],
  each tile pixel added back where it was read. Pixel (a, b) of tile (i, j) is input pixel
  (2 (i + a // 2) + a % 2, ...): per input phase (a % 2, b % 2) four shifted copies add up
  (tiles overlap by two pixels)."""
  d_tiles = d_tiles.reshape(4, 4, batch, rows, cols, -1)
  phase_rows = []
  for row_phase in range(2):
    phases = []
    for col_phase in range(2):
      phases.append(sum(
          jnp.pad(d_tiles[2 * di + row_phase, 2 * dj + col_phase],
                  ((0, 0), (di, 1 - di), (dj, 1 - dj), (0, 0)))
          for di in range(2) for dj in range(2)))
    phase_rows.append(jnp.stack(phases, axis=3))  # [B, rows + 1, cols + 1, 2, C]
  dxp = jnp.stack(phase_rows, axis=2)  # [B, rows + 1, 2, cols + 1, 2, C]
  return dxp.reshape(batch, 2 * rows + 2, 2 * cols + 2, -1)


@jax.custom_vjp
def winograd_conv(xp: jax.Array, kernel: jax.Array) -> jax.Array:
  """VALID stride-1 3x3 conv of an already padded input: [B, H + 2, W + 2, C] x [3, 3, C, O] ->
  [B, H, W, O] (float32 accumulation), H and W even.

  Each 2x2 output tile is A^T [(G k G^T) * (B^T d B)] A of its 4x4 input tile d: 16 GEMMs of
  [tiles, C] x [C, O], 2.25x fewer multiplications than the direct conv; the gradients are 16
  GEMMs each too (`_bwd`). The transforms are small dense matrices applied as GEMMs: XLA:CPU
  runs those at memory speed, while the same transforms as element-wise sums of slices, and
  autodiff's scatter of the strided tile reads, took longer than the whole conv. At 16x32x512 ->
  512 value and gradients took 32-35 ms against 57-69 ms for the im2col GEMM; with 128 channels
  the transforms dominate (`Thresholds.winograd_min_features`). The transforms hold only 0, +-1,
  +-1/2 and +-1/4: float32 results differ from the direct conv by ~1e-6 relative.
  """
  return _fwd(xp, kernel)[0]


def _fwd(xp, kernel):
  batch, rows, cols = xp.shape[0], (xp.shape[1] - 2) // 2, (xp.shape[2] - 2) // 2
  in_features, features = kernel.shape[2], kernel.shape[3]
  acc = lax_conv.acc_dtype(xp.dtype)
  v = jnp.dot(jnp.asarray(_INPUT, xp.dtype), _tiles(xp, rows, cols),
              preferred_element_type=acc).reshape(16, -1, in_features)
  u = jnp.dot(jnp.asarray(_KERNEL, kernel.dtype), kernel.reshape(9, -1),
              preferred_element_type=acc).reshape(16, in_features, features)
  m = jnp.einsum('tpc,tco->tpo', v, u)
  y = jnp.dot(jnp.asarray(_OUTPUT, acc), m.reshape(16, -1))
  # (row, column) in the output tile first -> [B, H, W, O].
  y = jnp.transpose(y.reshape(2, 2, batch, rows, cols, features), (2, 3, 0, 4, 1, 5))
  return y.reshape(batch, 2 * rows, 2 * cols, features), (v, u)


def _bwd(residuals, dy):
  """dM = A dY A^T per tile; dV = dM U^T and dU = V^T dM (16 GEMMs each); dk = G^T dU G and
  d(tiles) = B dV B^T as GEMMs with the transposed transforms, then the tiles' overlaps added."""
  v, u = residuals
  batch, height, width, features = dy.shape
  rows, cols = height // 2, width // 2
  dy_tiles = jnp.transpose(dy.reshape(batch, rows, 2, cols, 2, features), (2, 4, 0, 1, 3, 5))
  dm = jnp.dot(jnp.asarray(_OUTPUT.T, dy.dtype), dy_tiles.reshape(4, -1))
  dm = dm.reshape(16, -1, features)
  dv = jnp.einsum('tpo,tco->tpc', dm, u)
  du = jnp.einsum('tpc,tpo->tco', v, dm)
  dk = jnp.dot(jnp.asarray(_KERNEL.T, du.dtype), du.reshape(16, -1))
  d_tiles = jnp.dot(jnp.asarray(_INPUT.T, dv.dtype), dv.reshape(16, -1))
  return _untile(d_tiles, batch, rows, cols), dk.reshape(3, 3, *u.shape[1:])


winograd_conv.defvjp(_fwd, _bwd)
