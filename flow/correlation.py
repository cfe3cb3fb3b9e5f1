"""FlowNetC's correlation layer in pure JAX (the original is a CUDA extension).

Definition (fixture README, "Correlation"), with kr = (k - 1) / 2, border = kr + md,
dr = md // s2 and D = 2 dr + 1, on inputs zero-padded by ``pad_size`` (P1, P2)::

  out[b, oy, ox, (j + dr) * D + (i + dr)] = 1 / (k^2 C) * sum_{u, v in [-kr, kr]} sum_c
      P1[b, y1 + u, x1 + v, c] * P2[b, y1 + u + j s2, x1 + v + i s2, c]
  y1 = oy * s1 + md,  x1 = ox * s1 + md,  i, j in [-dr, dr]

The vertical displacement j is the slow channel index. For FlowNetC (pad 20, k 1, md 20, s1 1,
s2 2) this is ``mean_c f1[y, x] * f2[y + 2j, x + 2i]`` with 441 channels and an output the size
of the input.

Implementation: for each vertical displacement (a ``lax.map`` over D steps) the channel
reductions of all D horizontal displacements come from one batched matrix product per tile of T
output columns: ``f1[y, x0:x0+T] @ f2[y + dy, x0 + dx_min : x0 + T + dx_max].T`` gives every
(x, x') pair of the tile, and the D needed diagonals (x' - x = i * s2) are read out with a
flatten / pad / reshape trick. That computes (T + (D - 1) s2) / D times more products than
needed, but as a matrix product XLA runs it ~40x faster on CPU than the exact
multiply-and-reduce over channels (measured at 1024x512: 0.4 s vs 18 s), and it keeps memory
small: the (B, H, W, D^2, C) product tensor is never formed; one step holds a
(B, H, W / T, T, T + (D - 1) s2) block.
"""

import math

import jax
import jax.numpy as jnp

# Output columns per matrix-product tile (64 was fastest on CPU at 512x256 and 1024x512).
_TILE = 64


def correlation(f1: jax.Array, f2: jax.Array, *, pad_size: int = 20, kernel_size: int = 1,
                max_displacement: int = 20, stride1: int = 1, stride2: int = 2) -> jax.Array:
  """Correlation of two feature maps (FlowNetC's parameters by default).

  Args:
    f1: [B, H, W, C] features of the reference frame (any float dtype; accumulated in float32,
      as the CUDA kernel does, or float64 for float64 inputs).
    f2: [B, H, W, C] features of the other frame.
    pad_size: zero padding on every side.
    kernel_size: patch size k (odd). For k > 1 the patch is centred at (y1, x1), as the CUDA
      kernel does (Caffe put its corner there); FlowNet2 uses k = 1.
    max_displacement: md, in input pixels.
    stride1: output stride s1.
    stride2: displacement stride s2.

  Returns:
    [B, oH, oW, D * D] float32 (float64 for float64 inputs) with
    oH = ceil((H + 2 pad - 2 border) / s1) (likewise oW); channel (j + dr) * D + (i + dr)
    holds vertical displacement j * s2 and horizontal i * s2.
    FlowNet2 applies LeakyReLU(0.1) afterwards; this function does not.
  """
  if f1.ndim != 4 or f1.shape != f2.shape:
    raise ValueError(f'correlation expects two [B, H, W, C] maps of equal shape; got {f1.shape} '
                     f'and {f2.shape}')
  if kernel_size % 2 != 1 or min(kernel_size, stride1, stride2) < 1 or max_displacement < 0:
    raise ValueError(f'correlation: bad parameters kernel_size={kernel_size} (must be odd), '
                     f'stride1={stride1}, stride2={stride2}, max_displacement={max_displacement}')
  batch, height, width, channels = f1.shape
  kr = (kernel_size - 1) // 2
  border = kr + max_displacement
  dr = max_displacement // stride2
  num_d = 2 * dr + 1
  out_h = math.ceil((height + 2 * pad_size - 2 * border) / stride1)
  out_w = math.ceil((width + 2 * pad_size - 2 * border) / stride1)
  if out_h < 1 or out_w < 1:
    raise ValueError(f'correlation: output would be empty ({out_h}x{out_w}) for input '
                     f'{height}x{width}, pad_size={pad_size}, border={border}')

  # Product maps are needed on the padded grid rows md - kr .. md + (out_h - 1) s1 + kr (and
  # likewise columns); f2 additionally shifted by up to +-dr s2. Zero-pad by kr more so every
  # slice below is in bounds; the values read there (k > 1 only) are undefined in the CUDA
  # kernel anyway. Columns are cut into tiles of `tile` (the last one zero-padded).
  span_h = (out_h - 1) * stride1 + 2 * kr + 1
  span_w = (out_w - 1) * stride1 + 2 * kr + 1
  tile = min(span_w, _TILE)
  num_tiles = -(-span_w // tile)
  reach = (num_d - 1) * stride2  # widest horizontal displacement minus narrowest
  extra_lo = kr
  extra_hi_h = max(0, max_displacement + span_h - kr + dr * stride2 - (height + 2 * pad_size))
  extra_hi_w = max(0, max_displacement + num_tiles * tile - kr + dr * stride2
                   - (width + 2 * pad_size))
  acc_dtype = jnp.promote_types(f1.dtype, jnp.float32)
  pads = ((0, 0), (pad_size + extra_lo, pad_size + extra_hi_h),
          (pad_size + extra_lo, pad_size + extra_hi_w), (0, 0))
  p1 = jnp.pad(f1.astype(acc_dtype), pads)
  p2 = jnp.pad(f2.astype(acc_dtype), pads)
  # Index t on the padded grid of the definition is t + extra_lo in p1 / p2.
  top = max_displacement - kr + extra_lo
  row0 = top - dr * stride2  # p2 row / column of the most negative displacement
  a = jax.lax.slice(p1, (0, top, top, 0), (batch, top + span_h, top + num_tiles * tile, channels))
  a = a.reshape(batch, span_h, num_tiles, tile, channels)
  # f2 windows of tile + reach columns for each tile (they overlap by `reach`).
  windows = jnp.stack([p2[:, :, row0 + t * tile:row0 + t * tile + tile + reach, :]
                       for t in range(num_tiles)], axis=2)  # [B, Hp, tiles, tile + reach, C]

  def one_row(jj: jax.Array) -> jax.Array:
    """Displacements (j, -dr..dr) for j = jj - dr: [B, out_h, out_w, D]."""
    rows = jax.lax.dynamic_slice_in_dim(windows, row0 + jj * stride2, span_h, axis=1)
    pairs = jnp.einsum('bhtxc,bhtyc->bhtxy', a, rows, precision=jax.lax.Precision.HIGHEST,
                       preferred_element_type=acc_dtype)  # [B, span_h, tiles, tile, tile+reach]
    # pairs[..., x, x + k] sits at flat index x * (tile + reach + 1) + k.
    flat = pairs.reshape(batch, span_h, num_tiles, tile * (tile + reach))
    flat = jnp.pad(flat, ((0, 0), (0, 0), (0, 0), (0, tile)))
    diag = flat.reshape(batch, span_h, num_tiles, tile, tile + reach + 1)
    prods = diag[..., 0:reach + 1:stride2]  # [B, span_h, tiles, tile, D]
    prods = prods.reshape(batch, span_h, num_tiles * tile, num_d)[:, :, :span_w]
    if kernel_size > 1 or stride1 > 1:
      prods = jax.lax.reduce_window(prods, jnp.zeros((), acc_dtype), jax.lax.add,
                                    (1, kernel_size, kernel_size, 1),
                                    (1, stride1, stride1, 1), 'VALID')
    return prods

  rows = jax.lax.map(one_row, jnp.arange(num_d))  # [D, B, out_h, out_w, D]
  out = jnp.moveaxis(rows, 0, 3).reshape(batch, out_h, out_w, num_d * num_d)
  return out / float(kernel_size * kernel_size * channels)
