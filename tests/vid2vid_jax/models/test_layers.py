"""Layers against PyTorch's definitions (torch is a test-only dependency)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vid2vid_jax.models import layers


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1)))


def _nhwc(t):
  return np.moveaxis(t.detach().numpy(), 1, -1)


@pytest.mark.parametrize('shape', [(2, 8, 12, 3), (1, 7, 9, 2), (1, 1, 5, 1)])
def test_downsample_matches_avg_pool_without_padding_count(shape):
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  ref = F.avg_pool2d(_nchw(x), 3, stride=2, padding=1, count_include_pad=False)
  np.testing.assert_allclose(layers.downsample(jnp.asarray(x)), _nhwc(ref), atol=1e-6)


def test_downsample_gradient_matches_torch():
  """The multi-scale discriminators pool the generated frames, so G's gradient flows through."""
  x = np.random.default_rng(2).normal(size=(2, 9, 6, 3)).astype(np.float32)
  weights = np.random.default_rng(3).normal(size=(2, 5, 3, 3)).astype(np.float32)
  grad = jax.jit(jax.grad(lambda v: jnp.sum(layers.downsample(v) * weights)))(jnp.asarray(x))
  xt = torch.tensor(_nchw(x), requires_grad=True)
  (F.avg_pool2d(xt, 3, stride=2, padding=1, count_include_pad=False)
   * torch.tensor(_nchw(weights))).sum().backward()
  np.testing.assert_allclose(grad, _nhwc(xt.grad), atol=1e-6)
  bf16 = jax.grad(lambda v: jnp.sum(layers.downsample(v)))(jnp.asarray(x, jnp.bfloat16))
  assert bf16.dtype == jnp.bfloat16


def test_downsample_on_5d_and_pyramid_order():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 16, 8, 4)), jnp.float32)
  per_frame = jnp.stack([layers.downsample(x[:, t]) for t in range(3)], axis=1)
  np.testing.assert_allclose(layers.downsample(x), per_frame, atol=1e-6)
  pyr = layers.pyramid(x, 3)
  assert [p.shape[2:4] for p in pyr] == [(4, 2), (8, 4), (16, 8)]
  assert pyr[-1] is x


def test_upconv_matches_conv_transpose2d():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
  module = layers.UpConv(3)
  variables = module.init(jax.random.key(0), jnp.asarray(x))
  kernel = np.asarray(variables['params']['kernel'])  # [kH, kW, C_in, C_out]
  bias = np.array(variables['params']['bias'])
  ref = F.conv_transpose2d(_nchw(x), torch.from_numpy(kernel.transpose(2, 3, 0, 1).copy()),
                           torch.from_numpy(bias), stride=2, padding=1, output_padding=1)
  out = module.apply(variables, jnp.asarray(x))
  assert out.shape == (2, 10, 12, 3)
  np.testing.assert_allclose(out, _nhwc(ref), atol=1e-5)

  # The phase convs' custom VJPs equal autodiff of the transposed conv (input and kernel).
  def plain(params, x):
    y = jax.lax.conv_transpose(x, params['kernel'][::-1, ::-1], (2, 2), ((1, 2), (1, 2)),
                               dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y + params['bias']

  np.testing.assert_allclose(plain(variables['params'], jnp.asarray(x)), out, atol=1e-5)
  cot = jnp.asarray(rng.normal(size=out.shape).astype(np.float32))
  g_ours = jax.grad(lambda p, x: jnp.sum(module.apply({'params': p}, x) * cot), argnums=(0, 1))(
      variables['params'], jnp.asarray(x))
  g_ref = jax.grad(lambda p, x: jnp.sum(plain(p, x) * cot), argnums=(0, 1))(
      variables['params'], jnp.asarray(x))
  for a, b in zip(jax.tree_util.tree_leaves(g_ours), jax.tree_util.tree_leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('kernel_size,padding,mode,stride', [
    (7, 3, 'reflect', 1), (3, 1, 'reflect', 1), (3, 1, 'zero', 2), (4, 2, 'zero', 2),
    (4, 2, 'zero', 1)])
def test_conv_matches_torch_and_gradients(kernel_size, padding, mode, stride):
  rng = np.random.default_rng(3)
  x = rng.normal(size=(2, 9, 10, 3)).astype(np.float32)
  module = layers.Conv(5, kernel_size, stride, padding, mode)
  variables = module.init(jax.random.key(1), jnp.asarray(x))
  kernel = np.asarray(variables['params']['kernel'])
  xt = _nchw(x)
  if mode == 'reflect':
    xt = F.pad(xt, (padding,) * 4, mode='reflect')
  ref = F.conv2d(xt, torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()),
                 torch.from_numpy(np.array(variables['params']['bias'])), stride=stride,
                 padding=0 if mode == 'reflect' else padding)
  np.testing.assert_allclose(module.apply(variables, jnp.asarray(x)), _nhwc(ref), atol=1e-5)

  # The custom VJP of the reflect path equals autodiff of the plain VALID conv.
  def plain(params, x):
    xp = jnp.pad(x, ((0, 0), (padding,) * 2, (padding,) * 2, (0, 0)),
                 mode='reflect' if mode == 'reflect' else 'constant')
    y = jax.lax.conv_general_dilated(xp, params['kernel'], (stride, stride), 'VALID',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y + params['bias']

  cot = jnp.asarray(rng.normal(size=ref.shape).astype(np.float32)).transpose(0, 2, 3, 1)
  loss_ours = lambda p, x: jnp.sum(module.apply({'params': p}, x) * cot)
  loss_ref = lambda p, x: jnp.sum(plain(p, x) * cot)
  g_ours = jax.grad(loss_ours, argnums=(0, 1))(variables['params'], jnp.asarray(x))
  g_ref = jax.grad(loss_ref, argnums=(0, 1))(variables['params'], jnp.asarray(x))
  for a, b in zip(jax.tree_util.tree_leaves(g_ours), jax.tree_util.tree_leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('kind', ['batch', 'instance'])
def test_norm_uses_current_statistics(kind):
  x = np.random.default_rng(4).normal(2.0, 3.0, size=(3, 6, 5, 4)).astype(np.float32)
  module = layers.Norm(kind)
  variables = module.init(jax.random.key(2), jnp.asarray(x))
  if kind == 'batch':
    scale = np.array(variables['params']['scale'])
    bias = np.array(variables['params']['bias'])
    ref = F.batch_norm(_nchw(x), None, None, torch.from_numpy(scale), torch.from_numpy(bias),
                       training=True, eps=1e-5)
    assert set(variables['params']) == {'scale', 'bias'}
  else:
    ref = F.instance_norm(_nchw(x), eps=1e-5)
    assert not variables  # no affine parameters, no state
  np.testing.assert_allclose(module.apply(variables, jnp.asarray(x)), _nhwc(ref), atol=1e-5)


def test_resnet_block_and_paths_shapes():
  x = jnp.ones((1, 16, 8, 3))
  down = layers.DownPath(4, 2, 1, 'instance')
  v = down.init(jax.random.key(0), x)
  y = down.apply(v, x)
  assert y.shape == (1, 4, 2, 16)
  assert set(v['params']) == {'stem', 'down0', 'down1', 'res0'}
  assert set(v['params']['res0']) == {'conv1', 'conv2'}
  up = layers.UpPath(4, 2, 1, 'batch', max_features=8)
  vu = up.init(jax.random.key(0), jnp.ones((1, 4, 2, 8)))
  assert up.apply(vu, jnp.ones((1, 4, 2, 8))).shape == (1, 16, 8, 4)
  assert vu['params']['up0']['kernel'].shape == (3, 3, 8, 8)


@pytest.mark.parametrize('module', [layers.Conv(4, 7, padding=3, padding_mode='reflect')],
                         ids=['conv7'])
def test_split_kernel_gradient_matches_autodiff(monkeypatch, module):
  # On CPU large kernel-gradient convs run as two halves over the input channels (one per
  # core); lower the size threshold so this small case takes that path.
  assert jax.default_backend() == 'cpu'
  monkeypatch.setattr(layers, '_KERNEL_GRAD_SPLIT_MIN_ELEMENTS', 1)
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(2, 8, 10, 5)).astype(np.float32))
  variables = module.init(jax.random.key(2), x)

  def plain(params, x):
    if isinstance(module, layers.UpConv):
      return jax.lax.conv_transpose(x, params['kernel'][::-1, ::-1], (2, 2), ((1, 2), (1, 2)),
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + params['bias']
    xp = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)), mode='reflect')
    return jax.lax.conv_general_dilated(xp, params['kernel'], (1, 1), 'VALID',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + params['bias']

  out = module.apply(variables, x)
  cot = jnp.asarray(rng.normal(size=out.shape).astype(np.float32))
  g_ours = jax.jit(jax.grad(lambda p: jnp.sum(module.apply({'params': p}, x) * cot)))(
      variables['params'])
  g_ref = jax.grad(lambda p: jnp.sum(plain(p, x) * cot))(variables['params'])
  np.testing.assert_allclose(g_ours['kernel'], g_ref['kernel'], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(g_ours['bias'], g_ref['bias'], rtol=1e-4, atol=1e-4)
  # The split really happened: the kernel gradient is two convolutions.
  hlo = jax.jit(jax.grad(lambda p: jnp.sum(module.apply({'params': p}, x) * cot))).lower(
      variables['params']).as_text()
  n_convs = hlo.count('stablehlo.convolution')
  monkeypatch.setattr(layers, '_KERNEL_GRAD_SPLIT_MIN_ELEMENTS', 2**62)
  hlo_unsplit = jax.jit(jax.grad(lambda p: jnp.sum(module.apply({'params': p}, x) * cot))).lower(
      variables['params']).as_text()
  assert n_convs > hlo_unsplit.count('stablehlo.convolution')


_CONV_FORM_CASES = [
    pytest.param(layers.Conv(4, 3, padding=1, padding_mode='reflect'), None, id='conv3_reflect'),
    pytest.param(layers.Conv(4, 3, padding=1, padding_mode='reflect'), 'winograd',
                 id='conv3_reflect_winograd'),
    pytest.param(layers.Conv(4, 3, padding=1), 'winograd', id='conv3_zero_winograd'),
    pytest.param(layers.Conv(4, 7, padding=3, padding_mode='reflect'), None, id='conv7_reflect'),
    pytest.param(layers.Conv(4, 3, strides=2, padding=1), None, id='conv3_s2'),
    pytest.param(layers.Conv(4, 3, strides=2, padding=1), 'banded', id='conv3_s2_banded'),
    pytest.param(layers.Conv(4, 4, padding=2), None, id='conv4_zero'),
    pytest.param(layers.UpConv(4), None, id='upconv'),
    pytest.param(layers.UpConv(4), 'banded', id='upconv_banded'),
]


@pytest.mark.parametrize('module,variant', _CONV_FORM_CASES)
def test_tuned_and_plain_conv_forms_agree(monkeypatch, module, variant):
  """The tuned conv forms (the default) and one plain conv per layer are the same function:
  outputs, input gradients and parameter gradients; also when the CPU forms split their patch
  matrices into bands of rows (forced here by tiny band sizes: 4 bands), and for the Winograd
  form of 3x3 convs (forced here by a channel threshold of 1)."""
  assert jax.default_backend() == 'cpu'
  if variant == 'banded':
    monkeypatch.setattr(layers, '_UP_BWD_BAND_BYTES', 1)
    monkeypatch.setattr(layers, '_PATCH_CONV_MAX_BYTES', 2000)  # 2x4x5 outputs, 7200 bytes
  winograd_calls = []
  if variant == 'winograd':
    monkeypatch.setattr(layers, '_WINOGRAD_MIN_FEATURES', 1)
    winograd = layers._winograd_conv
    monkeypatch.setattr(layers, '_winograd_conv',
                        lambda *a: winograd_calls.append(1) or winograd(*a))
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(2, 8, 10, 5)).astype(np.float32))
  variables = module.init(jax.random.key(3), x)
  cot = jnp.asarray(rng.normal(size=module.apply(variables, x).shape).astype(np.float32))
  results = {}
  for forms in ('tuned', 'plain'):
    monkeypatch.setattr(layers, '_conv_forms', forms)
    loss = lambda p, v: jnp.sum(module.apply({'params': p}, v) * cot)
    results[forms] = (module.apply(variables, x),
                      *jax.jit(jax.grad(loss, argnums=(0, 1)))(variables['params'], x))
  for tuned, plain in zip(jax.tree_util.tree_leaves(results['tuned']),
                        jax.tree_util.tree_leaves(results['plain'])):
    np.testing.assert_allclose(tuned, plain, rtol=1e-4, atol=1e-4)
  assert bool(winograd_calls) == (variant == 'winograd')
  with pytest.raises(ValueError, match='conv forms'):
    layers.set_conv_forms('cudnn')


def test_winograd_conv_at_generator_width():
  """The Winograd form at the width where conv2d uses it by default (512 channels, a residual
  block of the 256x128 generator at 1/8 size, batch 2) against XLA's float64 conv, and its
  fallback for odd sizes."""
  rng = np.random.default_rng(6)
  x = rng.normal(size=(2, 4, 6, 512))
  kernel = 0.02 * rng.normal(size=(3, 3, 512, 512))
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
  ref = jax.lax.conv_general_dilated(xp, kernel, (1, 1), 'VALID',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                     precision='highest')
  assert layers._use_winograd(jnp.asarray(x, jnp.float32), 3, 1, 512, 512, 4, 6)
  out = layers.conv2d(jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32),
                      jnp.zeros(512), padding=1, padding_mode='reflect')
  rel = np.linalg.norm(np.asarray(out, np.float64) - ref) / np.linalg.norm(ref)
  assert rel < 2e-6, rel
  # Odd sizes, strides, bfloat16 operands and narrow convs keep the direct forms.
  assert not layers._use_winograd(jnp.asarray(x, jnp.float32), 3, 1, 512, 512, 5, 6)
  assert not layers._use_winograd(jnp.asarray(x, jnp.float32), 3, 2, 512, 512, 4, 6)
  assert not layers._use_winograd(jnp.asarray(x, jnp.bfloat16), 3, 1, 512, 512, 4, 6)
  assert not layers._use_winograd(jnp.asarray(x, jnp.float32), 3, 1, 128, 512, 4, 6)
