"""Train-step throughput: steps/s, frames/s, peak memory and model FLOPs utilisation.

  python benchmarks/train_step.py                                  # GPU sizes, float32+bfloat16
  python benchmarks/train_step.py --sizes 256x128 --dtypes float32 --steps 2   # CPU-sized
  python benchmarks/train_step.py --sizes 2048x1024 --dtypes bfloat16 --remat

One row per (size, dtype), each measured in its own process. The step is the real one
(`steps.train_step`, G + image D + temporal Ds, every loss of the size's street config),
jitted through `steps.jit_step` on a mesh over all local devices (``--spatial`` of them
splitting the height), on random inputs: label_nc one-hot + instance-edge channels, and with
``--flow dataset`` (default) reference flows as inputs; ``--flow flownet2`` runs FlowNet2 (random
weights) inside the step as real training does. The VGG loss uses random VGG19 weights (values
do not change the cost; training itself refuses random VGG weights).

Widths and scales are the original's street configs by frame width: configs/street_512.py
(<= 512: one scale), street_1024.py (two scales), street_2048.py (three scales), at epoch
niter_fix_global (all scales trained). frames/s = batch x new frames per step / step time. FLOPs
come from XLA's cost analysis of the step with the rollout unrolled (XLA counts loop bodies once);
MFU = FLOPs / step time / the device's dense peak (benchmarks/common.py; CPU: an estimate).
"""

import argparse
import dataclasses
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # pylint: disable=g-import-not-at-top,wrong-import-position


def street_config(width: int):
  """The original's street config for a frame width (see the module doc)."""
  from configs import street_512, street_1024, street_2048  # pylint: disable=g-import-not-at-top
  module = street_512 if width <= 512 else street_1024 if width <= 1024 else street_2048
  config = module.get_config()
  config.data.load_size = config.data.fine_size = width
  config.train.init_from = ''
  return config


def random_chunk(config, models, batch: int, height: int, width: int, new_frames: int,
                 with_flow: bool, seed: int = 0) -> dict:
  """A chunk of random inputs: [B, tG - 1 + new_frames, H, W, C] float32 NumPy arrays."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  frames = models.generator.n_frames - 1 + new_frames
  label_nc = config.data.label_nc
  labels = rng.integers(0, label_nc, (batch, frames, height, width))
  cond = np.concatenate([np.eye(label_nc, dtype=np.float32)[labels],
                         (rng.random((batch, frames, height, width, 1)) < 0.05).astype(
                             np.float32)], axis=-1)
  chunk = {'cond': cond,
           'image': rng.uniform(-1, 1, (batch, frames, height, width, 3)).astype(np.float32)}
  if with_flow:
    chunk['flow_gt'] = rng.normal(0, 2, (batch, frames, height, width, 2)).astype(np.float32)
    chunk['conf_gt'] = rng.uniform(0, 1, (batch, frames, height, width, 1)).astype(np.float32)
  return chunk


def frozen_networks(config, height: int, width: int) -> dict:
  """Random VGG19 / FlowNet2 weights where the config uses them (timing only)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  frozen = {'vgg': None, 'flownet': None, 'first_frame': None}
  if config.loss.use_vgg:
    from vid2vid_jax import vgg  # pylint: disable=g-import-not-at-top
    frozen['vgg'] = jax.jit(vgg.VGG19Features().init)(
        jax.random.key(1), jnp.zeros((1, min(height, 64), min(width, 64), 3)))['params']
  if config.flow.source == 'flownet2':
    from flow import weights  # pylint: disable=g-import-not-at-top
    frozen['flownet'] = weights.random_variables(0)
  return frozen


def measure(args: argparse.Namespace, width: int, height: int, dtype: str) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import losses as losses_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import sharding  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import schedule as schedule_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import steps  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import train_state  # pylint: disable=g-import-not-at-top

  config = street_config(width)
  config.model.dtype = dtype
  config.train.remat = args.remat
  config.data.batch_size = args.batch
  config.flow.source = args.flow
  if args.frames_per_step:
    config.train.max_frames_per_gpu = args.frames_per_step
  config.sharding.spatial = args.spatial
  models = train_state.build_models(config)
  losses = losses_lib.loss_weights_from_config(config)
  schedule = schedule_lib.schedule_from_config(config)
  new_frames = config.train.max_frames_per_gpu
  options = steps.step_options(config, schedule, schedule.niter_fix_global, new_frames)
  chunk = random_chunk(config, models, args.batch, height, width, new_frames,
                       with_flow=args.flow == 'dataset')
  rates = {k: np.float32(v) for k, v in schedule.learning_rates(0).items()}
  mesh = sharding.create_mesh(config, jax.local_devices())
  with jax.set_mesh(mesh):
    frozen = jax.device_put(frozen_networks(config, height, width), sharding.replicated(mesh))
    state, layouts, new_seq = train_state.create_sharded_states(
        models, schedule, jax.random.key(0), args.batch, height, width, mesh,
        fsdp=args.fsdp)
    seq = new_seq()
    txs = train_state.make_optimizers(schedule, state.params)
    chunk = sharding.to_global(chunk, mesh)

    def compile_step(opts):
      fn = functools.partial(steps.train_step, models, losses, opts, txs)
      return steps.jit_step(fn, mesh, layouts.state, layouts.sequence, chunk).lower(
          state, seq, chunk, rates, frozen)
    step_flops = common.flops(compile_step(dataclasses.replace(options, unroll=True)))
    start = time.perf_counter()
    compiled = compile_step(options).compile()
    compile_s = time.perf_counter() - start
    holder = {'state': state, 'seq': seq}

    def run():
      holder['state'], holder['seq'], out = compiled(holder['state'], holder['seq'], chunk,
                                                     rates, frozen)
      jax.block_until_ready((holder['state'], out['scalars']))
    step_ms, times = common.median_ms(run, args.steps, warmup=1)
  peak, peak_kind = common.peak_memory_gib()
  device = jax.devices()[0]
  peak_tflops, peak_source = common.peak_tflops(device, dtype)
  achieved = step_flops / (step_ms / 1e3) / 1e12 if step_flops else None
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state.params['g']))
  return dict(
      size=f'{width}x{height}', dtype=dtype, remat=args.remat, batch=args.batch,
      frames=new_frames, scales=models.generator.n_scales, g_params_m=n_params / 1e6,
      devices=f'{jax.device_count()}x{device.device_kind}', compile_s=compile_s,
      step_ms=step_ms, times_ms=times, steps_per_s=1e3 / step_ms,
      frames_per_s=args.batch * new_frames * 1e3 / step_ms,
      tflop_per_step=step_flops / 1e12 if step_flops else None, tflops=achieved,
      mfu=(achieved / (peak_tflops * jax.device_count()) * 100
           if achieved and peak_tflops else None),
      peak_source=peak_source, peak_gib=peak, peak_kind=peak_kind, flow=args.flow,
      date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))


COLUMNS = (('size', 'size', ''), ('dtype', 'dtype', ''), ('remat', 'remat', ''),
           ('batch', 'B', ''), ('frames', 'new frames', ''), ('scales', 'scales', ''),
           ('g_params_m', 'G params M', '.1f'), ('devices', 'devices', ''),
           ('compile_s', 'compile s', '.1f'), ('step_ms', 'step ms', '.0f'),
           ('steps_per_s', 'steps/s', '.3f'), ('frames_per_s', 'frames/s', '.2f'),
           ('tflop_per_step', 'TFLOP/step', '.3f'), ('tflops', 'TFLOP/s', '.2f'),
           ('mfu', 'MFU %', '.1f'), ('peak_gib', 'peak GiB', '.2f'), ('peak_kind', 'memory', ''))


def main() -> int:
  parser = common.size_dtype_parser(__doc__)
  parser.add_argument('--remat', action='store_true', help='rematerialise each frame')
  parser.add_argument('--batch', type=int, default=1)
  parser.add_argument('--frames_per_step', type=int, default=0,
                      help='new frames per step (0: the config\'s max_frames_per_gpu)')
  parser.add_argument('--flow', default='dataset', choices=('dataset', 'flownet2'))
  parser.add_argument('--spatial', type=int, default=1, help='devices splitting the height')
  parser.add_argument('--fsdp', action='store_true')
  parser.add_argument('--steps', type=int, default=5, help='timed steps after one warm-up')
  args = parser.parse_args()

  shared = ['--batch', str(args.batch), '--frames_per_step', str(args.frames_per_step),
            '--flow', args.flow, '--spatial', str(args.spatial), '--steps', str(args.steps)]
  shared += ['--remat'] * args.remat + ['--fsdp'] * args.fsdp
  return common.size_dtype_main(__file__, args, measure, shared, COLUMNS)


if __name__ == '__main__':
  sys.exit(main())
