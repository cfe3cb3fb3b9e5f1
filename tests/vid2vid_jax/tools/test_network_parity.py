"""The parity tool on the reference fixtures, and its exit status on a perturbed copy."""

import json
import shutil
import subprocess
import sys

import numpy as np

from vid2vid_jax.tools import network_parity


def test_every_fixture_case_passes(vid2vid_fixtures):
  rows = network_parity.run_parity(vid2vid_fixtures)
  table = network_parity.format_table(rows, network_parity.DEFAULT_RTOL)
  manifest = json.loads((vid2vid_fixtures / 'manifest.json').read_text())
  assert {r.case for r in rows} == {c['name'] for c in manifest['cases']}, table
  assert all(r.passed for r in rows), table


def test_cli_exit_status_on_perturbed_copy(vid2vid_fixtures, tmp_path):
  manifest = json.loads((vid2vid_fixtures / 'manifest.json').read_text())
  cases = [c for c in manifest['cases'] if c['name'] in ('warp_basic', 'gen_noflow')]
  for case in cases:
    shutil.copytree(vid2vid_fixtures / case['dir'], tmp_path / case['dir'])
  (tmp_path / 'manifest.json').write_text(json.dumps({**manifest, 'cases': cases}))
  cli = [sys.executable, '-m', 'vid2vid_jax.tools.network_parity', str(tmp_path)]
  ok = subprocess.run(cli, capture_output=True, text=True, timeout=300, check=False)
  assert ok.returncode == 0, ok.stdout + ok.stderr[-2000:]
  io_path = tmp_path / 'gen_noflow' / 'io.npz'
  with np.load(io_path) as io:
    io = dict(io)
  io['scale0_fake_B'] = io['scale0_fake_B'] + 1e-2  # ~1e-2 relative
  io_path.chmod(0o644)
  np.savez(io_path, **io)
  bad = subprocess.run(cli, capture_output=True, text=True, timeout=300, check=False)
  assert bad.returncode == 1, bad.stdout
  assert 'FAIL' in bad.stdout and 'scale0_fake_B' in bad.stdout
