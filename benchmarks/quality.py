"""Quality of the demo recipe over several synthetic data sets, against the baselines and the oracle.

  python benchmarks/quality.py --seeds 0,1,2 [--workdir runs/quality] [--config configs/demo.py]
      [--override loss.lambda_F=300 ...]

For each seed: writes the synthetic street set of `make demo` with that seed, trains the config
on it, evaluates (eval.py's library call: metrics.json with the baselines, FVD when the 'fvd'
extra is installed) and reads the scores back. Prints one table row per seed and method (mean
PSNR, SSIM, warp error, FVD) and the per-third PSNR of the model against the oracle (the dataset's
exact flows warping the previous estimate, label-mean colour where pixels are newly visible),
then the last line

  quality demo: psnr X (label-mean Y, oracle Z), worst third vs oracle D dB, fvd F

with means over seeds; D is the worst (most negative) model-minus-oracle PSNR over every third of
every held-out sequence of every seed. A seed whose run already finished (metrics.json present)
is read, not retrained.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
METRICS = ('psnr', 'ssim', 'warp_error', 'fvd')


def thirds(values: list[float]) -> list[float]:
  """Means of the first, middle and last third of a per-frame series (at least 3 values)."""
  n = len(values)
  return [float(np.mean(values[i * n // 3:(i + 1) * n // 3])) for i in range(3)]


def method_rows(report: dict) -> dict[str, dict[str, float]]:
  """{method: {metric: mean}} of the model, every baseline and FVD where present."""
  rows = {'model': dict(report['mean'])}
  for name, entry in report.get('baselines', {}).items():
    rows[name] = dict(entry['mean'])
  for name, value in (report.get('fvd') or {}).get('scores', {}).items():
    if name in rows and value is not None:
      rows[name]['fvd'] = value
  return rows


def third_gaps(report: dict) -> list[float]:
  """Model minus oracle PSNR of every third of every sequence ([] without the oracle)."""
  oracle = report.get('baselines', {}).get('flow_oracle')
  if oracle is None:
    return []
  gaps = []
  for name, seq in report['sequences'].items():
    ours = [f['psnr'] for f in seq['frames']]
    theirs = [f['psnr'] for f in oracle['sequences'][name]['frames']]
    if len(ours) >= 3:
      gaps += [a - b for a, b in zip(thirds(ours), thirds(theirs))]
  return gaps


def run_seed(seed: int, root: pathlib.Path, config: str, overrides: list[str]) -> dict:
  """Data, training and eval of one seed in ``root``; returns its metrics.json."""
  metrics = root / 'eval' / 'metrics.json'
  if metrics.exists():
    return json.loads(metrics.read_text())
  data = root / 'data'
  flags = [f'--config.data.root={data}', f'--config.data.flow_dir={data}/train_flow',
           f'--config.eval.results_dir={root}/eval'] + [f'--config.{o}' for o in overrides]
  steps = [
      [sys.executable, '-m', 'input_pipeline.synthetic', '--domain', 'street', '--out', str(data),
       '--sequences', '16', '--test_sequences', '3', '--frames', '24', '--size', '64x32',
       '--seed', str(seed)],
      [sys.executable, 'train.py', f'--config={config}', f'--workdir={root}', *flags],
      [sys.executable, 'eval.py', f'--config={config}', f'--workdir={root}', *flags],
  ]
  root.mkdir(parents=True, exist_ok=True)
  with open(root / 'log.txt', 'a') as log:
    for command in steps:
      start = time.monotonic()
      done = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
      if done.returncode:
        sys.exit(f'seed {seed}: {" ".join(command[:3])} failed (exit {done.returncode}); '
                 f'see {root / "log.txt"}')
      print(f'  seed {seed}: {pathlib.Path(command[1]).name} {command[2] if command[1] == "-m" else ""}'
            f' {time.monotonic() - start:.0f} s', flush=True)
  return json.loads(metrics.read_text())


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--seeds', default='0,1,2', help='comma-separated data seeds')
  parser.add_argument('--workdir', default='runs/quality', help='one folder per seed below it')
  parser.add_argument('--config', default='configs/demo.py')
  parser.add_argument('--override', action='append', default=[],
                      help='config override without --config., e.g. loss.lambda_F=300')
  args = parser.parse_args()
  try:
    seeds = [int(s) for s in args.seeds.split(',')]
  except ValueError:
    parser.exit(2, f'--seeds: expected comma-separated integers, got {args.seeds!r}\n')
  workdir = pathlib.Path(args.workdir)
  reports = {}
  for seed in seeds:
    print(f'seed {seed}', flush=True)
    reports[seed] = run_seed(seed, workdir / f'seed{seed}', args.config, args.override)

  header = f'{"seed":>4} {"method":<14}' + ''.join(f'{m:>11}' for m in METRICS)
  print(header)
  per_method: dict[str, dict[str, list[float]]] = {}
  gaps = []
  for seed, report in reports.items():
    for method, row in method_rows(report).items():
      cells = ''.join(f'{row[m]:>11.4g}' if m in row else f'{"-":>11}' for m in METRICS)
      print(f'{seed:>4} {method:<14}{cells}')
      for m in METRICS:
        if m in row:
          per_method.setdefault(method, {}).setdefault(m, []).append(row[m])
    seed_gaps = third_gaps(report)
    gaps += seed_gaps
    for name, seq in report['sequences'].items():
      ours = thirds([f['psnr'] for f in seq['frames']])
      line = f'{seed:>4} {name:<14} thirds model ' + ' / '.join(f'{v:.1f}' for v in ours)
      oracle = report.get('baselines', {}).get('flow_oracle')
      if oracle:
        theirs = thirds([f['psnr'] for f in oracle['sequences'][name]['frames']])
        line += ', oracle ' + ' / '.join(f'{v:.1f}' for v in theirs)
      print(line)

  mean = lambda method, metric: float(np.mean(per_method.get(method, {}).get(metric, [np.nan])))
  print(f'quality demo: psnr {mean("model", "psnr"):.2f} (label-mean '
        f'{mean("label_mean", "psnr"):.2f}, oracle {mean("flow_oracle", "psnr"):.2f}), worst third vs '
        f'oracle {min(gaps) if gaps else float("nan"):.2f} dB, fvd {mean("model", "fvd"):.1f}')


if __name__ == '__main__':
  main()
