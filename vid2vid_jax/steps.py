"""The jitted training steps: pure functions of (static pieces, state, data) -> (state, metrics).

`train_step` processes one chunk of a clip: the chunk holds ``n_frames_G - 1`` context frames and
``n`` new frames; the generator produces the new frames with `rollout.generate`, every loss is
computed once, and G, the image/face D and every temporal D are updated from that one forward
pass (D on stop-gradiented fakes, all with the pre-update parameters, which is what the original's
alternation amounts to). What survives from chunk to chunk of one clip lives in
`train_state.SequenceState`, which the step takes and returns.

`first_frame_step` trains the single-image generator alone; `flow_warmup_step` trains the
generator's flow and weight heads on the flow terms alone (train.flow_warmup_steps).
"""

from collections.abc import Callable, Mapping
import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from vid2vid_jax import losses as losses_lib
from vid2vid_jax import rollout
from vid2vid_jax import sharding as sharding_lib
from vid2vid_jax import temporal as temporal_lib
from vid2vid_jax import warp as warp_lib
from vid2vid_jax.models import discriminator as disc_lib
from vid2vid_jax.models import first_frame as first_frame_lib
from vid2vid_jax.models import layers
from vid2vid_jax.train_state import group_params, Models, SequenceState, TrainState

Array = jax.Array
Txs = Mapping[str, optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """Static options of one compiled step (a change recompiles).

  frames_backpropagate: gradient block length of the rollout.
  train_coarse: coarser generator scales get gradients and updates (after niter_fix_global).
  update_coarse: ... and are actually updated (False with compat.frozen_global_after_fix).
  flow_source: 'dataset' (chunk flow_gt/conf_gt), 'flownet2' (frozen FlowNet2), 'none'.
  first_frame_mode: where each clip's first n_frames_G - 1 frames come from: 'real',
    'generate' (G from zeros) or 'single_g' (the frozen single-image generator).
  remat: rematerialise each generated frame. unroll: unroll the rollout's time loop.
  ema_decay: 0 = no EMA.
  warp_flow_grad: image losses reach the flow through the warp (config loss.warp_flow_grad).
  flownet_rgb_max, flownet_div_flow: FlowNet2's input and flow scales (config flow.rgb_max,
    flow.div_flow) for the 'flownet2' source.
  """
  frames_backpropagate: int = 1
  train_coarse: bool = True
  update_coarse: bool = True
  flow_source: str = 'dataset'
  first_frame_mode: str = 'real'
  remat: bool = False
  ema_decay: float = 0.0
  unroll: bool = False
  warp_flow_grad: bool = True
  flownet_rgb_max: float = 1.0
  flownet_div_flow: float = 20.0


def step_options(config: Any, schedule: Any, epoch: int, frames_per_step: int) -> StepOptions:
  """The step's static options during ``epoch`` with ``frames_per_step`` new frames per chunk."""
  return StepOptions(
      frames_backpropagate=schedule.frames_backpropagate(epoch, frames_per_step),
      train_coarse=schedule.train_coarse(epoch), update_coarse=schedule.update_coarse(epoch),
      flow_source=config.flow.source, first_frame_mode=config.first_frame.mode,
      remat=config.train.remat, ema_decay=config.train.ema_decay, unroll=config.train.unroll,
      warp_flow_grad=config.loss.warp_flow_grad, flownet_rgb_max=float(config.flow.rgb_max),
      flownet_div_flow=float(config.flow.div_flow))


def _flat(x: Array) -> Array:
  """[B, T, ...] -> [B*T, ...]."""
  return x.reshape((-1,) + x.shape[2:])


def _apply(net: Any, params: Any, x: Array) -> Any:
  return net.apply({'params': params}, x)


def _vgg_fn(weights: losses_lib.LossWeights, frozen: Mapping[str, Any], dtype: Any
            ) -> Callable | None:
  if not weights.use_vgg:
    return None
  from vid2vid_jax import vgg  # pylint: disable=g-import-not-at-top
  return functools.partial(vgg.vgg_loss, frozen['vgg'], dtype=dtype)


def _flow_fn(options: StepOptions, frozen: Mapping[str, Any], flow_fn: Callable | None
             ) -> Callable | None:
  """The given flow function, or FlowNet2 from frozen['flownet'] for the 'flownet2' source."""
  if flow_fn is None and options.flow_source == 'flownet2':
    from flow import api as flow_api  # pylint: disable=g-import-not-at-top
    flow_fn = functools.partial(flow_api.compute_flow_and_conf, frozen['flownet'],
                                rgb_max=options.flownet_rgb_max,
                                div_flow=options.flownet_div_flow)
  return flow_fn


def _new_frames(models: Models, chunk: Mapping[str, Array]) -> int:
  """Frames generated from ``chunk`` (its length minus the context); checks its shapes."""
  context = models.generator.n_frames - 1
  cond, image = chunk['cond'], chunk['image']
  if cond.ndim != 5 or image.ndim != 5 or cond.shape[:2] != image.shape[:2]:
    raise ValueError(f'chunk cond {cond.shape} / image {image.shape} must be [B, T, H, W, C] '
                     'with one B and T')
  n_new = cond.shape[1] - context
  if n_new < 1:
    raise ValueError(f'a chunk needs more than n_frames_G - 1 = {context} frames, got '
                     f'{cond.shape[1]}')
  return n_new


def reference_flows(options: StepOptions, chunk: Mapping[str, Array], context: int,
                    flow_fn: Callable | None) -> tuple[Array, Array]:
  """flow_ref [B, n, H, W, 2] (real t -> t-1, pixels) and conf_ref [B, n, H, W, 1] in [0, 1] of
  the chunk's n new frames (stop-gradiented)."""
  image = chunk['image']
  real, real_prev = image[:, context:], image[:, context - 1:-1]
  if options.flow_source == 'dataset':
    flow, conf = chunk['flow_gt'][:, context:], chunk['conf_gt'][:, context:]
  elif options.flow_source == 'flownet2':
    b, n = real.shape[:2]
    flow, conf = flow_fn(_flat(real), _flat(real_prev))
    flow, conf = flow.reshape((b, n) + flow.shape[1:]), conf.reshape((b, n) + conf.shape[1:])
  else:
    conf = jnp.zeros(real.shape[:-1] + (1,), jnp.float32)
    flow = jnp.concatenate([conf, conf], axis=-1)
  return jax.lax.stop_gradient(flow), jax.lax.stop_gradient(conf)


class ChunkInputs(NamedTuple):
  """What the G and D losses of one chunk read (built by `chunk_inputs`).

  carry: the rollout's initial carry (context conditioning and previous frames per scale).
  cond_new: per scale [B, n, h, w, C] conditioning of the new frames.
  real, real_prev: [B, n, H, W, 3] the new real frames and the real frames before them.
  real_cond: [B*n, H, W, C] full-size conditioning of the new frames (the Ds' condition).
  flow_ref, conf_ref: reference flows of the new frames (`reference_flows`).
  last_fake: [B, H, W, 3] the generated frame before the chunk (G_Warp's first previous frame).
  seq_real, seq_flow: [B, L + n, ...] temporal-D history then the chunk's real frames / flows.
  hist_fake: [B, L, H, W, 3] generated history. frames_done: scalar int, frames before the chunk.
  use_raw_only: scalar bool, G paints the frames without warping (first chunk, mode 'generate').
  """
  carry: rollout.Carry
  cond_new: tuple[Array, ...]
  real: Array
  real_prev: Array
  real_cond: Array
  flow_ref: Array
  conf_ref: Array
  last_fake: Array
  seq_real: Array
  seq_flow: Array
  hist_fake: Array
  frames_done: Array
  use_raw_only: Array


def chunk_inputs(models: Models, options: StepOptions, seq: SequenceState,
                 chunk: Mapping[str, Array], frozen: Mapping[str, Any],
                 flow_fn: Callable | None) -> ChunkInputs:
  """The chunk's inputs to the rollout and the losses, with the clip's first frames taken from
  the first-frame mode on its first chunk."""
  gen = models.generator
  context = gen.n_frames - 1
  cond, image = chunk['cond'], chunk['image']
  first = seq.first_chunk
  cond_pyr = layers.pyramid(cond, gen.n_scales)
  if options.first_frame_mode == 'generate':
    init_prev = tuple(jnp.zeros_like(p) for p in seq.prev_frames)
  elif options.first_frame_mode == 'single_g':
    ff = models.first_frame
    channels = first_frame_lib.input_channels(ff.net, frozen['first_frame'])
    made = _apply(ff.net, frozen['first_frame'],
                  _flat(cond[:, :context])[..., :channels]).astype(jnp.float32)
    made = jax.lax.stop_gradient(made).reshape(image[:, :context].shape)
    init_prev = tuple(layers.pyramid(made, gen.n_scales))
  else:
    init_prev = tuple(layers.pyramid(image[:, :context], gen.n_scales))
  prev = tuple(jnp.where(first, a, b) for a, b in zip(init_prev, seq.prev_frames))
  flow_ref, conf_ref = reference_flows(options, chunk, context, flow_fn)
  real = image[:, context:]
  return ChunkInputs(
      carry=rollout.Carry(tuple(c[:, :context] for c in cond_pyr), prev),
      cond_new=tuple(c[:, context:] for c in cond_pyr),
      real=real, real_prev=image[:, context - 1:-1], real_cond=_flat(cond[:, context:]),
      flow_ref=flow_ref, conf_ref=conf_ref,
      last_fake=jnp.where(first, image[:, context - 1], seq.last_fake),
      seq_real=jnp.concatenate([seq.hist_real, real], axis=1),
      seq_flow=jnp.concatenate([seq.hist_flow, flow_ref], axis=1),
      hist_fake=seq.hist_fake,
      frames_done=jnp.where(first, 0, seq.frames_done),
      use_raw_only=jnp.logical_and(first, options.first_frame_mode == 'generate'))


def _image_d(models: Models, params: Any, cond: Array, x: Array) -> Any:
  """The image D on (cond, image) pairs [N, H, W, *]."""
  return _apply(models.image_d, params, jnp.concatenate([cond.astype(x.dtype), x], axis=-1))


def _face_d(models: Models, params: Any, cond: Array, real: Array, fake: Array
            ) -> dict[str, Array]:
  """The face D on crops around the face of each pose frame: the keyword arguments of the loss
  term functions (d_face_real, d_face_fake, face_valid)."""
  face = models.face
  mask = disc_lib.face_mask_from_pose(cond, face.openpose_only)
  (c_cond, c_real, c_fake), has_face = disc_lib.face_crop([cond, real, fake], mask,
                                                          face.crop_size)
  return dict(d_face_real=_apply(face.net, params, jnp.concatenate([c_cond, c_real], -1)),
              d_face_fake=_apply(face.net, params, jnp.concatenate([c_cond, c_fake], -1)),
              face_valid=has_face)


def _temporal_terms(models: Models, weights: losses_lib.LossWeights, d_t_params: Any,
                    inputs: ChunkInputs, fake: Array, flow_fn: Callable | None):
  """`temporal.terms` of the chunk: its history and new real / generated frames [B, n, ...]."""
  return temporal_lib.terms(
      models.temporal, weights, d_t_params, inputs.seq_real,
      jnp.concatenate([inputs.hist_fake, fake], axis=1), inputs.seq_flow, inputs.frames_done,
      fake.shape[1], flow_fn)


def _frame_fn(models: Models, options: StepOptions, g_params: Any, use_raw_only: Array,
              windows, prevs, t):
  """`rollout.FrameFn` of the generator: per-scale outputs, and the finest scale's images,
  flow and weight stacked over the chunk."""
  del t
  gen = models.generator
  outs = gen.net.apply({'params': g_params}, list(windows), list(prevs), gen.fg_masks(windows),
                       use_raw_only=use_raw_only, detach_coarse=not options.train_coarse,
                       warp_flow_grad=options.warp_flow_grad)
  finest = outs[-1]
  keep = {k: finest[k].astype(jnp.float32) for k in ('fake', 'raw', 'flow', 'weight')
          if finest.get(k) is not None}
  return tuple(o['fake'] for o in outs), keep


def generator_loss(g_params: Any, d_params: Mapping[str, Any], d_t_params: Mapping[str, Any],
                   models: Models, weights: losses_lib.LossWeights, options: StepOptions,
                   inputs: ChunkInputs, vgg_fn: Callable | None, flow_fn: Callable | None
                   ) -> tuple[Array, tuple[dict[str, Array], rollout.Carry, dict[str, Array]]]:
  """loss_G of one chunk: generates its frames and sums every generator term.

  Args:
    g_params: the generator's params (differentiated).
    d_params, d_t_params: the image/face D and temporal D params (not updated here).
    inputs: from `chunk_inputs`. vgg_fn, flow_fn: the frozen networks' functions.

  Returns:
    (total, (terms, final rollout carry, per-frame outputs 'fake', 'raw', 'flow', 'weight'
    [B, n, H, W, *])).
  """
  frame_fn = functools.partial(_frame_fn, models, options, g_params, inputs.use_raw_only)
  final_carry, outs = rollout.generate(
      frame_fn, inputs.carry, inputs.cond_new,
      max_frames_backpropagate=options.frames_backpropagate, remat=options.remat,
      unroll=options.unroll)
  fake = outs['fake']
  raw = outs.get('raw', fake)
  real_flat, fake_flat = _flat(inputs.real), _flat(fake)
  cond = inputs.real_cond
  fake_prev = jnp.concatenate([inputs.last_fake[:, None],
                               jax.lax.stop_gradient(fake[:, :-1])], axis=1)
  face = {}
  if models.face is not None:
    face = _face_d(models, d_params['face'], cond, real_flat, fake_flat)
  no_flow = models.generator.net.no_flow
  terms = losses_lib.generator_loss_terms(
      weights, real=inputs.real, fake=fake, fake_raw=raw,
      d_real=_image_d(models, d_params['image'], cond, real_flat),
      d_fake=_image_d(models, d_params['image'], cond, fake_flat),
      d_fake_raw=_image_d(models, d_params['image'], cond, _flat(raw)), vgg_fn=vgg_fn,
      flow=None if no_flow else outs['flow'], weight=None if no_flow else outs['weight'],
      real_prev=inputs.real_prev, fake_prev=fake_prev, flow_ref=inputs.flow_ref,
      conf_ref=inputs.conf_ref, **face)
  if models.temporal is not None:
    t_terms, _ = _temporal_terms(models, weights, d_t_params, inputs, fake, flow_fn)
    terms.update(temporal_lib.generator_terms(t_terms))
  return losses_lib.total_generator_loss(terms), (terms, final_carry, outs)


def discriminator_loss(d_all: tuple[Mapping[str, Any], Mapping[str, Any]], models: Models,
                       weights: losses_lib.LossWeights, inputs: ChunkInputs, fake: Array,
                       raw: Array, flow_fn: Callable | None
                       ) -> tuple[Array, tuple[dict[str, Array], dict[str, Array],
                                               dict[str, Array]]]:
  """The sum of every D's loss (each D's params appear in its own total only, so one gradient of
  the sum serves all).

  Args:
    d_all: (image/face D params, temporal D params), differentiated.
    fake, raw: [B, n, H, W, 3] the chunk's generated frames (stop-gradiented).

  Returns:
    (sum, (terms, per-optimizer totals, has_window {str(s): scalar bool})).
  """
  d_params, d_t_params = d_all
  cond, real_flat = inputs.real_cond, _flat(inputs.real)
  face = {}
  if models.face is not None:
    face = _face_d(models, d_params['face'], cond, real_flat, _flat(fake))
  terms = losses_lib.discriminator_loss_terms(
      weights, d_real=_image_d(models, d_params['image'], cond, real_flat),
      d_fake=_image_d(models, d_params['image'], cond, _flat(fake)),
      d_fake_raw=_image_d(models, d_params['image'], cond, _flat(raw)), **face)
  has_window = {}
  if models.temporal is not None:
    t_terms, has_window = _temporal_terms(models, weights, d_t_params, inputs, fake, flow_fn)
    terms.update(temporal_lib.discriminator_terms(t_terms))
  totals = losses_lib.discriminator_totals(terms)
  return sum(totals.values()), (terms, totals, has_window)


def train_step(models: Models, weights: losses_lib.LossWeights, options: StepOptions, txs: Txs,
               state: TrainState, seq: SequenceState, chunk: Mapping[str, Array],
               learning_rates: Mapping[str, Array], frozen: Mapping[str, Any],
               flow_fn: Callable | None = None
               ) -> tuple[TrainState, SequenceState, dict[str, Any]]:
  """One optimizer step on one chunk of a clip.

  Args:
    models, weights, options, txs: static pieces, bound with functools.partial.
    state: TrainState before the step.
    seq: SequenceState of the clip (`train_state.empty_sequence_state` before its first chunk).
    chunk: 'cond' [B, tG-1+n, H, W, C], 'image' [B, tG-1+n, H, W, 3] in [-1, 1], and with the
      dataset flow source 'flow_gt' [B, tG-1+n, H, W, 2] (frame t -> t-1, pixels), 'conf_gt'
      [B, tG-1+n, H, W, 1].
    learning_rates: {'g', 'd', 'd_t'} scalars for this step (`Schedule.learning_rates`).
    frozen: {'vgg': VGG params or None, 'flownet': FlowNet2 variables or None,
      'first_frame': single-image G params (first-frame mode 'single_g') or None}.
    flow_fn: static; (cur [N, H, W, 3], prev [N, H, W, 3]) -> (flow [N, H, W, 2] cur -> prev
      in pixels, conf [N, H, W, 1]) used instead of FlowNet2 wherever the step computes flows.
      With the 'dataset' source it gives the flows between the frames of temporal windows at
      scales >= 1 (otherwise chained from the consecutive dataset flows).

  Returns:
    (new TrainState, new SequenceState, {'scalars': flat dict incl. 'finite' (0 when the update
    was skipped for a non-finite loss or gradient), 'images': [B, n, ...] panels}).
  """
  n_new = _new_frames(models, chunk)
  flow_fn = _flow_fn(options, frozen, flow_fn)
  vgg_fn = _vgg_fn(weights, frozen, models.dtype)
  inputs = chunk_inputs(models, options, seq, chunk, frozen, flow_fn)

  (g_total, (g_terms, final_carry, outs)), g_grads = jax.value_and_grad(
      generator_loss, has_aux=True)(state.params['g'], state.params['d'], state.params['d_t'],
                                    models, weights, options, inputs, vgg_fn, flow_fn)
  fake = jax.lax.stop_gradient(outs['fake'])
  raw = jax.lax.stop_gradient(outs.get('raw', outs['fake']))
  (_, (d_terms, d_totals, has_window)), (d_grads, d_t_grads) = jax.value_and_grad(
      discriminator_loss, has_aux=True)((state.params['d'], state.params['d_t']), models,
                                        weights, inputs, fake, raw, flow_fn)

  finite = all_finite(g_total, *d_totals.values(), g_grads, d_grads, d_t_grads)
  grads = {'g': finest_only_unless_coarse_trains(models, options, g_grads), 'd': d_grads,
           **{f'd_t{k}': v for k, v in d_t_grads.items()}}
  apply = {f'd_t{k}': v for k, v in has_window.items()}
  new_state = apply_gradients(txs, options, state, grads, learning_rates, finite, apply)

  hist = models.temporal.history_length if models.temporal is not None else 0
  new_seq = SequenceState(
      prev_frames=rollout.detach(final_carry).prev_frames,
      last_fake=fake[:, -1],
      hist_real=temporal_lib.push_history(seq.hist_real, inputs.real, hist),
      hist_fake=temporal_lib.push_history(seq.hist_fake, fake, hist),
      hist_flow=temporal_lib.push_history(seq.hist_flow, inputs.flow_ref, hist),
      first_chunk=jnp.zeros((), jnp.bool_),
      frames_done=(inputs.frames_done + n_new).astype(jnp.int32))
  metrics = {**g_terms, **d_terms, 'g/total': g_total,
             **{f'{k}/total': v for k, v in d_totals.items()},
             'finite': finite.astype(jnp.float32),
             **{f'lr/{k}': jnp.asarray(v, jnp.float32) for k, v in learning_rates.items()}}
  context = models.generator.n_frames - 1
  images = {'fake': fake, 'raw': raw, 'real': inputs.real, 'cond': chunk['cond'][:, context:],
            'flow_ref': inputs.flow_ref}
  if not models.generator.net.no_flow:
    images.update(flow=jax.lax.stop_gradient(outs['flow']),
                  weight=jax.lax.stop_gradient(outs['weight']))
  return new_state, new_seq, {'scalars': metrics, 'images': images}


def finest_only_unless_coarse_trains(models: Models, options: StepOptions, g_grads: Any) -> Any:
  """G gradients with the coarser scales' zeroed while they are not trained and updated
  (niter_fix_global, compat.frozen_global_after_fix)."""
  n_scales = models.generator.n_scales
  if n_scales > 1 and not (options.train_coarse and options.update_coarse):
    finest = f'scale{n_scales - 1}'
    g_grads = {k: (v if k == finest else jax.tree_util.tree_map(jnp.zeros_like, v))
               for k, v in g_grads.items()}
  return g_grads


def apply_gradients(txs: Txs, options: StepOptions, state: TrainState, grads: Mapping[str, Any],
                    learning_rates: Mapping[str, Array], finite: Array,
                    apply: Mapping[str, Array]) -> TrainState:
  """One Adam update per optimizer group ('g', 'd', 'd_t{s}'), skipped when the step is not
  finite or ``apply[group]`` is False (a temporal D without windows is not stepped, as the
  original); the EMA of 'g' follows."""
  new_params = {**state.params, 'd_t': dict(state.params['d_t'])}  # groups without grads stay
  new_opt = dict(state.opt_state)
  for group, group_grads in grads.items():
    params = group_params(state.params, group)
    opt_state = state.opt_state[group]
    opt_state.hyperparams['learning_rate'] = jnp.asarray(
        learning_rates['d_t' if group.startswith('d_t') else group], jnp.float32)
    updates, updated_opt = txs[group].update(group_grads, opt_state, params)
    keep = jnp.logical_and(apply.get(group, True), finite)
    pick = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, old)
    new_opt[group] = pick(updated_opt, state.opt_state[group])
    updated = pick(optax.apply_updates(params, updates), params)
    if group.startswith('d_t'):
      new_params['d_t'][group[3:]] = updated
    else:
      new_params[group] = updated
  ema = state.ema_g
  if ema is not None:
    decay = options.ema_decay
    ema = jax.tree_util.tree_map(lambda e, p: jnp.where(finite, decay * e + (1 - decay) * p, e),
                                 ema, new_params['g'])
  return TrainState(step=state.step + 1, params=new_params, opt_state=new_opt, ema_g=ema)


def all_finite(*trees) -> Array:
  """Scalar bool: every leaf of every tree is finite."""
  leaves = jax.tree_util.tree_leaves(trees)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


# ----------------------------------------------------------------------------- other steps


def first_frame_step(models: Models, weights: losses_lib.LossWeights, options: StepOptions,
                     txs: Txs, state: TrainState, batch: Mapping[str, Array],
                     learning_rates: Mapping[str, Array], frozen: Mapping[str, Any]
                     ) -> tuple[TrainState, dict[str, Any]]:
  """One step of the single-image (first-frame) generator, pix2pixHD style: every frame of the
  batch's clips is an independent sample; GAN + feature matching + VGG losses.

  Args:
    batch: 'cond' [B, T, H, W, C], 'image' [B, T, H, W, 3] in [-1, 1].
    Others: as `train_step`.
  """
  cond, real = _flat(batch['cond']), _flat(batch['image'])
  weights = dataclasses.replace(weights, no_flow=True, use_mask_loss=False)
  vgg_fn = _vgg_fn(weights, frozen, models.dtype)
  ff = models.first_frame

  def g_loss(g_params, d_params):
    fake = _apply(ff.net, g_params, cond[..., :ff.channels]).astype(jnp.float32)
    terms = losses_lib.generator_loss_terms(
        weights, real=real, fake=fake, fake_raw=None,
        d_real=_image_d(models, d_params, cond, real),
        d_fake=_image_d(models, d_params, cond, fake), d_fake_raw=None, vgg_fn=vgg_fn)
    return losses_lib.total_generator_loss(terms), (terms, fake)

  def d_loss(d_params, fake):
    terms = losses_lib.discriminator_loss_terms(
        weights, d_real=_image_d(models, d_params['image'], cond, real),
        d_fake=_image_d(models, d_params['image'], cond, fake), d_fake_raw=None)
    return losses_lib.discriminator_totals(terms)['d'], terms

  (g_total, (g_terms, fake)), g_grads = jax.value_and_grad(g_loss, has_aux=True)(
      state.params['g'], state.params['d']['image'])
  fake = jax.lax.stop_gradient(fake)
  (d_total, d_terms), d_grads = jax.value_and_grad(d_loss, has_aux=True)(state.params['d'], fake)
  finite = all_finite(g_total, d_total, g_grads, d_grads)
  new_state = apply_gradients(txs, options, state, {'g': g_grads, 'd': d_grads},
                              learning_rates, finite, {})
  metrics = {**g_terms, **d_terms, 'g/total': g_total, 'd/total': d_total,
             'finite': finite.astype(jnp.float32),
             **{f'lr/{k}': jnp.asarray(v, jnp.float32) for k, v in learning_rates.items()
                if k != 'd_t'}}
  b, t = batch['image'].shape[:2]
  clip = fake.reshape((b, t) + fake.shape[1:])
  images = {'cond': batch['cond'], 'fake': clip, 'real': batch['image'], 'raw': clip}
  return new_state, {'scalars': metrics, 'images': images}


def flow_warmup_step(models: Models, weights: losses_lib.LossWeights, options: StepOptions,
                     txs: Txs, state: TrainState, chunk: Mapping[str, Array],
                     learning_rates: Mapping[str, Array], frozen: Mapping[str, Any],
                     flow_fn: Callable | None = None) -> tuple[TrainState, dict[str, Any]]:
  """One generator step on the flow terms alone (config train.flow_warmup_steps; ours).

  Every new frame of the chunk is generated from its real previous frames, all in one batch, and
  only `losses.flow_terms` (F_Flow, F_Warp, W and the occlusion term where on) train G: the flow
  and blend-weight heads learn the motion before the image path learns whether the warped frame
  can be trusted. The discriminators are not stepped.

  Args:
    chunk: as `train_step` (usually a whole clip: every frame after the first n_frames_G - 1).
    Others: as `train_step`; the 'd' and 'd_t' learning rates are unused.

  Returns:
    (new TrainState, {'scalars': flat dict incl. 'finite', 'images': as train_step's, with the
    previous real frame warped by the generated flow as 'fake' and 'raw'}).
  """
  gen = models.generator
  tg = gen.n_frames
  n_new = _new_frames(models, chunk)
  flow_fn = _flow_fn(options, frozen, flow_fn)
  cond, image = chunk['cond'], chunk['image']
  real, real_prev = image[:, tg - 1:], image[:, tg - 2:-1]
  flow_ref, conf_ref = reference_flows(options, chunk, tg - 1, flow_fn)
  # Frame t's input window and its real previous frames, every t of the chunk as one batch.
  windows = _flat(jnp.stack([cond[:, j:j + tg] for j in range(n_new)], axis=1))
  prevs = _flat(jnp.stack([image[:, j:j + tg - 1] for j in range(n_new)], axis=1))
  window_pyr = layers.pyramid(windows, gen.n_scales)
  prev_pyr = layers.pyramid(prevs, gen.n_scales)

  def g_loss(g_params):
    outs = gen.net.apply({'params': g_params}, list(window_pyr), list(prev_pyr),
                         gen.fg_masks(window_pyr), detach_coarse=not options.train_coarse)
    flow = outs[-1]['flow'].astype(jnp.float32)
    weight = outs[-1]['weight'].astype(jnp.float32)
    terms = losses_lib.flow_terms(weights, flow=flow, weight=weight, real_prev=_flat(real_prev),
                                  real=_flat(real), flow_ref=_flat(flow_ref),
                                  conf_ref=_flat(conf_ref))
    return losses_lib.total_generator_loss(terms), (terms, flow, weight)

  (g_total, (terms, flow, weight)), g_grads = jax.value_and_grad(g_loss, has_aux=True)(
      state.params['g'])
  finite = all_finite(g_total, g_grads)
  g_grads = finest_only_unless_coarse_trains(models, options, g_grads)
  new_state = apply_gradients(txs, options, state, {'g': g_grads}, learning_rates, finite, {})
  metrics = {**terms, 'g/total': g_total, 'finite': finite.astype(jnp.float32),
             'lr/g': jnp.asarray(learning_rates['g'], jnp.float32)}
  b = real.shape[0]
  as_clip = lambda x: jax.lax.stop_gradient(x).reshape((b, n_new) + x.shape[1:])
  warped = as_clip(warp_lib.warp(_flat(real_prev), flow))  # in the 'fake' and 'raw' panels
  images = {'cond': cond[:, tg - 1:], 'real': real, 'fake': warped, 'raw': warped,
            'flow': as_clip(flow), 'weight': as_clip(weight), 'flow_ref': flow_ref}
  return new_state, {'scalars': metrics, 'images': images}


# ----------------------------------------------------------------------------- compilation


def jit_step(step_fn: Callable, mesh: jax.sharding.Mesh, state_sharding: Any,
             seq_sharding: Any | None, chunk: Mapping[str, Any]) -> Callable:
  """``jax.jit`` of a bound step with explicit in/out layouts on ``mesh`` and donated states.

  Args:
    step_fn: `train_step` bound to (models, weights, options, txs), taking (state, seq, chunk,
      learning_rates, frozen); or a step without a sequence state (`first_frame_step`,
      `flow_warmup_step`) when ``seq_sharding`` is None.
    state_sharding, seq_sharding: from `train_state.state_layouts`.
    chunk: an example GLOBAL chunk (arrays or ShapeDtypeStructs) fixing the batch layout: batch on
      'data', height on 'spatial'. Learning rates and frozen networks are replicated, summary
      images keep the chunk's frame layout, scalars are replicated.
  """
  replicated = sharding_lib.replicated(mesh)
  chunk_sharding = sharding_lib.activation_shardings(mesh, dict(chunk))
  metrics_sharding = {'scalars': replicated, 'images': chunk_sharding['image']}
  if seq_sharding is None:
    return jax.jit(step_fn, in_shardings=(state_sharding, chunk_sharding, replicated, replicated),
                   out_shardings=(state_sharding, metrics_sharding), donate_argnums=(0,))
  return jax.jit(step_fn,
                 in_shardings=(state_sharding, seq_sharding, chunk_sharding, replicated,
                               replicated),
                 out_shardings=(state_sharding, seq_sharding, metrics_sharding),
                 donate_argnums=(0, 1))
