"""Networks, parameters, optimizers and states of a training run."""

import flax
import jax
import jax.numpy as jnp
import numpy as np

from configs import demo
from vid2vid_jax import schedule as schedule_lib
from vid2vid_jax import train_state


def test_flow_head_lr_scale_scales_only_flow_head_updates():
  s = schedule_lib.Schedule(lr=1e-3, beta1=0.5, ttur=False, niter=1, niter_decay=0,
                            niter_step=5, n_frames_total=6, max_frames_backpropagate=1,
                            niter_fix_global=0)
  params = {'g': {'scale0': {'flow_head': {'kernel': jnp.ones((3,))},
                             'weight_head': {'kernel': jnp.ones((3,))}}},
            'd': {'w': jnp.ones((2,))}, 'd_t': {}}
  grads = jax.tree_util.tree_map(jnp.ones_like, params['g'])
  updates = {}
  for scale in (1.0, 0.05):
    tx = train_state.make_optimizers(s.__class__(**{**s.__dict__, 'flow_head_lr_scale': scale}),
                                   params)['g']
    state = tx.init(params['g'])
    state.hyperparams['learning_rate'] = jnp.float32(1e-3)  # as apply_gradients sets it
    updates[scale] = tx.update(grads, state, params['g'])[0]['scale0']
  np.testing.assert_allclose(updates[1.0]['flow_head']['kernel'], -1e-3, rtol=1e-4)
  np.testing.assert_allclose(updates[0.05]['flow_head']['kernel'], -5e-5, rtol=1e-4)
  np.testing.assert_allclose(updates[0.05]['weight_head']['kernel'], -1e-3, rtol=1e-4)


def test_flow_head_init_zeros_gives_identity_warps():
  config = demo.get_config()
  config.train.flow_head_init = 'zeros'
  models = train_state.build_models(config)
  params = train_state.init_params(models, jax.random.key(0), 1, 32, 64)['g']
  heads = [v for k, v in flax.traverse_util.flatten_dict(params).items() if 'flow_head' in k]
  others = [v for k, v in flax.traverse_util.flatten_dict(params).items()
            if 'weight_head' in k and k[-1] == 'kernel']
  assert heads and all(float(jnp.abs(v).max()) == 0.0 for v in heads)
  assert others and all(float(jnp.abs(v).max()) > 0.0 for v in others)
