"""Losses: GAN and feature matching against the original's stored D outputs, formulas, assembly."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vid2vid_jax import losses

DISC_CASES = ('disc_ms_ls', 'disc_ms_batch')


def _rel_err(ours, ref):
  return abs(float(ours) - float(ref)) / abs(float(ref))


def _load_disc_case(root, name):
  """(pred_real, pred_fake, io, case): D outputs as NHWC multiscale lists, full resolution first."""
  manifest = json.loads((root / 'manifest.json').read_text())
  case = next(c for c in manifest['cases'] if c['name'] == name)
  io = np.load(root / case['dir'] / 'io.npz')
  preds = {}
  for which in ('real', 'fake'):
    scales = []
    for i in range(case['num_D']):
      layers = []
      for j in range(case['n_layers_D'] + 2):
        layers.append(jnp.asarray(io[f'pred_{which}_D{i}_layer{j}'].transpose(0, 2, 3, 1)))
      scales.append(layers)
    preds[which] = scales
  return preds['real'], preds['fake'], io, case


@pytest.mark.parametrize('name', DISC_CASES)
def test_lsgan_and_feature_matching_match_fixture(vid2vid_fixtures, name):
  pred_real, pred_fake, io, case = _load_disc_case(vid2vid_fixtures, name)
  assert case['gan_mode'] == 'ls'
  assert _rel_err(losses.gan_loss(pred_real, True, 'ls', True), io['loss_D_real']) <= 1e-5
  assert _rel_err(losses.gan_loss(pred_fake, False, 'ls', True), io['loss_D_fake']) <= 1e-5
  assert _rel_err(losses.gan_loss(pred_fake, True, 'ls', False), io['loss_G_gan']) <= 1e-5
  feat = losses.feature_matching_loss(pred_fake, pred_real, case['num_D'], case['n_layers_D'])
  assert _rel_err(feat, io['loss_G_feat_unweighted_by_lambda']) <= 1e-5


@pytest.mark.parametrize('name', DISC_CASES)
def test_assembly_reproduces_fixture_terms(vid2vid_fixtures, name):
  pred_real, pred_fake, io, case = _load_disc_case(vid2vid_fixtures, name)
  weights = losses.LossWeights(num_D=case['num_D'], n_layers_D=case['n_layers_D'],
                               use_vgg=False, no_flow=True, lambda_feat=10.0)
  frame = jnp.zeros((1, 8, 8, 3))
  g = losses.generator_loss_terms(weights, real=frame, fake=frame, fake_raw=None,
                                  d_real=pred_real, d_fake=pred_fake, d_fake_raw=None)
  assert set(g) == {'g/gan', 'g/gan_feat'}
  assert _rel_err(g['g/gan'], io['loss_G_gan']) <= 1e-5
  assert _rel_err(g['g/gan_feat'], 10.0 * io['loss_G_feat_unweighted_by_lambda']) <= 1e-5
  d = losses.discriminator_loss_terms(weights, d_real=pred_real, d_fake=pred_fake, d_fake_raw=None)
  assert _rel_err(d['d/real'], io['loss_D_real']) <= 1e-5
  assert _rel_err(d['d/fake'], io['loss_D_fake']) <= 1e-5
  expected_d = 0.5 * (io['loss_D_real'] + io['loss_D_fake'])
  assert _rel_err(losses.discriminator_totals(d)['d'], expected_d) <= 1e-5


def _toy_preds():
  # Two scales; last map of each = logits.
  p0 = jnp.array([-2.0, 0.5, 1.5, 0.0]).reshape(1, 2, 2, 1)
  p1 = jnp.array([3.0, -0.5]).reshape(1, 1, 2, 1)
  return [[jnp.ones((1, 2, 2, 4)), p0], [p1]], (np.asarray(p0).ravel(), np.asarray(p1).ravel())


def test_hinge_formulas():
  preds, (p0, p1) = _toy_preds()
  relu = lambda v: np.maximum(v, 0.0)
  d_real = relu(1 - p0).mean() + relu(1 - p1).mean()
  d_fake = relu(1 + p0).mean() + relu(1 + p1).mean()
  g = -p0.mean() - p1.mean()
  np.testing.assert_allclose(losses.gan_loss(preds, True, 'hinge', True), d_real, rtol=1e-6)
  np.testing.assert_allclose(losses.gan_loss(preds, False, 'hinge', True), d_fake, rtol=1e-6)
  np.testing.assert_allclose(losses.gan_loss(preds, True, 'hinge', False), g, rtol=1e-6)
  with pytest.raises(ValueError, match='hinge'):
    losses.gan_loss(preds, False, 'hinge', for_discriminator=False)


@pytest.mark.parametrize('mode', ['vanilla', 'original'])
def test_vanilla_bce_formulas(mode):
  preds, (p0, p1) = _toy_preds()
  sig = lambda v: 1.0 / (1.0 + np.exp(-v))
  real = -np.log(sig(p0)).mean() - np.log(sig(p1)).mean()
  fake = -np.log(1 - sig(p0)).mean() - np.log(1 - sig(p1)).mean()
  for for_d in (True, False):
    np.testing.assert_allclose(losses.gan_loss(preds, True, mode, for_d), real, rtol=1e-6)
  np.testing.assert_allclose(losses.gan_loss(preds, False, mode, True), fake, rtol=1e-6)


def test_ls_formula_and_bad_mode():
  preds, (p0, p1) = _toy_preds()
  # summed over scales (docs/quirks.md#gan-scale-sum)
  expected = ((p0 - 1) ** 2).mean() + ((p1 - 1) ** 2).mean()
  np.testing.assert_allclose(losses.gan_loss(preds, True, 'ls'), expected, rtol=1e-6)
  with pytest.raises(ValueError, match='gan mode'):
    losses.gan_loss(preds, True, 'wgan')
  with pytest.raises(ValueError, match='multiscale'):
    losses.gan_loss(jnp.zeros((1, 2, 2, 1)), True)


def test_feature_matching_scales_weights_and_stop_gradient():
  rng = np.random.default_rng(0)
  make = lambda: [[jnp.asarray(rng.normal(size=(1, 4, 4, 2)), jnp.float32) for _ in range(3)]
                  for _ in range(2)]
  fake, real = make(), make()
  # Face D style: 2 scales, num_D = 3 -> D_weight 1/3 over both scales; n_layers_D = 1 -> 4/2.
  expected = sum((1 / 3) * 2.0 * np.abs(np.asarray(fake[i][j]) - np.asarray(real[i][j])).mean()
                 for i in range(2) for j in range(2))
  np.testing.assert_allclose(losses.feature_matching_loss(fake, real, 3, 1), expected, rtol=1e-6)
  # num_D = 1 uses only the first (full-resolution) scale.
  first = sum(np.abs(np.asarray(fake[0][j]) - np.asarray(real[0][j])).mean() for j in range(2))
  np.testing.assert_allclose(losses.feature_matching_loss(fake, real, 1, 3), first, rtol=1e-6)
  grad_real = jax.grad(lambda r: losses.feature_matching_loss(fake, r, 2, 3))(real)
  assert all(float(jnp.abs(g).max()) == 0.0 for scale in grad_real for g in scale)
  grad_fake = jax.grad(lambda f: losses.feature_matching_loss(f, real, 2, 3))(fake)
  assert float(jnp.abs(grad_fake[0][0]).max()) > 0.0
  assert float(jnp.abs(grad_fake[0][-1]).max()) == 0.0  # the prediction map is excluded


def test_masked_l1_normalises_by_all_elements():
  x = jnp.ones((2, 4, 4, 3))
  y = jnp.zeros((2, 4, 4, 3))
  mask = jnp.zeros((2, 4, 4, 1)).at[:, :2].set(1.0)  # half of the pixels
  np.testing.assert_allclose(losses.masked_l1(x, y, mask), 0.5, rtol=1e-6)
  np.testing.assert_allclose(losses.masked_l1(x, y, jnp.broadcast_to(mask, x.shape)), 0.5)
  with pytest.raises(ValueError, match='mask'):
    losses.masked_l1(x, y, jnp.ones((2, 4, 4, 2)))
  with pytest.raises(ValueError, match='differ'):
    losses.masked_l1(x, y[..., :1], mask)


def _shifted_pair(dx=2, dy=-1, shape=(2, 12, 16, 3)):
  """prev, cur with cur[y, x] = prev[y + dy, x + dx] where inside, a conf mask of those pixels."""
  b, h, w, c = shape
  prev = np.random.default_rng(1).uniform(-1, 1, size=shape).astype(np.float32)
  cur = np.zeros_like(prev)
  conf = np.zeros((b, h, w, 1), np.float32)
  for y in range(h):
    for x in range(w):
      if 0 <= y + dy < h and 0 <= x + dx < w:
        cur[:, y, x] = prev[:, y + dy, x + dx]
        conf[:, y, x] = 1.0
  flow = np.zeros((b, h, w, 2), np.float32)
  flow[..., 0], flow[..., 1] = dx, dy
  return jnp.asarray(prev), jnp.asarray(cur), jnp.asarray(flow), jnp.asarray(conf)


def test_warp_loss_zero_for_exact_flow():
  prev, cur, flow, conf = _shifted_pair()
  assert float(losses.warp_loss(prev, cur, flow, conf)) < 1e-7
  assert float(losses.warp_loss(prev, cur, jnp.zeros_like(flow), conf)) > 0.1
  # [B, T, H, W, C] inputs are flattened like the original's (B*T, ...) reshape.
  five = lambda a: a.reshape((1,) + a.shape)
  assert float(losses.warp_loss(five(prev), five(cur), five(flow), five(conf))) < 1e-7
  # fake_warp_loss with fake = cur, fake_prev = prev: also zero, and no gradient into fake_prev.
  assert float(losses.fake_warp_loss(cur, prev, flow, conf)) < 1e-7
  grad_prev = jax.grad(lambda p: losses.fake_warp_loss(cur + 0.5, p, flow, conf))(prev)
  assert float(jnp.abs(grad_prev).max()) == 0.0


def test_flow_and_mask_losses():
  flow = jnp.full((1, 4, 4, 2), 3.0)
  conf = jnp.ones((1, 4, 4, 1))
  np.testing.assert_allclose(losses.flow_loss(flow, jnp.zeros_like(flow), conf), 3.0)
  weight = jnp.full((1, 4, 4, 1), 0.25)
  np.testing.assert_allclose(losses.mask_loss(weight, conf.at[:, :2].set(0.0)), 0.125)
  # The occlusion term looks only where conf is 0 (half the pixels), against a weight of 1.
  np.testing.assert_allclose(losses.occlusion_loss(weight, conf.at[:, :2].set(0.0)), 0.375)
  np.testing.assert_allclose(losses.occlusion_loss(weight, conf), 0.0)


def test_occlusion_term_weighted_and_only_when_on():
  prev, cur, flow, conf = _shifted_pair()
  conf = conf.at[..., :3, :].set(0.0)
  weight = jnp.full(conf.shape, 0.2)
  kw = dict(real=cur, fake=cur, fake_raw=None, d_real=_toy_preds()[0], d_fake=_toy_preds()[0],
            d_fake_raw=None, flow=flow, weight=weight, real_prev=prev, flow_ref=flow,
            conf_ref=conf)
  off = losses.generator_loss_terms(losses.LossWeights(n_layers_D=1, use_gan_feat=False,
                                                       use_vgg=False), **kw)
  assert 'g/occlusion' not in off
  on = losses.generator_loss_terms(losses.LossWeights(
      n_layers_D=1, use_gan_feat=False, use_vgg=False, lambda_occlusion=7.0), **kw)
  np.testing.assert_allclose(on['g/occlusion'], 7.0 * losses.occlusion_loss(weight, conf),
                             rtol=1e-6)
  assert float(on['g/occlusion']) > 0


def _vgg_stub(x, y):
  return jnp.mean(jnp.abs(x - y))


def test_generator_terms_and_totals():
  prev, cur, flow, conf = _shifted_pair()
  rng = np.random.default_rng(2)
  fake = jnp.asarray(rng.uniform(-1, 1, cur.shape), jnp.float32)
  fake_raw = jnp.asarray(rng.uniform(-1, 1, cur.shape), jnp.float32)
  weight = jnp.full(conf.shape, 0.5)
  preds, _ = _toy_preds()
  preds_b = [[2 * m for m in s] for s in preds]
  w = losses.LossWeights(gan_mode='ls', lambda_feat=10.0, lambda_T=5.0, lambda_F=8.0,
                         n_scales_spatial=3, num_D=2, n_layers_D=1, use_mask_loss=True)
  terms = losses.generator_loss_terms(
      w, real=cur, fake=fake, fake_raw=fake_raw, d_real=preds, d_fake=preds_b, d_fake_raw=preds,
      vgg_fn=_vgg_stub, flow=flow + 1.0, weight=weight, real_prev=prev, fake_prev=prev,
      flow_ref=flow, conf_ref=conf, d_face_real=preds, d_face_fake=preds_b,
      face_valid=jnp.float32(1.0))
  assert set(terms) == {'g/gan', 'g/gan_feat', 'g/vgg', 'g/flow', 'g/warp', 'g/mask',
                        'g/fake_warp', 'g/face_gan', 'g/face_gan_feat'}
  gan = lambda p: losses.gan_loss(p, True, 'ls', False)
  fm = lambda p: losses.feature_matching_loss(p, preds, 2, 1)
  np.testing.assert_allclose(terms['g/gan'], gan(preds_b) + gan(preds), rtol=1e-6)
  np.testing.assert_allclose(terms['g/gan_feat'], 10 * (fm(preds_b) + fm(preds)), rtol=1e-6)
  np.testing.assert_allclose(terms['g/vgg'], 10 * (_vgg_stub(fake, cur) + _vgg_stub(fake_raw, cur)),
                             rtol=1e-6)
  np.testing.assert_allclose(terms['g/flow'], 8.0 / 4 * float(jnp.mean(conf)), rtol=1e-6)
  np.testing.assert_allclose(terms['g/warp'], 5 * losses.warp_loss(prev, cur, flow + 1, conf),
                             rtol=1e-6)
  np.testing.assert_allclose(terms['g/mask'], 0.5 * float(jnp.mean(conf)), rtol=1e-6)
  np.testing.assert_allclose(terms['g/fake_warp'], 5 * losses.masked_l1(fake, cur, conf), rtol=1e-5)
  np.testing.assert_allclose(terms['g/face_gan'], 2 * gan(preds_b), rtol=1e-6)
  np.testing.assert_allclose(terms['g/face_gan_feat'], 2 * 10 * fm(preds_b), rtol=1e-6)
  # loss_G sums the 'g/' terms only.
  np.testing.assert_allclose(losses.total_generator_loss({**terms, 'd/real': 100.0}),
                             sum(float(v) for v in terms.values()), rtol=1e-6)

  # Switches: no_flow drops flow/warp/mask; no face when face_valid = 0.
  w_off = losses.LossWeights(no_flow=True, use_vgg=False, use_gan_feat=False)
  off = losses.generator_loss_terms(
      w_off, real=cur, fake=fake, fake_raw=fake, d_real=preds, d_fake=preds, d_fake_raw=preds,
      d_face_real=preds, d_face_fake=preds_b, face_valid=jnp.float32(0.0))
  assert set(off) == {'g/gan', 'g/face_gan'}
  assert float(off['g/face_gan']) == 0.0


def test_generator_terms_loud_errors():
  x = jnp.zeros((1, 8, 8, 3))
  preds, _ = _toy_preds()
  kw = dict(real=x, fake=x, fake_raw=x, d_real=preds, d_fake=preds, d_fake_raw=preds)
  with pytest.raises(ValueError, match='use_vgg'):
    losses.generator_loss_terms(losses.LossWeights(no_flow=True), **kw)
  with pytest.raises(ValueError, match='flow'):
    losses.generator_loss_terms(losses.LossWeights(use_vgg=False), **kw)
  with pytest.raises(ValueError, match='gan_mode'):
    losses.LossWeights(gan_mode='wgan')


def test_discriminator_terms_original_formula():
  preds, _ = _toy_preds()
  fake = [[m - 1 for m in s] for s in preds]
  raw = [[m + 1 for m in s] for s in preds]
  w = losses.LossWeights(gan_mode='hinge')
  terms = losses.discriminator_loss_terms(
      w, d_real=preds, d_fake=fake, d_fake_raw=raw, d_face_real=preds, d_face_fake=fake)
  real_1 = losses.gan_loss(preds, True, 'hinge', True)
  terms.update({'d_t0/real': real_1, 'd_t0/fake': losses.gan_loss(fake, False, 'hinge', True)})
  fake_f = losses.gan_loss(fake, False, 'hinge', True)
  fake_r = losses.gan_loss(raw, False, 'hinge', True)
  totals = losses.discriminator_totals(terms)
  assert set(totals) == {'d', 'd_t0'}
  # docs/quirks.md#double-real-term: loss_D = 0.5 * (D_fake(final) + D_fake(raw)) + D_real,
  # plus the face D's half-sum.
  face = 0.5 * (real_1 + fake_f)
  np.testing.assert_allclose(totals['d'], 0.5 * (fake_f + fake_r) + real_1 + face, rtol=1e-6)
  np.testing.assert_allclose(totals['d_t0'], 0.5 * (real_1 + fake_f), rtol=1e-6)


def test_loss_weights_from_config():
  config = importlib.import_module('configs.default').get_config()
  config.loss.gan_mode = 'hinge'
  w = losses.loss_weights_from_config(config)
  assert (w.gan_mode, w.lambda_feat, w.lambda_T, w.lambda_F) == ('hinge', 10.0, 10.0, 10.0)
  assert (w.num_D, w.n_layers_D, w.face_weight, w.use_mask_loss) == (2, 3, 2.0, False)
  config.compat.lsgan_always = True  # docs/quirks.md#gan-mode
  config.first_frame.mode = 'generate'
  w = losses.loss_weights_from_config(config)
  assert w.gan_mode == 'ls' and w.use_mask_loss and w.lambda_mask == 1.0
  config.first_frame.mode = 'real'
  config.loss.lambda_mask = 10.0  # the W term on its own, with its weight
  w = losses.loss_weights_from_config(config)
  assert w.use_mask_loss and w.lambda_mask == 10.0
  assert w.lambda_occlusion == 0.0  # ours, off by default
  config.loss.lambda_occlusion = 3.0
  assert losses.loss_weights_from_config(config).lambda_occlusion == 3.0


def test_jitted_total_has_finite_gradients_into_generator_outputs():
  prev, cur, flow, conf = _shifted_pair()
  preds, _ = _toy_preds()
  w = losses.LossWeights(n_layers_D=1, use_mask_loss=True)

  @jax.jit
  def loss_fn(fake, flow_g, weight, vgg_scale):
    vgg_fn = lambda x, y: vgg_scale * _vgg_stub(x, y)  # stands in for partial(vgg_loss, params)
    d_fake = [[m + jnp.mean(fake) for m in s] for s in preds]
    terms = losses.generator_loss_terms(
        w, real=cur, fake=fake, fake_raw=fake, d_real=preds, d_fake=d_fake, d_fake_raw=d_fake,
        vgg_fn=vgg_fn, flow=flow_g, weight=weight, real_prev=prev, fake_prev=prev,
        flow_ref=flow, conf_ref=conf)
    return losses.total_generator_loss(terms)

  args = (cur + 0.1, flow + 0.3, jnp.full(conf.shape, 0.5), jnp.float32(1.0))
  grads = jax.grad(loss_fn, argnums=(0, 1, 2))(*args)
  for g in grads:
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0.0


def test_pixel_l1_and_l2_terms_are_off_by_default_and_weighted():
  import numpy as np
  from vid2vid_jax import losses
  rng = np.random.default_rng(0)
  real = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
  fake = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
  pred = [[np.zeros((2, 4, 4, 1), np.float32)]]
  common = dict(real=real, fake=fake, fake_raw=real, d_real=pred, d_fake=pred, d_fake_raw=pred)
  off = losses.generator_loss_terms(
      losses.LossWeights(use_vgg=False, no_flow=True), **common)
  assert 'g/l1' not in off
  on = losses.generator_loss_terms(
      losses.LossWeights(use_vgg=False, no_flow=True, lambda_l1=3.0), **common)
  np.testing.assert_allclose(on['g/l1'], 3.0 * np.mean(np.abs(fake - real)), rtol=1e-6)
  assert 'g/l2' not in on
  both = losses.generator_loss_terms(
      losses.LossWeights(use_vgg=False, no_flow=True, lambda_l2=2.0), **common)
  np.testing.assert_allclose(both['g/l2'], 2.0 * np.mean(np.square(fake - real)), rtol=1e-6)
