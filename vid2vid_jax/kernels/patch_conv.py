"""Convolutions as one GEMM over the input's patches (im2col), whole or in bands of rows."""

import jax
import jax.numpy as jnp

from vid2vid_jax.kernels import lax_conv


def patch_conv(xp: jax.Array, kernel: jax.Array, strides: int) -> jax.Array:
  """VALID conv of an already padded input as one GEMM over its patches:
  [B, H_p, W_p, C] x [k, k, C, O] -> [B, (H_p - k) // strides + 1, (W_p - k) // strides + 1, O].

  For 3x3 convs on small inputs (the generators' residual blocks and last down convs) XLA:CPU's
  dot runs ~20% faster than its conv, and forward, input gradient (a dot, then the patches'
  transpose: strided adds) and kernel gradient are all plain GEMMs. The patches are k*k times
  the output, so once they outgrow the cache the copies cost more than the GEMM gains
  (`Thresholds.patch_max_bytes`). For the discriminators' stride-1 4x4 convs (output one pixel
  larger than the input) XLA:CPU's kernel gradient is a conv whose window is the whole output,
  ~7x slower than this GEMM.
  """
  k = kernel.shape[0]
  batch = xp.shape[0]
  height = (xp.shape[1] - k) // strides + 1
  width = (xp.shape[2] - k) // strides + 1
  # Patch channel order (ky, kx, c) matches the HWIO kernel reshaped to [k*k*C, O].
  patches = jnp.concatenate([
      xp[:, i:i + strides * (height - 1) + 1:strides, j:j + strides * (width - 1) + 1:strides]
      for i in range(k) for j in range(k)], axis=-1)
  y = jnp.dot(patches.reshape(batch * height * width, -1), kernel.reshape(-1, kernel.shape[-1]),
              preferred_element_type=lax_conv.acc_dtype(xp.dtype))
  return y.reshape(batch, height, width, kernel.shape[-1])


def bands(rows: int, total_bytes: int, max_bytes: int) -> int:
  """The fewest bands of equal height that split ``rows`` into pieces of at most ``max_bytes``
  (of ``total_bytes``); ``rows`` itself if no divisor does."""
  want = -(-total_bytes // max_bytes)
  return next((b for b in range(max(want, 1), rows + 1) if rows % b == 0), rows)


def banded_patch_conv(xp: jax.Array, kernel: jax.Array, strides: int, n_bands: int) -> jax.Array:
  """`patch_conv` over ``n_bands`` equal bands of output rows (``n_bands`` divides them), each
  band's patches small enough to stay in cache; same shapes and values as `patch_conv`."""
  k = kernel.shape[0]
  rows = ((xp.shape[1] - k) // strides + 1) // n_bands
  return jnp.concatenate([
      patch_conv(xp[:, b * rows * strides:(b * rows + rows - 1) * strides + k], kernel, strides)
      for b in range(n_bands)], axis=1)
