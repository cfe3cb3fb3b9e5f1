"""Inference throughput: frames/s, peak memory and model FLOPs utilisation of streaming
generation (what eval.py runs).

  python benchmarks/inference.py                                   # GPU sizes, float32+bfloat16
  python benchmarks/inference.py --sizes 256x128 --dtypes float32 --frames 8   # CPU-sized

One row per (size, dtype), each in its own process. `inference.SequenceGenerator` streams a
random label sequence (label_nc one-hot + instance edges) through the generator of the size's
street config (benchmarks/train_step.py: street_512 / 1024 / 2048 by width; random params),
``--chunk`` new frames per compiled call. Timed: --frames generated frames after one warm-up
chunk (compilation excluded), host transfers included (frames come back as NumPy, as eval.py
writes them). FLOPs per frame from XLA's cost analysis of a one-frame chunk.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # pylint: disable=g-import-not-at-top,wrong-import-position
import train_step  # pylint: disable=g-import-not-at-top,wrong-import-position


def measure(args: argparse.Namespace, width: int, height: int, dtype: str) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import inference  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import train_state  # pylint: disable=g-import-not-at-top

  config = train_step.street_config(width)
  config.model.dtype = dtype
  g = config.model.generator
  models = train_state.build_models(config)
  generator = inference.SequenceGenerator(
      video=models.generator, first_frame_mode='real', chunk_frames=args.chunk)
  params = train_state.init_params(models, jax.random.key(0), 1, height, width)['g']
  total = g.n_frames_G - 1 + args.chunk + args.frames
  chunk = train_step.random_chunk(config, models, 1, height, width, total - g.n_frames_G + 1,
                                  with_flow=False)
  frames = [{'cond': chunk['cond'][0, t], 'image': chunk['image'][0, t]} for t in range(total)]

  # FLOPs of one frame: a one-frame scan is counted exactly.
  context = g.n_frames_G - 1
  carry = generator.initial_carry(jnp.asarray(chunk['cond'][:, :context]),
                                  jnp.asarray(chunk['image'][:, :context]))
  frame_flops = common.flops(inference.SequenceGenerator.generate_chunk.lower(
      generator, params, carry, jnp.asarray(chunk['cond'][:, context:context + 1]),
      jnp.bool_(False)))

  stream = generator.run(params, iter(frames))
  start = time.perf_counter()
  for _ in range(args.chunk):  # the first chunk compiles
    next(stream)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  produced = sum(1 for _ in stream)
  seconds = time.perf_counter() - start
  assert produced == args.frames, produced
  peak, peak_kind = common.peak_memory_gib()
  device = jax.devices()[0]
  peak_tflops, peak_source = common.peak_tflops(device, dtype)
  fps = produced / seconds
  achieved = frame_flops * fps / 1e12 if frame_flops else None
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))
  return dict(size=f'{width}x{height}', dtype=dtype, scales=models.generator.n_scales,
              g_params_m=n_params / 1e6, chunk=args.chunk, frames=produced,
              device=device.device_kind, compile_s=compile_s, frames_per_s=fps,
              ms_per_frame=1e3 / fps,
              gflop_per_frame=frame_flops / 1e9 if frame_flops else None, tflops=achieved,
              mfu=achieved / peak_tflops * 100 if achieved and peak_tflops else None,
              peak_source=peak_source, peak_gib=peak, peak_kind=peak_kind,
              date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))


COLUMNS = (('size', 'size', ''), ('dtype', 'dtype', ''), ('scales', 'scales', ''),
           ('g_params_m', 'G params M', '.1f'), ('device', 'device', ''),
           ('chunk', 'chunk', ''), ('frames', 'frames', ''), ('compile_s', 'compile s', '.1f'),
           ('ms_per_frame', 'ms/frame', '.1f'), ('frames_per_s', 'frames/s', '.2f'),
           ('gflop_per_frame', 'GFLOP/frame', '.1f'), ('tflops', 'TFLOP/s', '.2f'),
           ('mfu', 'MFU %', '.1f'), ('peak_gib', 'peak GiB', '.2f'), ('peak_kind', 'memory', ''))


def main() -> int:
  parser = common.size_dtype_parser(__doc__)
  parser.add_argument('--chunk', type=int, default=8, help='new frames per compiled call')
  parser.add_argument('--frames', type=int, default=32, help='timed frames (after one chunk)')
  args = parser.parse_args()

  shared = ['--chunk', str(args.chunk), '--frames', str(args.frames)]
  return common.size_dtype_main(__file__, args, measure, shared, COLUMNS)


if __name__ == '__main__':
  sys.exit(main())
