"""The training-parity tool on the original's recorded training iterations, and its exit status.

Compile time dominates (one train step per case). The cases run in two CLI processes at once;
all runs share a persistent compilation cache, so the run on the perturbed copy reuses a compiled
step, and they use LLVM optimisation level 0 (about half the compile time of the default on 2
cores; slower steps; the same float32 arithmetic up to rounding).
"""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vid2vid_jax.tools import train_replay

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
CASES = ('face', 'street_2scale_temporal2', 'street_basic', 'video_edges')
# The default run: between them every capability of the cases above (labels + instance edges,
# two spatial and temporal scales, instance and batch norm, image inputs, the face D). The
# others (street_basic, extra cases of the same format) run with the slow tests.
DEFAULT_CASES = ('face', 'street_2scale_temporal2', 'video_edges')


@pytest.fixture(scope='module')
def cli_env(tmp_path_factory):
  env = dict(os.environ)
  env['JAX_COMPILATION_CACHE_DIR'] = str(tmp_path_factory.mktemp('jax_cache'))
  # XLA_FLAGS: inherited from tests/conftest.py (no LLVM optimisation: faster compiles).
  return env


def _cli(path, env, *flags):
  cli = [sys.executable, '-m', 'vid2vid_jax.tools.train_parity', str(path), '--only_failures',
         *flags]
  return subprocess.run(cli, capture_output=True, text=True, timeout=1500, check=False, env=env,
                        cwd=REPO_ROOT)


def _run_cases(training_fixtures, cli_env, names):
  """The CLI on ``names``, in two processes at once (compiling is mostly single-threaded)."""
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'vid2vid_jax.tools.train_parity', str(training_fixtures),
       '--only_failures', '--cases', ','.join(names[i::2])], stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, env=cli_env, cwd=REPO_ROOT)
           for i in range(2) if names[i::2]]
  results = [(p, *p.communicate(timeout=1500)) for p in procs]
  return names, results


@pytest.fixture(scope='module')
def full_run(training_fixtures, cli_env):
  names = [p.name for p in train_replay.find_cases(training_fixtures)]
  assert set(names) >= set(CASES)
  return _run_cases(training_fixtures, cli_env, [n for n in names if n in DEFAULT_CASES])


def test_default_fixture_cases_pass(full_run):
  _check_run(*full_run)


@pytest.mark.slow
def test_every_other_fixture_case_passes(training_fixtures, cli_env):
  names = [p.name for p in train_replay.find_cases(training_fixtures)
           if p.name not in DEFAULT_CASES]
  _check_run(*_run_cases(training_fixtures, cli_env, names))


def _check_run(names, results):
  stdout = '\n'.join(out for _, out, _ in results)
  for proc, out, err in results:
    assert proc.returncode == 0, out + err[-3000:]
  for case in names:
    line = next(l for l in stdout.splitlines() if l.startswith(f'{case}:'))
    passed, total = line.split()[1].split('/')
    assert passed == total and int(total) > 100, line


def test_cli_fails_on_a_perturbed_loss(training_fixtures, cli_env, full_run, tmp_path):
  del full_run  # runs first: its compiled step is in the shared cache
  case = tmp_path / 'video_edges'
  shutil.copytree(training_fixtures / 'video_edges', case)
  path = case / 'outputs.npz'
  with np.load(path) as f:
    outputs = {k: f[k] for k in f.files}
  outputs['step0/loss/G_GAN'] = outputs['step0/loss/G_GAN'] * (1 + 1e-3)
  path.chmod(0o644)
  np.savez(path, **outputs)
  bad = _cli(tmp_path, cli_env)
  assert bad.returncode == 1, bad.stdout + bad.stderr[-3000:]
  failing = [l for l in bad.stdout.splitlines() if l.startswith('video_edges ') and 'FAIL' in l]
  assert len(failing) == 1 and 'step0' in failing[0] and 'loss/G_GAN ' in failing[0], bad.stdout


def test_cli_bad_dir_exits_2(tmp_path):
  result = subprocess.run([sys.executable, '-m', 'vid2vid_jax.tools.train_parity',
                           str(tmp_path / 'missing')], capture_output=True, text=True,
                          timeout=300, check=False, cwd=REPO_ROOT)
  assert result.returncode == 2, result.stdout + result.stderr[-2000:]
  assert 'is not a folder' in result.stderr
  empty = subprocess.run([sys.executable, '-m', 'vid2vid_jax.tools.train_parity', str(tmp_path)],
                         capture_output=True, text=True, timeout=300, check=False, cwd=REPO_ROOT)
  assert empty.returncode == 2 and 'holds no training-parity case' in empty.stderr


def test_lookup_flow_fn_finds_recorded_pairs_only():
  rng = np.random.default_rng(0)
  frames = rng.uniform(-1, 1, (5, 4, 6, 3)).astype(np.float32)
  tables = {g: (rng.normal(size=(5, 4, 6, 2)).astype(np.float32),
                rng.integers(0, 2, (5, 4, 6, 1)).astype(np.float32)) for g in (1, 3)}
  flow_fn = train_replay.lookup_flow_fn(frames, tables)
  flow, conf = flow_fn(frames[[1, 4, 3]], frames[[0, 1, 2]])
  np.testing.assert_array_equal(flow[0], tables[1][0][1])
  np.testing.assert_array_equal(flow[1], tables[3][0][4])
  np.testing.assert_array_equal(conf[2], tables[1][1][3])
  flow, conf = flow_fn(frames[[2]], np.zeros_like(frames[[0]]))  # unknown pair: zeros
  assert not np.asarray(flow).any() and not np.asarray(conf).any()
  flow, _ = flow_fn(frames[[2]], frames[[0]])  # gap 2: not recorded
  assert not np.asarray(flow).any()
