"""Feature-conditioned first-frame networks (the face model's) against PyTorch definitions.

The torch modules below are written from the original's architecture (Global_with_z,
Local_with_z, Encoder, ResnetBlock in models/networks.py) with its attribute names, so their
``state_dict()`` keys are the original checkpoint keys that our importer maps. Both norms run in
train mode: the original normalises with the current input's statistics even at test time.
"""

import importlib
import re

import jax
import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from vid2vid_jax import original_checkpoint
from vid2vid_jax.models import builders
from vid2vid_jax.models import first_frame

MAX_NGF = 1024
NUM_IDS = 7  # face part labels 0..6
TOL = 1e-4


# ---------------------------------------------------------------- the original, in PyTorch


def _norm_layer(kind):
  """The original's get_norm_layer."""
  if kind == 'instance':
    return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=True)
  return lambda c: nn.BatchNorm2d(c, affine=True)


def _pool(x, times=1):
  for _ in range(times):
    x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
  return x


class TorchResnetBlock(nn.Module):
  """x + [ReflPad1, Conv3x3, Norm, ReLU, ReflPad1, Conv3x3, Norm](x)."""

  def __init__(self, dim, norm):
    super().__init__()
    self.conv_block = nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim), nn.ReLU(),
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim))

  def forward(self, x):
    return x + self.conv_block(x)


class TorchGlobalWithZ(nn.Module):
  """The original's Global_with_z."""

  def __init__(self, input_nc, output_nc, nz, ngf, n_down, n_blocks, norm):
    super().__init__()
    self.n_down = n_down
    width = lambda i: min(ngf * 2**i, MAX_NGF)
    down = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc + nz, ngf, 7), norm(ngf), nn.ReLU()]
    for i in range(n_down):
      down += [nn.Conv2d(width(i), width(i + 1), 3, stride=2, padding=1), norm(width(i + 1)),
               nn.ReLU()]
    self.model_downsample = nn.Sequential(*down)
    self.model_resnet = nn.Sequential(
        *[TorchResnetBlock(width(n_down) + nz, norm) for _ in range(n_blocks)])
    up = []
    for i in range(n_down):
      c_in = width(n_down - i) + (2 * nz if i == 0 else 0)
      c_out = min(ngf * 2**(n_down - i) // 2, MAX_NGF)
      up += [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1),
             norm(c_out), nn.ReLU()]
    self.model_upsample = nn.Sequential(*up)
    self.model_upsample_conv = nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(ngf + nz, output_nc, 7), nn.Tanh())

  def forward(self, x, z):
    z_down = _pool(z, self.n_down)
    d = self.model_downsample(torch.cat([x, z], 1))
    r = self.model_resnet(torch.cat([d, z_down], 1))
    u = self.model_upsample(torch.cat([r, z_down], 1))
    return self.model_upsample_conv(torch.cat([u, z], 1))


class TorchLocalWithZ(nn.Module):
  """The original's Local_with_z."""

  def __init__(self, input_nc, output_nc, nz, ngf, n_down_global, n_blocks_global, nle,
               n_blocks_local, norm):
    super().__init__()
    self.nle, self.n_down_global = nle, n_down_global
    global_net = TorchGlobalWithZ(input_nc, output_nc, nz, ngf * 2**nle, n_down_global,
                                  n_blocks_global, norm)
    self.model_downsample = global_net.model_downsample
    self.model_resnet = global_net.model_resnet
    self.model_upsample = global_net.model_upsample
    for n in range(1, nle + 1):
      w = ngf * 2**(nle - n)
      c_in = input_nc + (nz if n == nle else 0)
      setattr(self, f'model{n}_1', nn.Sequential(
          nn.ReflectionPad2d(3), nn.Conv2d(c_in, w, 7), norm(w), nn.ReLU(),
          nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), norm(2 * w), nn.ReLU()))
      res = 2 * w + (nz if n == 1 else 0)
      setattr(self, f'model{n}_2', nn.Sequential(
          *[TorchResnetBlock(res, norm) for _ in range(n_blocks_local)],
          nn.ConvTranspose2d(res, w, 3, stride=2, padding=1, output_padding=1), norm(w),
          nn.ReLU()))
    self.model_final = nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(ngf + nz, output_nc, 7), nn.Tanh())

  def forward(self, x, z):
    inputs = [x]
    for _ in range(self.nle):
      inputs.append(_pool(inputs[-1]))
    z_local = _pool(z, self.nle)
    z_global = _pool(z_local, self.n_down_global)
    d = self.model_downsample(torch.cat([inputs[-1], z_local], 1))
    r = self.model_resnet(torch.cat([d, z_global], 1))
    out = self.model_upsample(torch.cat([r, z_global], 1))
    for n in range(1, self.nle + 1):
      x_n = inputs[self.nle - n]
      if n == self.nle:
        x_n = torch.cat([x_n, z], 1)
      c = getattr(self, f'model{n}_1')(x_n) + out
      if n == 1:
        c = torch.cat([c, z_local], 1)
      out = getattr(self, f'model{n}_2')(c)
    return self.model_final(torch.cat([out, z], 1))


class TorchEncoder(nn.Module):
  """The original's Encoder: conv net, then instance-wise average pooling per sample."""

  def __init__(self, input_nc, output_nc, ngf, n_down, norm):
    super().__init__()
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), norm(ngf), nn.ReLU()]
    for i in range(n_down):
      layers += [nn.Conv2d(ngf * 2**i, ngf * 2**(i + 1), 3, stride=2, padding=1),
                 norm(ngf * 2**(i + 1)), nn.ReLU()]
    for i in range(n_down):
      c = ngf * 2**(n_down - i)
      layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                 norm(c // 2), nn.ReLU()]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
    self.model = nn.Sequential(*layers)

  def forward(self, image, inst):
    out = self.model(image)
    pooled = out.clone()
    for b in range(out.shape[0]):
      for i in torch.unique(inst[b]):
        mask = inst[b, 0] == i
        for c in range(out.shape[1]):
          pooled[b, c][mask] = out[b, c][mask].mean()
    return pooled


def _prepare(net, seed=0):
  """Random BatchNorm affine params (its init is 1 / 0), train mode."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, nn.BatchNorm2d):
        m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
        m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
  return net.train()


def _state_dict(net):
  return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


# ---------------------------------------------------------------- helpers


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1)))


def _nhwc(t):
  return np.moveaxis(t.detach().numpy(), 1, -1)


def _config(net, norm, input_nc=3, **first):
  config = importlib.import_module('configs.default').get_config()
  config.data.label_nc = 0
  config.data.input_nc = input_nc
  config.data.use_instance = False
  config.data.output_nc = 3
  config.first_frame.norm = norm
  # The first-frame nets take their own norm, whatever the video G's is.
  config.model.generator.norm = 'batch' if norm == 'instance' else 'instance'
  config.first_frame.net = net
  for key, value in first.items():
    setattr(config.first_frame, key, value)
  return config


def _inputs(seed, batch, size, input_nc, feat_num):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, (batch, size, size, input_nc)).astype(np.float32)
  z = rng.uniform(-1, 1, (batch, size, size, feat_num)).astype(np.float32)
  return x, z


def _run_generator(net, config, x, z):
  """(ours, reference) NHWC outputs of the torch net and of our imported module."""
  with torch.no_grad():
    ref = _nhwc(net(_nchw(x), _nchw(z)))
  variables = original_checkpoint.first_frame_variables(_state_dict(net), config)
  model = builders.first_frame_generator_from_config(config)
  out = np.asarray(jax.jit(model.apply)(variables, x, z))
  assert out.shape == ref.shape
  assert np.std(ref) > 0.05 and np.mean(np.abs(ref) > 0.99) < 0.1  # not saturated
  return out, ref


def _inst_maps(seed, size):
  """[2, size, size] block maps: sample 0 holds all ids 0..6, sample 1 ids {1, 3, 6}."""
  rng = np.random.default_rng(seed)
  cells = size // 4
  first = rng.permutation(np.resize(np.arange(NUM_IDS), 16))
  second = rng.permutation(np.resize([1, 3, 6], 16))
  grids = np.stack([first, second]).reshape(2, 4, 4)
  inst = np.repeat(np.repeat(grids, cells, axis=1), cells, axis=2).astype(np.int32)
  assert set(np.unique(inst[0])) == set(range(NUM_IDS))
  return inst


# ---------------------------------------------------------------- generators


@pytest.mark.parametrize('norm', ['instance', 'batch'])
def test_global_with_features_matches_torch(norm):
  feat_num, input_nc = 3, 4
  torch.manual_seed(0)
  net = _prepare(TorchGlobalWithZ(input_nc, 3, feat_num, ngf=4, n_down=2, n_blocks=2,
                                  norm=_norm_layer(norm)))
  config = _config('global_with_features', norm, input_nc, ngf=4, n_downsample=2, n_blocks=2,
                   feat_num=feat_num)
  x, z = _inputs(1, 2, 16, input_nc, feat_num)
  out, ref = _run_generator(net, config, x, z)
  np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize('nle,norm', [(1, 'instance'), (2, 'instance'), (1, 'batch'),
                                      (2, 'batch')])
def test_local_with_features_matches_torch(nle, norm):
  feat_num, input_nc = 3, 4
  torch.manual_seed(1)
  net = _prepare(TorchLocalWithZ(input_nc, 3, feat_num, ngf=4, n_down_global=1,
                                 n_blocks_global=1, nle=nle, n_blocks_local=1,
                                 norm=_norm_layer(norm)))
  config = _config('local_with_features', norm, input_nc, ngf=4, n_downsample=1, n_blocks=1,
                   n_local_enhancers=nle, n_blocks_local=1, feat_num=feat_num)
  x, z = _inputs(2, 2, 32, input_nc, feat_num)
  out, ref = _run_generator(net, config, x, z)
  np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)


def _meta_state_dict(make):
  """Zero arrays shaped as the state_dict of ``make()`` (built without memory: shapes only)."""
  with torch.device('meta'):
    net = make()
  return {k: np.zeros(v.shape, np.float32) for k, v in net.state_dict().items()}


@pytest.mark.parametrize('net', ['global_with_features', 'local_with_features', 'encoder'])
def test_wide_networks_import(net):
  """Widths past 1024: the generators cap them (1024 + 2 * feat_num into the first up conv),
  the Encoder does not (2048 at its bottleneck). Shapes only: the importer checks every one."""
  norm = _norm_layer('instance')
  config = _config(net if net != 'encoder' else 'global_with_features', 'instance', 4,
                   ngf=128, n_downsample=4, n_blocks=1, n_local_enhancers=1, n_blocks_local=1,
                   feat_num=3, nef=128, n_downsample_E=4)
  if net == 'global_with_features':
    sd = _meta_state_dict(lambda: TorchGlobalWithZ(4, 3, 3, 128, 4, 1, norm))
    assert sd['model_upsample.0.weight'].shape == (1030, 1024, 3, 3)
    variables = original_checkpoint.first_frame_variables(sd, config)
  elif net == 'local_with_features':
    sd = _meta_state_dict(lambda: TorchLocalWithZ(4, 3, 3, 64, 4, 1, 1, 1, norm))
    assert sd['model_resnet.0.conv_block.1.weight'].shape == (1027, 1027, 3, 3)
    config.first_frame.ngf = 64
    variables = original_checkpoint.first_frame_variables(sd, config)
  else:
    sd = _meta_state_dict(lambda: TorchEncoder(3, 3, 128, 4, norm))
    assert sd['model.13.weight'].shape == (2048, 1024, 3, 3)
    variables = original_checkpoint.feature_encoder_variables(sd, config)
  sizes = [v.size for v in jax.tree_util.tree_leaves(variables)]
  assert len(sizes) == sum(1 for k in sd if k.endswith(('weight', 'bias')))
  assert sum(sizes) == sum(v.size for k, v in sd.items() if k.endswith(('weight', 'bias')))


# ---------------------------------------------------------------- encoder and features


@pytest.mark.parametrize('norm', ['instance', 'batch'])
def test_feature_encoder_matches_torch(norm):
  feat_num = 3
  torch.manual_seed(2)
  net = _prepare(TorchEncoder(3, feat_num, ngf=4, n_down=2, norm=_norm_layer(norm)))
  config = _config('local_with_features', norm, feat_num=feat_num, nef=4, n_downsample_E=2)
  image = np.random.default_rng(3).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
  inst = _inst_maps(4, 16)
  with torch.no_grad():
    ref = _nhwc(net(_nchw(image), torch.from_numpy(inst[:, None].astype(np.int64))))
  variables = original_checkpoint.feature_encoder_variables(_state_dict(net), config)
  model = builders.feature_encoder_from_config(config)
  out = np.asarray(jax.jit(model.apply)(variables, image, inst))
  assert out.shape == (2, 16, 16, feat_num)
  np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)
  for b in range(2):
    values = [out[b][inst[b] == i] for i in np.unique(inst[b])]
    assert all(np.ptp(v, axis=0).max() <= 1e-6 for v in values)  # constant per instance
    assert len({tuple(np.round(v[0], 4)) for v in values}) == len(values)  # distinct instances
  # Ids present in both samples are pooled per sample.
  assert np.abs(out[0][inst[0] == 3][0] - out[1][inst[1] == 3][0]).max() > 1e-3


def test_instance_mean_matches_numpy_loop():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
  inst = rng.integers(-1, NUM_IDS + 2, size=(2, 6, 5)).astype(np.int32)
  inst[0, 0, :3] = [-1, 7, 8]  # ids outside [0, 7) -> zeros
  ref = np.zeros_like(x)
  for b in range(2):
    for i in np.unique(inst[b]):
      mask = inst[b] == i
      if 0 <= i < NUM_IDS:
        ref[b][mask] = x[b][mask].mean(axis=0)
  out = np.asarray(first_frame.instance_mean(x, inst, NUM_IDS))
  np.testing.assert_allclose(out, ref, atol=1e-6)
  invalid = (inst < 0) | (inst >= NUM_IDS)
  assert invalid.sum() >= 3 and np.all(out[invalid] == 0)


def _nearest_reference(encoded, inst, bank):
  """The original's get_face_features rule (present ids only), in plain loops."""
  channels = encoded.shape[-1]
  num_images = bank[6].shape[0]
  ids = np.unique(inst)
  dists = np.zeros(num_images)
  for i in ids:
    y, x = next((y, x) for y in range(inst.shape[0]) for x in range(inst.shape[1])
                if inst[y, x] == i)  # the first pixel, row-major
    for m in range(num_images):
      dists[m] += np.sum((encoded[y, x].astype(np.float64) - bank[i][m, :channels])**2)
  nearest = int(np.argmin(dists))
  out = np.zeros(encoded.shape, np.float32)
  for i in ids:
    out[inst == i] = bank[i][min(nearest, bank[i].shape[0] - 1), :channels]
  return out, nearest


def _bank(rng, channels, num_images):
  """id -> [N_id, channels + 1]; id 6 (which sets the image count) has the fewest rows."""
  return {i: rng.normal(size=(num_images + (6 - i) % 3, channels + 1)).astype(np.float32)
          for i in range(NUM_IDS)}


def _encoded(rng, inst, bank, first_row, rest_row):
  """Each instance's first pixel (row-major) near bank row ``first_row``, the rest at
  ``rest_row``: only the first-pixel rule finds ``first_row``."""
  channels = bank[0].shape[1] - 1
  encoded = np.zeros(inst.shape + (channels,), np.float32)
  for i in np.unique(inst):
    encoded[inst == i] = bank[i][rest_row, :channels]
    y, x = np.argwhere(inst == i)[0]
    encoded[y, x] = bank[i][first_row, :channels] + 0.01 * rng.normal(size=channels)
  return encoded


def test_nearest_features_all_ids_present():
  rng = np.random.default_rng(6)
  inst = _inst_maps(7, 16)[0]
  bank = _bank(rng, 4, 5)
  encoded = _encoded(rng, inst, bank, first_row=2, rest_row=4)
  ref, nearest = _nearest_reference(encoded, inst, bank)
  assert nearest == 2
  out = first_frame.nearest_features(encoded, inst, bank)
  assert out.shape == encoded.shape
  np.testing.assert_array_equal(out, ref)


def test_nearest_features_some_ids_absent():
  rng = np.random.default_rng(8)
  inst = np.repeat(np.repeat(rng.choice([0, 2, 5], (4, 4)), 4, 0), 4, 1)
  assert set(np.unique(inst)) == {0, 2, 5}
  bank = _bank(rng, 4, 5)
  for i in (1, 3, 4, 6):  # absent ids: row 1 far away, so comparing them would change m
    bank[i][1] = 100.0
  encoded = _encoded(rng, inst, bank, first_row=1, rest_row=3)
  ref, nearest = _nearest_reference(encoded, inst, bank)
  assert nearest == 1
  out = first_frame.nearest_features(encoded, inst, bank)
  np.testing.assert_array_equal(out, ref)


def test_nearest_features_rejects_incomplete_banks():
  rng = np.random.default_rng(9)
  inst = _inst_maps(10, 16)[0]
  bank = _bank(rng, 4, 5)
  encoded = _encoded(rng, inst, bank, first_row=0, rest_row=0)
  without_3 = {i: v for i, v in bank.items() if i != 3}
  with pytest.raises(ValueError) as info:
    first_frame.nearest_features(encoded, inst, without_3)
  assert re.search(r'\b3\b', str(info.value))
  short = {**bank, 2: bank[2][:3]}  # the original would index past its rows
  with pytest.raises(ValueError):
    first_frame.nearest_features(encoded, inst, short)


# ---------------------------------------------------------------- importer errors


def _global_net_and_config(nz=3):
  torch.manual_seed(3)
  net = TorchGlobalWithZ(4, 3, nz, ngf=4, n_down=1, n_blocks=1, norm=_norm_layer('instance'))
  config = _config('global_with_features', 'instance', 4, ngf=4, n_downsample=1, n_blocks=1,
                   feat_num=3)
  return net, config


def _encoder_net_and_config(feat_num=3):
  torch.manual_seed(4)
  net = TorchEncoder(3, feat_num, ngf=4, n_down=1, norm=_norm_layer('batch'))
  config = _config('global_with_features', 'batch', feat_num=3, nef=4, n_downsample_E=1)
  return net, config


def _local_net_and_config(nz=3):
  torch.manual_seed(5)
  net = TorchLocalWithZ(4, 3, nz, ngf=4, n_down_global=1, n_blocks_global=1, nle=1,
                        n_blocks_local=1, norm=_norm_layer('instance'))
  config = _config('local_with_features', 'instance', 4, ngf=4, n_downsample=1, n_blocks=1,
                   n_local_enhancers=1, n_blocks_local=1, feat_num=3)
  return net, config


_IMPORT_CASES = {
    'global': (_global_net_and_config, 'first_frame_variables',
               'model_resnet.0.conv_block.5.weight'),
    'local': (_local_net_and_config, 'first_frame_variables', 'model1_2.0.conv_block.1.bias'),
    'encoder': (_encoder_net_and_config, 'feature_encoder_variables', 'model.5.weight'),
}


@pytest.mark.parametrize('case', sorted(_IMPORT_CASES))
def test_importer_accepts_complete_and_rejects_missing_keys(case):
  make, importer, key = _IMPORT_CASES[case]
  net, config = make()
  state_dict = _state_dict(net)
  getattr(original_checkpoint, importer)(state_dict, config)  # complete: no error
  assert key in state_dict
  del state_dict[key]
  with pytest.raises(ValueError, match=re.escape(key)):
    getattr(original_checkpoint, importer)(state_dict, config)


@pytest.mark.parametrize('case', sorted(_IMPORT_CASES))
def test_importer_rejects_wrong_feature_channels(case):
  """A net built with 4 feature channels against config.first_frame.feat_num = 3."""
  make, importer, _ = _IMPORT_CASES[case]
  net, config = make(4)
  with pytest.raises(ValueError, match=r"key 'model"):  # names the offending key
    getattr(original_checkpoint, importer)(_state_dict(net), config)


# ---------------------------------------------------------------- the whole face first frame


def _write_opt_txt(folder, **options):
  """An original-format opt.txt for a global_with_features net (ngf 4, 2 downsamples, 1 block,
  instance norm, feat_num 3) plus ``options``."""
  options = dict(netG='global_with_features', label_nc=0, ngf=4, n_downsample_G=2, n_blocks=1,
                 norm='instance', feat_num=3, **options)
  lines = ''.join(f'{k}: {v}\n' for k, v in options.items())
  (folder / 'opt.txt').write_text(
      f'------------ Options -------------\n{lines}-------------- End ----------------\n')


def test_face_folder_imports_and_eval_reproduces_the_original_chain(tmp_path):
  """An original-style edge2face_single folder (opt.txt, net_G / net_E .pth, features.npy)
  through the import CLI and eval's single_g path gives the original's first frame:
  Encoder -> nearest stored features -> Global_with_z."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import inference  # pylint: disable=g-import-not-at-top
  torch.manual_seed(11)
  norm = _norm_layer('instance')
  net_g = _prepare(TorchGlobalWithZ(5, 3, 3, ngf=4, n_down=2, n_blocks=1, norm=norm))
  net_e = _prepare(TorchEncoder(3, 3, ngf=4, n_down=2, norm=norm))
  folder = tmp_path / 'edge2face_single'
  folder.mkdir()
  _write_opt_txt(folder, input_nc=5, nef=4, n_downsample_E=2, dataset_mode='face')
  torch.save(net_g.state_dict(), folder / 'latest_net_G.pth')
  torch.save(net_e.state_dict(), folder / 'latest_net_E.pth')
  rng = np.random.default_rng(12)
  bank = {i: rng.uniform(-1, 1, (5, 4)).astype(np.float32) for i in range(NUM_IDS)}
  np.save(folder / 'features.npy', bank, allow_pickle=True)
  out_dir = tmp_path / 'ckpt'
  result = subprocess.run(
      [sys.executable, '-m', 'vid2vid_jax.tools.convert_checkpoint', f'--ckpt_dir={folder}',
       f'--out={out_dir}'], capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]

  config = _config('global_with_features', 'instance', 5, ngf=4, n_downsample=2, n_blocks=1,
                   feat_num=3, nef=4, n_downsample_E=2, checkpoint=str(out_dir))
  inst = _inst_maps(13, 16)
  context = [{'cond': rng.uniform(0, 1, (16, 16, 5)).astype(np.float32),
              'image': rng.uniform(-1, 1, (16, 16, 3)).astype(np.float32), 'inst': inst[k]}
             for k in range(2)]
  made = inference._first_frame_fn(config)(context)  # pylint: disable=protected-access

  for k, frame in enumerate(context):
    with torch.no_grad():
      encoded = _nhwc(net_e(_nchw(frame['image'][None]), torch.from_numpy(inst[k:k + 1, None])))[0]
      feat, _ = _nearest_reference(encoded, inst[k], bank)
      ref = _nhwc(net_g(_nchw(frame['cond'][None]), _nchw(feat[None])))[0]
    assert np.std(ref) > 0.05
    np.testing.assert_allclose(made[k], ref, atol=TOL)


def test_parity_tool_runs_a_feature_conditioned_single_image_case(tmp_path):
  """A generator_single_image case with netG global_with_features: input + feat -> output."""
  import json  # pylint: disable=g-import-not-at-top
  from vid2vid_jax.tools import network_parity  # pylint: disable=g-import-not-at-top
  torch.manual_seed(21)
  net = _prepare(TorchGlobalWithZ(4, 3, 3, ngf=4, n_down=2, n_blocks=1,
                                  norm=_norm_layer('instance')))
  case_dir = tmp_path / 'single_z'
  case_dir.mkdir()
  _write_opt_txt(case_dir, input_nc=4)
  torch.save(net.state_dict(), case_dir / 'latest_net_G.pth')
  x, z = _inputs(22, 1, 16, 4, 3)
  with torch.no_grad():
    output = net(_nchw(x), _nchw(z)).numpy()
  io = {'input': _nchw(x).numpy(), 'feat': _nchw(z).numpy(), 'output': output}
  np.savez(case_dir / 'io.npz', **io)
  case = {'name': 'single_z', 'kind': 'generator_single_image', 'dir': 'single_z'}
  (tmp_path / 'manifest.json').write_text(json.dumps({'cases': [case]}))
  rows = network_parity.run_parity(tmp_path)
  assert [r.output for r in rows] == ['output'] and rows[0].passed, rows
  del io['feat']
  np.savez(case_dir / 'io.npz', **io)
  (row,) = network_parity.run_parity(tmp_path)
  assert not row.passed and 'feat' in row.note, row
