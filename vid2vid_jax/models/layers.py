"""Shared building blocks of the vid2vid networks (Flax linen, NHWC, HWIO kernels).

Everything here follows docs/original_behaviour.md#building-blocks:
  * convolutions with reflection or zero padding, all with a bias;
  * the stride-2 transposed convolution (k=3, padding 1, output_padding 1) that doubles H and W;
  * the norm layers: batch norm and instance norm (no affine), both ALWAYS normalising with the
    statistics of the current input, as the original (which never calls ``.eval()``)
    does at training and test time. They are stateless modules: no ``batch_stats`` collection
    is carried, and the running statistics stored in original checkpoints are ignored by the
    importer (they never affect the original's outputs either);
  * the residual block and the down/up paths that the generators are built from;
  * every conv output is pinned to the mesh layout in context (batch on 'data', height on
    'spatial'; `vid2vid_jax.sharding.constrain`, a no-op without a mesh);
  * ``downsample``: THE 3x3 / stride 2 / padding 1 average pool with ``count_include_pad=False``
    used for every image pyramid (generator inputs, multi-scale discriminators, local enhancer).

How a convolution is computed is `vid2vid_jax.kernels`' concern: every conv module takes
``conv_impl`` ('tuned' or 'plain', `kernels.CONV_IMPLS`), same values and parameters either way.

Parameters are float32; ``dtype`` is the activation dtype, float32 or bfloat16. The ONLY
rounding to bfloat16 is at convolution inputs (activations and kernels, cast inside ``Conv`` /
``UpConv``): convolution outputs (float32 accumulation), norm statistics and outputs, residual
sums and branch sums stay float32 (float64 when dtype is float64, for gradient tests). Each
bfloat16 rounding adds ~0.2% RMS relative noise and the noise of successive layers adds up, so
every rounding that does not feed a convolution is avoided (under jit the norm, ReLU and cast
fuse, so no float32 copy of a conv input is stored).
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import kernels
from vid2vid_jax import sharding

Dtype = Any
NORMS = ('batch', 'instance')


def conv_kernel_init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32):
  """N(0, 0.02), the original's ``weights_init`` for every conv."""
  return 0.02 * jax.random.normal(key, shape, dtype)


def _bias_init(fan_in: int) -> Callable[..., jax.Array]:
  """PyTorch's default bias init, uniform(+-1/sqrt(fan_in)) (docs/quirks.md#bias-init)."""
  bound = 1.0 / np.sqrt(max(fan_in, 1))

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _check_nhwc(x: jax.Array, name: str) -> None:
  if x.ndim != 4:
    raise ValueError(f'{name} expects an NHWC array [B, H, W, C]; got shape {x.shape}')


def _acc_dtype(dtype: Dtype) -> Dtype:
  """Conv outputs are at least float32: bfloat16 activations, float32 accumulation and
  outputs, so the norms that follow see no bfloat16 rounding of un-normalised values."""
  return jnp.promote_types(dtype, jnp.float32)


def _conv(x: jax.Array, kernel: jax.Array, bias: jax.Array, strides: int, padding: int,
          padding_mode: str, dtype: Dtype, conv_impl: str) -> jax.Array:
  """``kernels.conv2d`` of ``x`` and ``kernel`` cast to ``dtype``, plus the bias, pinned to the
  mesh layout in context: [B, H, W, C_in] -> [B, H', W', O] float32 (float64 for float64)."""
  y = kernels.conv2d(x.astype(dtype), kernel.astype(dtype), strides, padding, padding_mode,
                     conv_impl)
  return sharding.constrain(y + bias)


class ConvParams(nn.Module):
  """The ``kernel`` [k, k, C_in, features] and ``bias`` [features] of one conv, without the
  conv: lets `fused_conv` run several convs of the same input as one while each keeps its
  own parameters (and checkpoint names).

  Attributes:
    features: output channels.
    kernel_size: square kernel side.
  """
  features: int
  kernel_size: int

  @nn.compact
  def __call__(self, in_features: int) -> tuple[jax.Array, jax.Array]:
    """Returns (kernel [k, k, in_features, features], bias [features]), float32."""
    return _declare_conv_params(self, in_features, self.features, self.kernel_size)


def _declare_conv_params(module: nn.Module, in_features: int, features: int,
                         k: int) -> tuple[jax.Array, jax.Array]:
  """Declares 'kernel' (N(0, 0.02)) and 'bias' (PyTorch's default) in ``module``'s scope."""
  kernel = module.param('kernel', conv_kernel_init, (k, k, in_features, features))
  bias = module.param('bias', _bias_init(in_features * k * k), (features,))
  return kernel, bias


class Conv(nn.Module):
  """2-D convolution with a bias and reflection or zero padding.

  Attributes:
    features: output channels.
    kernel_size: square kernel side.
    strides: square stride.
    padding: pixels of padding on every side.
    padding_mode: 'reflect' (ReflectionPad2d + conv, the generators) or 'zero' (the conv's own
      zero padding: stride-2 down convs and the discriminators).
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`kernels.conv2d`).
  """
  features: int
  kernel_size: int
  strides: int = 1
  padding: int = 0
  padding_mode: str = 'zero'
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] -> [B, H', W', features], float32 (float64 for float64 dtype)."""
    _check_nhwc(x, 'Conv')
    kernel, bias = _declare_conv_params(self, x.shape[-1], self.features, self.kernel_size)
    return _conv(x, kernel, bias, self.strides, self.padding, self.padding_mode, self.dtype,
                 self.conv_impl)


def fused_conv(x: jax.Array, params: list[tuple[jax.Array, jax.Array]], padding: int,
               padding_mode: str, dtype: Dtype, conv_impl: str = 'tuned') -> list[jax.Array]:
  """Several stride-1 convs of the same input ``x`` computed as ONE conv over the concatenated
  output channels, then split: [B, H, W, C_in] -> one [B, H', W', O_i] per (kernel, bias).

  Identical values to separate convs; the input is padded and read once and the kernel
  gradient is one conv (the flow and weight heads share their 7x7 input: ~50 ms of a 2.3 s
  generator step on CPU)."""
  kernel = jnp.concatenate([k for k, _ in params], axis=-1)
  bias = jnp.concatenate([b for _, b in params])
  y = _conv(x, kernel, bias, 1, padding, padding_mode, dtype, conv_impl)
  splits = np.cumsum([k.shape[-1] for k, _ in params])[:-1]
  return jnp.split(y, splits, axis=-1)


class UpConv(nn.Module):
  """ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1): exactly doubles H and W.

  The kernel is stored as ``[3, 3, C_in, C_out]`` with ``kernel[ky, kx, i, o]`` equal to PyTorch's
  ``weight[i, o, ky, kx]`` (no flip).

  Attributes:
    features: output channels.
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`kernels.up_conv2d`).
  """
  features: int
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] -> [B, 2H, 2W, features], float32 (float64 for float64 dtype)."""
    _check_nhwc(x, 'UpConv')
    in_features = x.shape[-1]
    kernel = self.param('kernel', conv_kernel_init, (3, 3, in_features, self.features))
    bias = self.param('bias', _bias_init(self.features * 9), (self.features,))
    y = kernels.up_conv2d(x.astype(self.dtype), kernel.astype(self.dtype), self.conv_impl)
    return sharding.constrain(y + bias)


class Norm(nn.Module):
  """Batch or instance norm with the current input's statistics (docs/quirks.md#norm-statistics).

  'batch': mean/variance over (B, H, W) per channel, learned ``scale`` (init N(1, 0.02)) and
  ``bias`` (0); the original's BatchNorm2d in training mode, which it uses even at test time.
  'instance': mean/variance over (H, W) per sample and channel, no parameters (InstanceNorm2d,
  affine=False). Biased variance, eps 1e-5, statistics and output in float32 (float64 for a
  float64 ``dtype``): a bfloat16 activation path rounds the result only where a conv consumes it.

  Attributes:
    kind: 'batch' or 'instance'.
    eps: added to the variance.
    dtype: activation dtype (selects float64 in gradient tests).
  """
  kind: str = 'batch'
  eps: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H, W, C] float32 (float64 for a float64 ``dtype``)."""
    _check_nhwc(x, 'Norm')
    if self.kind not in NORMS:
      raise ValueError(f'norm must be one of {NORMS}; got {self.kind!r}')
    axes = (0, 1, 2) if self.kind == 'batch' else (1, 2)
    xf = x.astype(jnp.promote_types(self.dtype, jnp.float32))  # float64 in x64 tests
    mean = jnp.mean(xf, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(xf - mean), axis=axes, keepdims=True)
    inv = jax.lax.rsqrt(var + self.eps)
    if self.kind == 'batch':
      features = x.shape[-1]
      scale = self.param('scale', lambda k, s: 1.0 + 0.02 * jax.random.normal(k, s), (features,))
      bias = self.param('bias', nn.initializers.zeros, (features,))
      inv = inv * scale
      shift = bias - mean * inv
    else:
      shift = -mean * inv
    return xf * inv + shift


class ResnetBlock(nn.Module):
  """x + [ReflPad1, Conv3x3, Norm, ReLU, ReflPad1, Conv3x3, Norm](x); no ReLU after the sum.

  The block output (norm2) and the residual sum stay float32 (at least) also for bfloat16
  activations: rounding them would add noise without feeding a bfloat16 conv.

  Attributes:
    features: channels (input == output).
    norm: 'batch' or 'instance'.
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`kernels.conv2d`).
  """
  features: int
  norm: str = 'batch'
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, features] -> same shape, float32 (float64 for float64 dtype)."""
    conv = dict(kernel_size=3, padding=1, padding_mode='reflect', dtype=self.dtype,
                conv_impl=self.conv_impl)
    y = Conv(self.features, name='conv1', **conv)(x)
    y = nn.relu(Norm(self.norm, dtype=self.dtype, name='norm1')(y))
    y = Conv(self.features, name='conv2', **conv)(y)
    y = Norm(self.norm, dtype=self.dtype, name='norm2')(y)
    acc = _acc_dtype(self.dtype)
    return x.astype(acc) + y.astype(acc)


def _width(base: int, level: int, max_features: int | None) -> int:
  width = base * 2 ** level
  return width if max_features is None else min(max_features, width)


class DownPath(nn.Module):
  """Stem, stride-2 convs and residual blocks (the generators' encoders).

  Layers: ``stem`` (ReflPad3 + Conv7x7 -> features), ``stem_norm``, ReLU; for i < n_down:
  ``down{i}`` (Conv3x3 stride 2, zero pad 1, width*2), ``down{i}_norm``, ReLU; then ``res{j}``
  for j < n_res at the final width.

  Attributes:
    features: width after the stem.
    n_down: stride-2 convs.
    n_res: residual blocks at the bottom.
    norm: 'batch' or 'instance'.
    max_features: channel cap (1024 for pix2pixHD's GlobalGenerator), None for no cap.
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`kernels.conv2d`).
  """
  features: int
  n_down: int
  n_res: int = 0
  norm: str = 'batch'
  max_features: int | None = None
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H / 2**n_down, W / 2**n_down, width], float32 (float64 for float64
    dtype)."""
    kw = dict(dtype=self.dtype, conv_impl=self.conv_impl)
    x = Conv(_width(self.features, 0, self.max_features), 7, padding=3, padding_mode='reflect',
             name='stem', **kw)(x)
    x = nn.relu(Norm(self.norm, dtype=self.dtype, name='stem_norm')(x))
    for i in range(self.n_down):
      x = Conv(_width(self.features, i + 1, self.max_features), 3, strides=2, padding=1,
               name=f'down{i}', **kw)(x)
      x = nn.relu(Norm(self.norm, dtype=self.dtype, name=f'down{i}_norm')(x))
    width = _width(self.features, self.n_down, self.max_features)
    for j in range(self.n_res):
      x = ResnetBlock(width, self.norm, name=f'res{j}', **kw)(x)
    return x


class UpPath(nn.Module):
  """Residual blocks then transposed convs (the generators' decoders).

  Layers: ``res{j}`` for j < n_res at width features*2**n_up (capped); for i < n_up: ``up{i}``
  (transposed conv halving the width), ``up{i}_norm``, ReLU.

  Attributes:
    features: output width (after the last up conv).
    n_up: transposed convs.
    n_res: residual blocks before them.
    norm: 'batch' or 'instance'.
    max_features: channel cap, None for no cap.
    res_features: width of the residual blocks when it is not features*2**n_up (pix2pixHD's
      feature-conditioned local enhancer widens its first enhancer's blocks by the feature
      channels).
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`kernels.conv2d`, `kernels.up_conv2d`).
  """
  features: int
  n_up: int
  n_res: int = 0
  norm: str = 'batch'
  max_features: int | None = None
  res_features: int | None = None
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, h, w, width] -> [B, h * 2**n_up, w * 2**n_up, features], float32 (float64 for float64
    dtype)."""
    kw = dict(dtype=self.dtype, conv_impl=self.conv_impl)
    width = self.res_features or _width(self.features, self.n_up, self.max_features)
    for j in range(self.n_res):
      x = ResnetBlock(width, self.norm, name=f'res{j}', **kw)(x)
    for i in range(self.n_up):
      x = UpConv(_width(self.features, self.n_up - i - 1, self.max_features), name=f'up{i}',
                 **kw)(x)
      x = nn.relu(Norm(self.norm, dtype=self.dtype, name=f'up{i}_norm')(x))
    return x


def downsample(x: jax.Array) -> jax.Array:
  """AvgPool2d(3, stride 2, padding 1, count_include_pad=False) over the H, W axes.

  THE pyramid step of the original (docs/original_behaviour.md#pyramid): each channel of each
  frame is pooled
  independently; padded pixels are not counted, so border outputs average fewer pixels.

  Args:
    x: [..., H, W, C] (e.g. [B, H, W, C] or [B, T, H, W, C]), any float dtype.

  Returns:
    [..., ceil(H / 2), ceil(W / 2), C] in the dtype of ``x``.
  """
  if x.ndim < 3:
    raise ValueError(f'downsample expects [..., H, W, C]; got shape {x.shape}')
  height, width = x.shape[-3], x.shape[-2]
  window = (1,) * (x.ndim - 3) + (3, 3, 1)
  strides = (1,) * (x.ndim - 3) + (2, 2, 1)
  padding = ((0, 0),) * (x.ndim - 3) + ((1, 1), (1, 1), (0, 0))
  # A Python 0.0 init makes this the differentiable reduce_window_sum (an array init does not).
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
  # The count of real pixels in each window is static: compute it in NumPy.
  def counts(n):
    out = (n + 1) // 2
    starts = 2 * np.arange(out) - 1
    return np.minimum(starts + 3, n) - np.maximum(starts, 0)
  count = (counts(height)[:, None] * counts(width)[None, :]).astype(np.float32)
  return (total / jnp.asarray(count[:, :, None], x.dtype)).astype(x.dtype)


def pyramid(x: jax.Array, n_scales: int) -> list[jax.Array]:
  """The image pyramid used by the multi-scale generator, COARSEST FIRST.

  Args:
    x: [..., H, W, C] at full resolution.
    n_scales: number of levels (>= 1).

  Returns:
    ``n_scales`` arrays; entry s has H / 2**(n_scales - 1 - s) rows, so entry 0 is the coarsest
    (generator scale 0) and the last entry is ``x`` itself (generator index s = 0 is the
    coarsest, pyramid index 0 the finest; we index by the generator).
  """
  if n_scales < 1:
    raise ValueError(f'n_scales must be >= 1; got {n_scales}')
  levels = [x]
  for _ in range(n_scales - 1):
    levels.append(downsample(levels[-1]))
  return levels[::-1]
