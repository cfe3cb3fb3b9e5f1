"""The temporal discriminators' windows, flows and terms, against the original's buffers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vid2vid_jax import losses
from vid2vid_jax import temporal
from vid2vid_jax.models import discriminator as disc_lib


def test_history_length_and_d_input_layout():
  assert temporal.history_length(3, 2) == 6 and temporal.history_length(2, 3) == 4
  frames = jnp.arange(3)[None, :, None, None, None] * jnp.ones((2, 3, 4, 5, 3))
  flows = 20.0 * jnp.ones((2, 2, 4, 5, 2))
  x = temporal.d_input(frames, flows)
  assert x.shape == (2, 4, 5, 13)
  np.testing.assert_array_equal(x[0, 0, 0], [0, 0, 0, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1])
  with pytest.raises(ValueError, match='tD-1'):
    temporal.d_input(frames, flows[:, :1])


def test_compose_flows_chains_backward_flows():
  flows = np.zeros((1, 2, 4, 6, 2), np.float32)
  flows[:, 0, ..., 0] = 1.0
  flows[:, 1, ..., 1] = -1.0
  np.testing.assert_allclose(temporal.compose_flows(jnp.asarray(flows))[0, 2, 2], [1.0, -1.0])


def _original_dense_groups(n_frames_D, n_scales_temporal, n_new, n_chunks):
  """The original's dense windows (get_skipped_frames on the kept history plus the chunk)
  replayed on frame ids: per chunk and scale, the list of windows (tuples of clip frame ids)."""
  td = n_frames_D
  keep = temporal.history_length(td, n_scales_temporal)
  history = []
  per_chunk = []
  for c in range(n_chunks):
    frames = history + list(range(c * n_new, (c + 1) * n_new))
    groups = []
    for s in range(n_scales_temporal):
      stride = td**s
      span = stride * (td - 1)
      n_groups = min(len(frames) - span, n_new)
      groups.append([tuple(frames[len(frames) - 1 - t - span:len(frames) - t:stride])
                     for t in range(0, max(n_groups, 0), td)])
    per_chunk.append(groups)
    history = frames[-keep:]
  return per_chunk


def test_dense_windows_chain_or_compute_flows_at_coarser_scales():
  seq = jnp.zeros((1, 5, 4, 6, 3))
  consecutive = jnp.ones((1, 5, 4, 6, 2))  # every frame moved by (1, 1) from the one before
  window, = temporal.dense_windows(2, seq, seq, consecutive, jnp.int32(5), 1, scale=2)
  np.testing.assert_allclose(window.flows[0, 0, 1, 1], [4.0, 4.0])  # four consecutive flows
  calls = []

  def flow_fn(cur, prev):
    calls.append(cur.shape)
    return jnp.full(cur.shape[:-1] + (2,), 7.0), None

  window, = temporal.dense_windows(2, seq, seq, consecutive, jnp.int32(5), 1, 2, flow_fn)
  assert calls == [(1, 4, 6, 3)] and float(window.flows[0, 0, 0, 0, 0]) == 7.0


def test_terms_average_valid_windows_per_scale():
  """Scale 0 has two windows (one of them reaching before the clip: masked); scale 1 none yet.
  Each term is the original's GAN / feature-matching loss of the valid window."""
  net = disc_lib.MultiscaleDiscriminator(ndf=4, n_layers=1, num_D=1, norm='instance')
  spec = temporal.TemporalDs(net=net, n_frames=2, n_scales=2)
  rng = np.random.default_rng(0)
  hist = spec.history_length  # 2
  real = jnp.asarray(rng.uniform(-1, 1, (1, hist + 2, 8, 8, 3)), jnp.float32)
  fake = jnp.asarray(rng.uniform(-1, 1, real.shape), jnp.float32)
  flow = jnp.asarray(rng.normal(0, 1, real.shape[:-1] + (2,)), jnp.float32)
  params = {str(s): net.init(jax.random.key(s), jnp.zeros((1, 8, 8, spec.input_channels)))[
      'params'] for s in range(2)}
  weights = losses.LossWeights(gan_mode='ls', lambda_feat=10.0, num_D=1, n_layers_D=1)
  # The clip's first chunk: 2 new frames, no history. Scale 0: window (0, 1) only.
  terms, has_window = temporal.terms(spec, weights, params, real, fake, flow, jnp.int32(0), 2)
  assert {k: bool(v) for k, v in has_window.items()} == {'0': True, '1': False}
  x_real = temporal.d_input(real[:, 2:4], flow[:, 3:4])
  x_fake = temporal.d_input(fake[:, 2:4], flow[:, 3:4])
  p_real = net.apply({'params': params['0']}, x_real)
  p_fake = net.apply({'params': params['0']}, x_fake)
  np.testing.assert_allclose(terms['g/t_gan_0'], losses.gan_loss(p_fake, True, 'ls', False),
                             rtol=1e-5)
  np.testing.assert_allclose(terms['g/t_gan_feat_0'],
                             10 * losses.feature_matching_loss(p_fake, p_real, 1, 1), rtol=1e-5)
  np.testing.assert_allclose(terms['d_t0/real'], losses.gan_loss(p_real, True, 'ls', True),
                             rtol=1e-5)
  np.testing.assert_allclose(terms['d_t0/fake'], losses.gan_loss(p_fake, False, 'ls', True),
                             rtol=1e-5)
  assert float(terms['d_t1/real']) == 0.0 and float(terms['g/t_gan_1']) == 0.0
  assert set(temporal.generator_terms(terms)) == {'g/t_gan_0', 'g/t_gan_feat_0', 'g/t_gan_1',
                                                 'g/t_gan_feat_1'}
  assert set(temporal.discriminator_terms(terms)) == {'d_t0/real', 'd_t0/fake', 'd_t1/real',
                                                     'd_t1/fake'}
  # A first chunk of 4 frames: scale 0 averages windows (2, 3) and (4, 5) of the buffer.
  real4 = jnp.concatenate([real, real[:, :2]], axis=1)
  flow4 = jnp.concatenate([flow, flow[:, :2]], axis=1)
  terms, has_window = temporal.terms(spec, weights, params, real4, real4, flow4, jnp.int32(0), 4)
  assert bool(has_window['1'])
  x = [temporal.d_input(real4[:, e - 1:e + 1], flow4[:, e:e + 1]) for e in (3, 5)]
  mean_real = np.mean([losses.gan_loss(net.apply({'params': params['0']}, xi), True, 'ls', True)
                       for xi in x])
  np.testing.assert_allclose(terms['d_t0/real'], mean_real, rtol=1e-5)


def test_push_history_keeps_the_newest_frames():
  history = jnp.arange(3)[None, :, None]
  new = jnp.arange(3, 5)[None, :, None]
  np.testing.assert_array_equal(temporal.push_history(history, new, 3)[0, :, 0], [2, 3, 4])
  assert temporal.push_history(history[:, :0], new, 0).shape == (1, 0, 1)


def _original_sparse_groups(n_frames_D, n_scales_temporal, n_new, n_chunks):
  """The original's sparse_D buffers  replayed on frame ids: per chunk and scale, the
  list of windows (tuples of clip frame indices, oldest first)."""
  td = n_frames_D
  buffers = [[] for _ in range(n_scales_temporal)]
  per_chunk = []
  for c in range(n_chunks):
    start = c * n_new
    frames = list(range(start, start + n_new))
    groups = []
    for s in range(n_scales_temporal):
      buf = buffers[s]
      if buf and len(buf) % td == 0:
        buf = buf[-(td - 1):]
      stride = td**s
      first = 0 if start == 0 else stride - ((start - 1) % stride + 1)
      if first < n_new:
        buf = buf + frames[first::stride]
      windows = []
      if len(buf) >= td:
        buf = buf[len(buf) % td:]
        windows = [tuple(buf[k:k + td]) for k in range(0, len(buf), td)]
      buffers[s] = buf
      groups.append(windows)
    per_chunk.append(groups)
  return per_chunk


@pytest.mark.parametrize('sparse', [False, True])
@pytest.mark.parametrize('n_frames_D,n_scales_temporal,n_new', [
    (3, 1, 1), (3, 2, 1), (3, 3, 1), (3, 2, 4), (2, 3, 3), (3, 3, 5), (4, 2, 2), (2, 2, 6)])
def test_windows_follow_the_original(sparse, n_frames_D, n_scales_temporal, n_new):
  """Chunk after chunk of a clip, the valid windows of every scale are the original's (frame ids
  replayed through its buffers), in the dense and the sparse_D layout."""
  hist = temporal.history_length(n_frames_D, n_scales_temporal)
  n_chunks = 3 * hist // n_new + 4
  original = _original_sparse_groups if sparse else _original_dense_groups
  expected = original(n_frames_D, n_scales_temporal, n_new, n_chunks)
  spec = temporal.TemporalDs(net=None, n_frames=n_frames_D, n_scales=n_scales_temporal,
                             sparse=sparse)
  for c in range(n_chunks):
    done = c * n_new
    # Each buffer entry holds its clip frame index (-1 before the clip starts).
    ids = np.arange(done - hist, done + n_new, dtype=np.float32)
    ids[ids < 0] = -1
    seq = jnp.asarray(ids)[None, :, None, None, None]
    flows = jnp.broadcast_to(seq, seq.shape[:-1] + (2,)) + 2000
    for s in range(n_scales_temporal):
      got = []
      for w in temporal.windows(spec, s, seq, seq + 1000, flows, jnp.int32(done), n_new):
        if bool(w.valid):
          frame_ids = tuple(int(v) for v in np.asarray(w.real).ravel())
          assert min(frame_ids) >= 0
          np.testing.assert_array_equal(np.asarray(w.fake).ravel(),
                                        np.asarray(w.real).ravel() + 1000)
          if sparse or s == 0:  # each window frame's own consecutive flow
            np.testing.assert_array_equal(np.asarray(w.flows)[..., 0].ravel(),
                                          np.asarray(w.real).ravel()[1:] + 2000)
          got.append(frame_ids)
      assert sorted(got) == sorted(expected[c][s]), (c, s, got, expected[c][s])
