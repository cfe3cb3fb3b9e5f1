"""Every config loads and validates; each inconsistent combination names its field and rule."""

import importlib
import pathlib

import pytest

from vid2vid_jax import config_lib

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / 'configs'
CONFIG_NAMES = sorted(p.stem for p in CONFIG_DIR.glob('*.py') if p.stem != '__init__')
TASK_CONFIGS = ('street_512', 'street_1024', 'street_2048', 'street_g1_512', 'street_g1_1024',
                'face_512', 'face_g1_256', 'pose_256p', 'pose_512p', 'pose_1024p', 'demo')


def _load(name):
  return importlib.import_module(f'configs.{name}').get_config()


def test_every_task_config_exists():
  missing = set(TASK_CONFIGS) - set(CONFIG_NAMES)
  assert not missing, f'configs missing: {missing}'


@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_config_loads_and_validates(name):
  config = _load(name)
  config_lib.validate_config(config)
  # Every config is a full default config: no group dropped by an override file.
  assert set(config.keys()) == set(_load('default').keys())


def test_default_mirrors_original_defaults():
  config = _load('default')
  g, d, t = config.model.generator, config.model.discriminator, config.train
  assert (g.ngf, g.n_blocks, g.n_downsample_G, g.norm, g.n_frames_G) == (128, 9, 3, 'batch', 3)
  assert (d.ndf, d.num_D, d.n_layers_D, d.n_frames_D, d.n_scales_temporal) == (64, 2, 3, 3, 2)
  assert (t.lr, t.beta1, t.niter, t.niter_decay, t.niter_step) == (2e-4, 0.5, 10, 10, 5)
  assert (config.loss.lambda_feat, config.loss.lambda_T, config.loss.lambda_F) == (10, 10, 10)
  assert (config.data.load_size, config.data.n_frames_total, config.data.label_nc) == (512, 30, 0)
  assert tuple(g.fg_labels) == (26,)


@pytest.mark.parametrize('name, expected', [
    ('street_512', dict(load_size=512, label_nc=35, fg=True, n_scales_spatial=1, num_D=2)),
    ('street_1024', dict(load_size=1024, n_scales_spatial=2, num_D=3, lr=1e-4,
                         niter_fix_global=10)),
    ('street_2048', dict(load_size=2048, n_scales_spatial=3, num_D=4, lr=5e-5, niter=5)),
    ('street_g1_1024', dict(load_size=896, n_scales_spatial=3, n_frames_D=2,
                            n_downsample_G=2)),
    ('face_g1_256', dict(load_size=256, ngf=64, input_nc=15, label_nc=0)),
    ('pose_1024p', dict(fine_size=1024, load_size=1536, n_scales_spatial=3, num_D=4,
                        add_face_disc=True)),
])
def test_script_overrides(name, expected):
  config = _load(name)
  flat = {**config.data, **config.model.generator, **config.model.discriminator,
          **config.train}
  for key, value in expected.items():
    assert flat[key] == value, key


def _bad(name='demo', **overrides):
  config = _load(name)
  for path, value in overrides.items():
    node = config
    *parents, leaf = path.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.mark.parametrize('overrides, num_devices, message', [
    ({'data.batch_size': 3}, 2, 'data.batch_size: 3 is not divisible by the 2 data-parallel'),
    ({'data.batch_size': 4, 'sharding.data': 3}, None, 'not divisible by the 3 data-parallel'),
    ({'sharding.data': 2, 'sharding.spatial': 2}, 8, 'data (2) x spatial (2) must equal'),
    ({'sharding.spatial': 3}, 8, 'sharding.spatial: 3 does not divide the 8 devices'),
    ({'data.n_frames_total': 2}, None, 'data.n_frames_total: (2) must be >= model.generator'),
    ({'data.load_size': 70}, None, "data.load_size: (70) must be divisible by the generator's "
                                   'total downsampling 4'),
    ({'model.generator.n_scales_spatial': 3, 'data.load_size': 72}, None,
     'total downsampling 16'),
    ({'model.generator.fg': True, 'model.generator.fg_labels': ()}, None,
     'model.generator.fg_labels: must list at least one label id'),
    ({'model.generator.fg': True, 'model.generator.fg_labels': (40,)}, None,
     'ids [40] are outside [0, data.label_nc=35)'),
    ({'data.label_nc': 0}, None, 'data.label_nc: must be > 0 for the street layout'),
    ({'data.layout': 'pose', 'data.input_nc': 6}, None, 'data.label_nc: must be 0 for the pose'),
    ({'data.layout': 'tfrecord'}, None, 'data.layout: must be one of'),
    ({'data.resize_or_crop': 'scale_width'}, None, 'data.resize_or_crop: must be one of'),
    ({'model.generator.norm': 'group'}, None, 'model.generator.norm: must be one of'),
    ({'loss.gan_mode': 'wgan'}, None, 'loss.gan_mode: must be one of'),
    ({'first_frame.mode': 'zeros'}, None, 'first_frame.mode: must be one of'),
    ({'flow.source': 'dataset', 'data.flow_dir': ''}, None, 'data.flow_dir: must name a folder'),
    ({'train.niter_fix_global': 3}, None, 'train.niter_fix_global: (3) freezes the coarser'),
    ({'model.discriminator.n_frames_D': 1}, None, 'model.discriminator.n_frames_D: must be >= 2'),
    ({'model.discriminator.add_face_disc': True}, None, 'add_face_disc: needs the pose layout'),
    ({'model.dtype': 'float16'}, None, 'model.dtype: must be one of'),
    ({'data.fine_size': 128, 'data.resize_or_crop': 'scaleWidth_and_crop'}, None,
     'data.fine_size: the crop (128) cannot exceed'),
    ({'train.flow_warmup_steps': 10, 'flow.source': 'none'}, None,
     "train.flow_warmup_steps: (10) trains the flow terms, so it needs a flow source"),
    ({'train.flow_warmup_steps': -1}, None, 'train.flow_warmup_steps: must be >= 0'),
    ({'train.eval_every_steps': -5}, None, 'train.eval_every_steps: must be >= 0'),
    ({'train.eval_sequences': 0}, None, 'train.eval_sequences: must be >= 1'),
    ({'data.face.random_scale_points': True}, None,
     'data.face.random_scale_points: is not supported'),
    ({'first_frame.netE': 'kmeans'}, None, "first_frame.netE: only the original's 'simple'"),
    ({'first_frame.label_feat': True}, None, 'first_frame.label_feat: is not supported'),
    ({'first_frame.load_features': True}, None, 'first_frame.load_features: is not supported'),
    ({'eval.start_frame': -1}, None, 'eval.start_frame: must be >= 0'),
    ({'model.generator.n_frames_G': 1}, None, 'model.generator.n_frames_G: must be >= 2'),
])
def test_bad_combination_raises_naming_field(overrides, num_devices, message):
  with pytest.raises(config_lib.ConfigError) as info:
    config_lib.validate_config(_bad(**overrides), num_devices=num_devices)
  assert message in str(info.value)


def test_face_and_pose_channel_rules():
  face = _load('face_g1_256')
  face.data.face.no_dist_map = True
  with pytest.raises(config_lib.ConfigError, match=r'data.input_nc: the face layout gives 1'):
    config_lib.validate_config(face)
  face.data.input_nc = 1
  config_lib.validate_config(face)

  pose = _load('pose_256p')
  pose.data.pose.openpose_only = True
  pose.data.input_nc = 3
  with pytest.raises(config_lib.ConfigError, match=r'model.generator.no_flow: must be True'):
    config_lib.validate_config(pose)
  pose.model.generator.no_flow = True
  config_lib.validate_config(pose)
  pose.data.pose.densepose_only = True
  with pytest.raises(config_lib.ConfigError, match='at most one of them'):
    config_lib.validate_config(pose)


def test_all_errors_reported_at_once():
  config = _bad(**{'data.batch_size': 0, 'loss.gan_mode': 'x', 'train.lr': -1.0})
  errors = config_lib.config_errors(config)
  assert any(e.startswith('data.batch_size') for e in errors)
  assert any(e.startswith('loss.gan_mode') for e in errors)
  assert any(e.startswith('train.lr') for e in errors)


def test_valid_device_counts_pass():
  config = _load('demo')  # batch 2
  config_lib.validate_config(config, num_devices=2)
  config.sharding.spatial = 2
  config.data.load_size = 128  # 64-pixel-high frames split over 2 devices
  config_lib.validate_config(config, num_devices=2)


def test_sparse_d_is_accepted():
  config = _load('default')
  config.model.discriminator.sparse_D = True  # the original's --sparse_D windows
  config_lib.validate_config(config)

