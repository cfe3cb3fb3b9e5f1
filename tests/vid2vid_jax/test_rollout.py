"""The scan rollout equals a Python loop (values and gradients) and truncates gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vid2vid_jax import rollout

B, TG, T, H, W, C = 2, 3, 4, 4, 6, 2


def _toy_frame_fn(params):
  """A tiny 'generator' with two scales: frames depend on cond, prev frames and params."""

  def frame_fn(windows, prev, t):
    frames = []
    for cond, prev_s, w in zip(windows, prev, params):
      mix = jnp.tanh(jnp.einsum('bthwc,c->bhw', cond, w['c'])[..., None]
                     + jnp.einsum('bthwc,c->bhw', prev_s, w['p'])[..., None] * w['g']
                     + 0.1 * t)
      frames.append(jnp.broadcast_to(mix, mix.shape[:-1] + (3,)))
    return tuple(frames), {'fake': frames[-1], 'mean': jnp.mean(frames[0], axis=(1, 2, 3))}

  return frame_fn


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  params = tuple({'c': jnp.asarray(rng.normal(size=C), jnp.float32),
                  'p': jnp.asarray(rng.normal(size=3), jnp.float32),
                  'g': jnp.float32(0.7)} for _ in range(2))
  sizes = ((H // 2, W // 2), (H, W))
  carry = rollout.Carry(
      tuple(jnp.asarray(rng.normal(size=(B, TG - 1, h, w, C)), jnp.float32) for h, w in sizes),
      tuple(jnp.asarray(rng.uniform(-1, 1, (B, TG - 1, h, w, 3)), jnp.float32)
            for h, w in sizes))
  cond_new = tuple(jnp.asarray(rng.normal(size=(B, T, h, w, C)), jnp.float32) for h, w in sizes)
  return params, carry, cond_new


@pytest.mark.parametrize('bp,unroll', [(1, False), (2, False), (4, False), (2, True)])
def test_scan_equals_python_loop_values_and_grads(bp, unroll):
  params, carry, cond_new = _inputs()

  def loss(params, fn):
    final, out = fn(_toy_frame_fn(params), carry, cond_new, max_frames_backpropagate=bp)
    return jnp.sum(out['fake'] ** 2) + jnp.sum(out['mean']) + jnp.sum(final.prev_frames[1])

  scan_fn = lambda *a, **k: rollout.generate(*a, unroll=unroll, **k)
  value_scan, grads_scan = jax.jit(jax.value_and_grad(lambda p: loss(p, scan_fn)))(params)
  value_loop, grads_loop = jax.value_and_grad(lambda p: loss(p, rollout.generate_loop))(params)
  np.testing.assert_allclose(value_scan, value_loop, rtol=1e-6)
  chex.assert_trees_all_close(grads_scan, grads_loop, rtol=1e-5, atol=1e-6)


def test_outputs_shapes_and_carry_continuation():
  params, carry, cond_new = _inputs(1)
  final, out = rollout.generate(_toy_frame_fn(params), carry, cond_new)
  assert out['fake'].shape == (B, T, H, W, 3)
  assert out['mean'].shape == (B, T)
  # The carry holds the newest TG-1 conditioning frames and generated frames.
  np.testing.assert_array_equal(final.cond_history[1], cond_new[1][:, -(TG - 1):])
  np.testing.assert_allclose(final.prev_frames[1], out['fake'][:, -(TG - 1):])
  # Two chunks of 2 frames equal one chunk of 4 frames (in values), for a frame function that
  # does not read the chunk-local frame index t.
  base_fn = _toy_frame_fn(params)
  fn = lambda windows, prev, t: base_fn(windows, prev, 0 * t)
  _, whole = rollout.generate(fn, carry, cond_new)
  c1, out1 = rollout.generate(fn, carry, tuple(c[:, :2] for c in cond_new))
  _, out2 = rollout.generate(fn, rollout.detach(c1), tuple(c[:, 2:] for c in cond_new))
  np.testing.assert_allclose(out1['fake'], whole['fake'][:, :2], rtol=1e-6)
  np.testing.assert_allclose(out2['fake'], whole['fake'][:, 2:], rtol=1e-6)


def test_truncation_blocks_gradients_beyond_window():
  """With max_frames_backpropagate=bp, the last frame's loss reaches exactly its block."""
  params, carry, cond_new = _inputs(2)
  base_fn = _toy_frame_fn(params)

  def last_frame_loss(offsets, bp):
    def frame_fn(windows, prev, t):  # frame t gets + offsets[t]: d loss / d offsets[t] != 0
      frames, out = base_fn(windows, prev, t)  # iff frame t is reachable from the last frame
      frames = tuple(f + offsets[t] for f in frames)
      return frames, {'fake': frames[-1]}
    _, out = rollout.generate(frame_fn, carry, cond_new, max_frames_backpropagate=bp)
    return jnp.sum(out['fake'][:, -1])

  for bp, reachable in ((1, {3}), (2, {2, 3}), (3, {3}), (4, {0, 1, 2, 3})):
    grads = np.asarray(jax.grad(last_frame_loss)(jnp.zeros(T), bp))
    assert {t for t in range(T) if grads[t] != 0} == reachable, (bp, grads)

  # The frames before the chunk (the carry) never receive gradients: t=0 starts a block.
  def initial_prev_loss(prev):
    _, out = rollout.generate(_toy_frame_fn(params), carry._replace(prev_frames=prev), cond_new,
                              max_frames_backpropagate=4)
    return jnp.sum(out['fake'])
  grads = jax.grad(initial_prev_loss)(carry.prev_frames)
  assert all(float(jnp.abs(g).sum()) == 0.0 for g in grads)


def test_scan_traces_once_per_shape():
  params, carry, cond_new = _inputs(3)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(params, carry, cond_new):
    return rollout.generate(_toy_frame_fn(params), carry, cond_new)[1]['fake']

  run(params, carry, cond_new)
  run(jax.tree_util.tree_map(lambda x: x * 2, params), carry, cond_new)


def test_remat_matches_and_bad_inputs_raise():
  params, carry, cond_new = _inputs(4)
  loss = lambda p, remat: jnp.sum(rollout.generate(_toy_frame_fn(p), carry, cond_new,
                                                   remat=remat)[1]['fake'] ** 2)
  chex.assert_trees_all_close(jax.grad(loss)(params, True), jax.grad(loss)(params, False),
                              rtol=1e-6)
  with pytest.raises(ValueError, match='max_frames_backpropagate'):
    rollout.generate(_toy_frame_fn(params), carry, cond_new, max_frames_backpropagate=0)
  with pytest.raises(ValueError, match='does not continue the history'):
    rollout.generate(_toy_frame_fn(params), carry, (cond_new[0], cond_new[0]))
