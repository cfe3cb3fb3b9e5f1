"""The two convolution entry points, each in a tuned or a plain formulation.

impl 'plain' is one ``lax`` convolution per conv with autodiff gradients: the reference, and the
baseline of ``benchmarks/generator.py``. impl 'tuned' (the default) picks per conv, from its
shapes and the `Thresholds`, the formulation measured fastest: Winograd F(2x2, 3x3) for wide
3x3 convs, im2col GEMMs (whole or in bands of rows) for other 3x3 convs, 'same' convs with
custom VJPs for large reflect-padded kernels, phase-split transposed convs with GEMM gradients.
Both give the same values up to float rounding; parameters are the same arrays either way.

The default thresholds depend on the platform the arrays live on (`platform_of`).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from vid2vid_jax.kernels import lax_conv
from vid2vid_jax.kernels import patch_conv
from vid2vid_jax.kernels import same_conv
from vid2vid_jax.kernels import up_conv
from vid2vid_jax.kernels import winograd

CONV_IMPLS = ('tuned', 'plain')
PADDING_MODES = ('reflect', 'zero')
FORMS = ('lax', 'winograd', 'patch', 'banded_patch', 'padded')


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """When the tuned formulations are used; None turns a formulation off.

  Attributes:
    patch_max_bytes: largest im2col patch matrix of a one-GEMM conv (`patch_conv.patch_conv`:
      3x3 convs and stride-1 4x4 convs); 16 MiB, half the 32 MB L3 of the CPU it was tuned on.
    stride2_band_bytes: larger stride-2 3x3 convs run as patch GEMMs over bands of output rows
      whose patches are at most this size (128x256x64 down conv fwd+bwd on XLA:CPU: 28 instead
      of 32 ms; banding stride-1 convs or smaller down convs was slower).
    winograd_min_features: stride-1 3x3 convs with at least this many input and output channels
      use Winograd (`winograd.winograd_conv`; float32/64 operands and even sizes only).
    kernel_grad_split_min_elements: the kernel gradient of a large-kernel reflect conv whose
      padded input has at least this many elements runs as two convs (`same_conv.kernel_grad`).
    up_bwd_band_bytes: largest patch matrix per band of rows of the transposed conv's backward
      (`up_conv.phase_up_conv`).
  """
  patch_max_bytes: int | None = 16 * 2**20
  stride2_band_bytes: int | None = 16 * 2**20
  winograd_min_features: int | None = 256
  kernel_grad_split_min_elements: int | None = 2**20
  up_bwd_band_bytes: int | None = 4 * 2**20


CPU_THRESHOLDS = Thresholds()
# Elsewhere only the forms also measured faster under XLA:GPU (patch GEMMs, 'same' convs,
# phase up convs: generator fwd+bwd at 1024x512 on an H100 took 55 ms against 129 ms plain,
# benchmarks/RESULTS.md); the CPU-specific ones are not measured against cuDNN.
ACCELERATOR_THRESHOLDS = Thresholds(stride2_band_bytes=None, winograd_min_features=None,
                                    kernel_grad_split_min_elements=None, up_bwd_band_bytes=None)


def platform_of(x: Any) -> str:
  """The platform ('cpu', 'gpu', 'tpu') that runs the ops on ``x``.

  A concrete array answers with its devices; a traced value with the mesh of its type (explicit
  sharding) or the mesh in context (``jax.set_mesh``). A value traced without any mesh (plain
  ``jit``, autodiff of eager code) carries no device, and then the answer is the default
  backend, where ``jit`` places a computation unless its arguments are committed elsewhere.
  """
  if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
    return next(iter(x.sharding.device_set)).platform
  for mesh in (getattr(jax.typeof(x).sharding, 'mesh', None), jax.sharding.get_abstract_mesh()):
    device = getattr(mesh, 'abstract_device', None)
    if device is not None:
      return device.platform
  return jax.default_backend()


def default_thresholds(x: Any) -> Thresholds:
  """`CPU_THRESHOLDS` for arrays on a CPU, `ACCELERATOR_THRESHOLDS` otherwise."""
  return CPU_THRESHOLDS if platform_of(x) == 'cpu' else ACCELERATOR_THRESHOLDS


def _check(x: Any, kernel: Any, impl: str) -> None:
  if x.ndim != 4 or kernel.ndim != 4 or x.shape[-1] != kernel.shape[2]:
    raise ValueError(f'expected x [B, H, W, C] and kernel [k, k, C, O]; got {x.shape} and '
                     f'{kernel.shape}')
  if impl not in CONV_IMPLS:
    raise ValueError(f'conv impl must be one of {CONV_IMPLS}; got {impl!r}')


def _patch_bytes(x: Any, kernel: Any, strides: int, padding: int) -> int:
  """Bytes of the im2col patch matrix of a conv: output pixels x k * k * C."""
  k = kernel.shape[0]
  out_height = (x.shape[1] + 2 * padding - k) // strides + 1
  out_width = (x.shape[2] + 2 * padding - k) // strides + 1
  return x.shape[0] * out_height * out_width * k * k * x.shape[3] * jnp.dtype(x.dtype).itemsize


def conv_form(x: Any, kernel: Any, strides: int = 1, padding: int = 0,
              padding_mode: str = 'zero', impl: str = 'tuned',
              thresholds: Thresholds | None = None) -> str:
  """The formulation (one of `FORMS`) `conv2d` uses for these arguments; reads only the shapes
  and dtype of ``x`` and ``kernel`` (arrays or ``jax.ShapeDtypeStruct``s) and, without
  ``thresholds``, the platform of ``x``."""
  _check(x, kernel, impl)
  if padding_mode not in PADDING_MODES:
    raise ValueError(f'padding_mode must be one of {PADDING_MODES}; got {padding_mode!r}')
  if impl == 'plain':
    return 'lax'
  t = thresholds if thresholds is not None else default_thresholds(x)
  k, p = kernel.shape[0], padding
  _, height, width, in_features = x.shape
  features = kernel.shape[3]
  # Winograd's transforms would add their own roundings to bfloat16 operands.
  if (k == 3 and strides == 1 and p == 1 and t.winograd_min_features is not None
      and min(in_features, features) >= t.winograd_min_features
      and jnp.dtype(x.dtype).itemsize >= 4 and height % 2 == 0 and width % 2 == 0):
    return 'winograd'
  if ((k == 3 or (k == 4 and strides == 1 and features > 1))
      and t.patch_max_bytes is not None
      and _patch_bytes(x, kernel, strides, p) <= t.patch_max_bytes):
    return 'patch'
  if k == 3 and strides == 2 and t.stride2_band_bytes is not None:
    return 'banded_patch'
  if padding_mode == 'reflect' and strides == 1 and k == 2 * p + 1:
    return 'padded'
  return 'lax'


def conv2d(x: jax.Array, kernel: jax.Array, strides: int = 1, padding: int = 0,
           padding_mode: str = 'zero', impl: str = 'tuned',
           thresholds: Thresholds | None = None) -> jax.Array:
  """THE 2-D convolution of the networks (no bias).

  Args:
    x: [B, H, W, C] in the operand dtype (float32, bfloat16, or float64 in gradient tests).
    kernel: [k, k, C, O] HWIO in the same dtype.
    strides: square stride.
    padding: pixels of padding on every side.
    padding_mode: 'reflect' (ReflectionPad2d before the conv) or 'zero'.
    impl: 'tuned' or 'plain' (module docstring).
    thresholds: where the tuned forms apply; None: `default_thresholds` of ``x``.

  Returns:
    [B, (H + 2p - k) // strides + 1, (W + 2p - k) // strides + 1, O] in float32 (float64 for
    float64 operands).
  """
  t = thresholds if thresholds is not None else default_thresholds(x)
  form = conv_form(x, kernel, strides, padding, padding_mode, impl, t)
  p = padding
  pad = ((0, 0), (p, p), (p, p), (0, 0))
  mode = 'reflect' if padding_mode == 'reflect' else 'constant'
  if form == 'winograd':
    return winograd.winograd_conv(jnp.pad(x, pad, mode=mode), kernel)
  if form == 'patch':
    return patch_conv.patch_conv(jnp.pad(x, pad, mode=mode), kernel, strides)
  if form == 'banded_patch':
    out_height = (x.shape[1] + 2 * p - kernel.shape[0]) // strides + 1
    n_bands = patch_conv.bands(out_height, _patch_bytes(x, kernel, strides, p),
                               t.stride2_band_bytes)
    return patch_conv.banded_patch_conv(jnp.pad(x, pad, mode=mode), kernel, strides, n_bands)
  if padding_mode == 'reflect' and p:
    x = jnp.pad(x, pad, mode='reflect')
    p = 0
  if form == 'padded':
    split = (t.kernel_grad_split_min_elements is not None and x.shape[-1] >= 2
             and x.size >= t.kernel_grad_split_min_elements)
    return same_conv.padded_conv(x, kernel, padding, split)
  return lax_conv.conv(x, kernel, strides, ((p, p), (p, p)))


def up_conv2d(x: jax.Array, kernel: jax.Array, impl: str = 'tuned',
              thresholds: Thresholds | None = None) -> jax.Array:
  """ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1) without bias: exactly doubles
  H and W.

  Args:
    x: [B, H, W, C] in the operand dtype.
    kernel: [3, 3, C, O], ``kernel[ky, kx, i, o]`` = PyTorch's ``weight[i, o, ky, kx]`` (no flip).
    impl: 'tuned' (`up_conv.phase_up_conv`) or 'plain'.
    thresholds: as `conv2d` (only ``up_bwd_band_bytes`` applies).

  Returns:
    [B, 2H, 2W, O] in float32 (float64 for float64 operands).
  """
  _check(x, kernel, impl)
  if kernel.shape[:2] != (3, 3):
    raise ValueError(f'up_conv2d takes a 3x3 kernel; got {kernel.shape}')
  if impl == 'plain':
    # The transposed conv as a conv of the 2x zero-dilated input with the flipped kernel,
    # padded (k - 1 - padding, k - 1 - padding + output_padding) = (1, 2).
    return jax.lax.conv_general_dilated(
        x, kernel[::-1, ::-1], (1, 1), ((1, 2), (1, 2)), lhs_dilation=(2, 2),
        dimension_numbers=lax_conv.DIMENSION_NUMBERS,
        preferred_element_type=lax_conv.acc_dtype(x.dtype))
  t = thresholds if thresholds is not None else default_thresholds(x)
  batch, height, width, _ = x.shape
  n_bands = 1
  if t.up_bwd_band_bytes is not None:
    patch_bytes = batch * height * width * 9 * kernel.shape[-1] * x.dtype.itemsize
    n_bands = patch_conv.bands(height, patch_bytes, t.up_bwd_band_bytes)
  return up_conv.phase_up_conv(x, kernel, n_bands)
