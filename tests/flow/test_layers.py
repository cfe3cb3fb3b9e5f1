"""Correlation, Resample2d, ChannelNorm, resizing and the deconv against the references."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from flow import correlation as correlation_lib
from flow import layers
from vid2vid_jax import warp as warp_lib


def _nhwc(x: np.ndarray) -> np.ndarray:
  return x.transpose(0, 2, 3, 1)


def _nchw(x) -> np.ndarray:
  return np.asarray(x).transpose(0, 3, 1, 2)


def _rel_err(ours, ref) -> float:
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape
  return float(np.max(np.abs(ours - ref)) / np.std(ref))


def _naive_correlation(f1, f2, pad, k, md, s1, s2):
  """The README's definition, one displacement at a time, float64, NCHW in and out."""
  f1 = np.asarray(f1, np.float64)
  f2 = np.asarray(f2, np.float64)
  b, c, h, w = f1.shape
  kr = (k - 1) // 2
  border = kr + md
  dr = md // s2
  d = 2 * dr + 1
  out_h = math.ceil((h + 2 * pad - 2 * border) / s1)
  out_w = math.ceil((w + 2 * pad - 2 * border) / s1)
  big = pad + kr + 2 * md + 2  # generous zero padding: reads outside are zero
  p1 = np.pad(f1, ((0, 0), (0, 0), (big, big), (big, big)))
  p2 = np.pad(f2, ((0, 0), (0, 0), (big, big), (big, big)))
  off = big - pad  # padded-grid index t is t + off in p1 / p2
  out = np.zeros((b, d * d, out_h, out_w))
  ys = np.arange(out_h) * s1 + md + off
  xs = np.arange(out_w) * s1 + md + off
  for j, i in itertools.product(range(-dr, dr + 1), repeat=2):
    acc = np.zeros((b, out_h, out_w))
    for u, v in itertools.product(range(-kr, kr + 1), repeat=2):
      a = p1[:, :, ys[:, None] + u, xs[None, :] + v]
      bb = p2[:, :, ys[:, None] + u + j * s2, xs[None, :] + v + i * s2]
      acc += np.sum(a * bb, axis=1)
    out[:, (j + dr) * d + (i + dr)] = acc / (k * k * c)
  return out


def test_correlation_fixture(flownet2_fixtures):
  data = np.load(flownet2_fixtures / 'correlation_io.npz')
  params = {k: int(data[k]) for k in ('pad_size', 'kernel_size', 'max_displacement', 'stride1',
                                      'stride2')}
  assert params == dict(pad_size=20, kernel_size=1, max_displacement=20, stride1=1, stride2=2)
  out = _nchw(jax.jit(correlation_lib.correlation)(_nhwc(data['input1']), _nhwc(data['input2'])))
  # float32 rounding only: a few ulps of the output (~1e-7 abs, README).
  assert np.max(np.abs(out - data['output_float64'])) < 1e-6
  assert _rel_err(out, data['output']) < 1e-4
  leaky = np.where(out >= 0, out, 0.1 * out)
  assert _rel_err(leaky, data['output_leaky_relu']) < 1e-4


def test_correlation_fixture_float64(flownet2_fixtures):
  data = np.load(flownet2_fixtures / 'correlation_io.npz')
  with jax.enable_x64(True):
    out = correlation_lib.correlation(_nhwc(data['input1']).astype(np.float64),
                                      _nhwc(data['input2']).astype(np.float64))
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(_nchw(out), data['output_float64'], rtol=0, atol=1e-13)


@pytest.mark.parametrize('pad,k,md,s1,s2,shape', [
    (20, 1, 20, 1, 2, (2, 5, 6, 9)),    # FlowNetC, padding larger than the map
    (4, 1, 4, 1, 2, (2, 3, 7, 9)),
    (6, 3, 5, 1, 2, (1, 4, 8, 7)),      # k = 3, md not a multiple of s2
    (3, 3, 3, 2, 2, (2, 3, 8, 7)),      # k = 3 and s1 = 2
    (2, 1, 4, 1, 2, (1, 3, 7, 6)),      # pad < md
    (5, 1, 5, 1, 2, (1, 2, 6, 7)),      # md not a multiple of s2
    (20, 1, 20, 1, 2, (1, 4, 9, 150)),  # several column tiles, the last one partial
])
def test_correlation_matches_definition(pad, k, md, s1, s2, shape):
  rng = np.random.default_rng(sum(shape) + pad + k)
  f1 = rng.standard_normal(shape).astype(np.float32)
  f2 = rng.standard_normal(shape).astype(np.float32)
  ref = _naive_correlation(f1, f2, pad, k, md, s1, s2)
  out = correlation_lib.correlation(_nhwc(f1), _nhwc(f2), pad_size=pad, kernel_size=k,
                                    max_displacement=md, stride1=s1, stride2=s2)
  assert _nchw(out).shape == ref.shape
  np.testing.assert_allclose(_nchw(out), ref, rtol=0, atol=2e-6)


def test_correlation_channel_order():
  """Channel (j + 10) * 21 + (i + 10) pairs f1[y, x] with f2[y + 2j, x + 2i]: dy is slow."""
  f1 = np.zeros((1, 30, 30, 1), np.float32)
  f2 = np.zeros((1, 30, 30, 1), np.float32)
  f1[0, 10, 12, 0] = 1.0
  f2[0, 10 + 2 * 3, 12 + 2 * (-5), 0] = 1.0  # dy = +6 (j = 3), dx = -10 (i = -5)
  out = np.asarray(correlation_lib.correlation(f1, f2))
  assert out.shape == (1, 30, 30, 441)
  nonzero = np.argwhere(out != 0)
  np.testing.assert_array_equal(nonzero, [[0, 10, 12, (3 + 10) * 21 + (-5 + 10)]])


def test_correlation_does_not_materialise_the_product_tensor():
  """Compiled scratch memory stays far below one (B, H, W, 441, C) float32 tensor."""
  shape = (1, 32, 64, 256)  # conv3 features of a 512x256 frame
  spec = jax.ShapeDtypeStruct(shape, jnp.float32)
  compiled = jax.jit(correlation_lib.correlation).lower(spec, spec).compile()
  full = math.prod(shape) * 441 * 4
  stats = compiled.memory_analysis()
  assert stats is not None
  assert stats.temp_size_in_bytes < full / 20, (stats.temp_size_in_bytes, full)


def test_correlation_rejects_bad_input():
  with pytest.raises(ValueError, match='equal shape'):
    correlation_lib.correlation(jnp.zeros((1, 8, 8, 4)), jnp.zeros((1, 8, 9, 4)))
  with pytest.raises(ValueError, match='kernel_size'):
    correlation_lib.correlation(jnp.zeros((1, 8, 8, 4)), jnp.zeros((1, 8, 8, 4)), kernel_size=2)


def test_resample2d_fixture(flownet2_fixtures):
  data = np.load(flownet2_fixtures / 'resample2d_io.npz')
  image, flow = _nhwc(data['input1']), _nhwc(data['input2'])
  out = _nchw(layers.resample2d(image, flow))
  np.testing.assert_allclose(out, data['output_float64'], rtol=0, atol=2e-6)
  assert _rel_err(out, data['output']) < 1e-4
  # The bilinear Resample2d is vid2vid's warp, bit for bit.
  np.testing.assert_array_equal(out, _nchw(warp_lib.warp(image, flow)))
  nearest = _nchw(layers.resample2d(image, flow, bilinear=False))
  np.testing.assert_array_equal(nearest, data['output_nearest'])


def test_resample2d_fixture_float64(flownet2_fixtures):
  data = np.load(flownet2_fixtures / 'resample2d_io.npz')
  with jax.enable_x64(True):
    out = layers.resample2d(_nhwc(data['input1']).astype(np.float64),
                            _nhwc(data['input2']).astype(np.float64))
    np.testing.assert_allclose(_nchw(out), data['output_float64'], rtol=0, atol=1e-14)


@pytest.mark.parametrize('suffix', ['3ch', '2ch'])
def test_channel_norm_fixture(flownet2_fixtures, suffix):
  data = np.load(flownet2_fixtures / 'channelnorm_io.npz')
  out = _nchw(layers.channel_norm(_nhwc(data[f'input_{suffix}'])))
  assert _rel_err(out, data[f'output_{suffix}']) < 1e-5
  np.testing.assert_allclose(out, data[f'output_{suffix}_float64'], rtol=1e-6)


@pytest.mark.parametrize('src,dst', [((16, 32), (64, 128)), ((64, 128), (96, 160)),
                                     ((96, 160), (64, 128)), ((37, 100), (100, 37))])
def test_resize_bilinear_matches_torch(src, dst):
  """nn.Upsample(size, mode='bilinear'): align_corners=False, no antialias, same weights."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 3) + src).astype(np.float32)
  ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=dst, mode='bilinear',
                                        align_corners=False).numpy()
  out = _nchw(layers.resize_bilinear(_nhwc(x), *dst))
  np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)


def test_upsample_nearest_matches_torch():
  x = np.random.default_rng(1).standard_normal((1, 2, 5, 7)).astype(np.float32)
  ref = torch.nn.Upsample(scale_factor=4, mode='nearest')(torch.from_numpy(x)).numpy()
  np.testing.assert_array_equal(_nchw(layers.upsample_nearest(_nhwc(x), 4)), ref)


@pytest.mark.parametrize('use_bias', [True, False])
def test_deconv_matches_conv_transpose2d(use_bias):
  rng = np.random.default_rng(2)
  x = rng.standard_normal((2, 5, 6, 7)).astype(np.float32)  # NCHW, 5 channels
  w = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)  # (in, out, kh, kw)
  b = rng.standard_normal((3,)).astype(np.float32)
  ref = torch.nn.functional.conv_transpose2d(
      torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b) if use_bias else None,
      stride=2, padding=1).numpy()
  params = {'kernel': w.transpose(2, 3, 0, 1)}
  if use_bias:
    params['bias'] = b
  module = layers.Deconv(3, use_bias=use_bias, activation=False)
  out = _nchw(module.apply({'params': params}, _nhwc(x)))
  assert out.shape == (2, 3, 12, 14)
  np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
