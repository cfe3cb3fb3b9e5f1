"""The parity CLI: exit 0 on the fixture folder, 1 when a stage is corrupted."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from flow import flownet2_parity
from flow import weights


def _copy(src, tmp_path):
  dst = tmp_path / 'fixtures'
  shutil.copytree(src, dst)
  for path in dst.iterdir():
    path.chmod(0o644)
  return dst


def _perturb(npz_path, key, delta):
  data = dict(np.load(npz_path))
  value = data[key].copy()
  value.reshape(-1)[value.size // 2] += delta
  data[key] = value
  np.savez(npz_path, **data)


@pytest.fixture
def reuse_weights(monkeypatch, flownet2_state_dict):
  """Spares main() rebuilding the 162M weights: the session's copy (same folder, same seed)."""
  monkeypatch.setattr(weights, 'fixture_state_dict', lambda *a, **k: flownet2_state_dict)


def test_cli_passes_on_the_fixture_folder(flownet2_fixtures, reuse_weights, capsys):
  """The CLI's table on the ops and one whole case (every case and the wrapper, through the same
  functions: tests/flow/test_networks.py)."""
  only = 'correlation,resample2d,channelnorm,case_0'
  assert flownet2_parity.main([str(flownet2_fixtures), '--only', only]) == 0
  out = capsys.readouterr().out
  lines = out.strip().splitlines()
  assert lines[-1].startswith('PASS: ') and 'FAIL' not in out
  for stage in ('correlation/output', 'resample2d/output', 'channelnorm/output_3ch',
                'case_0/flownetc_corr', 'case_0/flow'):
    assert any(line.startswith(stage + ' ') for line in lines), stage


def test_cli_fails_on_a_corrupted_stage(flownet2_fixtures, reuse_weights, tmp_path, capsys):
  fixtures = _copy(flownet2_fixtures, tmp_path)
  _perturb(fixtures / 'case_1_io.npz', 'flownets1_flow2', 0.01)  # 0.03 std at one pixel
  _perturb(fixtures / 'correlation_io.npz', 'output', 1e-4)
  assert flownet2_parity.main([str(fixtures), '--only', 'correlation,case_1']) == 1
  out = capsys.readouterr().out
  failed = [line.split()[0] for line in out.splitlines() if ' FAIL' in line]
  assert failed == ['correlation/output', 'case_1/flownets1_flow2'], out
  assert out.strip().splitlines()[-1].startswith('FAIL: ')


def test_cli_subprocess_exit_codes(flownet2_fixtures, tmp_path):
  cmd = [sys.executable, '-m', 'flow.flownet2_parity']
  ok = subprocess.run(cmd + [str(flownet2_fixtures), '--only', 'resample2d,channelnorm'],
                      capture_output=True, text=True, timeout=300, check=False)
  assert ok.returncode == 0, ok.stdout + ok.stderr
  assert 'resample2d/output_nearest' in ok.stdout
  fixtures = _copy(flownet2_fixtures, tmp_path)
  _perturb(fixtures / 'channelnorm_io.npz', 'output_2ch', 0.5)
  bad = subprocess.run(cmd + [str(fixtures), '--only', 'channelnorm'], capture_output=True,
                       text=True, timeout=300, check=False)
  assert bad.returncode == 1
  assert 'channelnorm/output_2ch' in bad.stdout.strip().splitlines()[-1]


def test_other_seed_is_read_and_checked(flownet2_fixtures, tmp_path, capsys):
  """A folder claiming seed 2 gets seed-2 weights, which fail seed 1's check values."""
  fixtures = _copy(flownet2_fixtures, tmp_path)
  recipe = fixtures / 'weights_recipe.md'
  recipe.write_text(recipe.read_text().replace('SEED = 1', 'SEED = 2'))
  spec_path = fixtures / 'param_shapes.json'
  spec = json.loads(spec_path.read_text())
  spec['weights_seed'] = 2
  spec_path.write_text(json.dumps(spec))
  assert weights.read_seed(str(fixtures)) == 2
  assert flownet2_parity.main([str(fixtures), '--only', 'weights']) == 1
  out = capsys.readouterr().out
  assert 'weights/recipe_checks' in out and 'flownetc.conv1.0.weight' in out


def test_seed_disagreement_is_an_error(flownet2_fixtures, tmp_path):
  fixtures = _copy(flownet2_fixtures, tmp_path)
  recipe = fixtures / 'weights_recipe.md'
  recipe.write_text(recipe.read_text().replace('SEED = 1', 'SEED = 3'))
  with pytest.raises(ValueError, match='SEED = 3 but param_shapes.json says weights_seed = 1'):
    weights.read_seed(str(fixtures))
