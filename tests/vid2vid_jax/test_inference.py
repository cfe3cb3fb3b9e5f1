"""Eval's first frames from a single-image generator ('single_g'), street and face models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from vid2vid_jax import checkpoint
from vid2vid_jax import inference
from vid2vid_jax.models import builders
from vid2vid_jax.models import first_frame

_H, _W = 32, 32


def _street_config(ckpt):
  config = default.get_config()
  config.data.label_nc, config.data.use_instance = 5, True
  f = config.first_frame
  f.mode, f.checkpoint, f.net = 'single_g', str(ckpt), 'global'
  f.ngf, f.n_downsample, f.n_blocks = 4, 2, 1
  return config


def _face_config(ckpt):
  config = default.get_config()
  config.data.label_nc, config.data.input_nc, config.data.use_instance = 0, 6, False
  f = config.first_frame
  f.mode, f.checkpoint, f.net = 'single_g', str(ckpt), 'global_with_features'
  f.ngf, f.n_downsample, f.n_blocks, f.feat_num, f.nef, f.n_downsample_E = 4, 2, 1, 3, 4, 2
  return config


def _frames(n, channels, seed, with_image=True):
  rng = np.random.default_rng(seed)
  frames = []
  for _ in range(n):
    frame = {'cond': rng.uniform(0, 1, (_H, _W, channels)).astype(np.float32)}
    if with_image:
      frame['image'] = rng.uniform(-1, 1, (_H, _W, 3)).astype(np.float32)
      inst = np.zeros((_H, _W), np.int32)
      inst[4:20, 6:26] = 1 + rng.integers(0, 3)
      inst[22:30, 2:12] = 5
      frame['inst'] = inst
    frames.append(frame)
  return frames


@pytest.mark.parametrize('with_edges', [False, True])
def test_single_g_street_feeds_the_channels_its_stem_takes(tmp_path, with_edges):
  """The original's first-frame models take the label maps without the instance-edge channel;
  checkpoints whose stem takes the edges as well get them."""
  config = _street_config(tmp_path / 'ckpt')
  model = builders.first_frame_generator_from_config(config)
  channels = 6 if with_edges else 5
  params = model.init(jax.random.key(0), jnp.zeros((1, _H, _W, channels)))['params']
  checkpoint.save_variables(tmp_path / 'ckpt', {'first_frame_generator': {'params': params}})
  context = _frames(2, 6, seed=1, with_image=False)
  made = inference._first_frame_fn(config)(context)  # pylint: disable=protected-access
  cond = np.stack([f['cond'] for f in context])[..., :channels]
  np.testing.assert_allclose(made, model.apply({'params': params}, cond), atol=1e-5)
  assert made.shape == (2, _H, _W, 3)


def test_single_g_face_encodes_and_uses_the_nearest_stored_features(tmp_path):
  config = _face_config(tmp_path / 'ckpt')
  model = builders.first_frame_generator_from_config(config)
  encoder = builders.feature_encoder_from_config(config)
  g_params = model.init(jax.random.key(0), jnp.zeros((1, _H, _W, 6)),
                        jnp.zeros((1, _H, _W, 3)))['params']
  e_params = encoder.init(jax.random.key(1), jnp.zeros((1, _H, _W, 3)),
                          jnp.zeros((1, _H, _W), jnp.int32))['params']
  rng = np.random.default_rng(2)
  bank = {i: rng.uniform(-1, 1, (4, 4)).astype(np.float32) for i in range(7)}
  checkpoint.save_variables(tmp_path / 'ckpt', {
      'first_frame_generator': {'params': g_params}, 'first_frame_encoder': {'params': e_params},
      'first_frame_features': {str(i): v for i, v in bank.items()}})
  context = _frames(2, 6, seed=3)
  made = inference._first_frame_fn(config)(context)  # pylint: disable=protected-access

  for k, frame in enumerate(context):
    encoded = encoder.apply({'params': e_params}, frame['image'][None], frame['inst'][None])[0]
    feat = first_frame.nearest_features(np.asarray(encoded), frame['inst'], bank)
    # Every instance carries one row of its own stored table.
    for i in np.unique(frame['inst']):
      rows = bank[i][:, :3]
      assert any(np.allclose(feat[frame['inst'] == i], row) for row in rows)
    want = model.apply({'params': g_params}, frame['cond'][None], feat[None])[0]
    np.testing.assert_allclose(made[k], want, atol=1e-5)

  with pytest.raises(ValueError, match='inst'):
    inference._first_frame_fn(config)(  # pylint: disable=protected-access
        [{k: v for k, v in f.items() if k != 'inst'} for f in context])
  bad = [dict(f, inst=np.full((_H, _W), 9, np.int32)) for f in context]
  with pytest.raises(ValueError, match='num_instance_ids'):
    inference._first_frame_fn(config)(bad)  # pylint: disable=protected-access


def test_single_g_face_needs_the_encoder_in_the_checkpoint(tmp_path):
  config = _face_config(tmp_path / 'ckpt')
  model = builders.first_frame_generator_from_config(config)
  g_params = model.init(jax.random.key(0), jnp.zeros((1, _H, _W, 6)),
                        jnp.zeros((1, _H, _W, 3)))['params']
  checkpoint.save_variables(tmp_path / 'ckpt', {'first_frame_generator': {'params': g_params}})
  with pytest.raises(ValueError, match='first_frame_encoder'):
    inference._first_frame_fn(config)  # pylint: disable=protected-access
