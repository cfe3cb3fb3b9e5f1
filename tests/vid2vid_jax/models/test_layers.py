"""Layers against PyTorch's definitions (torch is a test-only dependency)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configs import demo
from vid2vid_jax import kernels
from vid2vid_jax.models import builders
from vid2vid_jax.models import layers

pytestmark = pytest.mark.usefixtures('compilation_cache')


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
  v = jax.eval_shape(down.init, jax.random.key(0), x)
  assert jax.eval_shape(down.apply, v, x).shape == (1, 4, 2, 16)
  assert set(v['params']) == {'stem', 'down0', 'down1', 'res0'}
  assert set(v['params']['res0']) == {'conv1', 'conv2'}
  up = layers.UpPath(4, 2, 1, 'batch', max_features=8)
  vu = jax.eval_shape(up.init, jax.random.key(0), jnp.ones((1, 4, 2, 8)))
  assert jax.eval_shape(up.apply, vu, jnp.ones((1, 4, 2, 8))).shape == (1, 16, 8, 4)
  assert vu['params']['up0']['kernel'].shape == (3, 3, 8, 8)


@pytest.mark.parametrize('module', [
    layers.Conv(4, 3, padding=1, padding_mode='reflect'), layers.Conv(4, 7, padding=3),
    layers.UpConv(4)], ids=['conv3_reflect', 'conv7_zero', 'upconv'])
def test_conv_impl_keeps_params_and_values(module):
  """'tuned' and 'plain' modules declare the same parameters and compute the same outputs
  (the formulations themselves are compared in tests/vid2vid_jax/kernels)."""
  x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 8, 10, 5)), jnp.float32)
  variables = module.init(jax.random.key(3), x)
  plain = module.clone(conv_impl='plain')
  shapes = lambda v: jax.tree_util.tree_map(jnp.shape, v)
  assert shapes(plain.init(jax.random.key(3), x)) == shapes(variables)
  np.testing.assert_allclose(plain.apply(variables, x), module.apply(variables, x),
                             rtol=1e-5, atol=1e-5)


def test_model_conv_impl_reaches_every_conv():
  """With model.conv_impl = 'plain' the built generator, first-frame generator and
  discriminator run every conv as one lax convolution: no custom VJP and no GEMM anywhere."""
  config = demo.get_config()
  f = config.first_frame
  f.ngf, f.n_downsample, f.n_blocks = 8, 2, 1
  cond_nc = builders.cond_channels(config)
  t = config.model.generator.n_frames_G
  conds = [jnp.ones((1, t, 16, 16, cond_nc))]
  prevs = [jnp.ones((1, t - 1, 16, 16, config.data.output_nc))]
  label = jnp.ones((1, 16, 16, cond_nc))
  d_input = jnp.ones((1, 16, 16, builders.discriminator_input_channels(config)['image']))
  for impl in kernels.CONV_IMPLS:
    config.model.conv_impl = impl
    nets = [(builders.generator_from_config(config), (conds, prevs)),
            (builders.first_frame_generator_from_config(config), (label,)),
            (builders.image_discriminator_from_config(config), (d_input,))]
    for net, args in nets:
      variables = jax.eval_shape(net.init, jax.random.key(0), *args)
      jaxpr = str(jax.make_jaxpr(net.apply)(variables, *args))
      tuned_forms = 'custom_vjp_call' in jaxpr or 'dot_general' in jaxpr
      assert tuned_forms == (impl == 'tuned'), (impl, type(net).__name__)


def _smooth(shape, seed):
  """Smooth random images (low-frequency, as video frames are) [B, H, W, C] in about [-1, 1]."""
  coarse = jax.random.uniform(jax.random.key(seed), (shape[0], shape[1] // 4, shape[2] // 4,
                                                      shape[3]), minval=-1, maxval=1)
  return jax.image.resize(coarse, shape, 'linear')


@pytest.mark.parametrize('block', ['conv', 'up_conv', 'resnet', 'down_path', 'up_path'])
def test_each_block_in_bfloat16_within_1e2_of_float32(block):
  """bfloat16 rounds the conv operands only: every block stays within 1% relative of float32
  on the same input (the whole generator: test_generator.py, 2e-2)."""
  make = {
      'conv': lambda dt: layers.Conv(16, 3, padding=1, padding_mode='reflect', dtype=dt),
      'up_conv': lambda dt: layers.UpConv(16, dtype=dt),
      'resnet': lambda dt: layers.ResnetBlock(16, norm='instance', dtype=dt),
      'down_path': lambda dt: layers.DownPath(16, n_down=2, norm='batch', dtype=dt),
      'up_path': lambda dt: layers.UpPath(16, n_up=2, n_res=1, norm='instance', dtype=dt),
  }[block]
  x = _smooth((2, 32, 32, 64 if block == 'up_path' else 16), seed=1)  # UpPath halves widths
  variables = make(jnp.float32).init(jax.random.key(0), x)
  out32 = np.asarray(make(jnp.float32).apply(variables, x), np.float64)
  out16 = np.asarray(make(jnp.bfloat16).apply(variables, x).astype(jnp.float32), np.float64)
  rel = np.linalg.norm(out16 - out32) / np.linalg.norm(out32)
  assert 0 < rel <= 1e-2, (block, rel)  # 0 would mean bfloat16 never ran
