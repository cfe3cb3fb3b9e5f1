"""Kill -9 at any moment: training resumed after SIGKILLs ends bit-identical to an uninterrupted run.

  python benchmarks/faults.py                       # 10 kills, demo recipe, 200 steps
  python benchmarks/faults.py --kills 4 --steps 60  # quicker

Writes the demo's synthetic data (or uses --data), trains configs/demo.py for --steps steps with a
checkpoint every --checkpoint_every steps, once without interruption and once under fire: the
training subprocess is SIGKILLed --kills times and restarted each time until it finishes. About
half of the kills aim at a checkpoint write: the kill lands --save_delay seconds after train.py
logs 'Saving checkpoint' (orbax writes into a temporary directory and renames it when complete, so
a kill there must leave the previous checkpoint in force). The other kills land at a random moment
of the run. Then both runs' final parameters are compared with `vid2vid_jax.tools.digest`.

Last line: ``faults: K kills (S during saves) survived, params identical: yes|no``.
"""

import argparse
import os
import pathlib
import random
import select
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SAVING = 'Saving checkpoint at step'


def _train_cmd(args, data: pathlib.Path, workdir: pathlib.Path) -> list[str]:
  return [sys.executable, str(REPO / 'train.py'), '--config', str(REPO / 'configs/demo.py'),
          '--workdir', str(workdir), f'--config.data.root={data}',
          f'--config.data.flow_dir={data / "train_flow"}', f'--config.train.num_steps={args.steps}',
          f'--config.train.checkpoint_every_steps={args.checkpoint_every}',
          '--config.train.eval_every_steps=0', f'--config.compilation_cache_dir={args.cache}']


def _digest(workdir: pathlib.Path) -> str:
  out = subprocess.run([sys.executable, '-m', 'vid2vid_jax.tools.digest', str(workdir)],
                       cwd=REPO, capture_output=True, text=True, check=True)
  return out.stdout.split()[0]


def _run_once(cmd: list[str], kill_at_save: bool, kill_after: float | None, save_delay: float
              ) -> tuple[str, bool]:
  """Runs train.py until it ends or is killed: ('done' | 'killed', killed during a save)."""
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, bufsize=1)
  start = time.monotonic()
  buffer = ''
  while True:
    if kill_after is not None and time.monotonic() - start >= kill_after:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      return 'killed', False
    ready, _, _ = select.select([proc.stderr], [], [], 0.05)
    if ready:
      line = proc.stderr.readline()
      if not line:  # the process closed stderr: it is ending
        proc.wait()
        if proc.returncode != 0:
          raise SystemExit(f'faults: train.py failed with status {proc.returncode}:\n{buffer}')
        return 'done', False
      buffer = (buffer + line)[-4000:]
      if kill_at_save and SAVING in line:
        time.sleep(save_delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return 'killed', True


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--kills', type=int, default=10)
  parser.add_argument('--steps', type=int, default=200)
  parser.add_argument('--checkpoint_every', type=int, default=10)
  parser.add_argument('--save_delay', type=float, default=0.05,
                      help='seconds between the save log line and the kill')
  parser.add_argument('--data', default='', help='a street dataset (default: the demo data)')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  rng = random.Random(args.seed)
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    args.cache = str(tmp / 'xla')  # shared by every restart: restarts skip the compile
    data = pathlib.Path(args.data) if args.data else tmp / 'data'
    if not args.data:
      subprocess.run([sys.executable, '-m', 'input_pipeline.synthetic', '--domain', 'street',
                      '--out', str(data), '--sequences', '16', '--test_sequences', '3',
                      '--frames', '24', '--size', '64x32', '--seed', '0'], cwd=REPO, check=True,
                     capture_output=True)
    start = time.monotonic()
    subprocess.run(_train_cmd(args, data, tmp / 'straight'), cwd=REPO, check=True,
                   capture_output=True)
    straight_s = time.monotonic() - start
    print(f'uninterrupted run: {args.steps} steps in {straight_s:.0f} s', flush=True)

    cmd = _train_cmd(args, data, tmp / 'faulty')
    kills = at_saves = 0
    while True:
      aim_at_save = kills < args.kills and rng.random() < 0.5
      kill_after = None
      if kills < args.kills and not aim_at_save:  # somewhere in a run's length, startup included
        kill_after = rng.uniform(0.0, straight_s / 3)
      outcome, during_save = _run_once(cmd, aim_at_save, kill_after, args.save_delay)
      if outcome == 'done':  # the run finished: kills that had not landed are not counted
        break
      kills += 1
      at_saves += during_save
      print(f'kill {kills}: {"during a save" if during_save else f"after {kill_after:.1f} s"}',
            flush=True)
    same = _digest(tmp / 'straight') == _digest(tmp / 'faulty')
  print(f'faults: {kills} kills ({at_saves} during saves) survived, params identical: '
        f'{"yes" if same else "no"}')
  return 0 if same else 1


if __name__ == '__main__':
  sys.exit(main())
