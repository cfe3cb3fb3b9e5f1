"""Times a jitted forward + backward of one sequential-generator step.

Usage: python benchmarks/generator.py --height 128 --width 256 --ngf 64 --label_nc 35 \
         --n_frames_G 3 [--n_blocks 9 --n_downsample_G 3 --norm batch --dtype float32 \
         --conv_impl tuned]

The conditioning window is label_nc one-hot channels plus the instance-edge channel per frame
(batch 1, one spatial scale); loss = mean(final image) + mean(|flow|); gradients w.r.t. all
generator params. Prints the median over --runs timed calls after --warmup calls, and as its
last line: ``generator fwd+bwd WxH ngf=N: median X ms, params P M``.
"""

from collections.abc import Sequence
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import kernels
from vid2vid_jax.models import generator as generator_lib

_HEIGHT = flags.DEFINE_integer('height', 128, 'Frame height.')
_WIDTH = flags.DEFINE_integer('width', 256, 'Frame width.')
_NGF = flags.DEFINE_integer('ngf', 64, 'Generator width.')
_LABEL_NC = flags.DEFINE_integer('label_nc', 35, 'One-hot label channels (+1 edge channel).')
_N_FRAMES_G = flags.DEFINE_integer('n_frames_G', 3, 'Conditioning frames.')
_N_BLOCKS = flags.DEFINE_integer('n_blocks', 9, 'Residual blocks.')
_N_DOWNSAMPLE = flags.DEFINE_integer('n_downsample_G', 3, 'Stride-2 convs.')
_NORM = flags.DEFINE_enum('norm', 'batch', ['batch', 'instance'], 'Norm layers.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'Activation dtype.')
_BATCH = flags.DEFINE_integer('batch', 1, 'Batch size.')
_RUNS = flags.DEFINE_integer('runs', 10, 'Timed runs.')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed runs after compilation.')
_CONV_IMPL = flags.DEFINE_enum('conv_impl', 'tuned', list(kernels.CONV_IMPLS),
                               'Conv formulations (config model.conv_impl, vid2vid_jax.kernels).')


def main(argv: Sequence[str]) -> None:
  del argv
  h, w, t = _HEIGHT.value, _WIDTH.value, _N_FRAMES_G.value
  print(f'device: {jax.devices()[0].device_kind}, conv impl: {_CONV_IMPL.value}')
  model = generator_lib.MultiScaleGenerator(
      n_scales=1, ngf=_NGF.value, n_downsample=_N_DOWNSAMPLE.value, n_blocks=_N_BLOCKS.value,
      norm=_NORM.value, dtype=jnp.bfloat16 if _DTYPE.value == 'bfloat16' else jnp.float32,
      conv_impl=_CONV_IMPL.value)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, _LABEL_NC.value, (_BATCH.value, t, h, w))
  cond = np.concatenate([np.eye(_LABEL_NC.value, dtype=np.float32)[labels],
                         (rng.random((_BATCH.value, t, h, w, 1)) < 0.05).astype(np.float32)], -1)
  prev = rng.uniform(-1, 1, (_BATCH.value, t - 1, h, w, 3)).astype(np.float32)
  cond, prev = jnp.asarray(cond), jnp.asarray(prev)
  params = jax.jit(model.init)(jax.random.key(0), [cond], [prev])['params']
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))

  def loss_fn(p):
    out = model.apply({'params': p}, [cond], [prev])[0]
    return jnp.mean(out['fake']) + jnp.mean(jnp.abs(out['flow']))

  step = jax.jit(jax.value_and_grad(loss_fn))
  compile_start = time.perf_counter()
  jax.block_until_ready(step(params))
  print(f'compile + first call: {time.perf_counter() - compile_start:.1f} s')
  for _ in range(_WARMUP.value):
    jax.block_until_ready(step(params))
  times = []
  for _ in range(_RUNS.value):
    start = time.perf_counter()
    jax.block_until_ready(step(params))
    times.append(time.perf_counter() - start)
  print(f'runs (ms): {" ".join(f"{1e3 * x:.0f}" for x in times)}')
  print(f'generator fwd+bwd {w}x{h} ngf={_NGF.value}: median '
        f'{1e3 * statistics.median(times):.0f} ms, params {n_params / 1e6:.2f} M')


if __name__ == '__main__':
  app.run(main)
