"""First-frame generators: shapes, param layout, parity with the fixtures' weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vid2vid_jax import original_checkpoint
from vid2vid_jax import original_options
from vid2vid_jax.models import builders
from vid2vid_jax.models import first_frame


def test_global_generator_caps_width_at_1024():
  model = first_frame.GlobalGenerator(ngf=256, n_downsample=3, n_blocks=1, norm='instance')
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 16, 16, 5)))['params']
  assert shapes['encoder']['down2']['kernel'].shape == (3, 3, 1024, 1024)
  assert shapes['decoder']['up0']['kernel'].shape == (3, 3, 1024, 1024)
  assert shapes['head']['kernel'].shape == (7, 7, 256, 3)


def test_local_enhancer_layout_and_range():
  model = first_frame.LocalEnhancer(ngf=4, n_downsample_global=2, n_blocks_global=1,
                                    n_local_enhancers=2, n_blocks_local=1, norm='batch')
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)), jnp.float32)
  variables = model.init(jax.random.key(0), x)
  out = model.apply(variables, x)
  assert out.shape == (1, 32, 32, 3) and np.all(np.abs(out) <= 1)
  assert set(variables['params']) == {
      'global_generator', 'enhancer1_encoder', 'enhancer1_decoder', 'enhancer2_encoder',
      'enhancer2_decoder', 'head'}
  assert variables['params']['global_generator']['encoder']['stem']['kernel'].shape[-1] == 16


@pytest.mark.parametrize('case', ['single_global', 'single_local'])
def test_fixture_parity_from_npz_weights(vid2vid_fixtures, case):
  case_dir = vid2vid_fixtures / case
  options = original_options.read_opt_txt(case_dir / 'opt.txt')
  options['netG'] = case.split('_')[1]
  config, variables = original_checkpoint.import_state_dicts(
      {'G': original_checkpoint.read_state_dict(case_dir / 'latest_net_G_weights.npz')}, options)
  with np.load(case_dir / 'io.npz') as io:
    x, ref = np.moveaxis(io['input'], 1, -1), np.moveaxis(io['output'], 1, -1)
  out = builders.first_frame_generator_from_config(config).apply(
      variables['first_frame_generator'], jnp.asarray(x))
  assert np.linalg.norm(out - ref) / np.linalg.norm(ref) <= 1e-4
