"""PSNR/SSIM against independent NumPy formulas; warping error of an exact flow is zero."""

import numpy as np
import pytest

from vid2vid_jax import metrics


def _images(seed=0, shape=(2, 24, 20, 3)):
  rng = np.random.default_rng(seed)
  return (rng.uniform(-1, 1, shape).astype(np.float32),
          rng.uniform(-1, 1, shape).astype(np.float32))


def test_psnr_matches_numpy_and_caps():
  a, b = _images()
  mse = np.mean(((a + 1) / 2 - (b + 1) / 2) ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(metrics.psnr(a, b), 10 * np.log10(1 / mse), rtol=1e-5)
  np.testing.assert_allclose(metrics.psnr(a, a), [100.0, 100.0])


def _ssim_reference(x, y):
  """Direct (non-separable) windowed SSIM in NumPy for one [H, W] plane in [0, 1]."""
  size, sigma = 11, 1.5
  g = np.exp(-(np.arange(size) - 5.0) ** 2 / (2 * sigma ** 2))
  w = np.outer(g, g) / np.outer(g, g).sum()
  out = []
  for i in range(x.shape[0] - size + 1):
    for j in range(x.shape[1] - size + 1):
      px, py = x[i:i + size, j:j + size], y[i:i + size, j:j + size]
      mx, my = (w * px).sum(), (w * py).sum()
      vx, vy = (w * px * px).sum() - mx ** 2, (w * py * py).sum() - my ** 2
      cxy = (w * px * py).sum() - mx * my
      c1, c2 = 0.01 ** 2, 0.03 ** 2
      out.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
  return np.mean(out)


def test_ssim_matches_direct_formula():
  a, b = _images(1, (1, 16, 14, 1))
  b = 0.6 * a + 0.4 * b  # correlated, so SSIM is far from 0
  expected = _ssim_reference((a[0, ..., 0] + 1) / 2, (b[0, ..., 0] + 1) / 2)
  np.testing.assert_allclose(metrics.ssim(a, b), [expected], rtol=1e-4)
  np.testing.assert_allclose(metrics.ssim(a, a), [1.0], rtol=1e-5)


def test_ssim_rejects_small_images():
  a, _ = _images(2, (1, 8, 8, 3))
  with pytest.raises(ValueError, match='at least 11x11'):
    metrics.ssim(a, a)


def test_warping_error_zero_for_exact_flow_and_positive_otherwise():
  rng = np.random.default_rng(3)
  prev = rng.uniform(-1, 1, (1, 12, 16, 3)).astype(np.float32)
  frame = np.roll(prev, 2, axis=2)  # content moved 2 px right: frame(x) = prev(x - 2)
  flow = np.zeros((1, 12, 16, 2), np.float32)
  flow[..., 0] = -2.0
  valid = np.ones((1, 12, 16, 1), np.float32)
  valid[:, :, :2] = 0.0  # wrapped-around columns are "occluded"
  assert float(metrics.warping_error(frame, prev, flow, valid)[0]) < 1e-6
  assert float(metrics.warping_error(frame, prev, np.zeros_like(flow), valid)[0]) > 0.1
