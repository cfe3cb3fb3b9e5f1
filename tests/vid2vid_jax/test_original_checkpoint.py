"""Importer of original checkpoints: options, strict key mapping, .pth formats, orbax round trip."""

import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from vid2vid_jax import checkpoint
from vid2vid_jax import original_checkpoint
from vid2vid_jax import original_options
from vid2vid_jax.models import builders
from vid2vid_jax.models import generator as generator_lib
from vid2vid_jax.models import layers


def _npz(path):
  return original_checkpoint.read_state_dict(path)


def _run_generator(config, variables, io):
  g = config.model.generator
  conds = layers.pyramid(jnp.asarray(np.moveaxis(io['real_A'], 2, -1)), g.n_scales_spatial)
  prevs = layers.pyramid(jnp.asarray(np.moveaxis(io['fake_B_prev'], 2, -1)), g.n_scales_spatial)
  masks = ([generator_lib.fg_mask_from_labels(c[:, -1], g.fg_labels) for c in conds]
           if g.fg else None)
  return builders.generator_from_config(config).apply(variables, conds, prevs, masks)


def _rel(ours, ref_nchw):
  ref = np.moveaxis(ref_nchw, 1, -1)
  return np.linalg.norm(np.asarray(ours) - ref) / np.linalg.norm(ref)


@pytest.fixture(scope='module')
def s1_case(vid2vid_fixtures):
  case_dir = vid2vid_fixtures / 'gen_s1_instance'
  options = original_options.read_opt_txt(case_dir / 'opt.txt')
  return case_dir, options, _npz(case_dir / 'latest_net_G0_weights.npz')


def test_strict_keys_and_shapes(s1_case):
  _, options, sd = s1_case
  config, variables = original_checkpoint.import_state_dicts({'G0': sd}, options)
  assert set(variables) == {'generator'}
  # Norm buffers are accepted and dropped; a DataParallel 'module.' prefix is stripped.
  assert any(k.endswith('running_mean') for k in sd)
  wrapped = {f'module.{k}': v for k, v in sd.items()}
  original_checkpoint.import_state_dicts({'G0': wrapped}, options)
  with pytest.raises(ValueError, match=r"unexpected key 'model_down_seg\.99\.weight'"):
    original_checkpoint.import_state_dicts({'G0': {**sd, 'model_down_seg.99.weight': sd[
        'model_down_seg.1.weight']}}, options)
  missing = dict(sd)
  del missing['model_final_w.1.bias']
  with pytest.raises(ValueError, match=r"missing key 'model_final_w\.1\.bias'"):
    original_checkpoint.import_state_dicts({'G0': missing}, options)
  bad = {**sd, 'model_up_img.0.weight': sd['model_up_img.0.weight'][:, :-1]}
  with pytest.raises(ValueError, match=r"key 'model_up_img\.0\.weight' has shape"):
    original_checkpoint.import_state_dicts({'G0': bad}, options)
  with pytest.raises(ValueError, match='n_scales_spatial'):
    original_checkpoint.import_state_dicts({'G0': sd}, {**options, 'n_scales_spatial': 2})
  with pytest.raises(ValueError, match='shape'):  # options disagreeing with the weights
    original_checkpoint.import_state_dicts({'G0': sd}, {**options, 'ngf': 16})
  del config


def test_discriminator_flat_and_intermediate_layouts_agree(vid2vid_fixtures):
  sd = _npz(vid2vid_fixtures / 'disc_ms_batch' / 'latest_net_D_weights.npz')
  kw = dict(input_nc=9, ndf=8, n_layers=2, num_D=3, norm='batch')
  interm = original_checkpoint.discriminator_variables(sd, **kw)
  flat_sd = {}
  for key, value in sd.items():  # scale{i}_layer{j}.{0|1}.x -> layer{i}.{flat index}.x
    head, sub, leaf = key.split('.', 2)
    i, j = (int(v) for v in head[len('scale'):].split('_layer'))
    base = 0 if j == 0 else 2 + 3 * (j - 1)
    flat_sd[f'layer{i}.{base + int(sub)}.{leaf}'] = value
  flat = original_checkpoint.discriminator_variables(flat_sd, intermediate_features=False, **kw)
  flat_interm, flat_flat = list(_leaves(interm)), list(_leaves(flat))
  assert len(flat_interm) == len(flat_flat) == 3 * (4 * 2 + 2 * 2)  # 4 convs, 2 BNs per sub-D
  for a, b in zip(flat_interm, flat_flat):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match='scale0_layer0'):
    original_checkpoint.discriminator_variables(sd, **{**kw, 'num_D': 2})


def _leaves(tree):
  if isinstance(tree, dict):
    for k in sorted(tree):
      yield from _leaves(tree[k])
  else:
    yield np.asarray(tree).ravel()[:4]


def test_legacy_pth_folder_imports_to_the_same_outputs(s1_case, tmp_path):
  torch = pytest.importorskip('torch')
  case_dir, _, sd = s1_case
  shutil.copy(case_dir / 'opt.txt', tmp_path / 'opt.txt')
  torch.save({k: torch.from_numpy(np.array(v)) for k, v in sd.items()},
             tmp_path / 'latest_net_G0.pth', _use_new_zipfile_serialization=False)
  config, variables = original_checkpoint.import_checkpoint_dir(tmp_path)
  with np.load(case_dir / 'io.npz') as io:
    io = dict(io)
  out = _run_generator(config, variables['generator'], io)[0]
  assert _rel(out['fake'], io['scale0_fake_B']) <= 1e-4


def test_import_cli_writes_an_orbax_checkpoint_that_reloads(vid2vid_fixtures, tmp_path):
  case_dir = vid2vid_fixtures / 'gen_s2_batch'
  out_dir = tmp_path / 'ckpt'
  result = subprocess.run(
      [sys.executable, '-m', 'vid2vid_jax.tools.convert_checkpoint', f'--ckpt_dir={case_dir}',
       f'--out={out_dir}'], capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  variables, config = checkpoint.load_variables(out_dir)
  assert config.model.generator.n_scales_spatial == 2 and set(variables) == {'generator'}
  with np.load(case_dir / 'io.npz') as io:
    io = dict(io)
  outs = _run_generator(config, variables['generator'], io)
  for s in range(2):
    assert _rel(outs[s]['fake'], io[f'scale{s}_fake_B']) <= 1e-4
    assert _rel(outs[s]['flow'], io[f'scale{s}_flow']) <= 1e-4


def _write_object_npy(path, payload):
  """A .npy holding a pickled 0-d object array (how the original saved features.npy)."""
  import pickle  # pylint: disable=g-import-not-at-top
  with open(path, 'wb') as f:
    np.lib.format.write_array_header_1_0(f, {'descr': '|O', 'fortran_order': False, 'shape': ()})
    pickle.dump(payload, f, protocol=2)


def test_read_features_reads_the_dict_and_refuses_code(tmp_path):
  bank = {i: np.random.default_rng(i).normal(size=(3 + i, 5)).astype(np.float32)
          for i in range(7)}
  np.save(tmp_path / 'features.npy', bank, allow_pickle=True)  # numpy's own object pickle
  read = original_checkpoint.read_features(tmp_path / 'features.npy')
  assert sorted(read) == list(range(7))
  for i in range(7):
    np.testing.assert_array_equal(read[i], bank[i])

  class Evil:  # unpickling it would create a file
    def __reduce__(self):
      return open, (str(tmp_path / 'pwned'), 'w')

  _write_object_npy(tmp_path / 'evil.npy', {0: Evil()})
  with pytest.raises(ValueError, match='refusing to unpickle io.open'):
    original_checkpoint.read_features(tmp_path / 'evil.npy')
  assert not (tmp_path / 'pwned').exists()
  np.save(tmp_path / 'plain.npy', np.zeros((2, 3)))
  with pytest.raises(ValueError, match='dict of per-instance features'):
    original_checkpoint.read_features(tmp_path / 'plain.npy')
  _write_object_npy(tmp_path / 'bad_rows.npy', {0: np.zeros(4)})
  with pytest.raises(ValueError, match='features of id 0'):
    original_checkpoint.read_features(tmp_path / 'bad_rows.npy')


def test_import_cli_reports_a_corrupt_pth_in_one_line_with_exit_2(vid2vid_fixtures, tmp_path):
  shutil.copy(vid2vid_fixtures / 'gen_edges_input_nc' / 'opt.txt', tmp_path / 'opt.txt')
  (tmp_path / 'latest_net_G0.pth').write_bytes(b'not a checkpoint')
  result = subprocess.run(
      [sys.executable, '-m', 'vid2vid_jax.tools.convert_checkpoint', f'--ckpt_dir={tmp_path}',
       f'--out={tmp_path / "out"}'], capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert 'latest_net_G0.pth: not a PyTorch .pth file' in result.stderr
  assert not (tmp_path / 'out').exists()
