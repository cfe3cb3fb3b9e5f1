"""Discriminators: layer shapes, face crop, gradients, bfloat16."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vid2vid_jax.models import discriminator as disc_lib


def test_nlayer_spatial_sizes_follow_the_spec():
  model = disc_lib.NLayerDiscriminator(ndf=4, n_layers=3, norm='batch')
  feats = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x)[0],
                         jax.ShapeDtypeStruct((1, 256, 256, 6), jnp.float32))
  assert [f.shape[1] for f in feats] == [129, 65, 33, 34, 35]
  assert [f.shape[-1] for f in feats] == [4, 8, 16, 32, 1]


def test_multiscale_order_widths_and_cap():
  model = disc_lib.MultiscaleDiscriminator(ndf=32, n_layers=2, num_D=3, norm='instance')
  x = jnp.zeros((2, 32, 48, 5))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)['params']
  assert set(variables) == {'d0', 'd1', 'd2'}
  assert [variables[f'd{k}']['conv0']['kernel'].shape[-1] for k in range(3)] == [32, 64, 64]
  outs = jax.eval_shape(model.apply, {'params': variables}, x)
  assert [o[-1].shape for o in outs] == [(2, 11, 15, 1), (2, 7, 9, 1), (2, 5, 6, 1)]


def test_face_crop_centre_and_clamp():
  mask = np.zeros((2, 32, 40), bool)
  mask[0, 10:13, 20:23] = True
  mask[1, 14:15, 30:31] = True
  images = [jnp.arange(2 * 32 * 40, dtype=jnp.float32).reshape(2, 32, 40, 1)]
  crops, has_face = jax.jit(functools.partial(disc_lib.face_crop, size=9))(images, mask)
  assert bool(has_face) and crops[0].shape == (2, 8, 8, 1)
  # bbox rows 10..14 -> centre 12, cols 20..30 -> centre 25; crop [8, 16) x [21, 29).
  np.testing.assert_array_equal(crops[0][0, :, :, 0], images[0][0, 8:16, 21:29, 0])
  mask2 = np.zeros((1, 32, 40), bool)
  mask2[0, 0, 39] = True  # corner: clamped inside
  crops2, _ = disc_lib.face_crop([images[0][:1]], mask2, 9)
  np.testing.assert_array_equal(crops2[0][0, :, :, 0], images[0][0, 0:8, 32:40, 0])
  _, none = disc_lib.face_crop([images[0][:1]], np.zeros((1, 32, 40), bool), 9)
  assert not bool(none)
  cond = (-jnp.ones((1, 4, 4, 3))).at[0, 1, 2, 2].set(1.0)
  assert int(disc_lib.face_mask_from_pose(cond).sum()) == 1


@pytest.fixture(scope='module')
def tiny_d():
  model = disc_lib.MultiscaleDiscriminator(ndf=4, n_layers=2, num_D=2, norm='batch')
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 3)), jnp.float32)
  return model, model.init(jax.random.key(0), x), x


def _d_loss(model, params, x):
  outs = model.apply({'params': params}, x)
  return sum(jnp.mean((o[-1] - 1.0) ** 2) + sum(jnp.mean(jnp.abs(f)) for f in o[:-1])
             for o in outs)


def test_discriminator_gradients_match_finite_differences(tiny_d):
  model, variables, x = tiny_d
  with jax.enable_x64(True):
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables['params'])
    x64 = jnp.asarray(x, jnp.float64)
    model64 = model.clone(dtype=jnp.float64)
    loss = jax.jit(functools.partial(_d_loss, model64))
    grads = jax.grad(functools.partial(_d_loss, model64))(params, x64)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    rng = np.random.default_rng(1)
    direction = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape)), params)
    eps = 1e-6
    shift = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * eps * d, params, direction)
    numeric = (loss(shift(1), x64) - loss(shift(-1), x64)) / (2 * eps)
    analytic = sum(jnp.vdot(g, d) for g, d in zip(leaves, jax.tree_util.tree_leaves(direction)))
    np.testing.assert_allclose(float(numeric), float(analytic), rtol=1e-4)


def test_discriminator_bfloat16_close_to_float32(tiny_d):
  model, variables, x = tiny_d
  out32 = model.apply(variables, x)
  out16 = model.clone(dtype=jnp.bfloat16).apply(variables, x)
  for o32, o16 in zip(out32, out16):
    a, b = np.asarray(o32[-1], np.float64), np.asarray(o16[-1], np.float64)
    assert o16[-1].dtype == jnp.float32
    assert np.linalg.norm(a - b) / np.linalg.norm(a) <= 2e-2
