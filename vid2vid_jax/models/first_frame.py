"""The single-image first-frame generators (pix2pixHD style): global generator, local enhancer.

reference/vid2vid_spec.md section 1.6. Used by the 'single_g' first-frame mode to synthesise the
first n_frames_G - 1 frames of a sequence from labels. The pix2pixHD feature variants
(global/local_with_features and the instance-wise feature Encoder, used only by the face
first-frame model) are not implemented.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vid2vid_jax.models import layers

Dtype = Any
MAX_FEATURES = 1024  # pix2pixHD caps every width at 1024 (unlike CompositeGenerator, spec 8.11).


def _image_head(x: jax.Array, output_nc: int, dtype: Dtype, name: str) -> jax.Array:
  y = layers.Conv(output_nc, 7, padding=3, padding_mode='reflect', dtype=dtype, name=name)(x)
  return jnp.tanh(y.astype(jnp.promote_types(dtype, jnp.float32)))


class GlobalGenerator(nn.Module):
  """Stem, n_downsample stride-2 convs, n_blocks residual blocks, n_downsample up convs, head.

  Submodules: ``encoder`` (layers.DownPath with the residual blocks), ``decoder``
  (layers.UpPath), ``head`` (ReflPad3 + Conv7x7 + tanh; absent when ``with_head`` is False, as
  inside the local enhancer). Widths min(1024, ngf * 2**i).

  Attributes:
    ngf: width after the stem.
    n_downsample: stride-2 convs.
    n_blocks: residual blocks at the bottleneck.
    norm: 'batch' or 'instance'.
    output_nc: image channels.
    with_head: add the image head (False inside LocalEnhancer).
    dtype: activation dtype.
  """
  ngf: int = 64
  n_downsample: int = 3
  n_blocks: int = 9
  norm: str = 'batch'
  output_nc: int = 3
  with_head: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] labels (+ edges) -> [B, H, W, output_nc] float32 in [-1, 1]
    (or the [B, H, W, ngf] decoder features when with_head is False)."""
    kw = dict(norm=self.norm, max_features=MAX_FEATURES, dtype=self.dtype)
    x = layers.DownPath(self.ngf, self.n_downsample, self.n_blocks, name='encoder', **kw)(x)
    x = layers.UpPath(self.ngf, self.n_downsample, 0, name='decoder', **kw)(x)
    if not self.with_head:
      return x
    return _image_head(x, self.output_nc, self.dtype, 'head')


class LocalEnhancer(nn.Module):
  """pix2pixHD local enhancer: a global generator at the coarsest input level, refined by
  n_local_enhancers stride-2 branches.

  Submodules: ``global_generator`` (GlobalGenerator of width ngf * 2**n_local_enhancers without
  head), and for n = 1..n_local_enhancers: ``enhancer{n}_encoder`` (stem + one stride-2 conv,
  width ngf * 2**(n_local_enhancers - n)), ``enhancer{n}_decoder`` (n_blocks_local residual
  blocks + one up conv); ``head`` after the last enhancer.

  Attributes:
    ngf: width of the finest enhancer.
    n_downsample_global: stride-2 convs of the global generator.
    n_blocks_global: residual blocks of the global generator.
    n_local_enhancers: enhancer levels (input pyramid has n_local_enhancers + 1 levels).
    n_blocks_local: residual blocks per enhancer.
    norm, output_nc, dtype: as GlobalGenerator.
  """
  ngf: int = 32
  n_downsample_global: int = 3
  n_blocks_global: int = 9
  n_local_enhancers: int = 1
  n_blocks_local: int = 3
  norm: str = 'batch'
  output_nc: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] -> [B, H, W, output_nc] float32 in [-1, 1]. H and W must be divisible by
    2**(n_local_enhancers + n_downsample_global)."""
    nle = self.n_local_enhancers
    inputs = layers.pyramid(x, nle + 1)  # coarsest first
    out = GlobalGenerator(self.ngf * 2**nle, self.n_downsample_global, self.n_blocks_global,
                          self.norm, self.output_nc, with_head=False, dtype=self.dtype,
                          name='global_generator')(inputs[0])
    kw = dict(norm=self.norm, dtype=self.dtype)
    for n in range(1, nle + 1):
      width = self.ngf * 2**(nle - n)
      down = layers.DownPath(width, 1, 0, name=f'enhancer{n}_encoder', **kw)(inputs[n])
      out = layers.UpPath(width, 1, self.n_blocks_local, name=f'enhancer{n}_decoder', **kw)(
          down + out)
    return _image_head(out, self.output_nc, self.dtype, 'head')
