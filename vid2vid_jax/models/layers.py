"""Shared building blocks of the vid2vid networks (Flax linen, NHWC, HWIO kernels).

Everything here follows reference/vid2vid_spec.md section 1.0:
  * convolutions with reflection or zero padding, all with a bias;
  * the stride-2 transposed convolution (k=3, padding 1, output_padding 1) that doubles H and W;
  * the norm layers: batch norm and instance norm (no affine), both ALWAYS normalising with the
    statistics of the current input, as the original (which never calls ``.eval()``, spec 8.1)
    does at training and test time. They are stateless modules: no ``batch_stats`` collection
    is carried, and the running statistics stored in original checkpoints are ignored by the
    importer (they never affect the original's outputs either);
  * the residual block and the down/up paths that the generators are built from;
  * every conv output is pinned to the mesh layout in context (batch on 'data', height on
    'spatial'; `vid2vid_jax.sharding.constrain`, a no-op without a mesh);
  * ``downsample``: THE 3x3 / stride 2 / padding 1 average pool with ``count_include_pad=False``
    used for every image pyramid (generator inputs, multi-scale discriminators, local enhancer).

Parameters are float32; ``dtype`` is the activation dtype, float32 or bfloat16. The ONLY
rounding to bfloat16 is at convolution inputs (activations and kernels, cast inside ``Conv`` /
``UpConv``): convolution outputs (float32 accumulation), norm statistics and outputs, residual
sums and branch sums stay float32 (float64 when dtype is float64, for gradient tests). Each
bfloat16 rounding adds ~0.2% RMS relative noise and the noise of successive layers adds up, so
every rounding that does not feed a convolution is avoided (under jit the norm, ReLU and cast
fuse, so no float32 copy of a conv input is stored).
"""

from collections.abc import Callable
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import sharding

Dtype = Any
NORMS = ('batch', 'instance')
_DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')
CONV_FORMS = ('tuned', 'plain')
_conv_forms = 'tuned'


def set_conv_forms(forms: str) -> None:
  """Chooses how convolutions are formulated in functions traced from now on.

  'tuned' (default): Winograd F(2x2, 3x3) for wide stride-1 3x3 convs on CPU, im2col GEMMs
  for other small 3x3 convs, same convs with custom VJPs for large kernels, explicit kernel
  gradients and phase-split transposed convs (tuned on XLA:CPU, and
  also the faster forms on an H100: the benchmark generator's fwd+bwd at 1024x512 took 55 ms
  against 129 ms, benchmarks/RESULTS.md); 'plain': one ``lax.conv_general_dilated`` per conv
  with autodiff gradients, kept to measure that comparison. Values are identical up to float
  rounding.
  """
  global _conv_forms
  if forms not in CONV_FORMS:
    raise ValueError(f'conv forms must be one of {CONV_FORMS}; got {forms!r}')
  _conv_forms = forms


def _tuned_forms() -> bool:
  """Whether convs traced now use the tuned forms (`set_conv_forms`)."""
  return _conv_forms == 'tuned'


def conv_kernel_init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32):
  """N(0, 0.02), the original's ``weights_init`` for every conv (spec 1.0)."""
  return 0.02 * jax.random.normal(key, shape, dtype)


def _bias_init(fan_in: int) -> Callable[..., jax.Array]:
  """PyTorch's default bias init, uniform(+-1/sqrt(fan_in)) (spec 8.25)."""
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


def _conv(x: jax.Array, kernel: jax.Array, strides: int, padding: Any) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (strides, strides), padding,
                                      dimension_numbers=_DIMENSION_NUMBERS,
                                      preferred_element_type=_acc_dtype(x.dtype))


def _same_conv(x: jax.Array, kernel: jax.Array, p: int) -> jax.Array:
  return _conv(x, kernel, 1, ((p, p), (p, p)))


# Kernel-gradient convs whose (transposed) input has at least this many elements are split in
# two on CPU (see `_kernel_grad`).
_KERNEL_GRAD_SPLIT_MIN_ELEMENTS = 2**20


def _kernel_grad(xp: jax.Array, dy: jax.Array, dtype: Dtype) -> jax.Array:
  """Kernel gradient of a VALID stride-1 conv: [B, H_p, W_p, C] x [B, H, W, O] ->
  [H_p - H + 1, W_p - W + 1, C, O] in ``dtype``.

  Written as the conv XLA:CPU's canonicalisation would make of it (C as batch, B as input
  feature: NHWC x HWIO), because inside a while loop (the rollout's scan) XLA:CPU leaves
  autodiff's transposed form (dim_labels f01b_i01o->01bf) to a naive loop: the stem's kernel
  gradient took 400 ms per frame there instead of 12 ms.

  On CPU, XLA's YNNPACK runs such a conv (small output, long reduction) on ONE thread: the
  generator stem's took 228 ms with the second core idle at the end of the backward pass. Large
  ones are therefore two independent convs over the halves of C, which XLA:CPU runs on two
  cores (a 2.3 s generator step got ~100 ms faster). The halves slice the already transposed
  input: slicing first gave each half its own transposed copy, and buffer reuse between those
  copies serialised the two convs again.
  """
  xp_t = jnp.transpose(xp, (3, 1, 2, 0))
  dy_t = jnp.transpose(dy.astype(xp_t.dtype), (1, 2, 0, 3))
  c = xp_t.shape[0]
  if jax.default_backend() == 'cpu' and xp_t.size >= _KERNEL_GRAD_SPLIT_MIN_ELEMENTS and c >= 2:
    half = c // 2
    out = jnp.concatenate([_conv(xp_t[:half], dy_t, 1, 'VALID'),
                           _conv(xp_t[half:], dy_t, 1, 'VALID')], axis=0)
  else:
    out = _conv(xp_t, dy_t, 1, 'VALID')
  return jnp.transpose(out, (1, 2, 0, 3)).astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _padded_conv(xp: jax.Array, kernel: jax.Array, p: int) -> jax.Array:
  """VALID stride-1 conv of ``xp`` (already padded by p = (k-1)/2): [B, H+2p, W+2p, C] ->
  [B, H, W, O].

  XLA:CPU runs size-preserving ('same') convolutions on a much faster path than VALID ones with
  large kernels (7x7: ~10x in the forward pass, and the autodiff input gradient, a 'full' conv,
  is slow too). So the forward pass is a zero-padded same conv of ``xp`` cropped by p, and the
  custom VJP computes the input gradient as a same conv of the zero-padded cotangent with the
  flipped kernel. Values are identical to the VALID conv.
  """
  return _same_conv(xp, kernel, p)[:, p:xp.shape[1] - p, p:xp.shape[2] - p]


def _padded_conv_fwd(xp, kernel, p):
  return _padded_conv(xp, kernel, p), (xp, kernel)


def _padded_conv_bwd(p, residuals, dy):
  xp, kernel = residuals
  dy_padded = jnp.pad(dy.astype(xp.dtype), ((0, 0), (p, p), (p, p), (0, 0)))
  dxp = _same_conv(dy_padded, jnp.swapaxes(kernel[::-1, ::-1], 2, 3), p).astype(xp.dtype)
  return dxp, _kernel_grad(xp, dy, kernel.dtype)


_padded_conv.defvjp(_padded_conv_fwd, _padded_conv_bwd)


# Largest im2col patch matrix (bytes) for _patch_conv: 16 MiB, half the dev CPU's 32 MB L3.
_PATCH_CONV_MAX_BYTES = 16 * 2**20


def _patch_conv(xp: jax.Array, kernel: jax.Array, strides: int) -> jax.Array:
  """VALID conv of an already padded input as one GEMM over its patches (im2col):
  [B, H_p, W_p, C] x [k, k, C, O] -> [B, (H_p - k) // strides + 1, (W_p - k) // strides + 1, O].

  For the 3x3 convs at the bottom of the generators (residual blocks at 16x32x512 and the last
  stride-2 down convs in the benchmark config) XLA:CPU's dot runs ~20% faster than its conv,
  and the patches give exactly the wanted outputs (a same conv of a reflect-padded input
  computes (H+2)(W+2) and crops). Forward, input gradient (a dot, then the patches' transpose:
  strided adds) and kernel gradient are all plain GEMMs: a residual block fwd+bwd went from
  ~104 to ~88 ms, a down conv from 26 to 20 ms. The patches are k*k times the output: once they
  outgrow the cache the copies cost more than the GEMM gains (a block at 64x128x128, 36 MiB of
  patches, took 1.9x longer), so ``Conv`` uses this only for k = 3 and patches up to
  _PATCH_CONV_MAX_BYTES. The discriminators' stride-1 4x4 convs (zero pad 2, output one pixel
  larger than the input) use it too: XLA:CPU's kernel gradient of those is a conv whose window
  is the whole output, ~7x slower than the GEMM at the demo's 9x17x32 (21 vs 3 ms fwd+bwd).
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
              preferred_element_type=_acc_dtype(xp.dtype))
  return y.reshape(batch, height, width, kernel.shape[-1])


# Winograd F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
# 2016): input transform B^T, kernel transform G, output transform A^T; the 2-D transforms are
# their Kronecker products, indexed (row, column) row-major.
_WINOGRAD_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
_WINOGRAD_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)
_WINOGRAD_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
_WINOGRAD_INPUT = np.kron(_WINOGRAD_BT, _WINOGRAD_BT)  # [16, 16] on a tile's 4x4 pixels
_WINOGRAD_KERNEL = np.kron(_WINOGRAD_G, _WINOGRAD_G)  # [16, 9] on the 3x3 taps
_WINOGRAD_OUTPUT = np.kron(_WINOGRAD_AT, _WINOGRAD_AT)  # [4, 16] -> a tile's 2x2 outputs
# Winograd is used for stride-1 3x3 convs with at least this many input and output channels
# (on CPU, float32/64 activations): there the GEMMs dominate and the transforms are cheap.
_WINOGRAD_MIN_FEATURES = 256


def _winograd_tiles(xp: jax.Array, rows: int, cols: int) -> jax.Array:
  """[B, 2 * rows + 2, 2 * cols + 2, C] -> [16, B * rows * cols * C]: entry a * 4 + b holds
  pixel (a, b) of every 4x4 input tile (tiles start every 2 pixels), read from the
  space-to-depth view of ``xp`` as plain slices."""
  batch, channels = xp.shape[0], xp.shape[-1]
  xr = xp.reshape(batch, rows + 1, 2, cols + 1, 2, channels)
  return jnp.stack([xr[:, a // 2:a // 2 + rows, a % 2, b // 2:b // 2 + cols, b % 2]
                    for a in range(4) for b in range(4)]).reshape(16, -1)


def _winograd_untile(d_tiles: jax.Array, batch: int, rows: int, cols: int) -> jax.Array:
  """The transpose of `_winograd_tiles`: [16, B * rows * cols * C] -> [B, 2 * rows + 2,
  2 * cols + 2, C], each tile pixel added back where it was read. Pixel (a, b) of tile (i, j)
  is input pixel (2 (i + a // 2) + a % 2, ...): per input phase (a % 2, b % 2) four shifted
  copies add up (tiles overlap by two pixels)."""
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
def _winograd_conv(xp: jax.Array, kernel: jax.Array) -> jax.Array:
  """VALID stride-1 3x3 conv of an already padded input by Winograd F(2x2, 3x3):
  [B, H + 2, W + 2, C] x [3, 3, C, O] -> [B, H, W, O] (float32 accumulation), H and W even.

  Each 2x2 output tile is A^T [(G k G^T) * (B^T d B)] A of its 4x4 input tile d: 16 GEMMs of
  [tiles, C] x [C, O], 2.25x fewer multiplications than the direct conv; the gradients are 16
  GEMMs each too (`_winograd_bwd`). The transforms are small dense matrices applied as GEMMs:
  XLA:CPU runs those at memory speed, while the same transforms as element-wise sums of slices,
  and autodiff's scatter of the strided tile reads, took longer than the whole conv. At
  16x32x512 -> 512 (the generator's residual blocks in the benchmark) value and gradients took
  32-35 ms against 57-69 ms for the im2col GEMM; with 128 channels at 64x128 the transforms
  dominate and it is slower, hence _WINOGRAD_MIN_FEATURES. The transforms hold only 0, +-1,
  +-1/2 and +-1/4: float32 results differ from the direct conv by ~1e-6 relative.
  """
  return _winograd_fwd(xp, kernel)[0]


def _winograd_fwd(xp, kernel):
  batch, rows, cols = xp.shape[0], (xp.shape[1] - 2) // 2, (xp.shape[2] - 2) // 2
  in_features, features = kernel.shape[2], kernel.shape[3]
  acc = _acc_dtype(xp.dtype)
  v = jnp.dot(jnp.asarray(_WINOGRAD_INPUT, xp.dtype), _winograd_tiles(xp, rows, cols),
              preferred_element_type=acc).reshape(16, -1, in_features)
  u = jnp.dot(jnp.asarray(_WINOGRAD_KERNEL, kernel.dtype), kernel.reshape(9, -1),
              preferred_element_type=acc).reshape(16, in_features, features)
  m = jnp.einsum('tpc,tco->tpo', v, u)
  y = jnp.dot(jnp.asarray(_WINOGRAD_OUTPUT, acc), m.reshape(16, -1))
  # (row, column) in the output tile first -> [B, H, W, O].
  y = jnp.transpose(y.reshape(2, 2, batch, rows, cols, features), (2, 3, 0, 4, 1, 5))
  return y.reshape(batch, 2 * rows, 2 * cols, features), (v, u)


def _winograd_bwd(residuals, dy):
  """dM = A dY A^T per tile; dV = dM U^T and dU = V^T dM (16 GEMMs each); dk = G^T dU G and
  d(tiles) = B dV B^T as GEMMs with the transposed transforms, then the tiles' overlaps added."""
  v, u = residuals
  batch, height, width, features = dy.shape
  rows, cols = height // 2, width // 2
  dy_tiles = jnp.transpose(dy.reshape(batch, rows, 2, cols, 2, features), (2, 4, 0, 1, 3, 5))
  dm = jnp.dot(jnp.asarray(_WINOGRAD_OUTPUT.T, dy.dtype), dy_tiles.reshape(4, -1))
  dm = dm.reshape(16, -1, features)
  dv = jnp.einsum('tpo,tco->tpc', dm, u)
  du = jnp.einsum('tpc,tpo->tco', v, dm)
  dk = jnp.dot(jnp.asarray(_WINOGRAD_KERNEL.T, du.dtype), du.reshape(16, -1))
  d_tiles = jnp.dot(jnp.asarray(_WINOGRAD_INPUT.T, dv.dtype), dv.reshape(16, -1))
  return (_winograd_untile(d_tiles, batch, rows, cols),
          dk.reshape(3, 3, *u.shape[1:]))


_winograd_conv.defvjp(_winograd_fwd, _winograd_bwd)


def _use_winograd(x: jax.Array, k: int, strides: int, in_features: int, features: int,
                  height: int, width: int) -> bool:
  """Whether ``conv2d`` runs a 'same'-sized conv as `_winograd_conv` (see there): CPU only
  (XLA:GPU's convs are not measured against it yet), not for bfloat16 operands (the transforms
  would add their own roundings), even output sizes."""
  return (k == 3 and strides == 1 and jax.default_backend() == 'cpu'
          and x.dtype.itemsize >= 4 and height % 2 == 0 and width % 2 == 0
          and min(in_features, features) >= _WINOGRAD_MIN_FEATURES)


def _bands(rows: int, total_bytes: int, max_bytes: int) -> int:
  """The fewest bands of equal height that split ``rows`` into pieces of at most ``max_bytes``
  (of ``total_bytes``); ``rows`` itself if no divisor does."""
  want = -(-total_bytes // max_bytes)
  return next((b for b in range(max(want, 1), rows + 1) if rows % b == 0), rows)


def conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array, strides: int = 1, padding: int = 0,
           padding_mode: str = 'zero', dtype: Dtype = jnp.float32) -> jax.Array:
  """THE convolution of the generators and discriminators: padding, conv, bias, mesh layout.

  Args:
    x: [B, H, W, C_in].
    kernel: [k, k, C_in, O] HWIO (float32 parameters; cast to ``dtype`` here).
    bias: [O].
    strides: square stride.
    padding: pixels of padding on every side.
    padding_mode: 'reflect' (ReflectionPad2d + conv, the generators) or 'zero' (the conv's own
      zero padding: stride-2 down convs and the discriminators).
    dtype: activation dtype of the conv operands.

  Returns:
    [B, H', W', O] float32 (float64 for float64 dtype), pinned to the mesh layout in context.
  """
  _check_nhwc(x, 'Conv')
  if padding_mode not in ('reflect', 'zero'):
    raise ValueError(f"padding_mode must be 'reflect' or 'zero'; got {padding_mode!r}")
  k = kernel.shape[0]
  in_features, features = kernel.shape[2], kernel.shape[3]
  x = x.astype(dtype)
  kernel = kernel.astype(dtype)
  p = padding
  batch, height, width, _ = x.shape
  out_pixels = (((height + 2 * p - k) // strides + 1) * ((width + 2 * p - k) // strides + 1))
  patch_bytes = batch * out_pixels * k * k * in_features * x.dtype.itemsize
  mode = 'reflect' if padding_mode == 'reflect' else 'constant'
  if not _tuned_forms():
    if padding_mode == 'reflect' and p:
      x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode='reflect')
      p = 0
    y = _conv(x, kernel, strides, ((p, p), (p, p)))
  elif p == 1 and _use_winograd(x, k, strides, in_features, features, height, width):
    y = _winograd_conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=mode), kernel)
  elif ((k == 3 or (k == 4 and strides == 1 and features > 1))
        and patch_bytes <= _PATCH_CONV_MAX_BYTES):
    y = _patch_conv(jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode), kernel, strides)
  elif k == 3 and strides == 2 and jax.default_backend() == 'cpu':
    # Larger stride-2 3x3 convs (the first down conv at full resolution) as patch GEMMs over
    # bands of output rows, each band's patches within _PATCH_CONV_MAX_BYTES: the benchmark's
    # 128x256x64 down conv fwd+bwd took 28 instead of 32 ms. (Banding stride-1 blocks or the
    # smaller down convs was slower.)
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode)
    out_height = (height + 2 * p - k) // strides + 1
    bands = _bands(out_height, patch_bytes, _PATCH_CONV_MAX_BYTES)
    rows = out_height // bands
    y = jnp.concatenate([
        _patch_conv(xp[:, b * rows * strides:(b * rows + rows - 1) * strides + k], kernel,
                    strides) for b in range(bands)], axis=1)
  elif padding_mode == 'reflect':
    if p:
      x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode='reflect')
    if strides == 1 and k == 2 * p + 1:
      y = _padded_conv(x, kernel, p)
    else:
      y = _conv(x, kernel, strides, 'VALID')
  else:
    y = _conv(x, kernel, strides, ((p, p), (p, p)))
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
  """2-D convolution with a bias and reflection or zero padding (`conv2d`).

  Attributes:
    features: output channels.
    kernel_size: square kernel side.
    strides: square stride.
    padding: pixels of padding on every side.
    padding_mode: 'reflect' (ReflectionPad2d + conv, the generators) or 'zero' (the conv's own
      zero padding: stride-2 down convs and the discriminators).
    dtype: activation dtype.
  """
  features: int
  kernel_size: int
  strides: int = 1
  padding: int = 0
  padding_mode: str = 'zero'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] -> [B, H', W', features], float32 (float64 for float64 dtype)."""
    _check_nhwc(x, 'Conv')
    kernel, bias = _declare_conv_params(self, x.shape[-1], self.features, self.kernel_size)
    return conv2d(x, kernel, bias, self.strides, self.padding, self.padding_mode, self.dtype)


def fused_conv(x: jax.Array, params: list[tuple[jax.Array, jax.Array]], padding: int,
               padding_mode: str, dtype: Dtype) -> list[jax.Array]:
  """Several stride-1 convs of the same input ``x`` computed as ONE conv over the concatenated
  output channels, then split: [B, H, W, C_in] -> one [B, H', W', O_i] per (kernel, bias).

  Identical values to separate convs; the input is padded and read once and the kernel
  gradient is one conv (the flow and weight heads share their 7x7 input: ~50 ms of a 2.3 s
  generator step on CPU)."""
  kernel = jnp.concatenate([k for k, _ in params], axis=-1)
  bias = jnp.concatenate([b for _, b in params])
  y = conv2d(x, kernel, bias, 1, padding, padding_mode, dtype)
  splits = np.cumsum([k.shape[-1] for k, _ in params])[:-1]
  return jnp.split(y, splits, axis=-1)


class UpConv(nn.Module):
  """ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1): exactly doubles H and W.

  The kernel is stored as ``[3, 3, C_in, C_out]`` with ``kernel[ky, kx, i, o]`` equal to PyTorch's
  ``weight[i, o, ky, kx]`` (no flip). The forward pass computes the four output phases
  separately: output row 2i takes kernel row 1 at input row i; output row 2i+1 takes kernel row 2
  at input row i and kernel row 0 at input row i+1 (zero past the end); columns likewise. So phase
  (0, 0) is a 1x1 conv, (0, 1) a 1x2, (1, 0) a 2x1 and (1, 1) a 2x2 conv of the input, zero-padded
  by one at the end: exactly the 9 useful taps per input pixel, then a depth-to-space interleave.
  A conv over the zero-dilated input does 36 taps (~10x slower on XLA:CPU) and a single 2x2 conv
  to 4*C_out phase channels 16 (7 of them on zero kernel blocks; ~1.5x slower fwd+bwd).

  Attributes:
    features: output channels.
    dtype: activation dtype.
  """
  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] -> [B, 2H, 2W, features], float32 (float64 for float64 dtype)."""
    _check_nhwc(x, 'UpConv')
    batch, height, width, in_features = x.shape
    kernel = self.param('kernel', conv_kernel_init, (3, 3, in_features, self.features))
    bias = self.param('bias', _bias_init(self.features * 9), (self.features,))
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if _tuned_forms():
      y = _up_conv(x, kernel)
    else:
      # The transposed conv as a conv of the 2x zero-dilated input with the flipped kernel,
      # padded (k - 1 - padding, k - 1 - padding + output_padding) = (1, 2).
      y = jax.lax.conv_general_dilated(
          x, kernel[::-1, ::-1], (1, 1), ((1, 2), (1, 2)), lhs_dilation=(2, 2),
          dimension_numbers=_DIMENSION_NUMBERS, preferred_element_type=_acc_dtype(x.dtype))
    return sharding.constrain(y + bias)


# Output phase p in {0, 1} along one axis -> the kernel taps it uses, in input order (input
# row i, then i + 1). Padding after the last row / column gives 'same'-sized outputs.
_UP_TAPS = ((1,), (2, 0))


def _up_phase_kernels(k: jax.Array) -> list[jax.Array]:
  """[3, 3, C, O] -> the four phase kernels [1 + p, 1 + q, C, O] for (p, q) in row-major order."""
  return [k[np.array(_UP_TAPS[p])[:, None], np.array(_UP_TAPS[q])[None, :]]
          for p in (0, 1) for q in (0, 1)]


@jax.custom_vjp
def _up_conv(x: jax.Array, k: jax.Array) -> jax.Array:
  """The transposed conv of `UpConv` without bias: [B, H, W, C] x [3, 3, C, O] ->
  [B, 2H, 2W, O] (float32 accumulation). Four phase convs (1x1, 1x2, 2x1, 2x2), interleaved.

  The custom VJP (`_up_conv_bwd`) computes both gradients as GEMMs over one patch matrix.
  """
  batch, height, width, _ = x.shape
  ys = [_conv(x, kp, 1, ((0, kp.shape[0] - 1), (0, kp.shape[1] - 1)))
        for kp in _up_phase_kernels(k)]
  y = jnp.stack(ys, axis=3).reshape(batch, height, width, 2, 2, -1)
  return jnp.transpose(y, (0, 1, 3, 2, 4, 5)).reshape(batch, 2 * height, 2 * width, -1)


def _up_conv_fwd(x, k):
  return _up_conv(x, k), (x, k)


# Largest patch matrix (bytes) per band of the UpConv backward on CPU (4 MiB bands: the
# benchmark's 64x128x128 -> 64 up conv backward took 16.5 ms, 30 ms unbanded).
_UP_BWD_BAND_BYTES = 4 * 2**20


def _up_conv_bwd(residuals, dy):
  """Both gradients of the transposed conv from ONE patch matrix of the cotangent.

  The input gradient of ConvTranspose2d(3, stride 2, padding 1, output_padding 1) is the
  stride-2 3x3 conv of dy (zero-padded by one row / column at the top / left) with the kernel's
  in / out axes swapped, and its kernel gradient is x^T against the same stride-2 patches of dy:
  dx = P @ K and dK = (P^T @ x)^T with P [B*H*W, 9*O]. Two GEMMs instead of four phase convs
  and four phase kernel-gradient convs (up conv backward at 64x128x128 -> 64: 47 -> 16.5 ms,
  PyTorch 14 ms). On CPU P is built in bands of rows that fit the cache.
  """
  x, k = residuals
  batch, height, width, in_features = x.shape
  features = k.shape[-1]
  acc = _acc_dtype(x.dtype)
  dy_padded = jnp.pad(dy.astype(x.dtype), ((0, 0), (1, 0), (1, 0), (0, 0)))
  k_t = jnp.swapaxes(k, 2, 3).reshape(9 * features, in_features)  # (ky, kx, o) x c
  patch_bytes = batch * height * width * 9 * features * x.dtype.itemsize
  bands = (_bands(height, patch_bytes, _UP_BWD_BAND_BYTES) if jax.default_backend() == 'cpu'
           else 1)
  rows = height // bands
  dxs, dk = [], None
  for b in range(bands):
    r0 = 2 * rows * b
    # Patch channel order (ky, kx, o) matches k_t.
    patches = jnp.concatenate([
        dy_padded[:, r0 + i:r0 + i + 2 * rows - 1:2, j:j + 2 * width - 1:2]
        for i in range(3) for j in range(3)], axis=-1).reshape(batch * rows * width, -1)
    dxs.append(jnp.dot(patches, k_t, preferred_element_type=acc)
               .reshape(batch, rows, width, in_features))
    x_band = x[:, rows * b:rows * (b + 1)].reshape(-1, in_features)
    g = jnp.dot(patches.T, x_band, preferred_element_type=acc)  # [(ky, kx, o), c]
    dk = g if dk is None else dk + g
  dx = jnp.concatenate(dxs, axis=1) if bands > 1 else dxs[0]
  dk = jnp.transpose(dk.reshape(3, 3, features, in_features), (0, 1, 3, 2))
  return dx.astype(x.dtype), dk.astype(k.dtype)


_up_conv.defvjp(_up_conv_fwd, _up_conv_bwd)


class Norm(nn.Module):
  """Batch or instance norm with the statistics of the current input (spec 1.0, 8.1).

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
  """
  features: int
  norm: str = 'batch'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, features] -> same shape, float32 (float64 for float64 dtype)."""
    y = Conv(self.features, 3, padding=1, padding_mode='reflect', dtype=self.dtype,
             name='conv1')(x)
    y = nn.relu(Norm(self.norm, dtype=self.dtype, name='norm1')(y))
    y = Conv(self.features, 3, padding=1, padding_mode='reflect', dtype=self.dtype,
             name='conv2')(y)
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
  """
  features: int
  n_down: int
  n_res: int = 0
  norm: str = 'batch'
  max_features: int | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H / 2**n_down, W / 2**n_down, width], float32 (float64 for float64
    dtype)."""
    x = Conv(_width(self.features, 0, self.max_features), 7, padding=3, padding_mode='reflect',
             dtype=self.dtype, name='stem')(x)
    x = nn.relu(Norm(self.norm, dtype=self.dtype, name='stem_norm')(x))
    for i in range(self.n_down):
      x = Conv(_width(self.features, i + 1, self.max_features), 3, strides=2, padding=1,
               dtype=self.dtype, name=f'down{i}')(x)
      x = nn.relu(Norm(self.norm, dtype=self.dtype, name=f'down{i}_norm')(x))
    width = _width(self.features, self.n_down, self.max_features)
    for j in range(self.n_res):
      x = ResnetBlock(width, self.norm, dtype=self.dtype, name=f'res{j}')(x)
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
  """
  features: int
  n_up: int
  n_res: int = 0
  norm: str = 'batch'
  max_features: int | None = None
  res_features: int | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, h, w, width] -> [B, h * 2**n_up, w * 2**n_up, features], float32 (float64 for float64
    dtype)."""
    width = self.res_features or _width(self.features, self.n_up, self.max_features)
    for j in range(self.n_res):
      x = ResnetBlock(width, self.norm, dtype=self.dtype, name=f'res{j}')(x)
    for i in range(self.n_up):
      x = UpConv(_width(self.features, self.n_up - i - 1, self.max_features), dtype=self.dtype,
                 name=f'up{i}')(x)
      x = nn.relu(Norm(self.norm, dtype=self.dtype, name=f'up{i}_norm')(x))
    return x


def downsample(x: jax.Array) -> jax.Array:
  """AvgPool2d(3, stride 2, padding 1, count_include_pad=False) over the H, W axes.

  THE pyramid step of the original (spec 1.5, 1.6, 2.2): every channel of every frame is pooled
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
    (generator scale 0) and the last entry is ``x`` itself (spec 1.5: generator index s = 0 is the
    coarsest, pyramid index 0 the finest; we index by the generator).
  """
  if n_scales < 1:
    raise ValueError(f'n_scales must be >= 1; got {n_scales}')
  levels = [x]
  for _ in range(n_scales - 1):
    levels.append(downsample(levels[-1]))
  return levels[::-1]
