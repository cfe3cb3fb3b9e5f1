"""vid2vid losses: GAN, discriminator feature matching, flow, warp, mask, and their totals.

Pure functions of arrays (NHWC); nothing here reads a config except
:func:`loss_weights_from_config`, which turns one into the frozen :class:`LossWeights` that the
assembly functions take. Formulas follow docs/original_behaviour.md#losses; the original's
quirks that are kept are cited where they happen (docs/quirks.md).

Conventions:
  * A *multiscale D output* (``MultiscaleOutput``) is what our multi-scale discriminators return:
    a list over scales, full resolution first, each a list of NHWC feature maps whose last entry
    is the patch prediction (raw logits). A scale may also be a bare array (the prediction only,
    as a D built without intermediate features returns).
  * Every term in the dicts built here is already multiplied by its lambda, exactly like the
    original's logged losses, so :func:`total_generator_loss` is a plain sum. Keys name the
    original's terms: ``g/gan`` is G_GAN, ``d/real`` is D_real, and so on (see
    :func:`generator_loss_terms`).
  * All losses are computed and returned in float32, whatever the activation dtype.

The perceptual (VGG19) loss lives in ``vid2vid_jax/vgg.py``; the assembly takes it as a callable
``vgg_fn(x, y) -> scalar`` so that the frozen VGG parameters stay a traced argument of the step.
"""

import dataclasses
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

from vid2vid_jax.warp import warp

Array = jax.Array
# List over D scales (full resolution first) of lists of NHWC maps; last map = prediction.
MultiscaleOutput = Sequence[Union[Sequence[Array], Array]]
# vgg_fn(x, y): perceptual loss of x against the (stop-gradient) target y, both [N, H, W, 3].
VggLossFn = Callable[[Array, Array], Array]

GAN_MODES = ('ls', 'original', 'vanilla', 'hinge')


# ----------------------------------------------------------------------------- GAN terms


def _predictions(preds: MultiscaleOutput) -> list[Array]:
  """The last map (patch logits) of every scale, as float32."""
  if hasattr(preds, 'shape') or not len(preds):
    raise ValueError(
        'expected a multiscale D output: a non-empty list over scales of lists of feature maps; '
        f'got {type(preds).__name__}')
  out = []
  for i, scale in enumerate(preds):
    if isinstance(scale, (list, tuple)):
      if not scale:
        raise ValueError(f'D output scale {i} is an empty list')
      scale = scale[-1]
    out.append(jnp.asarray(scale, jnp.float32))
  return out


def gan_loss(preds: MultiscaleOutput, target_is_real: bool, mode: str = 'ls',
             for_discriminator: bool = True) -> Array:
  """Adversarial loss of a multi-scale D output, summed over scales.

  The per-scale losses are summed, not averaged (docs/quirks.md#gan-scale-sum). The original
  always uses 'ls' whatever its ``--gan_mode`` says (docs/quirks.md#gan-mode); callers pass
  ``mode='ls'`` to restore that (``config.compat.lsgan_always``).

  Args:
    preds: multiscale D output (see module docstring); only each scale's last map, the patch
      logits [N, h_i, w_i, 1] (unbounded), is used.
    target_is_real: True for real data (D) and for the generator's term; False for D on fakes.
    mode: 'ls': mean((p - t)^2) with t = 1 (real) or 0 (fake). 'original' or 'vanilla': binary
      cross-entropy with logits, mean over elements. 'hinge': for the discriminator
      mean(relu(1 - p)) on real and mean(relu(1 + p)) on fake; for the generator -mean(p).
    for_discriminator: whether the loss trains D (only 'hinge' distinguishes the two).

  Returns:
    Scalar float32 >= 0 (hinge for the generator may be negative).
  """
  if mode not in GAN_MODES:
    raise ValueError(f'gan mode must be one of {GAN_MODES}; got {mode!r}')
  if mode == 'hinge' and not for_discriminator and not target_is_real:
    raise ValueError('the hinge generator loss is defined only for target_is_real=True')
  total = jnp.zeros((), jnp.float32)
  for p in _predictions(preds):
    if mode == 'ls':
      target = 1.0 if target_is_real else 0.0
      total += jnp.mean(jnp.square(p - target))
    elif mode in ('original', 'vanilla'):
      # -log(sigmoid(p)) = softplus(-p); -log(1 - sigmoid(p)) = softplus(p).
      total += jnp.mean(jax.nn.softplus(-p if target_is_real else p))
    elif for_discriminator:
      total += jnp.mean(jax.nn.relu(1.0 - p if target_is_real else 1.0 + p))
    else:
      total += -jnp.mean(p)
  return total


def feature_matching_loss(fake_feats: MultiscaleOutput, real_feats: MultiscaleOutput,
                          num_D: int, n_layers_D: int) -> Array:
  """Discriminator feature-matching L1, without lambda_feat.

  sum over scales i < min(#scales, num_D) and layers j < last of
  (1 / num_D) * (4 / (n_layers_D + 1)) * mean|F_ij(fake) - stop_gradient(F_ij(real))|.
  The face D has fewer scales than num_D but keeps the 1/num_D weight, as in the original.

  Args:
    fake_feats: multiscale D output on the fake input; every scale a list of NHWC maps
      [N, h_ij, w_ij, c_ij] (LeakyReLU outputs, unbounded), last = prediction (excluded).
    real_feats: the same structure on the real input; gradients are stopped.
    num_D: the D's configured number of scales (weight 1 / num_D), >= 1.
    n_layers_D: the D's configured conv layers per scale (weight 4 / (n_layers_D + 1)), >= 1.

  Returns:
    Scalar float32 >= 0.
  """
  if num_D < 1 or n_layers_D < 1:
    raise ValueError(f'num_D and n_layers_D must be >= 1; got {num_D}, {n_layers_D}')
  if len(fake_feats) != len(real_feats):
    raise ValueError(
        f'fake and real D outputs have {len(fake_feats)} and {len(real_feats)} scales')
  weight = (1.0 / num_D) * (4.0 / (n_layers_D + 1))
  total = jnp.zeros((), jnp.float32)
  for i in range(min(len(fake_feats), num_D)):
    fake_scale, real_scale = fake_feats[i], real_feats[i]
    if not isinstance(fake_scale, (list, tuple)) or not isinstance(real_scale, (list, tuple)):
      raise ValueError(
          f'feature matching needs the intermediate D features; scale {i} is a bare prediction')
    if len(fake_scale) != len(real_scale):
      raise ValueError(f'scale {i}: fake has {len(fake_scale)} maps, real {len(real_scale)}')
    for j in range(len(fake_scale) - 1):
      fake = jnp.asarray(fake_scale[j], jnp.float32)
      real = jax.lax.stop_gradient(jnp.asarray(real_scale[j], jnp.float32))
      if fake.shape != real.shape:
        raise ValueError(f'scale {i} layer {j}: fake {fake.shape} vs real {real.shape}')
      total += weight * jnp.mean(jnp.abs(fake - real))
  return total


# ----------------------------------------------------------------------------- per-frame terms


def masked_l1(x: Array, y: Array, mask: Array) -> Array:
  """Masked L1 of the original (docs/quirks.md#masked-l1-mean).

  mean over ALL elements of |x * mask - y * mask|: normalised by the element count, not by the
  mask area.

  Args:
    x: [..., H, W, C] float.
    y: same shape as ``x``.
    mask: [..., H, W, 1] (broadcast over channels) or [..., H, W, C], typically in [0, 1].

  Returns:
    Scalar float32 >= 0.
  """
  if x.shape != y.shape:
    raise ValueError(f'masked_l1: x {x.shape} and y {y.shape} differ')
  if mask.ndim != x.ndim or mask.shape[:-1] != x.shape[:-1] or mask.shape[-1] not in (1,
                                                                                      x.shape[-1]):
    raise ValueError(f'masked_l1: mask {mask.shape} must be [..., 1] or equal to x {x.shape}')
  x, y, mask = (jnp.asarray(a, jnp.float32) for a in (x, y, mask))
  mask = jnp.broadcast_to(mask, x.shape)
  return jnp.mean(jnp.abs(x * mask - y * mask))


def _flat4(a: Array, name: str) -> Array:
  """[..., H, W, C] with >= 1 leading dims -> [N, H, W, C] (the original's (B*T, ...) reshape)."""
  if a.ndim < 4:
    raise ValueError(f'{name} must be [..., H, W, C] with a batch dim; got {a.shape}')
  return a.reshape((-1,) + a.shape[-3:])


def flow_loss(flow: Array, flow_ref: Array, conf_ref: Array) -> Array:
  """F_Flow before its weight: masked L1 between the generated and the reference flow.

  Args:
    flow: [..., H, W, 2] generated backward flow (current -> previous) in pixels, (dx, dy).
    flow_ref: [..., H, W, 2] FlowNet2 flow of the real frames, same units.
    conf_ref: [..., H, W, 1] its confidence in [0, 1].

  Returns:
    Scalar float32 >= 0 (pixels).
  """
  return masked_l1(flow, flow_ref, conf_ref)


def warp_loss(real_prev: Array, real: Array, flow: Array, conf_ref: Array) -> Array:
  """F_Warp before its weight: the previous real frame warped by the generated flow vs the real one.

  Args:
    real_prev: [..., H, W, 3] previous real frames in [-1, 1].
    real: [..., H, W, 3] current real frames in [-1, 1].
    flow: [..., H, W, 2] generated backward flow in pixels (gradients flow into it).
    conf_ref: [..., H, W, 1] reference-flow confidence in [0, 1].

  Returns:
    Scalar float32 >= 0.
  """
  warped = warp(_flat4(real_prev, 'real_prev'), _flat4(flow, 'flow'))
  return masked_l1(warped, _flat4(real, 'real'), _flat4(conf_ref, 'conf_ref'))


def mask_loss(weight: Array, conf_ref: Array) -> Array:
  """W: the blending weight where the reference flow is reliable, masked L1 against 0.

  Pushes the generator to use the warped previous frame (weight 0) wherever the flow is
  confident; the original applies it only with --no_first_img (docs/quirks.md#first-chunk).

  Args:
    weight: [..., H, W, 1] the generator's sigmoid mask in [0, 1] (1 = hallucinated image).
    conf_ref: [..., H, W, 1] reference-flow confidence in [0, 1].

  Returns:
    Scalar float32 in [0, 1].
  """
  return masked_l1(weight, jnp.zeros_like(weight), conf_ref)


def occlusion_loss(weight: Array, conf_ref: Array) -> Array:
  """The blending weight where the reference flow is NOT reliable, masked L1 against 1 (ours).

  The counterpart of `mask_loss`: where the previous frame cannot be warped into the current one
  (newly visible or occluded pixels, conf_ref 0) the generator should use its hallucinated image
  (weight 1) instead of warped border pixels. Not in the original.

  Args:
    weight: [..., H, W, 1] the generator's sigmoid mask in [0, 1] (1 = hallucinated image).
    conf_ref: [..., H, W, 1] reference-flow confidence in [0, 1].

  Returns:
    Scalar float32 in [0, 1].
  """
  return masked_l1(weight, jnp.ones_like(weight), 1.0 - conf_ref)


def fake_warp_loss(fake: Array, fake_prev: Array, flow_ref: Array, conf_ref: Array) -> Array:
  """G_Warp before its weight: temporal consistency of the generated video along the real flow.

  masked_l1(fake, stop_gradient(warp(fake_prev, flow_ref)), conf_ref)
  (docs/original_behaviour.md#per-frame-losses).

  Args:
    fake: [..., H, W, 3] generated frames in [-1, 1].
    fake_prev: [..., H, W, 3] the generated frame immediately before each one (the real previous
      frame for the first frame of a clip), in [-1, 1].
    flow_ref: [..., H, W, 2] FlowNet2 backward flow of the real frames, pixels.
    conf_ref: [..., H, W, 1] its confidence in [0, 1].

  Returns:
    Scalar float32 >= 0.
  """
  target = jax.lax.stop_gradient(warp(_flat4(fake_prev, 'fake_prev'), _flat4(flow_ref, 'flow_ref')))
  return masked_l1(_flat4(fake, 'fake'), target, _flat4(conf_ref, 'conf_ref'))


# ----------------------------------------------------------------------------- weights


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """Which terms are on and how they are weighted; build with loss_weights_from_config.

  Attributes:
    gan_mode: 'ls' | 'original' | 'vanilla' | 'hinge' for every D (image, face, temporal).
    lambda_feat: weight of the VGG and of every feature-matching term (orig: --lambda_feat).
    lambda_T: weight of the F_Warp and G_Warp terms (orig: --lambda_T).
    lambda_F: weight of the flow term before the 2**(n_scales_spatial-1) division (--lambda_F).
    n_scales_spatial: generator scales; F_Flow is divided by 2**(n_scales_spatial - 1)
      (docs/quirks.md#flow-scaling).
    face_weight: multiplier of the face-D generator terms (2, hard-coded in the original).
    num_D: configured scales of every D (feature-matching weight 1/num_D, also for the face D).
    n_layers_D: configured conv layers per D scale (feature-matching weight 4/(n_layers_D+1)).
    use_gan_feat: D feature matching on (orig: not --no_ganFeat).
    use_vgg: VGG perceptual term on (orig: not --no_vgg); needs a vgg_fn.
    use_mask_loss: W term on; the original applies it only with --no_first_img.
    lambda_mask: weight of the W term (1 in the original).
    no_flow: the generator has no flow/weight heads; F_Flow, F_Warp and W are off.
    lambda_l1: weight of a pixel L1 term on the final and raw images (NOT in the original;
      0 = off). Useful when no pretrained VGG is available (the offline demo).
    lambda_l2: weight of a pixel squared-error term on the same images (NOT in the original;
      0 = off). Where a label's colour is uncertain L1 pulls towards the median colour and L2
      towards the mean, which is what PSNR rewards.
    lambda_occlusion: weight of the occlusion term (`occlusion_loss`, NOT in the original;
      0 = off): blend weight 1 where the reference flow is unreliable.
  """
  gan_mode: str = 'ls'
  lambda_feat: float = 10.0
  lambda_T: float = 10.0
  lambda_F: float = 10.0
  n_scales_spatial: int = 1
  face_weight: float = 2.0
  num_D: int = 2
  n_layers_D: int = 3
  use_gan_feat: bool = True
  use_vgg: bool = True
  use_mask_loss: bool = False
  lambda_mask: float = 1.0
  no_flow: bool = False
  lambda_l1: float = 0.0
  lambda_l2: float = 0.0
  lambda_occlusion: float = 0.0

  def __post_init__(self):
    if self.gan_mode not in GAN_MODES:
      raise ValueError(f'gan_mode must be one of {GAN_MODES}; got {self.gan_mode!r}')
    if self.n_scales_spatial < 1 or self.num_D < 1 or self.n_layers_D < 1:
      raise ValueError(
          'n_scales_spatial, num_D and n_layers_D must be >= 1; got '
          f'{self.n_scales_spatial}, {self.num_D}, {self.n_layers_D}')


def loss_weights_from_config(config: Any) -> LossWeights:
  """Builds LossWeights from a full config (configs/default.py layout); the only config reader here.

  ``compat.lsgan_always`` turns every gan_mode into 'ls' (docs/quirks.md#gan-mode); the W term
  is on when ``first_frame.mode == 'generate'`` (the original's --no_first_img, weight 1) or
  when ``loss.lambda_mask > 0`` (then with that weight).

  Args:
    config: ml_collections.ConfigDict with ``loss``, ``compat``, ``first_frame`` and
      ``model.generator`` / ``model.discriminator`` sub-dicts.

  Returns:
    The frozen LossWeights.
  """
  loss, g, d = config.loss, config.model.generator, config.model.discriminator
  return LossWeights(
      gan_mode='ls' if config.compat.lsgan_always else loss.gan_mode,
      lambda_feat=float(loss.lambda_feat),
      lambda_T=float(loss.lambda_T),
      lambda_F=float(loss.lambda_F),
      n_scales_spatial=int(g.n_scales_spatial),
      face_weight=float(loss.face_weight),
      num_D=int(d.num_D),
      n_layers_D=int(d.n_layers_D),
      use_gan_feat=bool(loss.use_gan_feat),
      use_vgg=bool(loss.use_vgg),
      use_mask_loss=config.first_frame.mode == 'generate' or loss.lambda_mask > 0,
      lambda_mask=float(loss.lambda_mask) if loss.lambda_mask > 0 else 1.0,
      no_flow=bool(g.no_flow),
      lambda_l1=float(loss.lambda_l1),
      lambda_l2=float(loss.lambda_l2),
      lambda_occlusion=float(loss.lambda_occlusion),
  )


# ----------------------------------------------------------------------------- assembly

def adversarial_terms(weights: LossWeights, pred_fake: MultiscaleOutput,
                   pred_real: MultiscaleOutput) -> Tuple[Array, Array]:
  """(G_GAN, lambda_feat * G_GAN_Feat) of one D pass (the original's GAN_and_FM_loss): the
  generator's adversarial term on D(fake) and the feature matching of D(fake) to D(real)."""
  gan = gan_loss(pred_fake, True, weights.gan_mode, for_discriminator=False)
  feat = jnp.zeros((), jnp.float32)
  if weights.use_gan_feat:
    feat = weights.lambda_feat * feature_matching_loss(pred_fake, pred_real, weights.num_D,
                                                       weights.n_layers_D)
  return gan, feat


def _face_scale(face_valid: Optional[Array]) -> Array:
  if face_valid is None:
    return jnp.ones((), jnp.float32)
  face_valid = jnp.asarray(face_valid, jnp.float32)
  if face_valid.ndim:
    raise ValueError(f'face_valid must be a scalar; got shape {face_valid.shape}')
  return face_valid


def flow_terms(weights: LossWeights, *, flow: Optional[Array], weight: Optional[Array],
               real_prev: Optional[Array], real: Array, flow_ref: Optional[Array],
               conf_ref: Optional[Array]) -> dict[str, Array]:
  """The flow and blend-weight terms, each already weighted: 'g/flow' (F_Flow), 'g/warp'
  (F_Warp), 'g/mask' (W, if use_mask_loss) and 'g/occlusion' (ours, if lambda_occlusion > 0).

  Args: as `generator_loss_terms` ([..., H, W, C] frames, pixels for flows, [0, 1] for weight
  and conf_ref).
  """
  w = weights
  missing = [n for n, a in (('flow', flow), ('real_prev', real_prev), ('flow_ref', flow_ref),
                            ('conf_ref', conf_ref)) if a is None]
  if w.use_mask_loss and weight is None:
    missing.append('weight')
  if missing:
    raise ValueError(f'flow terms need {missing} (or weights.no_flow=True)')
  terms = {
      'g/flow': (w.lambda_F / 2**(w.n_scales_spatial - 1)) * flow_loss(flow, flow_ref, conf_ref),
      'g/warp': w.lambda_T * warp_loss(real_prev, real, flow, conf_ref),
  }
  if w.use_mask_loss:
    terms['g/mask'] = w.lambda_mask * mask_loss(weight, conf_ref)
  if w.lambda_occlusion > 0:
    if weight is None:
      raise ValueError('the occlusion term (lambda_occlusion > 0) needs weight')
    terms['g/occlusion'] = w.lambda_occlusion * occlusion_loss(weight, conf_ref)
  return terms


def generator_loss_terms(
    weights: LossWeights,
    *,
    real: Array,
    fake: Array,
    fake_raw: Optional[Array],
    d_real: MultiscaleOutput,
    d_fake: MultiscaleOutput,
    d_fake_raw: Optional[MultiscaleOutput],
    vgg_fn: Optional[VggLossFn] = None,
    flow: Optional[Array] = None,
    weight: Optional[Array] = None,
    real_prev: Optional[Array] = None,
    fake_prev: Optional[Array] = None,
    flow_ref: Optional[Array] = None,
    conf_ref: Optional[Array] = None,
    d_face_real: Optional[MultiscaleOutput] = None,
    d_face_fake: Optional[MultiscaleOutput] = None,
    face_valid: Optional[Array] = None,
) -> dict[str, Array]:
  """All generator terms of one chunk, each already weighted (docs/original_behaviour.md#losses).

  The caller runs the discriminators: ``d_fake``/``d_fake_raw`` on (labels, fake) with gradients
  into G, ``d_real`` on (labels, real) (its features are stop-gradiented here). Frames may be
  [B, T, H, W, C] or already flattened to [B*T, H, W, C]; per-frame means are the same.

  Keys (each the original's term of the same meaning; 0-terms are left out):
    'g/gan' G_GAN: gan(D(fake)) + gan(D(fake_raw)) (the image D runs on both).
    'g/gan_feat' G_GAN_Feat: lambda_feat * feature matching, both passes (if use_gan_feat).
    'g/vgg' G_VGG: lambda_feat * (vgg(fake, real) + vgg(fake_raw, real)) (if use_vgg).
    'g/l1': lambda_l1 * (|fake - real| + |fake_raw - real|) means (ours, if lambda_l1 > 0).
    'g/l2': lambda_l2 * ((fake - real)^2 + (fake_raw - real)^2) means (ours, if lambda_l2 > 0).
    'g/flow' F_Flow: lambda_F / 2**(n_scales_spatial-1) * flow_loss (unless no_flow).
    'g/warp' F_Warp: lambda_T * warp_loss (unless no_flow).
    'g/mask' W: lambda_mask * mask_loss (if use_mask_loss and not no_flow).
    'g/occlusion': lambda_occlusion * occlusion_loss (ours, if lambda_occlusion > 0).
    'g/fake_warp' G_Warp: lambda_T * fake_warp_loss (when fake_prev and flow_ref are given).
    'g/face_gan', 'g/face_gan_feat' G_f_GAN, G_f_GAN_Feat: times face_weight (if the face D ran).
  The temporal-D terms come from `vid2vid_jax.temporal.terms`.

  Args:
    weights: LossWeights.
    real: [..., H, W, 3] real current frames in [-1, 1].
    fake: [..., H, W, 3] final generated frames in [-1, 1].
    fake_raw: [..., H, W, 3] hallucinated frames in [-1, 1] (equal to ``fake`` with no_flow), or
      None to skip every raw-image term.
    d_real, d_fake, d_fake_raw: image-D outputs (MultiscaleOutput) on real, fake, fake_raw;
      ``d_fake_raw`` must be given exactly when ``fake_raw`` is.
    vgg_fn: perceptual loss ``vgg_fn(x, y) -> scalar`` (vgg.vgg_loss with bound params); required
      when ``weights.use_vgg``.
    flow: [..., H, W, 2] generated flow, pixels; weight: [..., H, W, 1] its mask in [0, 1].
    real_prev: [..., H, W, 3] previous real frames; fake_prev: [..., H, W, 3] previous generated
      frames (see fake_warp_loss), both in [-1, 1].
    flow_ref: [..., H, W, 2] FlowNet2 flow real -> real_prev, pixels; conf_ref: [..., H, W, 1] in
      [0, 1].
    d_face_real, d_face_fake: face-D outputs on the face crops (both or neither).
    face_valid: optional scalar in {0, 1}: 0 zeroes the face terms (no face pixel in the batch).

  Returns:
    Flat dict of scalar float32 terms; total_generator_loss sums them.
  """
  w = weights
  terms: dict[str, Array] = {}
  passes = [(fake, d_fake)]
  if (fake_raw is None) != (d_fake_raw is None):
    raise ValueError('fake_raw and d_fake_raw must both be given or both be None')
  if fake_raw is not None:
    passes.append((fake_raw, d_fake_raw))
  if fake.shape != real.shape or (fake_raw is not None and fake_raw.shape != real.shape):
    raise ValueError(
        f'real {real.shape}, fake {fake.shape} and fake_raw '
        f'{None if fake_raw is None else fake_raw.shape} must have one shape')

  gan = feat = jnp.zeros((), jnp.float32)
  for _, d_out in passes:
    g, f = adversarial_terms(w, d_out, d_real)
    gan, feat = gan + g, feat + f
  terms['g/gan'] = gan
  if w.use_gan_feat:
    terms['g/gan_feat'] = feat

  if w.use_vgg:
    if vgg_fn is None:
      raise ValueError(
          'weights.use_vgg is True but no vgg_fn was given; build one with vid2vid_jax.vgg '
          '(config.loss.vgg_weights) or disable it with config.loss.use_vgg=False')
    real4 = _flat4(real, 'real')
    terms['g/vgg'] = w.lambda_feat * sum(
        jnp.asarray(vgg_fn(_flat4(x, 'fake'), real4), jnp.float32) for x, _ in passes)

  if w.lambda_l1 > 0:
    terms['g/l1'] = w.lambda_l1 * sum(jnp.mean(jnp.abs(x.astype(jnp.float32) - real))
                                      for x, _ in passes)
  if w.lambda_l2 > 0:
    terms['g/l2'] = w.lambda_l2 * sum(jnp.mean(jnp.square(x.astype(jnp.float32) - real))
                                      for x, _ in passes)

  if not w.no_flow:
    terms.update(flow_terms(w, flow=flow, weight=weight, real_prev=real_prev, real=real,
                            flow_ref=flow_ref, conf_ref=conf_ref))

  if fake_prev is not None:
    if flow_ref is None or conf_ref is None:
      raise ValueError('G_Warp (fake_prev given) needs flow_ref and conf_ref')
    terms['g/fake_warp'] = w.lambda_T * fake_warp_loss(fake, fake_prev, flow_ref, conf_ref)

  if (d_face_real is None) != (d_face_fake is None):
    raise ValueError('d_face_real and d_face_fake must both be given or both be None')
  if d_face_fake is not None:
    scale = w.face_weight * _face_scale(face_valid)
    g, f = adversarial_terms(w, d_face_fake, d_face_real)
    terms['g/face_gan'] = scale * g
    if w.use_gan_feat:
      terms['g/face_gan_feat'] = scale * f

  return terms


def total_generator_loss(terms: Mapping[str, Array]) -> Array:
  """loss_G (docs/original_behaviour.md#loss-totals): the sum of every 'g/' term (already weighted).

  Args:
    terms: dict from generator_loss_terms (other keys are ignored).

  Returns:
    Scalar float32.
  """
  total = jnp.zeros((), jnp.float32)
  for key in sorted(terms):
    if key.startswith('g/'):
      total += terms[key]
  return total


def discriminator_loss_terms(
    weights: LossWeights,
    *,
    d_real: MultiscaleOutput,
    d_fake: MultiscaleOutput,
    d_fake_raw: Optional[MultiscaleOutput],
    d_face_real: Optional[MultiscaleOutput] = None,
    d_face_fake: Optional[MultiscaleOutput] = None,
    face_valid: Optional[Array] = None,
) -> dict[str, Array]:
  """All discriminator terms of one chunk, with the original's double real term.

  The caller runs each D on real inputs and on stop-gradiented fakes. The image D runs on the
  final and on the raw image, and the original adds a real term for each pass
  (docs/quirks.md#double-real-term), so
  'd/real' is ``gan(D(real))`` times the number of fake passes (2 with fake_raw), exactly the
  original's D_real; discriminator_totals then gives
  loss_D = 0.5 * (D_fake(final) + D_fake(raw)) + D_real(one pass).

  Keys: 'd/real', 'd/fake' (both passes summed), 'd_face/real', 'd_face/fake' (if the face D
  ran). The temporal-D terms come from `vid2vid_jax.temporal.terms`.

  Args:
    weights: LossWeights (gan_mode is used).
    d_real: image-D output on (labels, real).
    d_fake, d_fake_raw: image-D outputs on (labels, stop_gradient(fake / fake_raw)); d_fake_raw
      None when there is no raw pass.
    d_face_real, d_face_fake: face-D outputs (both or neither).
    face_valid: optional scalar in {0, 1}: 0 zeroes the face terms.

  Returns:
    Flat dict of scalar float32 terms (unweighted: every D term has weight 1 or 0.5, applied by
    discriminator_totals).
  """
  mode = weights.gan_mode
  fakes = [d_fake] + ([] if d_fake_raw is None else [d_fake_raw])
  terms = {
      'd/real': len(fakes) * gan_loss(d_real, True, mode, for_discriminator=True),
      'd/fake': sum(gan_loss(p, False, mode, for_discriminator=True) for p in fakes),
  }
  if (d_face_real is None) != (d_face_fake is None):
    raise ValueError('d_face_real and d_face_fake must both be given or both be None')
  if d_face_fake is not None:
    scale = _face_scale(face_valid)
    terms['d_face/real'] = scale * gan_loss(d_face_real, True, mode, for_discriminator=True)
    terms['d_face/fake'] = scale * gan_loss(d_face_fake, False, mode, for_discriminator=True)
  return terms


def discriminator_totals(terms: Mapping[str, Array]) -> dict[str, Array]:
  """Per-optimiser D losses (docs/original_behaviour.md#loss-totals).

  Args:
    terms: dict from discriminator_loss_terms.

  Returns:
    {'d': 0.5 * (d/fake + d/real) [+ 0.5 * (d_face/fake + d_face/real)],
     'd_t{s}': 0.5 * (d_t{s}/fake + d_t{s}/real) for every temporal scale present}; the image and
    face Ds share one optimiser in the original, each temporal D has its own.
  """
  totals = {'d': 0.5 * (terms['d/fake'] + terms['d/real'])}
  if 'd_face/fake' in terms:
    totals['d'] = totals['d'] + 0.5 * (terms['d_face/fake'] + terms['d_face/real'])
  s = 0
  while f'd_t{s}/fake' in terms:
    totals[f'd_t{s}'] = 0.5 * (terms[f'd_t{s}/fake'] + terms[f'd_t{s}/real'])
    s += 1
  return totals

