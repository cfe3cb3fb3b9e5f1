"""Shared pieces of the benchmark scripts: timing, peak memory, FLOPs and MFU, child processes,
tables. Imported by the scripts in this folder (run them as ``python benchmarks/<name>.py``).
"""

from collections.abc import Callable, Sequence
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

# Dense peak TFLOP/s per device kind (substring of jax's device_kind) and activation dtype:
# float32 convs and matmuls run as TF32 on tensor cores under JAX's default precision.
# Vendor datasheets (SXM parts where two exist).
PEAK_TFLOPS = (
    ('H200', {'bfloat16': 989.4, 'float32': 494.7}),
    ('H100 PCIe', {'bfloat16': 756.0, 'float32': 378.0}),
    ('H100', {'bfloat16': 989.4, 'float32': 494.7}),
    ('A100', {'bfloat16': 312.0, 'float32': 156.0}),
    ('TPU v6', {'bfloat16': 918.0, 'float32': 918.0}),
    ('TPU v5p', {'bfloat16': 459.0, 'float32': 459.0}),
    ('TPU v5', {'bfloat16': 197.0, 'float32': 197.0}),
    ('TPU v4', {'bfloat16': 275.0, 'float32': 275.0}),
)


def cpu_peak_tflops(dtype: str = 'float32') -> float | None:
  """Estimated peak of this process's CPU cores: cores x GHz x FLOPs/cycle, with 2 FMA units of
  8 float32 lanes (AVX2) or 16 (AVX-512 on Intel; AMD Zen 4 runs AVX-512 on 256-bit units),
  doubled for bfloat16 where AVX512_BF16 dot products exist; None when /proc/cpuinfo does not
  tell."""
  try:
    with open('/proc/cpuinfo') as f:
      info = f.read()
  except OSError:
    return None
  mhz = [float(line.split(':')[1]) for line in info.splitlines() if line.startswith('cpu MHz')]
  if not mhz:
    return None
  intel = 'GenuineIntel' in info
  lanes = 16 if ' avx512f' in info and intel else 8 if ' avx2' in info else 4
  if dtype == 'bfloat16' and ' avx512_bf16' in info:
    lanes *= 2
  cores = len(os.sched_getaffinity(0))
  return cores * max(mhz) * 1e6 * 2 * 2 * lanes / 1e12


def peak_tflops(device: Any, dtype: str) -> tuple[float | None, str]:
  """(peak TFLOP/s, source) of a jax device for an activation dtype."""
  if device.platform == 'cpu':
    return cpu_peak_tflops(dtype), 'cpu estimate (cores x GHz x FMA lanes)'
  for kind, peaks in PEAK_TFLOPS:
    if kind in device.device_kind:
      return peaks[dtype], f'{kind} datasheet'
  return None, f'unknown device {device.device_kind!r}'


def peak_memory_gib() -> tuple[float, str]:
  """The device's peak_bytes_in_use where the backend reports it (GPU/TPU), else this
  process's peak RSS (CPU)."""
  import jax  # pylint: disable=g-import-not-at-top
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'] / 2**30, 'device peak'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 'peak RSS'


def flops(lowered: Any) -> float | None:
  """FLOPs of a ``jax.jit(...).lower(...)`` program from XLA's HLO cost analysis.

  XLA counts a while loop's body once, so lower a variant without loops (the rollout's
  ``unroll=True``) for this.
  """
  cost = lowered.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost['flops']) if cost and 'flops' in cost else None


def median_ms(fn: Callable[[], Any], runs: int, warmup: int = 1) -> tuple[float, list[float]]:
  """Median wall milliseconds of ``fn()`` (which must block until its results are ready)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times), times


def run_children(script: str, child_args: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
  """Runs ``python script --child ...`` once per argument list, each in its own process (so peak
  memory is its own and an out-of-memory case does not end the others); each child prints its
  result row as JSON on its last line. Failed children give a row with 'error'."""
  rows = []
  for args in child_args:
    proc = subprocess.run([sys.executable, os.path.abspath(script), *args], capture_output=True,
                          text=True, check=False)
    last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    if proc.returncode == 0 and last:
      rows.append(json.loads(last[0]))
    else:
      error = 'out of memory' if 'RESOURCE_EXHAUSTED' in proc.stderr else (
          proc.stderr.strip().splitlines() or ['failed'])[-1][:120]
      sys.stderr.write(proc.stderr[-3000:])
      rows.append({'args': ' '.join(args), 'error': error})
  return rows


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> None:
  """Prints rows as a fixed-width table; columns: (key, header, format spec)."""
  def cell(row, key, spec):
    value = row.get(key)
    if value is None:
      return 'n/a'
    return format(value, spec) if spec else str(value)
  cells = [[header for _, header, _ in columns]]
  for row in rows:
    if 'error' in row:
      cells.append([row.get('args', '')] + [row['error']] + [''] * (len(columns) - 2))
    else:
      cells.append([cell(row, key, spec) for key, _, spec in columns])
  widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
  lines = ['  '.join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
  lines.insert(1, '-' * len(lines[0]))
  sys.stdout.write('\n'.join(lines) + '\n')


def size_dtype_parser(doc: str) -> 'argparse.ArgumentParser':
  """An argument parser with the flags every per-(size, dtype) benchmark shares."""
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--sizes', default='512x256,1024x512,2048x1024', help='WxH list')
  parser.add_argument('--dtypes', default='float32,bfloat16')
  parser.add_argument('--json', default='', help='also write the rows to this file')
  parser.add_argument('--child', default='', help=argparse.SUPPRESS)
  return parser


def size_dtype_main(script: str, args: Any, measure: Callable[[Any, int, int, str], dict],
                    shared: Sequence[str], columns: Sequence[tuple[str, str, str]]) -> int:
  """The main of a per-(size, dtype) benchmark: with ``args.child`` ('WxH:dtype') measure that
  one case and print its row as JSON; otherwise run one child per case of ``args.sizes`` x
  ``args.dtypes`` (passing ``shared`` flags on), print the table and write ``args.json``."""
  if args.child:
    size, dtype = args.child.split(':')
    width, height = (int(s) for s in size.split('x'))
    sys.stdout.write(json.dumps(measure(args, width, height, dtype)) + '\n')
    return 0
  children = [['--child', f'{size}:{dtype}', *shared]
              for size in args.sizes.split(',') for dtype in args.dtypes.split(',')]
  rows = run_children(script, children)
  print_table(rows, columns)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(rows, f, indent=1)
  return 0 if all('error' not in r for r in rows) else 1
