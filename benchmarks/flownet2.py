"""FlowNet2 speed and memory: jit compile time, median run time and peak memory.

  python benchmarks/flownet2.py                       # 512x256 and 1024x512, batch 1
  python benchmarks/flownet2.py --sizes 1024x512 --batch 2 --runs 5

Each (size, batch) runs in its own subprocess so that its peak memory is its own. The timed
function is vid2vid's call, ``flow.compute_flow_and_conf`` (FlowNet2 + confidence mask),
jit-compiled, on frames in [-1, 1] and He-normal random weights
(``flow.weights.random_variables``; the values do not change the cost). The "correlation" rows
time the correlation layer alone (FlowNetC's parameters on the conv3 features of that size).
Peak memory is the device's ``peak_bytes_in_use`` where the backend reports it (GPU), else the
process's peak RSS (CPU: includes the ~0.65 GB of weights, the input and the Python runtime).
The table is the last lines printed.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _peak_memory_gib() -> tuple[float, str]:
  import jax  # pylint: disable=g-import-not-at-top
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'] / 2**30, 'device peak'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 'peak RSS'


def _time(fn, args, runs: int) -> tuple[float, float]:
  """(compile seconds, median run milliseconds) of ``jax.jit(fn)(*args)``."""
  import jax  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  compile_s = time.perf_counter() - start
  jax.block_until_ready(compiled(*args))  # warm-up
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append((time.perf_counter() - start) * 1e3)
  return compile_s, statistics.median(times)


def _run_one(what: str, width: int, height: int, batch: int, runs: int) -> dict:
  """Measures one configuration in this process; returns a result row."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import flow  # pylint: disable=g-import-not-at-top
  from flow import correlation  # pylint: disable=g-import-not-at-top
  from flow import weights  # pylint: disable=g-import-not-at-top

  key = jax.random.key(0)
  if what == 'flownet2':
    frames = jax.random.uniform(key, (2, batch, height, width, 3), jnp.float32, -1.0, 1.0)
    variables = jax.device_put(weights.random_variables(0))
    fn = lambda v, cur, prev: flow.compute_flow_and_conf(v, cur, prev)  # noqa: E731
    args = (variables, frames[0], frames[1])
  else:
    feats = jax.random.uniform(key, (2, batch, height // 8, width // 8, 256), jnp.float32)
    fn = correlation.correlation
    args = (feats[0], feats[1])
  compile_s, run_ms = _time(fn, args, runs)
  peak, peak_kind = _peak_memory_gib()
  device = jax.devices()[0]
  return dict(what=what, size=f'{width}x{height}', batch=batch,
              device=f'{device.platform}:{device.device_kind}', compile_s=compile_s,
              run_ms=run_ms, peak_gib=peak, peak_kind=peak_kind, runs=runs)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--sizes', default='512x256,1024x512', help='WxH list (multiples of 64)')
  parser.add_argument('--batch', type=int, default=1)
  parser.add_argument('--runs', type=int, default=3, help='timed runs after one warm-up')
  parser.add_argument('--what', default='flownet2,correlation')
  parser.add_argument('--child', default='', help=argparse.SUPPRESS)
  args = parser.parse_args()

  if args.child:  # one measurement, reported as JSON on the last line
    what, size = args.child.split(':')
    width, height = (int(s) for s in size.split('x'))
    row = _run_one(what, width, height, args.batch, args.runs)
    sys.stdout.write(json.dumps(row) + '\n')
    return 0

  rows = []
  for what in args.what.split(','):
    for size in args.sizes.split(','):
      cmd = [sys.executable, os.path.abspath(__file__), '--child', f'{what}:{size}',
             '--batch', str(args.batch), '--runs', str(args.runs)]
      proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
      if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        return proc.returncode
      rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
  header = (f'{"what":<12} {"size":>9} {"batch":>5}  {"device":<18} {"compile s":>9} '
            f'{"median run ms":>13}  {"peak memory":>18}')
  lines = [header, '-' * len(header)]
  for r in rows:
    lines.append(f'{r["what"]:<12} {r["size"]:>9} {r["batch"]:>5}  {r["device"]:<18} '
                 f'{r["compile_s"]:>9.1f} {r["run_ms"]:>13.1f}  '
                 f'{r["peak_gib"]:>6.2f} GiB {r["peak_kind"]:<8}')
  sys.stdout.write('\n'.join(lines) + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
