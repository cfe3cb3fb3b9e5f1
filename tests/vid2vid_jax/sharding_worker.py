"""Subprocess half of test_sharding.py: train steps on simulated CPU devices.

  python tests/vid2vid_jax/sharding_worker.py equivalence OUT.npz
      8 CPU devices: two train steps on one device, then with the same inputs on a
      data-parallel mesh (8 x 1, replicated params) and a data x spatial mesh (2 x 4) with FSDP;
      writes losses, params and layouts.
  python tests/vid2vid_jax/sharding_worker.py distributed WORKDIR DATA_ROOT PORT PROCESS_ID
      one of 2 localhost processes x 2 CPU devices (gloo collectives): trains 2 steps through
      train_lib.train_and_evaluate on a data=2 x spatial=2 mesh with FSDP, then restores the
      saved checkpoint.
"""

import functools
import json
import pathlib
import sys
import time

import jax

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# (name, data, spatial, fsdp, devices)
CASES = (('one_device', 1, 1, False, 1), ('data', 8, 1, False, 8),
         ('fsdp_spatial', 2, 4, True, 8))
BATCH, HEIGHT, WIDTH = 8, 32, 32
FSDP_MIN_SIZE = 1024  # small enough that the tiny model's kernels get split
# Adam's eps for the comparison. The biases of convs followed by a norm have an exactly-zero
# true gradient (the norm removes them), so their computed gradient is rounding noise, which
# Adam's default eps 1e-8 scales to +-lr updates: a different summation order (any sharding)
# flips them. With eps 1e-2 the update is a smooth function of the gradient, so the comparison
# checks the gradients themselves.
ADAM_EPS = 1e-2


def tiny_config():
  from configs import demo  # pylint: disable=g-import-not-at-top
  config = demo.get_config()
  config.data.load_size = config.data.fine_size = WIDTH
  config.data.batch_size = BATCH
  g = config.model.generator
  g.ngf, g.n_blocks, g.n_downsample_G = 8, 1, 2
  d = config.model.discriminator
  d.ndf, d.n_layers_D, d.num_D, d.n_frames_D, d.n_scales_temporal = 8, 2, 1, 2, 1
  config.train.max_frames_per_gpu = 2
  config.train.unroll = False  # compile time matters more than step time here
  return config


def equivalence(out_path: str) -> None:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import losses as losses_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import sharding  # pylint: disable=g-import-not-at-top
  from input_pipeline import sampling  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import schedule as schedule_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import steps  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import train_state  # pylint: disable=g-import-not-at-top

  assert jax.device_count() == 8, jax.devices()
  config = tiny_config()
  models = train_state.build_models(config)
  losses = losses_lib.loss_weights_from_config(config)
  schedule = schedule_lib.schedule_from_config(config)
  per_step = config.train.max_frames_per_gpu
  options = steps.step_options(config, schedule, 0, per_step)
  rng = np.random.default_rng(0)
  plan = sampling.ClipPlan(n_frames_G=models.generator.n_frames, frames_per_step=per_step,
                           n_chunks=2)  # two chunks of one clip
  frames = plan.length
  labels = rng.integers(0, config.data.label_nc, (BATCH, frames, HEIGHT, WIDTH))
  cond = np.concatenate([np.eye(config.data.label_nc, dtype=np.float32)[labels],
                         rng.integers(0, 2, (BATCH, frames, HEIGHT, WIDTH, 1)).astype(np.float32)],
                        axis=-1)
  clip = {'cond': cond,
          'image': rng.uniform(-1, 1, (BATCH, frames, HEIGHT, WIDTH, 3)).astype(np.float32),
          'flow_gt': rng.normal(0, 2, (BATCH, frames, HEIGHT, WIDTH, 2)).astype(np.float32),
          'conf_gt': rng.uniform(0, 1, (BATCH, frames, HEIGHT, WIDTH, 1)).astype(np.float32)}
  chunks = schedule_lib.chunks_of(clip, plan)
  rates = {k: np.float32(v) for k, v in schedule.learning_rates(0).items()}
  frozen = {'vgg': None, 'flownet': None, 'first_frame': None}
  results = {}
  for name, data, spatial, fsdp, n_devices in CASES:
    config.sharding.data, config.sharding.spatial, config.sharding.fsdp = data, spatial, fsdp
    mesh = sharding.create_mesh(config, jax.devices()[:n_devices])
    with jax.set_mesh(mesh):
      state, layouts, new_seq = train_state.create_sharded_states(
          models, schedule, jax.random.PRNGKey(0), BATCH, HEIGHT, WIDTH, mesh, fsdp=fsdp,
          fsdp_min_size=FSDP_MIN_SIZE)
      for opt_state in state.opt_state.values():
        opt_state.hyperparams['eps'] = jax.device_put(np.float32(ADAM_EPS),
                                                      opt_state.hyperparams['eps'].sharding)
      txs = train_state.make_optimizers(schedule, state.params)
      seq = new_seq()
      step = steps.jit_step(functools.partial(steps.train_step, models, losses, options, txs),
                            mesh, layouts.state, layouts.sequence, chunks[0])
      t0 = time.monotonic()
      step = step.lower(state, seq, sharding.to_global(chunks[0], mesh), rates, frozen).compile()
      t1 = time.monotonic()
      hlo = step.as_text()
      scalars, params = [], [jax.tree_util.tree_map(np.asarray, state.params)]
      for chunk in chunks:
        state, seq, out = step(state, seq, sharding.to_global(chunk, mesh), rates, frozen)
        scalars.append({k: float(v) for k, v in out['scalars'].items()})
        params.append(jax.tree_util.tree_map(np.asarray, state.params))  # before donation
      print(f'{name}: compile {t1 - t0:.1f} s, 2 steps {time.monotonic() - t1:.1f} s',
            file=sys.stderr, flush=True)
    leaves = jax.tree_util.tree_leaves(state.params)
    results[name] = {
        'scalars': scalars,
        'params': {jax.tree_util.keystr(p): x  # after the first step
                   for p, x in jax.tree_util.tree_leaves_with_path(params[1])},
        'sharded_params': sum(not x.sharding.is_fully_replicated for x in leaves),
        'sharded_opt': sum(not x.sharding.is_fully_replicated
                           for x in jax.tree_util.tree_leaves(state.opt_state)),
        'fake_spec': str(out['images']['fake'].sharding.spec),
        'seq_spec': str(seq.hist_fake.sharding.spec),
        'halo_exchange': 'collective-permute' in hlo,
        'n_params': len(leaves),
    }
    if name == 'one_device':
      results['init'] = {'params': {jax.tree_util.keystr(p): x
                                    for p, x in jax.tree_util.tree_leaves_with_path(params[0])}}
  meta = {name: {k: v for k, v in r.items() if k != 'params'} for name, r in results.items()}
  arrays = {f'{name}/{key}': value for name, r in results.items()
            for key, value in r['params'].items()}
  np.savez(out_path, **arrays)
  pathlib.Path(out_path).with_suffix('.json').write_text(json.dumps(meta))


def distributed(workdir: str, data_root: str, port: str, process_id: str) -> None:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import sharding  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import schedule as schedule_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import train_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import train_state  # pylint: disable=g-import-not-at-top

  config = tiny_config()
  config.data.root = data_root
  config.data.flow_dir = str(pathlib.Path(data_root) / 'train_flow')
  config.data.batch_size = 2  # one clip per process
  config.data.n_frames_total = 6
  config.train.num_steps = 2
  config.train.checkpoint_every_steps = 2
  config.train.log_every_steps = 1
  config.train.image_every_steps = 2
  config.sharding.distributed = True
  config.sharding.coordinator_address = f'localhost:{port}'
  config.sharding.num_processes = 2
  config.sharding.process_id = int(process_id)
  config.sharding.data, config.sharding.spatial = 2, 2  # each process's clip: one frame band
  config.sharding.fsdp = True  # per device
  config.sharding.fsdp_min_size = FSDP_MIN_SIZE
  sharding.initialize_distributed(config)
  assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
  state = train_lib.train_and_evaluate(config, workdir)
  # Restore the checkpoint just written into the same layout and compare (every host checks its
  # own shards).
  mesh = sharding.create_mesh(config)
  manager = checkpoint.create_manager(workdir)
  with jax.set_mesh(mesh):
    _, _, new_seq = train_state.create_sharded_states(
        train_state.build_models(config), schedule_lib.schedule_from_config(config),
        jax.random.PRNGKey(1), 2, HEIGHT, WIDTH, mesh, fsdp=True, fsdp_min_size=FSDP_MIN_SIZE)
    restored, _ = checkpoint.restore_train(manager, manager.latest_step(), state, new_seq())
  diffs = [float(np.max(np.abs(np.asarray(a.addressable_data(0)) -
                               np.asarray(b.addressable_data(0)))))
           for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(restored))]
  sharded = sum(not x.sharding.is_fully_replicated
                for x in jax.tree_util.tree_leaves(restored.params))
  print(json.dumps({'process': jax.process_index(), 'step': int(restored.step),
                    'latest': manager.latest_step(), 'max_diff': max(diffs),
                    'sharded_params': sharded}), flush=True)


if __name__ == '__main__':
  jax.config.update('jax_platforms', 'cpu')
  if sys.argv[1] == 'equivalence':
    jax.config.update('jax_num_cpu_devices', 8)
    equivalence(sys.argv[2])
  elif sys.argv[1] == 'distributed':
    jax.config.update('jax_num_cpu_devices', 2)
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    distributed(*sys.argv[2:6])
  else:
    raise SystemExit(f'unknown mode {sys.argv[1]!r}')
