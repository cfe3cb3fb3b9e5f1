"""FlowNet2 building blocks: conv / deconv blocks, ChannelNorm, Resample2d, upsampling.

Everything is NHWC with HWIO kernels. The original (flownet2-pytorch) is NCHW with OIHW conv
weights and (in, out, kh, kw) ConvTranspose weights; ``flow/convert_flownet2.py`` owns that mapping.

Resample2d vs ``vid2vid_jax.warp.warp``: the CUDA Resample2d (kernel_size 1, bilinear) clamps the
four tap *indices* to the image but computes the weights from the unclamped fractional position.
That is bilinear sampling with edge replication, which is exactly what ``warp`` computes by
clamping the sample *coordinates* first (both give ``I[0]`` for any position left of pixel 0, and
interpolate identically inside). So the bilinear Resample2d here *is* ``warp``. The differences
are outside FlowNet2's forward pass: the gradient with respect to a flow that points outside the
image (zero in ``warp``; the CUDA backward uses the unclamped weights), and the nearest mode
(``bilinear=False``) of newer flownet2-pytorch, which ``resample2d`` implements separately.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import warp as warp_lib

Precision = Any  # None | str | jax.lax.Precision, as accepted by lax.conv_general_dilated.

LEAKY_SLOPE = 0.1  # nn.LeakyReLU(0.1) after every conv/deconv block of FlowNet2.


class ConvBlock(nn.Module):
  """``Conv2d(k, stride, padding=(k-1)//2, bias=True)`` [+ LeakyReLU(0.1)].

  The original's ``conv`` (with activation), ``i_conv`` (``inter_conv*``, no activation) and
  ``predict_flow`` (3x3 to 2 channels, no activation) are all this block.

  Attributes:
    features: output channels.
    kernel_size: square kernel size (odd).
    stride: spatial stride.
    activation: apply LeakyReLU(0.1) after the conv.
    dtype: computation dtype (params stay float32).
    precision: conv precision (``'highest'`` avoids TF32 on GPUs).
  """
  features: int
  kernel_size: int = 3
  stride: int = 1
  activation: bool = True
  dtype: Any = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] -> [B, ceil(H / stride), ceil(W / stride), features]."""
    pad = (self.kernel_size - 1) // 2
    x = nn.Conv(self.features, (self.kernel_size, self.kernel_size),
                strides=(self.stride, self.stride), padding=((pad, pad), (pad, pad)),
                use_bias=True, dtype=self.dtype, param_dtype=jnp.float32,
                precision=self.precision, name='conv')(x)
    if self.activation:
      x = nn.leaky_relu(x, LEAKY_SLOPE)
    return x


class Deconv(nn.Module):
  """``ConvTranspose2d(C_in, features, kernel_size=4, stride=2, padding=1)`` [+ LeakyReLU(0.1)].

  The ``kernel`` parameter is [4, 4, C_in, features] with ``kernel[ky, kx, i, o] =
  W_torch[i, o, ky, kx]`` (no flip). The transposed conv is computed as the README describes:
  dilate the input by 2 (one zero between pixels), zero-pad by 2, and correlate with the
  spatially flipped kernel. The output is exactly [B, 2H, 2W, features].

  Attributes:
    features: output channels.
    use_bias: FlowNetS's ``upsampled_flow*`` have no bias; every other deconv has one.
    activation: apply LeakyReLU(0.1) (``deconv*``: yes; ``upsampled_flow*``: no).
    dtype: computation dtype (params stay float32).
    precision: conv precision.
  """
  features: int
  use_bias: bool = True
  activation: bool = True
  dtype: Any = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] -> [B, 2H, 2W, features]."""
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (4, 4, x.shape[-1], self.features), jnp.float32)
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), kernel[::-1, ::-1].astype(self.dtype), window_strides=(1, 1),
        padding=((2, 2), (2, 2)), lhs_dilation=(2, 2),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=self.precision)
    if self.use_bias:
      bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
      y = y + bias.astype(self.dtype)
    if self.activation:
      y = nn.leaky_relu(y, LEAKY_SLOPE)
    return y


def channel_norm(x: jax.Array) -> jax.Array:
  """FlowNet2's ChannelNorm: the L2 norm over channels, with no epsilon.

  The original accepts a ``norm_deg`` argument and ignores it: the norm is always L2.

  Args:
    x: [B, H, W, C], any range.

  Returns:
    [B, H, W, 1], ``sqrt(sum_c x**2)``, same dtype as ``x``.
  """
  if x.ndim != 4:
    raise ValueError(f'channel_norm expects [B, H, W, C]; got {x.shape}')
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))


def resample2d(image: jax.Array, flow: jax.Array, bilinear: bool = True) -> jax.Array:
  """FlowNet2's Resample2d (kernel_size 1): backward warp with edge replication.

  Args:
    image: [B, H, W, C], any range (the original is float32-only).
    flow: [B, H, W, 2] in pixels, (dx, dy), not normalised.
    bilinear: True (FlowNet2, vid2vid) is bilinear sampling and delegates to
      ``vid2vid_jax.warp.warp`` (identical semantics, see the module docstring). False is the
      nearest mode of newer flownet2-pytorch: ``floor(x + dx + 0.5)``, clamped to the image.

  Returns:
    [B, H, W, C], dtype of ``image``.
  """
  if bilinear and image.dtype == jnp.float64:
    # ``warp`` computes sample coordinates in float32; a float64 run (the parity tool's
    # --float64 check) needs them in float64. map_coordinates(order=1, mode='nearest') is the
    # same edge-replicating bilinear warp.
    return _warp_float64(image, flow)
  if bilinear:
    return warp_lib.warp(image, flow)
  if image.ndim != 4 or flow.ndim != 4 or flow.shape[-1] != 2 or image.shape[:3] != flow.shape[:3]:
    raise ValueError(f'resample2d expects image [B, H, W, C] and flow [B, H, W, 2] of the same '
                     f'size; got {image.shape} and {flow.shape}')
  batch, height, width, channels = image.shape
  flow = flow.astype(jnp.float32)
  xs = jnp.arange(width, dtype=jnp.float32)[None, None, :] + flow[..., 0]
  ys = jnp.arange(height, dtype=jnp.float32)[None, :, None] + flow[..., 1]
  xi = jnp.clip(jnp.floor(xs + 0.5), 0, width - 1).astype(jnp.int32)
  yi = jnp.clip(jnp.floor(ys + 0.5), 0, height - 1).astype(jnp.int32)
  index = (yi * width + xi).reshape(batch, height * width, 1)
  flat = image.reshape(batch, height * width, channels)
  return jnp.take_along_axis(flat, index, axis=1).reshape(image.shape)


def _warp_float64(image: jax.Array, flow: jax.Array) -> jax.Array:
  """``warp`` in float64: [B, H, W, C], [B, H, W, 2] pixels -> [B, H, W, C] float64."""
  if image.ndim != 4 or flow.ndim != 4 or flow.shape[-1] != 2 or image.shape[:3] != flow.shape[:3]:
    raise ValueError(f'resample2d expects image [B, H, W, C] and flow [B, H, W, 2] of the same '
                     f'size; got {image.shape} and {flow.shape}')
  _, height, width, _ = image.shape
  flow = flow.astype(jnp.float64)
  ys = jnp.arange(height, dtype=jnp.float64)[None, :, None] + flow[..., 1]
  xs = jnp.arange(width, dtype=jnp.float64)[None, None, :] + flow[..., 0]

  def one_channel(img2d, y, x):
    return jax.scipy.ndimage.map_coordinates(img2d, [y, x], order=1, mode='nearest')

  per_channel = jax.vmap(one_channel, in_axes=(2, None, None), out_axes=2)
  return jax.vmap(per_channel)(image, ys, xs)


def _linear_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] float32 weights of PyTorch's linear interpolation, align_corners=False.

  The source coordinate is ``(dst + 0.5) * in / out - 0.5``, clamped below at 0 (PyTorch's
  ``area_pixel_compute_source_index``); the upper tap is clamped to ``in - 1``. No antialiasing,
  also when downsampling (``nn.Upsample`` / ``F.interpolate`` without ``antialias``).
  """
  # PyTorch (2.x CPU) rounds the scale to float32, then evaluates (dst + 0.5) * scale - 0.5 with
  # a single rounding (fused multiply-add); doing the same here reproduces its weights bit for bit
  # (checked against F.interpolate for up- and downsampling), and the soft confidence mask after
  # resizing to 1e-7 instead of 2e-6.
  scale = np.float64(np.float32(in_size) / np.float32(out_size))
  src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
  src = src.astype(np.float32)
  lo = np.floor(src).astype(np.int64)
  lo = np.minimum(lo, in_size - 1)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = (src - lo).astype(np.float32)
  matrix = np.zeros((out_size, in_size), np.float32)
  rows = np.arange(out_size)
  np.add.at(matrix, (rows, lo), np.float32(1.0) - frac)
  np.add.at(matrix, (rows, hi), frac)
  return matrix


def resize_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
  """PyTorch ``nn.Upsample(size=..., mode='bilinear')`` (align_corners=False, no antialias).

  Used for FlowNet2's x4 flow upsampling and for vid2vid's resize to multiples of 64.

  Args:
    x: [B, h, w, C], any range.
    height: output height.
    width: output width.

  Returns:
    [B, height, width, C], dtype of ``x``.
  """
  if x.ndim != 4:
    raise ValueError(f'resize_bilinear expects [B, H, W, C]; got {x.shape}')
  if (height, width) == x.shape[1:3]:
    return x
  rows = jnp.asarray(_linear_resize_matrix(x.shape[1], height), x.dtype)
  cols = jnp.asarray(_linear_resize_matrix(x.shape[2], width), x.dtype)
  hi = jax.lax.Precision.HIGHEST
  y = jnp.einsum('Hh,bhwc->bHwc', rows, x, precision=hi)
  return jnp.einsum('Ww,bHwc->bHWc', cols, y, precision=hi)


def upsample_nearest(x: jax.Array, factor: int) -> jax.Array:
  """``nn.Upsample(scale_factor=factor, mode='nearest')``: ``src = dst // factor``.

  Args:
    x: [B, h, w, C].
    factor: integer scale.

  Returns:
    [B, h * factor, w * factor, C].
  """
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)
