"""The one flow-warp of vid2vid-jax (bilinear backward warping).

Semantics follow the original's ``resample`` (docs/original_behaviour.md#warping):
``grid_sample(..., mode='bilinear', padding_mode='border')`` under PyTorch 0.4, i.e.
``align_corners=True``. The output at pixel (x, y) is the bilinear sample of ``image`` at
``(clamp(x + dx, 0, W - 1), clamp(y + dy, 0, H - 1))``. FlowNet2's Resample2d (kernel 1) is
numerically the same operation, so ``flow/`` uses this function too.
"""

import jax
import jax.numpy as jnp


def warp(image: jax.Array, flow: jax.Array) -> jax.Array:
  """Warps ``image`` backwards along ``flow``.

  Args:
    image: [B, H, W, C], any float dtype and range.
    flow: [B, H, W, 2] in pixels, channel 0 horizontal (dx), channel 1 vertical (dy); a backward
      flow: for every output pixel, where to sample in ``image``.

  Returns:
    [B, H, W, C] with the dtype of ``image``. Coordinates are clamped to the image (border
    padding), so the gradient with respect to a clamped flow component is zero.
  """
  if image.ndim != 4 or flow.ndim != 4 or flow.shape[-1] != 2:
    raise ValueError(
        f'warp expects image [B, H, W, C] and flow [B, H, W, 2]; got {image.shape} and '
        f'{flow.shape}')
  if image.shape[:3] != flow.shape[:3]:
    raise ValueError(
        f'warp: image {image.shape} and flow {flow.shape} differ in batch or spatial size')
  batch, height, width, channels = image.shape
  flow = flow.astype(jnp.float32)
  xs = jnp.arange(width, dtype=jnp.float32)[None, None, :] + flow[..., 0]
  ys = jnp.arange(height, dtype=jnp.float32)[None, :, None] + flow[..., 1]
  xs = jnp.clip(xs, 0.0, width - 1)
  ys = jnp.clip(ys, 0.0, height - 1)
  x0 = jnp.floor(jax.lax.stop_gradient(xs))
  y0 = jnp.floor(jax.lax.stop_gradient(ys))
  wx = (xs - x0)[..., None]
  wy = (ys - y0)[..., None]
  x0 = x0.astype(jnp.int32)
  y0 = y0.astype(jnp.int32)
  x1 = jnp.minimum(x0 + 1, width - 1)
  y1 = jnp.minimum(y0 + 1, height - 1)

  flat = image.reshape(batch, height * width, channels)

  def tap(yi, xi):
    index = (yi * width + xi).reshape(batch, height * width, 1)
    return jnp.take_along_axis(flat, index, axis=1).reshape(batch, height, width, channels)

  top = tap(y0, x0) * (1 - wx) + tap(y0, x1) * wx
  bottom = tap(y1, x0) * (1 - wx) + tap(y1, x1) * wx
  return (top * (1 - wy) + bottom * wy).astype(image.dtype)
