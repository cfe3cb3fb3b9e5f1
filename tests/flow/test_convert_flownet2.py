"""The importer: official state_dict -> our variables, the .pth.tar CLI, save/load."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

import flow
from flow import convert_flownet2


def _save_legacy(state_dict: dict, path) -> None:
  """Writes the official checkpoint layout with PyTorch's legacy (pre-zip) serialisation."""
  torch.save({'epoch': 0, 'state_dict': {k: torch.from_numpy(v) for k, v in state_dict.items()},
              'best_EPE': 0.0}, path, _use_new_zipfile_serialization=False)


def _assert_same_tree(a, b) -> None:
  flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
  flat_b = jax.tree_util.tree_flatten_with_path(b)[0]
  assert [k for k, _ in flat_a] == [k for k, _ in flat_b]
  for (key, x), (_, y) in zip(flat_a, flat_b):
    assert np.array_equal(np.asarray(x), np.asarray(y)), jax.tree_util.keystr(key)


def test_layout_mapping(flownet2_state_dict, flownet2_variables):
  params = flownet2_variables['params']
  w = flownet2_state_dict['flownetc.conv1.0.weight']  # (O, I, kh, kw)
  np.testing.assert_array_equal(params['flownetc']['conv1']['conv']['kernel'],
                                w.transpose(2, 3, 1, 0))
  w = flownet2_state_dict['flownets_d.deconv5.0.weight']  # (I, O, kh, kw), transposed conv
  np.testing.assert_array_equal(params['flownets_d']['deconv5']['kernel'],
                                w.transpose(2, 3, 0, 1))
  np.testing.assert_array_equal(params['flownetfusion']['predict_flow0']['conv']['bias'],
                                flownet2_state_dict['flownetfusion.predict_flow0.bias'])


def test_missing_key_is_named(flownet2_state_dict):
  sd = dict(flownet2_state_dict)
  del sd['flownets_2.conv4_1.0.bias']
  with pytest.raises(ValueError, match=r'missing keys \(1\): flownets_2\.conv4_1\.0\.bias'):
    convert_flownet2.state_dict_to_variables(sd)


def test_unexpected_key_is_named(flownet2_state_dict):
  sd = dict(flownet2_state_dict)
  sd['flownets_1.upsampled_flow6_to_5.bias'] = np.zeros(2, np.float32)  # FlowNetS has none
  with pytest.raises(ValueError, match=r'unexpected keys \(1\): flownets_1\.upsampled_flow6_to_5'):
    convert_flownet2.state_dict_to_variables(sd)


def test_shape_mismatch_is_named(flownet2_state_dict):
  sd = dict(flownet2_state_dict)
  sd['flownetc.conv3_1.0.weight'] = np.zeros((256, 472, 3, 3), np.float32)
  with pytest.raises(ValueError, match=r"'flownetc\.conv3_1\.0\.weight': shape \(256, 472, 3, 3\), "
                                       r'expected \(256, 473, 3, 3\)'):
    convert_flownet2.state_dict_to_variables(sd)


def test_partial_checkpoint_file_fails_naming_keys(flownet2_state_dict, tmp_path):
  """A legacy .pth.tar with only the fusion net: the CLI exits 1 and names a missing key."""
  pth = tmp_path / 'partial.pth.tar'
  _save_legacy({k: v for k, v in flownet2_state_dict.items() if k.startswith('flownetfusion.')},
               pth)
  proc = subprocess.run([sys.executable, '-m', 'flow.convert_flownet2', '--pth', str(pth), '--out',
                         str(tmp_path / 'out')], capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 1
  assert 'flownetc.conv1.0.weight' in proc.stderr and str(pth) in proc.stderr
  assert not (tmp_path / 'out').exists()


def test_load_flownet2_missing_dir(tmp_path):
  with pytest.raises(ValueError, match='no FlowNet2 checkpoint'):
    flow.load_flownet2(str(tmp_path / 'nowhere'))


def test_import_full_legacy_checkpoint(flownet2_state_dict, flownet2_variables, tmp_path):
  """The real key set at full size (~650 MB): torch legacy file -> CLI -> load_flownet2."""
  pth = tmp_path / 'FlowNet2_checkpoint.pth.tar'
  _save_legacy(flownet2_state_dict, pth)
  out = tmp_path / 'flownet2'
  proc = subprocess.run([sys.executable, '-m', 'flow.convert_flownet2', '--pth', str(pth), '--out',
                         str(out)], capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '162518834 parameters' in proc.stdout
  os.remove(pth)
  loaded = flow.load_flownet2(str(out))
  _assert_same_tree(loaded, flownet2_variables)
  # Refuses to overwrite unless asked.
  with pytest.raises(ValueError, match='exists'):
    flow.save_flownet2(loaded, str(out))
