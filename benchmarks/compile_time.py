"""Compile time of the train step and of the inference chunk, cold and from the persistent cache.

  python benchmarks/compile_time.py --config configs/street_512.py --size 256x128
  python benchmarks/compile_time.py --config configs/demo.py --size 64x32 --no-warm

Each measurement runs in a fresh process (nothing cached in memory). 'cold' compiles with an empty
persistent compilation cache, 'warm' reruns the same process with the cache the cold run filled:
what a restarted or resumed run pays (the cache is on by default, config.compilation_cache_dir).
Lower = tracing to StableHLO; compile = XLA. Everything is abstract (jax.ShapeDtypeStruct): no
parameter is allocated. The step is `steps.train_step` with the config's losses, at epoch
niter_fix_global (every scale trained), reference flows from the dataset; inference is one
`SequenceGenerator.generate_chunk` of eval.chunk_frames frames.

Last line: ``compile CONFIG WxH: train_step X s, inference Y s`` (cold lower + compile).
"""

import argparse
import functools
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_config(spec: str):
  """'path/to/config.py[:arg]' -> its get_config([arg])."""
  path, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('benchmark_config', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def measure(config_spec: str, width: int, height: int) -> dict:
  """Lower and compile seconds of the train step and the inference chunk, in this process."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import inference  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import losses as losses_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import rollout  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import schedule as schedule_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import sharding  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import steps  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import train_state  # pylint: disable=g-import-not-at-top

  config = load_config(config_spec)
  config.flow.source = 'dataset'
  config.data.batch_size = 1
  models = train_state.build_models(config)
  schedule = schedule_lib.schedule_from_config(config)
  per_step = config.train.max_frames_per_gpu
  options = steps.step_options(config, schedule, schedule.niter_fix_global, per_step)
  gen = models.generator
  frames = gen.n_frames - 1 + per_step
  shape = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
  chunk = {'cond': shape(1, frames, height, width, models.cond_channels),
           'image': shape(1, frames, height, width, 3),
           'flow_gt': shape(1, frames, height, width, 2),
           'conf_gt': shape(1, frames, height, width, 1)}
  frozen = {'vgg': None, 'flownet': None, 'first_frame': None}
  if config.loss.use_vgg:
    from vid2vid_jax import vgg  # pylint: disable=g-import-not-at-top
    frozen['vgg'] = jax.eval_shape(vgg.VGG19Features().init, jax.random.key(0),
                                   jnp.zeros((1, 64, 64, 3)))['params']
  rates = {k: jax.ShapeDtypeStruct((), jnp.float32) for k in ('g', 'd', 'd_t')}
  out = {}
  mesh = sharding.create_mesh(config, jax.local_devices()[:1])
  with jax.set_mesh(mesh):
    layouts = train_state.state_layouts(models, schedule, 1, height, width, mesh,
                                        ema=config.train.ema_decay > 0)
    txs = train_state.make_optimizers(schedule, layouts.abstract_state.params)
    fn = functools.partial(steps.train_step, models, losses_lib.loss_weights_from_config(config),
                           options, txs)
    jitted = steps.jit_step(fn, mesh, layouts.state, layouts.sequence, chunk)
    start = time.perf_counter()
    lowered = jitted.lower(layouts.abstract_state, layouts.abstract_sequence, chunk, rates,
                           frozen)
    out['train_lower_s'] = time.perf_counter() - start
    start = time.perf_counter()
    lowered.compile()
    out['train_compile_s'] = time.perf_counter() - start

  generator = inference.SequenceGenerator(
      video=gen, first_frame_mode='real', chunk_frames=config.eval.chunk_frames)
  g_params = jax.eval_shape(functools.partial(train_state.init_params, models, batch=1,
                                              height=height, width=width),
                            jax.random.key(0))['g']
  sizes = train_state.frame_sizes(height, width, gen.n_scales)
  carry = rollout.Carry(
      tuple(shape(1, gen.n_frames - 1, h, w, models.cond_channels) for h, w in sizes),
      tuple(shape(1, gen.n_frames - 1, h, w, 3) for h, w in sizes))
  cond = shape(1, config.eval.chunk_frames, height, width, models.cond_channels)
  start = time.perf_counter()
  lowered = jax.jit(type(generator).generate_chunk.__wrapped__, static_argnums=(0,)).lower(
      generator, g_params, carry, cond, jax.ShapeDtypeStruct((), jnp.bool_))
  out['inference_lower_s'] = time.perf_counter() - start
  start = time.perf_counter()
  lowered.compile()
  out['inference_compile_s'] = time.perf_counter() - start
  out['devices'] = f'{jax.device_count()}x{jax.devices()[0].platform}'
  return out


def _child(args, cache_dir: str) -> dict:
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
  cmd = [sys.executable, os.path.abspath(__file__), '--child', '--config', args.config,
         '--size', args.size]
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
  if proc.returncode:
    sys.stderr.write(proc.stdout + proc.stderr)
    raise SystemExit(f'compile_time: the measuring process failed ({proc.returncode})')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--config', required=True, help='config file[:arg]')
  parser.add_argument('--size', default='256x128', help='WxH')
  parser.add_argument('--no-warm', dest='warm', action='store_false',
                      help='skip the rerun from the persistent cache')
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  width, height = (int(v) for v in args.size.lower().split('x'))
  if args.child:
    sys.stdout.write(json.dumps(measure(args.config, width, height)) + '\n')
    return 0
  rows = []
  with tempfile.TemporaryDirectory() as cache_dir:
    rows.append(('cold', _child(args, cache_dir)))
    if args.warm:
      rows.append(('warm', _child(args, cache_dir)))
  print(f'{"run":<6}{"devices":>10}{"train lower s":>15}{"train compile s":>17}'
        f'{"inference lower s":>19}{"inference compile s":>21}')
  for name, r in rows:
    print(f'{name:<6}{r["devices"]:>10}{r["train_lower_s"]:>15.1f}{r["train_compile_s"]:>17.1f}'
          f'{r["inference_lower_s"]:>19.1f}{r["inference_compile_s"]:>21.1f}')
  cold = rows[0][1]
  print(f'compile {args.config} {args.size}: train_step '
        f'{cold["train_lower_s"] + cold["train_compile_s"]:.1f} s, inference '
        f'{cold["inference_lower_s"] + cold["inference_compile_s"]:.1f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())
