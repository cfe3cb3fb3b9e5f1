"""VALID convs with large kernels run as XLA:CPU's faster 'same' convs, with explicit gradients."""

import functools

import jax
import jax.numpy as jnp

from vid2vid_jax.kernels import lax_conv


def _same_conv(x: jax.Array, kernel: jax.Array, p: int) -> jax.Array:
  return lax_conv.conv(x, kernel, 1, ((p, p), (p, p)))


def kernel_grad(xp: jax.Array, dy: jax.Array, dtype, split: bool) -> jax.Array:
  """Kernel gradient of a VALID stride-1 conv: [B, H_p, W_p, C] x [B, H, W, O] ->
  [H_p - H + 1, W_p - W + 1, C, O] in ``dtype``.

  Written as the conv XLA:CPU's canonicalisation would make of it (C as batch, B as input
  feature: NHWC x HWIO): inside a while loop (the rollout's scan) XLA:CPU leaves autodiff's
  transposed form (dim_labels f01b_i01o->01bf) to a naive loop, ~30x slower.

  With ``split`` (C >= 2) it is two independent convs over the halves of C. XLA:CPU runs such a
  conv (small output, long reduction) on one thread, and the halves on two cores. The halves
  slice the already transposed input: slicing first gives each half its own transposed copy,
  and buffer reuse between the copies serialises the two convs again.
  """
  xp_t = jnp.transpose(xp, (3, 1, 2, 0))
  dy_t = jnp.transpose(dy.astype(xp_t.dtype), (1, 2, 0, 3))
  if split:
    half = xp_t.shape[0] // 2
    out = jnp.concatenate([lax_conv.conv(xp_t[:half], dy_t, 1, 'VALID'),
                           lax_conv.conv(xp_t[half:], dy_t, 1, 'VALID')], axis=0)
  else:
    out = lax_conv.conv(xp_t, dy_t, 1, 'VALID')
  return jnp.transpose(out, (1, 2, 0, 3)).astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def padded_conv(xp: jax.Array, kernel: jax.Array, p: int, split: bool) -> jax.Array:
  """VALID stride-1 conv of ``xp``, already padded by p = (k - 1) / 2: [B, H + 2p, W + 2p, C] x
  [k, k, C, O] -> [B, H, W, O]; ``split``: the kernel gradient's (see `kernel_grad`).

  XLA:CPU runs 'same' convs on a much faster path than VALID ones with large kernels (7x7: ~10x
  in the forward pass; autodiff's input gradient, a 'full' conv, is slow too). So the forward
  pass is a zero-padded same conv of ``xp`` cropped by p, and the input gradient is a same conv
  of the zero-padded cotangent with the flipped kernel. Values equal the VALID conv's.
  """
  return _same_conv(xp, kernel, p)[:, p:xp.shape[1] - p, p:xp.shape[2] - p]


def _padded_conv_fwd(xp, kernel, p, split):
  return padded_conv(xp, kernel, p, split), (xp, kernel)


def _padded_conv_bwd(p, split, residuals, dy):
  xp, kernel = residuals
  dy_padded = jnp.pad(dy.astype(xp.dtype), ((0, 0), (p, p), (p, p), (0, 0)))
  dxp = _same_conv(dy_padded, jnp.swapaxes(kernel[::-1, ::-1], 2, 3), p).astype(xp.dtype)
  return dxp, kernel_grad(xp, dy, kernel.dtype, split)


padded_conv.defvjp(_padded_conv_fwd, _padded_conv_bwd)
