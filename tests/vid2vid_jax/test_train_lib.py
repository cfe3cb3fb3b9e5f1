"""The training loop's host-side pieces that run without an input pipeline (the loop itself:
tests/test_train_eval.py)."""

import jax
import numpy as np
import pytest

from configs import demo
from vid2vid_jax import train_lib
from vid2vid_jax import train_state

B, H, W = 1, 16, 32


def tiny_config():
  config = demo.get_config()
  g = config.model.generator
  g.ngf, g.n_blocks, g.n_downsample_G, g.n_frames_G = 8, 1, 2, 3
  d = config.model.discriminator
  d.ndf, d.n_layers_D, d.num_D, d.n_frames_D, d.n_scales_temporal = 8, 2, 1, 2, 2
  return config


def test_init_from_grows_a_model_coarse_to_fine(tmp_path):
  """A 1-scale model's weights seed scale 0 of a 2-scale model; the new scale stays random."""
  from vid2vid_jax import checkpoint
  small = tiny_config()
  models = train_state.build_models(small)
  params = train_state.init_params(models, jax.random.PRNGKey(3), B, H, W)
  checkpoint.save_variables(tmp_path / 'imported', {
      'generator': {'params': params['g']}, 'discriminator': {'params': params['d']['image']},
      'temporal_discriminator_0': {'params': params['d_t']['0']}}, small)

  big = tiny_config()
  big.model.generator.n_scales_spatial = 2
  big_models = train_state.build_models(big)
  fresh = train_state.init_params(big_models, jax.random.PRNGKey(4), B, 2 * H, 2 * W)
  grown = train_lib.init_from(fresh, str(tmp_path / 'imported'))
  chex_equal = lambda a, b: all(np.array_equal(x, y) for x, y in zip(
      jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
  assert chex_equal(grown['g']['scale0'], params['g']['scale0'])
  assert chex_equal(grown['g']['scale1'], fresh['g']['scale1'])
  assert chex_equal(grown['d']['image'], params['d']['image'])
  assert chex_equal(grown['d_t']['0'], params['d_t']['0'])
  assert chex_equal(grown['d_t']['1'], fresh['d_t']['1'])
  checkpoint.save_variables(tmp_path / 'unrelated',
                            {'generator': {'params': {'other': np.zeros((3, 3), np.float32)}}})
  with pytest.raises(ValueError, match='no parameter matches'):
    train_lib.init_from(fresh, str(tmp_path / 'unrelated'))
