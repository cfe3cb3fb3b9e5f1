"""Video quality metrics: PSNR, SSIM and temporal warping error (pure functions of arrays)."""

import jax
import jax.numpy as jnp

from vid2vid_jax import warp as warp_lib


def _to_unit(image: jax.Array) -> jax.Array:
  return (image.astype(jnp.float32) + 1.0) * 0.5


def psnr(fake: jax.Array, real: jax.Array) -> jax.Array:
  """Peak signal-to-noise ratio in dB per image.

  Args:
    fake, real: [N, H, W, C] in [-1, 1].

  Returns:
    [N] PSNR in dB, computed on images mapped to [0, 1] (peak 1); capped at 100 dB for equal
    images.
  """
  if fake.shape != real.shape or fake.ndim != 4:
    raise ValueError(f'psnr expects two [N, H, W, C] arrays; got {fake.shape}, {real.shape}')
  mse = jnp.mean((_to_unit(fake) - _to_unit(real)) ** 2, axis=(1, 2, 3))
  return jnp.minimum(10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10)), 100.0)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> jax.Array:
  coords = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
  g = jnp.exp(-coords ** 2 / (2 * sigma ** 2))
  return g / g.sum()


def _blur(x: jax.Array, window: jax.Array) -> jax.Array:
  """Separable 'valid' Gaussian filter of [N, H, W, C] per channel."""
  channels = x.shape[-1]
  size = window.shape[0]
  kh = jnp.tile(window.reshape(size, 1, 1, 1), (1, 1, 1, channels))
  kw = jnp.tile(window.reshape(1, size, 1, 1), (1, 1, 1, channels))
  dn = ('NHWC', 'HWIO', 'NHWC')
  x = jax.lax.conv_general_dilated(x, kh, (1, 1), 'VALID', dimension_numbers=dn,
                                   feature_group_count=channels)
  return jax.lax.conv_general_dilated(x, kw, (1, 1), 'VALID', dimension_numbers=dn,
                                      feature_group_count=channels)


def ssim(fake: jax.Array, real: jax.Array) -> jax.Array:
  """Structural similarity per image (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, K1/K2 0.01/0.03).

  Args:
    fake, real: [N, H, W, C] in [-1, 1], H and W >= 11.

  Returns:
    [N] mean SSIM over pixels and channels, in [-1, 1], computed on [0, 1] images.
  """
  if fake.shape != real.shape or fake.ndim != 4:
    raise ValueError(f'ssim expects two [N, H, W, C] arrays; got {fake.shape}, {real.shape}')
  if min(fake.shape[1:3]) < 11:
    raise ValueError(f'ssim needs images of at least 11x11 pixels, got {fake.shape[1:3]}')
  x, y = _to_unit(fake), _to_unit(real)
  window = _gaussian_window()
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  mu_x, mu_y = _blur(x, window), _blur(y, window)
  sxx = _blur(x * x, window) - mu_x ** 2
  syy = _blur(y * y, window) - mu_y ** 2
  sxy = _blur(x * y, window) - mu_x * mu_y
  score = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / (
      (mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
  return jnp.mean(score, axis=(1, 2, 3))


def warping_error(frame: jax.Array, prev_frame: jax.Array, flow_to_prev: jax.Array,
                  valid: jax.Array | None = None) -> jax.Array:
  """Temporal warping error: how far ``frame`` is from ``prev_frame`` carried along the flow.

  Args:
    frame: [N, H, W, C] in [-1, 1], frame t of a generated video.
    prev_frame: [N, H, W, C] in [-1, 1], frame t-1.
    flow_to_prev: [N, H, W, 2] backward flow t -> t-1 in pixels (of the real video).
    valid: optional [N, H, W, 1] in [0, 1]: 1 where the flow is reliable (not occluded).

  Returns:
    [N] mean absolute difference on [0, 1] images over valid pixels and channels.
  """
  warped = warp_lib.warp(prev_frame, flow_to_prev)
  diff = jnp.abs(_to_unit(frame) - _to_unit(warped))
  if valid is None:
    return jnp.mean(diff, axis=(1, 2, 3))
  weight = jnp.broadcast_to(valid.astype(jnp.float32), diff.shape)
  return jnp.sum(diff * weight, axis=(1, 2, 3)) / jnp.maximum(jnp.sum(weight, axis=(1, 2, 3)), 1.0)
