"""The jitted training steps on a tiny config (no input pipeline needed)."""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import demo
from vid2vid_jax import losses as losses_lib
from vid2vid_jax import schedule as schedule_lib
from vid2vid_jax import steps
from vid2vid_jax import train_state

B, H, W, TG, N = 1, 16, 32, 3, 2


def tiny_config():
  config = demo.get_config()
  g = config.model.generator
  g.ngf, g.n_blocks, g.n_downsample_G, g.n_frames_G = 8, 1, 2, TG
  d = config.model.discriminator
  d.ndf, d.n_layers_D, d.num_D, d.n_frames_D, d.n_scales_temporal = 8, 2, 1, 2, 2
  config.train.max_frames_per_gpu = N
  config.train.unroll = False  # shorter compiles; the unrolled rollout is tested in test_rollout
  return config


def _chunk(seed, t=TG - 1 + N):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 35, (B, t, H, W))
  cond = np.concatenate([np.eye(35, dtype=np.float32)[labels],
                         rng.integers(0, 2, (B, t, H, W, 1)).astype(np.float32)], -1)
  return dict(cond=cond, image=rng.uniform(-1, 1, (B, t, H, W, 3)).astype(np.float32),
              flow_gt=rng.normal(0, 1, (B, t, H, W, 2)).astype(np.float32),
              conf_gt=(rng.uniform(size=(B, t, H, W, 1)) > 0.3).astype(np.float32))


def _two_steps(config):
  """Builds the models and a jitted step of ``config`` and runs chunks 1 and 2 of one clip."""
  models = train_state.build_models(config)
  schedule = schedule_lib.schedule_from_config(config)
  state = train_state.create_train_state(models, schedule, jax.random.PRNGKey(0), B, H, W)
  txs = train_state.make_optimizers(schedule, state.params)
  step = jax.jit(functools.partial(
      steps.train_step, models, losses_lib.loss_weights_from_config(config),
      steps.step_options(config, schedule, 0, N), txs))
  rates = {k: jnp.float32(v) for k, v in schedule.learning_rates(0).items()}
  frozen = {'vgg': None, 'flownet': None}
  seq = train_state.empty_sequence_state(models, B, H, W)
  state1, seq1, out1 = step(state, seq, _chunk(1), rates, frozen)
  state2, seq2, out2 = step(state1, seq1, _chunk(2), rates, frozen)
  return dict(models=models, step=step, rates=rates, frozen=frozen, states=(state, state1, state2),
              seqs=(seq, seq1, seq2), outs=(out1, out2))


def _bound_step(step_fn, config, seed):
  """(models, schedule, fresh state, jitted step_fn bound to config's static pieces)."""
  models = train_state.build_models(config)
  schedule = schedule_lib.schedule_from_config(config)
  state = train_state.create_train_state(models, schedule, jax.random.PRNGKey(seed), B, H, W)
  step = jax.jit(functools.partial(
      step_fn, models, losses_lib.loss_weights_from_config(config),
      steps.step_options(config, schedule, 0, N), train_state.make_optimizers(schedule,
                                                                             state.params)))
  return models, schedule, state, step


@pytest.fixture(scope='module')
def setup():
  return _two_steps(tiny_config())


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                      jax.tree_util.tree_leaves(b)))


def test_step_losses_finite_and_params_change(setup):
  state0, state1, state2 = setup['states']
  for out in setup['outs']:
    scalars = out['scalars']
    assert float(scalars['finite']) == 1.0
    for key in ('g/gan', 'g/gan_feat', 'g/flow', 'g/warp', 'g/fake_warp', 'd/real', 'd/fake'):
      assert np.isfinite(float(scalars[key])) and float(scalars[key]) > 0, key
  assert int(state2.step) == 2
  assert _changed(state0.params['g'], state1.params['g'])
  assert _changed(state0.params['d'], state1.params['d'])


def test_temporal_d_waits_for_history(setup):
  """With n_frames_D=2 and 2 temporal scales a window needs 1 (scale 0) / 2 (scale 1) frames of
  history beyond the first: chunk 1 (2 new frames) has a scale-0 window only; chunk 2 both."""
  state0, state1, state2 = setup['states']
  out1, out2 = setup['outs']
  assert float(out1['scalars']['d_t0/real']) > 0
  assert float(out1['scalars']['d_t1/real']) == 0.0
  assert _changed(state0.params['d_t']['0'], state1.params['d_t']['0'])
  assert not _changed(state0.params['d_t']['1'], state1.params['d_t']['1'])  # no window: no step
  assert float(out2['scalars']['d_t1/real']) > 0
  assert _changed(state1.params['d_t']['1'], state2.params['d_t']['1'])
  seq1, seq2 = setup['seqs'][1:]
  assert int(seq1.hist_count) == 2 and int(seq2.hist_count) == 2  # L = 2**1 * 1 = 2
  assert not bool(seq1.first_chunk)


def test_sequence_state_carries_generated_frames(setup):
  seq1 = setup['seqs'][1]
  out1 = setup['outs'][0]
  np.testing.assert_allclose(seq1.last_fake, out1['images']['fake'][:, -1])
  np.testing.assert_allclose(seq1.prev_frames[-1], out1['images']['fake'][:, -(TG - 1):])
  np.testing.assert_allclose(seq1.hist_fake, out1['images']['fake'][:, -2:])
  assert seq1.prev_frames[0].shape == (B, TG - 1, H, W, 3)


def test_non_finite_input_skips_update(setup):
  state = setup['states'][2]
  bad = _chunk(3)
  bad['image'][0, -1, 0, 0, 0] = np.nan
  new_state, _, out = setup['step'](state, setup['seqs'][2], bad, setup['rates'], setup['frozen'])
  assert float(out['scalars']['finite']) == 0.0
  assert not _changed(state.params, new_state.params)


def test_flow_warmup_step_trains_the_flow_alone():
  """Flow terms only, from the real previous frames: D untouched, the flow loss falls."""
  config = tiny_config()
  _, schedule, state, step = _bound_step(steps.flow_warmup_step, config, 0)
  rates = {k: jnp.float32(v) for k, v in schedule.learning_rates(0).items()}
  chunk = _chunk(4, t=TG - 1 + 4)
  chunk['flow_gt'][:] = 1.5  # one uniform motion: learnable within a few steps
  first = None
  new = state
  for _ in range(8):
    new, out = step(new, chunk, rates, {'vgg': None, 'flownet': None})
    first = first or float(out['scalars']['g/flow'])
  scalars = out['scalars']
  assert set(k for k in scalars if k.startswith('g/')) == {'g/flow', 'g/warp', 'g/mask',
                                                             'g/total'}
  assert float(scalars['g/flow']) < 0.7 * first
  assert _changed(state.params['g'], new.params['g'])
  assert not _changed(state.params['d'], new.params['d'])
  assert not _changed(state.params['d_t'], new.params['d_t'])
  assert out['images']['flow'].shape == (B, 4, H, W, 2)


def test_first_frame_target_trains_single_image_generator():
  config = tiny_config()
  config.train.target = 'first_frame'
  f = config.first_frame
  f.net, f.ngf, f.n_downsample, f.n_blocks = 'global', 8, 2, 1
  models, schedule, state, step = _bound_step(steps.first_frame_step, config, 1)
  assert models.temporal is None and models.first_frame.channels == 35
  chunk = _chunk(4)
  rates = {k: jnp.float32(v) for k, v in schedule.learning_rates(0).items()}
  new_state, out = step(state, {'cond': chunk['cond'], 'image': chunk['image']}, rates,
                        {'vgg': None})
  scalars = out['scalars']
  assert float(scalars['finite']) == 1.0 and float(scalars['g/gan']) > 0
  assert 'g/flow' not in scalars
  assert out['images']['fake'].shape == chunk['image'].shape
  assert _changed(state.params['g'], new_state.params['g'])


@pytest.mark.slow
def test_step_with_flownet2_reference_flows():
  """flow.source='flownet2': reference flows and confidences come from FlowNet2 on device."""
  from flow import weights as flow_weights
  config = tiny_config()
  config.flow.source = 'flownet2'
  models = train_state.build_models(config)
  schedule = schedule_lib.schedule_from_config(config)
  height = width = 64  # FlowNet2 works on multiples of 64
  state = train_state.create_train_state(models, schedule, jax.random.PRNGKey(0), B, height, width)
  step = jax.jit(functools.partial(
      steps.train_step, models, losses_lib.loss_weights_from_config(config),
      steps.step_options(config, schedule, 0, N), train_state.make_optimizers(schedule,
                                                                             state.params)))
  rng = np.random.default_rng(0)
  t = TG - 1 + N
  base = rng.uniform(-1, 1, (B, 1, height + 8, width + 8, 3)).astype(np.float32)
  image = np.concatenate([base[:, :, i:i + height, 2:2 + width] for i in range(t)], axis=1)
  cond = np.zeros((B, t, height, width, 36), np.float32)
  cond[..., 7] = 1.0
  rates = {k: jnp.float32(v) for k, v in schedule.learning_rates(0).items()}
  frozen = {'vgg': None, 'flownet': flow_weights.random_variables(0), 'first_frame': None}
  _, _, out = step(state, train_state.empty_sequence_state(models, B, height, width),
                   {'cond': cond, 'image': image}, rates, frozen)
  assert float(out['scalars']['finite']) == 1.0
  flow_ref = np.asarray(out['images']['flow_ref'])
  assert flow_ref.shape == (B, N, height, width, 2) and np.abs(flow_ref).max() > 0


def test_niter_fix_global_trains_only_the_finest_scale():
  """Before niter_fix_global epochs a 2-scale generator updates only its finest scale
  (docs/original_behaviour.md#niter-fix-global),
  while the coarse scale still runs; the 2-scale image D pools the fakes, so G's gradient flows
  through the discriminator pyramid."""
  config = tiny_config()
  config.model.generator.n_scales_spatial = 2
  config.model.generator.n_blocks_local = 1
  config.model.discriminator.num_D = 2
  config.model.discriminator.n_scales_temporal = 0
  config.train.niter, config.train.niter_fix_global = 4, 2
  models = train_state.build_models(config)
  schedule = schedule_lib.schedule_from_config(config)
  options = steps.step_options(config, schedule, 0, N)
  assert not options.train_coarse and steps.step_options(config, schedule, 2, N).train_coarse
  state = train_state.create_train_state(models, schedule, jax.random.PRNGKey(0), B, 2 * H, 2 * W)
  before = jax.tree_util.tree_map(np.asarray, state.params)
  txs = train_state.make_optimizers(schedule, state.params)
  step = jax.jit(functools.partial(steps.train_step, models,
                                   losses_lib.loss_weights_from_config(config), options, txs))
  chunk = {k: np.repeat(np.repeat(v, 2, axis=2), 2, axis=3) for k, v in _chunk(5).items()}
  rates = {k: jnp.float32(v) for k, v in schedule.learning_rates(0).items()}
  seq = train_state.empty_sequence_state(models, B, 2 * H, 2 * W)
  state, _, out = step(state, seq, chunk, rates, {'vgg': None, 'flownet': None})
  assert bool(out['scalars']['finite'])
  assert not _changed(before['g']['scale0'], state.params['g']['scale0'])
  assert _changed(before['g']['scale1'], state.params['g']['scale1'])
  assert _changed(before['d'], state.params['d'])


def test_sparse_d_training_steps():
  config = tiny_config()
  config.model.discriminator.sparse_D = True
  run = _two_steps(config)
  assert run['models'].temporal.sparse
  state0, state1, state2 = run['states']
  out1, out2 = run['outs']
  seq1, seq2 = run['seqs'][1:]
  # tD = 2, 2 frames per chunk: chunk 1 has the scale-0 window (0, 1) and no scale-1 window
  # (frame 0 only); chunk 2 has (2, 3) and the scale-1 window (0, 2).
  assert float(out1['scalars']['finite']) == 1.0 and float(out2['scalars']['finite']) == 1.0
  assert float(out1['scalars']['d_t0/real']) > 0 and float(out1['scalars']['d_t1/real']) == 0
  assert not _changed(state0.params['d_t']['1'], state1.params['d_t']['1'])
  assert float(out2['scalars']['d_t1/real']) > 0
  assert _changed(state1.params['d_t']['1'], state2.params['d_t']['1'])
  assert int(seq1.frames_done) == N and int(seq2.frames_done) == 2 * N


def test_flownet_scales_reach_the_reference_flow():
  """config.flow.rgb_max / div_flow are what the 'flownet2' flow function is called with."""
  config = demo.get_config()
  config.flow.source, config.flow.rgb_max, config.flow.div_flow = 'flownet2', 255.0, 10.0
  options = steps.step_options(config, schedule_lib.schedule_from_config(config), 0, 1)
  assert (options.flownet_rgb_max, options.flownet_div_flow) == (255.0, 10.0)
  flow_fn = steps._flow_fn(options, {'flownet': {'params': {}}}, None)
  assert flow_fn.keywords == {'rgb_max': 255.0, 'div_flow': 10.0}
