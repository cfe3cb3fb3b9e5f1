"""The tuned conv formulations against the plain ones, on whatever backend runs the tests.

Every case passes explicit `kernels.Thresholds`, small enough that tiny inputs take the tuned
form named in the case, so the chosen forms do not depend on the backend.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vid2vid_jax import kernels

pytestmark = pytest.mark.usefixtures('compilation_cache')

_NONE = kernels.Thresholds(patch_max_bytes=None, stride2_band_bytes=None,
                           winograd_min_features=None, kernel_grad_split_min_elements=None,
                           up_bwd_band_bytes=None)
# x [2, 8, 10, 5]; the stride-2 3x3 conv has 2x4x5 outputs, 7200 bytes of patches.
_CONV_CASES = [
    # (form, kernel_size, strides, padding, padding_mode, thresholds)
    ('winograd', 3, 1, 1, 'reflect', kernels.Thresholds(winograd_min_features=1)),
    ('winograd', 3, 1, 1, 'zero', kernels.Thresholds(winograd_min_features=1)),
    ('patch', 3, 1, 1, 'reflect', kernels.Thresholds(winograd_min_features=None)),
    ('patch', 3, 2, 1, 'zero', kernels.Thresholds()),
    ('patch', 4, 1, 2, 'zero', kernels.Thresholds()),
    ('banded_patch', 3, 2, 1, 'zero',
     kernels.Thresholds(patch_max_bytes=2000, stride2_band_bytes=2000)),
    ('padded', 7, 1, 3, 'reflect', _NONE),
    ('padded', 7, 1, 3, 'reflect', kernels.Thresholds(kernel_grad_split_min_elements=1)),
    ('lax', 4, 2, 2, 'zero', kernels.Thresholds()),
    ('lax', 3, 1, 1, 'zero', _NONE),
]


def _value_and_grads(fn, x, kernel, cot):
  """fn(x, kernel), and the gradients of <fn(x, kernel), cot> w.r.t. x and kernel (jitted)."""
  grads = jax.jit(jax.grad(lambda a, k: jnp.sum(fn(a, k) * cot), argnums=(0, 1)))(x, kernel)
  return (jax.jit(fn)(x, kernel), *grads)


def _assert_same(tuned, plain):
  for a, b in zip(tuned, plain):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('form,k,strides,padding,mode,thresholds', _CONV_CASES,
                         ids=[f'{c[0]}_k{c[1]}_s{c[2]}_{c[4]}_{i}'
                              for i, c in enumerate(_CONV_CASES)])
def test_tuned_conv_equals_plain(form, k, strides, padding, mode, thresholds):
  """Outputs, input gradients and kernel gradients of each tuned form equal the plain conv's."""
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(2, 8, 10, 5)), jnp.float32)
  kernel = jnp.asarray(0.2 * rng.normal(size=(k, k, 5, 4)), jnp.float32)
  assert kernels.conv_form(x, kernel, strides, padding, mode, 'tuned', thresholds) == form
  assert kernels.conv_form(x, kernel, strides, padding, mode, 'plain', thresholds) == 'lax'
  out_size = lambda n: (n + 2 * padding - k) // strides + 1
  cot = jnp.asarray(rng.normal(size=(2, out_size(8), out_size(10), 4)), jnp.float32)
  results = {impl: _value_and_grads(
      lambda a, w, impl=impl: kernels.conv2d(a, w, strides, padding, mode, impl, thresholds),
      x, kernel, cot) for impl in kernels.CONV_IMPLS}
  _assert_same(results['tuned'], results['plain'])


@pytest.mark.parametrize('thresholds', [_NONE, kernels.Thresholds(up_bwd_band_bytes=1)],
                         ids=['one_band', 'banded'])
def test_tuned_up_conv_equals_plain(thresholds):
  """The phase up conv and its GEMM gradients (whole, and in bands of rows: 1 byte per band
  gives one row per band) equal the transposed conv."""
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(2, 4, 5, 6)), jnp.float32)
  kernel = jnp.asarray(0.2 * rng.normal(size=(3, 3, 6, 4)), jnp.float32)
  cot = jnp.asarray(rng.normal(size=(2, 8, 10, 4)), jnp.float32)
  results = {impl: _value_and_grads(
      lambda a, w, impl=impl: kernels.up_conv2d(a, w, impl, thresholds), x, kernel, cot)
             for impl in kernels.CONV_IMPLS}
  _assert_same(results['tuned'], results['plain'])
  reference = jax.lax.conv_transpose(x, kernel[::-1, ::-1], (2, 2), ((1, 2), (1, 2)),
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  np.testing.assert_allclose(results['plain'][0], reference, rtol=1e-5, atol=1e-5)


def test_split_kernel_gradient_is_two_convs():
  """With the split on, the kernel gradient of a 7x7 reflect conv is two convs over the halves
  of the input channels (one per CPU core)."""
  x = jnp.ones((2, 8, 10, 5))
  kernel = jnp.ones((7, 7, 5, 4))

  def n_convs(thresholds):
    grad = jax.grad(lambda w: jnp.sum(kernels.conv2d(x, w, 1, 3, 'reflect', 'tuned',
                                                     thresholds)))
    return jax.jit(grad).lower(kernel).as_text().count('stablehlo.convolution')

  split = kernels.Thresholds(kernel_grad_split_min_elements=1)
  assert n_convs(split) == n_convs(_NONE) + 1


def test_winograd_conv_at_generator_width():
  """Winograd at the width where the CPU thresholds pick it (512 channels, batch 2) against
  XLA's conv at highest precision; odd sizes, strides, bfloat16 and narrow convs keep the
  direct forms."""
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(2, 4, 6, 512)), jnp.float32)
  kernel = jnp.asarray(0.02 * rng.normal(size=(3, 3, 512, 512)), jnp.float32)
  cpu = kernels.CPU_THRESHOLDS
  assert kernels.conv_form(x, kernel, 1, 1, 'reflect', 'tuned', cpu) == 'winograd'
  ref = jax.lax.conv_general_dilated(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), 'reflect'),
                                     kernel, (1, 1), 'VALID',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                     precision='highest')
  out = kernels.conv2d(x, kernel, 1, 1, 'reflect', 'tuned', cpu)
  rel = np.linalg.norm(np.asarray(out) - np.asarray(ref)) / np.linalg.norm(ref)
  assert rel < 2e-6, rel

  def form(shape, dtype=jnp.float32, strides=1, in_features=512):
    return kernels.conv_form(jax.ShapeDtypeStruct(shape[:3] + (in_features,), dtype),
                             jax.ShapeDtypeStruct((3, 3, in_features, 512), dtype),
                             strides, 1, 'reflect', 'tuned', cpu)

  assert form((2, 5, 6)) != 'winograd'
  assert form((2, 4, 6), strides=2) != 'winograd'
  assert form((2, 4, 6), jnp.bfloat16) != 'winograd'
  assert form((2, 4, 6), in_features=128) != 'winograd'
  assert kernels.conv_form(x, kernel, 1, 1, 'reflect', 'tuned',
                           kernels.ACCELERATOR_THRESHOLDS) != 'winograd'


def test_platform_of_reads_the_arrays():
  """Concrete arrays answer with their device, traced ones with the mesh in context; without
  any device information the default backend; the default thresholds follow the platform."""
  device = jax.devices()[0]
  x = jax.device_put(jnp.ones((1, 4, 4, 2)), device)
  assert kernels.platform_of(x) == device.platform
  seen = []
  jax.jit(lambda v: seen.append(kernels.platform_of(v)) or v)(x)
  with jax.set_mesh(jax.make_mesh((1,), ('data',), devices=[device])):
    jax.jit(lambda v: seen.append(kernels.platform_of(v)) or v)(x)
  assert seen == [jax.default_backend(), device.platform]
  expected = (kernels.CPU_THRESHOLDS if device.platform == 'cpu'
              else kernels.ACCELERATOR_THRESHOLDS)
  assert kernels.default_thresholds(x) == expected


def test_bad_arguments_raise():
  x, kernel = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 3))
  with pytest.raises(ValueError, match='conv impl'):
    kernels.conv2d(x, kernel, impl='cudnn')
  with pytest.raises(ValueError, match='padding_mode'):
    kernels.conv2d(x, kernel, padding=1, padding_mode='replicate')
  with pytest.raises(ValueError, match='kernel'):
    kernels.conv2d(x, jnp.ones((3, 3, 5, 3)))
  with pytest.raises(ValueError, match='3x3'):
    kernels.up_conv2d(x, jnp.ones((4, 4, 2, 3)))
