"""Training: models, states, optimizers, schedules, the jitted G/D step, train_and_evaluate.

One optimizer step processes one chunk of a clip (reference/vid2vid_spec.md 4.1-4.3): the chunk
holds ``n_frames_G - 1`` context frames and ``n`` new frames; the generator produces the new
frames with `rollout.generate`, every loss of spec 3.5-3.7 is computed once, and G, the image/face
D and every temporal D are updated from that one forward pass (D on stop-gradiented fakes, all
with the pre-update parameters, as the original's alternation amounts to). What must survive from
chunk to chunk of one clip (the generated-frame histories, the temporal-D frame buffers) lives in
`SequenceState`, which the step takes and returns.
"""

from collections.abc import Callable, Mapping
import dataclasses
import functools
import json
import math
import pathlib
import time
from typing import Any

from absl import logging
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vid2vid_jax import checkpoint
from vid2vid_jax import config_lib
from vid2vid_jax import losses as losses_lib
from vid2vid_jax import rollout
from vid2vid_jax import sharding as sharding_lib
from vid2vid_jax import video_io
from vid2vid_jax import warp as warp_lib
from vid2vid_jax import writers
from vid2vid_jax.models import builders
from vid2vid_jax.models import discriminator as disc_lib
from vid2vid_jax.models import first_frame as first_frame_lib
from vid2vid_jax.models import generator as generator_lib
from vid2vid_jax.models import layers

Array = jax.Array
PyTree = Any

# ----------------------------------------------------------------------------- models


@dataclasses.dataclass(frozen=True)
class Models:
  """The networks and the static facts the step needs; built once by `build_models`.

  Attributes:
    generator: sequential generator over all spatial scales.
    image_d: conditional multi-scale image D (input: cond frame + image).
    temporal_d: the temporal D architecture (one parameter set per temporal scale), or None.
    face_d: face D (pose with add_face_disc) or None.
    cond_channels: channels of one conditioning frame.
    n_frames_G, n_scales, n_frames_D, n_scales_temporal: as in the config.
    label_nc: label channels leading every cond frame (0 for image inputs).
    fg_labels: label ids of the fg mask when the generator has a fg branch, else ().
    first_frame_mode: 'real' | 'generate' | 'single_g' for training clips.
    face_crop_size: the face D's crop side (fineSize // 32 * 8), 0 without face D.
    openpose_only: face pixels from the OpenPose colour test instead of DensePose.
    no_flow: the generator has no flow heads.
    dtype: activation dtype.
    target: 'video' (the sequential generator) or 'first_frame' (train the single-image
      generator, pix2pixHD style).
    first_frame: the single-image generator (target 'first_frame', or first-frame mode
      'single_g' where it makes each clip's first frames), else None.
    first_frame_channels: its input channels: cond without the instance-edge channel (spec 4.7).
    sparse_D: the temporal Ds see the original's sparse_D windows (`_sparse_temporal_windows`).
    zero_flow_heads: the flow heads start at zero (identity warps) instead of random.
  """
  generator: generator_lib.MultiScaleGenerator
  image_d: disc_lib.MultiscaleDiscriminator
  temporal_d: disc_lib.MultiscaleDiscriminator | None
  face_d: disc_lib.MultiscaleDiscriminator | None
  cond_channels: int
  n_frames_G: int
  n_scales: int
  n_frames_D: int
  n_scales_temporal: int
  label_nc: int
  fg_labels: tuple[int, ...]
  first_frame_mode: str
  face_crop_size: int
  openpose_only: bool
  no_flow: bool
  dtype: Any
  target: str = 'video'
  first_frame: Any = None
  first_frame_channels: int = 0
  sparse_D: bool = False
  zero_flow_heads: bool = False


def build_models(config: Any) -> Models:
  """Config -> networks (the one place training reads model options)."""
  g, d = config.model.generator, config.model.discriminator
  face = d.add_face_disc
  target = config.train.target
  use_first_frame = target == 'first_frame' or config.first_frame.mode == 'single_g'
  if use_first_frame and config.first_frame.net.endswith('_with_features'):
    raise ValueError(f'first_frame.net={config.first_frame.net!r} (feature-conditioned, the '
                     "original's face model) runs at eval time only (eval.first_frame_mode "
                     "'single_g'); training uses a global or local first-frame net")
  cond_channels = builders.cond_channels(config)
  drop_edge = config.data.label_nc > 0 and config.data.use_instance
  return Models(
      target=target,
      first_frame=builders.first_frame_generator_from_config(config) if use_first_frame else None,
      first_frame_channels=cond_channels - 1 if drop_edge else cond_channels,
      generator=builders.generator_from_config(config),
      image_d=builders.image_discriminator_from_config(config),
      temporal_d=(builders.temporal_discriminator_from_config(config)
                  if d.n_scales_temporal > 0 and target == 'video' else None),
      face_d=builders.face_discriminator_from_config(config) if face else None,
      cond_channels=cond_channels,
      n_frames_G=g.n_frames_G,
      n_scales=g.n_scales_spatial,
      n_frames_D=d.n_frames_D,
      n_scales_temporal=d.n_scales_temporal,
      label_nc=config.data.label_nc,
      fg_labels=tuple(g.fg_labels) if g.fg else (),
      first_frame_mode=config.first_frame.mode,
      face_crop_size=config.data.fine_size // 32 * 8 if face else 0,
      openpose_only=config.data.pose.openpose_only,
      no_flow=g.no_flow,
      dtype=builders.activation_dtype(config),
      sparse_D=bool(d.sparse_D),
      zero_flow_heads=config.train.flow_head_init == 'zeros')


def frame_sizes(height: int, width: int, n_scales: int) -> list[tuple[int, int]]:
  """Per generator scale (coarsest first), the frame size of the pyramid level."""
  sizes = [(height, width)]
  for _ in range(n_scales - 1):
    h, w = sizes[-1]
    sizes.append(((h + 1) // 2, (w + 1) // 2))
  return sizes[::-1]


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4))
def init_params(models: Models, key: Array, batch: int, height: int, width: int
                ) -> dict[str, Any]:
  """Random parameters of every network: {'g', 'd': {'image'[, 'face']}, 'd_t': {'0', ...}}.

  Jitted (one compiled init instead of thousands of eager ops); ``models`` is static.
  """
  g_key, d_key, f_key, t_key = jax.random.split(key, 4)
  if models.target == 'first_frame':
    params = {'g': models.first_frame.init(
        g_key, jnp.zeros((batch, height, width, models.first_frame_channels)))['params']}
  else:
    tg = models.n_frames_G
    sizes = frame_sizes(height, width, models.n_scales)
    conds = [jnp.zeros((batch, tg, h, w, models.cond_channels)) for h, w in sizes]
    prevs = [jnp.zeros((batch, tg - 1, h, w, 3)) for h, w in sizes]
    masks = [jnp.zeros((batch, h, w, 1)) for h, w in sizes] if models.fg_labels else None
    params = {'g': models.generator.init(g_key, conds, prevs, masks)['params']}
    if models.zero_flow_heads:
      params['g'] = flax.traverse_util.path_aware_map(
          lambda path, x: jnp.zeros_like(x) if 'flow_head' in path else x, params['g'])
  d_in = jnp.zeros((batch, height, width, models.cond_channels + 3))
  params['d'] = {'image': models.image_d.init(d_key, d_in)['params']}
  if models.face_d is not None:
    side = 2 * (models.face_crop_size // 2)
    params['d']['face'] = models.face_d.init(
        f_key, jnp.zeros((batch, side, side, models.cond_channels + 3)))['params']
  params['d_t'] = {}
  if models.temporal_d is not None:
    t_in = jnp.zeros((batch, height, width, 3 * models.n_frames_D + 2 * (models.n_frames_D - 1)))
    for s, k in enumerate(jax.random.split(t_key, models.n_scales_temporal)):
      params['d_t'][str(s)] = models.temporal_d.init(k, t_in)['params']
  return params


# ----------------------------------------------------------------------------- optimizers


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Epoch-driven schedules of the original (spec 4.4, 4.5); epochs are 0-based here.

  Attributes:
    lr, beta1, ttur, niter, niter_decay: optimizer options.
    niter_step: epochs between clip-length doublings.
    n_frames_total: initial frames per clip; n_frames_cap: the dataset's cap (or None).
    max_frames_per_gpu: frames generated per step; max_frames_backpropagate: the bp cap.
    niter_fix_global: epochs with the coarse scales frozen.
    decay_only_g_and_d, frozen_global_after_fix: the original's behaviour (config.compat).
    flow_head_lr_scale: multiplies the Adam updates of every scale's flow head (1 = the
      original; see config train.flow_head_lr_scale).
  """
  lr: float
  beta1: float
  ttur: bool
  niter: int
  niter_decay: int
  niter_step: int
  n_frames_total: int
  max_frames_per_gpu: int
  max_frames_backpropagate: int
  niter_fix_global: int
  decay_only_g_and_d: bool = False
  frozen_global_after_fix: bool = False
  n_frames_cap: int | None = None
  flow_head_lr_scale: float = 1.0

  @property
  def num_epochs(self) -> int:
    return self.niter + self.niter_decay

  def lr_factor(self, epoch: int) -> float:
    """Constant for niter epochs, then linear decay: the last epoch runs at lr / niter_decay."""
    if epoch < self.niter or self.niter_decay == 0:
      return 1.0
    return max(0.0, 1.0 - (epoch - self.niter) / self.niter_decay)

  def learning_rates(self, epoch: int) -> dict[str, float]:
    """Learning rates of the 'g', 'd' and temporal 'd_t' optimizers during ``epoch``."""
    f = self.lr_factor(epoch)
    g_scale, d_scale = (0.5, 2.0) if self.ttur else (1.0, 1.0)
    return {'g': self.lr * g_scale * f, 'd': self.lr * d_scale * f,
            'd_t': self.lr if self.decay_only_g_and_d else self.lr * f}

  def n_frames_total_at(self, epoch: int) -> int:
    """Frames per clip during ``epoch``: doubles every niter_step epochs, up to the cap."""
    n = self.n_frames_total * 2 ** (epoch // self.niter_step)
    return min(n, self.n_frames_cap) if self.n_frames_cap else n

  def frames_per_step(self, epoch: int) -> int:
    """New frames per optimizer step (the original's n_frames_load with one 'GPU')."""
    return max(1, min(self.max_frames_per_gpu, self.n_frames_total_at(epoch)))

  def frames_backpropagate(self, epoch: int) -> int:
    """Gradient block length (spec 4.5): nfl // ceil(nfl / min(max_bp, 2**ratio))."""
    ratio = epoch // self.niter_step
    nfl = self.frames_per_step(epoch)
    cap = min(self.max_frames_backpropagate, 2**ratio, nfl)
    return max(1, nfl // math.ceil(nfl / cap))

  def train_coarse(self, epoch: int) -> bool:
    """Whether the coarser generator scales are optimised (and not detached) in ``epoch``."""
    return epoch >= self.niter_fix_global


def schedule_from_config(config: Any, n_frames_cap: int | None = None) -> Schedule:
  t = config.train
  return Schedule(
      lr=t.lr, beta1=t.beta1, ttur=t.ttur, niter=t.niter, niter_decay=t.niter_decay,
      niter_step=t.niter_step, n_frames_total=config.data.n_frames_total,
      max_frames_per_gpu=t.max_frames_per_gpu,
      max_frames_backpropagate=t.max_frames_backpropagate,
      niter_fix_global=t.niter_fix_global,
      decay_only_g_and_d=config.compat.decay_only_g_and_d,
      frozen_global_after_fix=config.compat.frozen_global_after_fix,
      n_frames_cap=n_frames_cap, flow_head_lr_scale=t.flow_head_lr_scale)


def make_optimizers(schedule: Schedule, params: Mapping[str, Any]
                    ) -> dict[str, optax.GradientTransformation]:
  """Adam per optimizer group (spec 4.4); learning rates are injected per step from the host."""
  g_betas = d_betas = (schedule.beta1, 0.999)
  if schedule.ttur:
    g_betas = d_betas = (0.0, 0.9)
  adam = optax.inject_hyperparams(optax.adam)
  rates = schedule.learning_rates(0)
  g_adam = adam
  if schedule.flow_head_lr_scale != 1.0:
    g_adam = optax.inject_hyperparams(functools.partial(
        _adam_scaled_flow_heads, flow_head_scale=schedule.flow_head_lr_scale))
  txs = {'g': g_adam(learning_rate=rates['g'], b1=g_betas[0], b2=g_betas[1]),
         'd': adam(learning_rate=rates['d'], b1=d_betas[0], b2=d_betas[1])}
  for s in params['d_t']:
    txs[f'd_t{s}'] = adam(learning_rate=rates['d_t'], b1=schedule.beta1, b2=0.999)
  return txs


def _adam_scaled_flow_heads(learning_rate: float, b1: float, b2: float,
                            flow_head_scale: float) -> optax.GradientTransformation:
  """Adam whose updates of the generator's ``flow_head`` parameters are scaled.

  Adam's steps do not depend on the gradient's scale, and the flow head's output is multiplied
  by 20 * 2**s to give pixels: at the generator's learning rate the predicted flow moves by a
  sizeable fraction of a pixel per step and never settles to sub-pixel precision. A scale of
  1 / 20 gives the head the step size of an unscaled output.
  """
  def is_flow_head(params):
    return flax.traverse_util.path_aware_map(lambda path, _: 'flow_head' in path, params)
  return optax.chain(optax.adam(learning_rate, b1=b1, b2=b2),
                     optax.masked(optax.scale(flow_head_scale), is_flow_head))


def _group_params(params: Mapping[str, Any], group: str) -> Any:
  if group.startswith('d_t'):
    return params['d_t'][group[3:]]
  return params[group]


# ----------------------------------------------------------------------------- states


@flax.struct.dataclass
class TrainState:
  """Everything a training run carries from step to step (saved in checkpoints).

  step: optimizer steps taken; params: see init_params; opt_state: per optimizer group;
  ema_g: EMA of the generator params (None when train.ema_decay == 0).
  """
  step: Array
  params: dict[str, Any]
  opt_state: dict[str, Any]
  ema_g: Any = None


@flax.struct.dataclass
class SequenceState:
  """What one clip carries from chunk to chunk (all detached).

  prev_frames: per generator scale [B, n_frames_G - 1, h, w, 3], the scale's newest outputs.
  last_fake: [B, H, W, 3] the newest generated finest frame (for G_Warp of the next chunk).
  hist_real, hist_fake: [B, L, H, W, 3] newest real / generated frames for the temporal Ds,
  hist_flow: [B, L, H, W, 2] their reference flows (to the frame before),
  L = n_frames_D**(S-1) * (n_frames_D-1); the newest `hist_count` entries are valid.
  first_chunk: scalar bool, True before the clip's first chunk.
  frames_done: scalar int32, frames generated in this clip before this chunk (sparse_D windows
  are aligned to it).
  """
  prev_frames: tuple[Array, ...]
  last_fake: Array
  hist_real: Array
  hist_fake: Array
  hist_flow: Array
  first_chunk: Array
  frames_done: Array

  @property
  def hist_count(self) -> Array:
    """Valid (real, generated) history entries: min(frames_done, L)."""
    return jnp.minimum(self.frames_done, self.hist_real.shape[1])


def history_length(models: Models) -> int:
  if models.temporal_d is None:
    return 0
  return disc_lib.temporal_history_length(models.n_frames_D, models.n_scales_temporal)


def empty_sequence_state(models: Models, batch: int, height: int, width: int) -> SequenceState:
  """The state before a clip's first chunk (filled by the first step from the real frames)."""
  sizes = frame_sizes(height, width, models.n_scales)
  hist = history_length(models)
  return SequenceState(
      prev_frames=tuple(jnp.zeros((batch, models.n_frames_G - 1, h, w, 3)) for h, w in sizes),
      last_fake=jnp.zeros((batch, height, width, 3)),
      hist_real=jnp.zeros((batch, hist, height, width, 3)),
      hist_fake=jnp.zeros((batch, hist, height, width, 3)),
      hist_flow=jnp.zeros((batch, hist, height, width, 2)),
      first_chunk=jnp.ones((), jnp.bool_),
      frames_done=jnp.zeros((), jnp.int32))


def create_train_state(models: Models, schedule: Schedule, key: Array, batch: int,
                       height: int, width: int, ema: bool = False) -> TrainState:
  params = init_params(models, key, batch, height, width)
  txs = make_optimizers(schedule, params)
  opt_state = {name: tx.init(_group_params(params, name)) for name, tx in txs.items()}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                    ema_g=_copy(params['g']) if ema else None)


def create_sharded_states(models: Models, schedule: Schedule, key: Array, batch: int,
                          height: int, width: int, mesh: jax.sharding.Mesh, ema: bool = False,
                          fsdp: bool = False, fsdp_min_size: int = 2**14
                          ) -> tuple[TrainState, Any, Callable[[], Any]]:
  """The train state created directly in its mesh layout (`sharding.state_shardings`:
  replicated, or FSDP-split over 'data'), plus the sequence-state layout and a function that
  makes a fresh, laid-out `empty_sequence_state`.

  Args:
    batch, height, width: the GLOBAL batch and frame size.
  Returns:
    (state, (state_sharding, sequence_sharding), new_sequence_state).
  """
  make_state = functools.partial(create_train_state, models, schedule, batch=batch,
                                 height=height, width=width, ema=ema)
  state_sharding = sharding_lib.state_shardings(mesh, jax.eval_shape(make_state, key), fsdp,
                                                fsdp_min_size)
  make_seq = functools.partial(empty_sequence_state, models, batch, height, width)
  seq_sharding = sharding_lib.activation_shardings(mesh, jax.eval_shape(make_seq))
  state = jax.jit(make_state, out_shardings=state_sharding)(key)
  return state, (state_sharding, seq_sharding), jax.jit(make_seq, out_shardings=seq_sharding)


def jit_step(step_fn: Callable, mesh: jax.sharding.Mesh, state_sharding: Any,
             seq_sharding: Any | None, chunk: Mapping[str, Any]) -> Callable:
  """``jax.jit`` of a bound step with explicit in/out layouts on ``mesh`` and donated states.

  Args:
    step_fn: `train_step` bound to (models, losses, options, txs), taking (state, seq, chunk,
      learning_rates, frozen); or `first_frame_step` (no seq) when ``seq_sharding`` is None.
    state_sharding, seq_sharding: from `create_sharded_states`.
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


def _copy(tree: Any) -> Any:
  """Fresh buffers (the EMA must not alias the params: both are donated to the step)."""
  return jax.tree_util.tree_map(jnp.copy, tree)


# ----------------------------------------------------------------------------- the step


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """Static options of one compiled step (a change recompiles).

  frames_backpropagate: gradient block length of the rollout.
  train_coarse: coarser generator scales get gradients and updates (after niter_fix_global).
  update_coarse: ... and are actually updated (False with compat.frozen_global_after_fix).
  flow_source: 'dataset' (batch flow_gt/conf_gt), 'flownet2' (flow params given), 'none'.
  remat: rematerialise each generated frame.
  ema_decay: 0 = no EMA.
  unroll: unroll the rollout's time loop (see `rollout.generate`).
  warp_flow_grad: image losses reach the flow through the warp (config loss.warp_flow_grad).
  flownet_rgb_max, flownet_div_flow: FlowNet2's input and flow scales (config flow.rgb_max,
    flow.div_flow) for the 'flownet2' source.
  """
  frames_backpropagate: int = 1
  train_coarse: bool = True
  update_coarse: bool = True
  flow_source: str = 'dataset'
  remat: bool = False
  ema_decay: float = 0.0
  unroll: bool = False
  warp_flow_grad: bool = True
  flownet_rgb_max: float = 1.0
  flownet_div_flow: float = 20.0


def _flat(x: Array) -> Array:
  """[B, T, ...] -> [B*T, ...]."""
  return x.reshape((-1,) + x.shape[2:])


def _compose_flows(flows: Array) -> Array:
  """Chains consecutive backward flows into one: [N, k, H, W, 2] (oldest first) -> [N, H, W, 2].

  flows[:, j] maps frame a+j+1 to frame a+j; the result maps frame a+k to frame a:
  F = f_last + warp(F_rest, f_last), applied from the newest flow back.
  """
  total = flows[:, -1]
  for j in range(flows.shape[1] - 2, -1, -1):
    total = total + warp_lib.warp(flows[:, j], total)
  return total


def _reference_flows(models: Models, options: StepOptions, chunk: Mapping[str, Array],
                     flow_fn: Callable | None, real: Array, real_prev: Array
                     ) -> tuple[Array, Array]:
  """flow_ref [B, n, H, W, 2] (real t -> t-1, pixels) and conf_ref [B, n, H, W, 1]."""
  tg = models.n_frames_G
  b, n = real.shape[:2]
  if options.flow_source == 'dataset':
    return chunk['flow_gt'][:, tg - 1:], chunk['conf_gt'][:, tg - 1:]
  if options.flow_source == 'flownet2':
    flow, conf = flow_fn(_flat(real), _flat(real_prev))
    return (flow.reshape((b, n) + flow.shape[1:]), conf.reshape((b, n) + conf.shape[1:]))
  zeros = jnp.zeros(real.shape[:-1] + (1,), jnp.float32)
  return jnp.concatenate([zeros, zeros], axis=-1), zeros


def _window_flows(flow_fn: Callable | None, windows: Array, flow_windows: Array, scale: int,
                  n_frames_D: int) -> Array:
  """Reference flows between consecutive frames of temporal windows.

  Args:
    flow_fn: computes the flows of windows at scales >= 1 when given (see `train_step`).
    windows: [N, tD, H, W, 3] real frames of the windows.
    flow_windows: [N, span, H, W, 2] the consecutive scale-0 flows inside each window (each
      frame to the frame before), oldest first; span = n_frames_D**scale * (n_frames_D - 1).

  Returns:
    [N, tD - 1, H, W, 2].
  """
  stride = n_frames_D**scale
  if scale > 0 and flow_fn is not None:  # flows between the skipped frames, as the original
    n, t = windows.shape[:2]
    cur, prev = _flat(windows[:, 1:]), _flat(windows[:, :-1])
    flow, _ = flow_fn(cur, prev)
    return flow.reshape((n, t - 1) + flow.shape[1:])
  # Dataset flows: chain the consecutive flows inside each stride (exact up to interpolation).
  pieces = [_compose_flows(flow_windows[:, k * stride:(k + 1) * stride])
            for k in range(n_frames_D - 1)]
  return jnp.stack(pieces, axis=1)


def _temporal_windows(models: Models, seq_real: Array, seq_fake: Array, seq_flow: Array,
                      valid_frames: Array, n_new: int, scale: int):
  """Windows of temporal scale ``scale`` ending at the newest frame and stepping back by tD.

  The original builds windows from however much history it has (spec 2.4, 8.17); our buffers
  have a fixed length, so windows that would reach into missing history are masked instead.

  Returns:
    list over windows of (real [B, tD, H, W, 3], fake [B, tD, ...], flows [B, span, H, W, 2]
    consecutive scale-0 flows of the span, valid scalar bool).
  """
  td = models.n_frames_D
  stride = td**scale
  span = stride * (td - 1)
  total = seq_real.shape[1]
  out = []
  for t in range(0, n_new, td):
    end = total - 1 - t
    start = end - span
    if start < 0:
      continue
    idx = np.arange(start, end + 1, stride)
    valid = t + span < valid_frames  # every frame of the window exists
    out.append((seq_real[:, idx], seq_fake[:, idx], seq_flow[:, start + 1:end + 1], valid))
  return out


def _sparse_temporal_windows(models: Models, seq_real: Array, seq_fake: Array, seq_flow: Array,
                             frames_done: Array, n_new: int, scale: int):
  """The windows of the original's sparse_D (spec 2.4, get_skipped_frames_sparse).

  Temporal scale s only looks at the frames whose index in the clip (0 = the first generated
  frame) is a multiple of tD**s. Each chunk, the original keeps the last tD - 1 such frames of
  the earlier chunks, appends this chunk's, and cuts that buffer from its newest end into
  groups of tD consecutive frames, dropping the oldest remainder. So a window ends at the
  newest selected frame, the next one tD selected frames earlier, for
  (min(selected before, tD - 1) + selected in this chunk) // tD windows. Its flows are the
  stored scale-0 reference flows of window frames 1..tD-1 (each to the frame just before it,
  not to the previous window frame: the original's approximation at scales >= 1).

  Args:
    seq_real, seq_fake: [B, T_all, H, W, 3] history then this chunk's n_new frames.
    seq_flow: [B, T_all, H, W, 2] their reference flows (each frame to the frame before).
    frames_done: scalar int, clip index of this chunk's first frame.

  Returns:
    list over candidate windows of (real [B, tD, H, W, 3], fake [B, tD, ...], flows
    [B, tD - 1, H, W, 2], valid scalar bool); the number of candidates is static.
  """
  td = models.n_frames_D
  stride = td**scale
  total = seq_real.shape[1]
  newest = frames_done + n_new - 1  # clip index of the frame at position total - 1
  before = (frames_done + stride - 1) // stride  # selected frames in earlier chunks
  in_chunk = newest // stride - (frames_done - 1) // stride  # floor division: -1 // s = -1
  n_windows = (jnp.minimum(before, td - 1) + in_chunk) // td
  newest_selected = total - 1 - newest % stride  # its position in seq_*
  offsets = stride * np.arange(td - 1, -1, -1)
  out = []
  for j in range((td - 1 + -(-n_new // stride)) // td):
    # Valid windows lie inside the buffer (history length tD**(S-1) * (tD-1)); the clip only
    # keeps masked-out candidates in range.
    idx = jnp.clip(newest_selected - j * td * stride - offsets, 0, total - 1)
    out.append((jnp.take(seq_real, idx, axis=1), jnp.take(seq_fake, idx, axis=1),
                jnp.take(seq_flow, idx[1:], axis=1), j < n_windows))
  return out


def _apply_d(model, params, x):
  return model.apply({'params': params}, x)


def _check_chunk(models: Models, options: StepOptions, chunk: Mapping[str, Array],
                 frozen: Mapping[str, Any], flow_fn: Callable | None
                 ) -> tuple[int, Callable | None]:
  """(new frames in the chunk, the flow function to use): validates the chunk's shapes and
  binds FlowNet2 from frozen['flownet'] for the 'flownet2' source when no flow_fn is given."""
  tg = models.n_frames_G
  cond, image = chunk['cond'], chunk['image']
  if cond.ndim != 5 or image.ndim != 5 or cond.shape[:2] != image.shape[:2]:
    raise ValueError(f'chunk cond {cond.shape} / image {image.shape} must be [B, T, H, W, C] '
                     'with one B and T')
  n_new = cond.shape[1] - (tg - 1)
  if n_new < 1:
    raise ValueError(f'a chunk needs more than n_frames_G - 1 = {tg - 1} frames, got '
                     f'{cond.shape[1]}')
  if flow_fn is None and options.flow_source == 'flownet2':
    from flow import api as flow_api  # pylint: disable=g-import-not-at-top
    flow_fn = functools.partial(flow_api.compute_flow_and_conf, frozen['flownet'],
                                rgb_max=options.flownet_rgb_max,
                                div_flow=options.flownet_div_flow)
  return n_new, flow_fn


def train_step(models: Models, losses: losses_lib.LossWeights, options: StepOptions,
               txs: Mapping[str, optax.GradientTransformation], state: TrainState,
               seq: SequenceState, chunk: Mapping[str, Array], learning_rates: Mapping[str, Array],
               frozen: Mapping[str, Any], flow_fn: Callable | None = None
               ) -> tuple[TrainState, SequenceState, dict[str, Array]]:
  """One optimizer step on one chunk of a clip.

  Args:
    models, losses, options, txs: static pieces, bound with functools.partial.
    state: TrainState before the step.
    seq: SequenceState of the clip (see `empty_sequence_state`; first_chunk True for chunk 0).
    chunk: 'cond' [B, tG-1+n, H, W, C], 'image' [B, tG-1+n, H, W, 3] in [-1, 1], and with the
      dataset flow source 'flow_gt' [B, tG-1+n, H, W, 2] (frame t -> t-1, pixels), 'conf_gt'
      [B, tG-1+n, H, W, 1].
    learning_rates: {'g', 'd', 'd_t'} scalars for this step (from Schedule.learning_rates).
    frozen: {'vgg': VGG params or None, 'flownet': FlowNet2 variables or None,
      'first_frame': single-image G params (first-frame mode 'single_g') or None}.
    flow_fn: static; (cur [N, H, W, 3], prev [N, H, W, 3]) -> (flow [N, H, W, 2] cur -> prev
      in pixels, conf [N, H, W, 1]) used instead of FlowNet2 wherever the step computes flows.
      With the 'dataset' source it gives the flows between the skipped frames of temporal
      scales >= 1 (otherwise chained from the consecutive dataset flows). None: FlowNet2 from
      frozen['flownet'] for the 'flownet2' source.

  Returns:
    (new TrainState, new SequenceState, metrics: flat dict of scalars, incl. 'finite').
  """
  tg = models.n_frames_G
  cond, image = chunk['cond'], chunk['image']
  n_new, flow_fn = _check_chunk(models, options, chunk, frozen, flow_fn)
  vgg_fn = None
  if losses.use_vgg:
    from vid2vid_jax import vgg  # pylint: disable=g-import-not-at-top
    vgg_fn = functools.partial(vgg.vgg_loss, frozen['vgg'], dtype=models.dtype)

  first = seq.first_chunk
  # Inputs of every scale, coarsest first.
  cond_pyr = layers.pyramid(cond, models.n_scales)
  if models.first_frame_mode == 'generate':
    init_prev = tuple(jnp.zeros_like(p) for p in seq.prev_frames)
  elif models.first_frame_mode == 'single_g':  # the frozen single-image G makes them (4.7)
    context = _flat(cond[:, :tg - 1])
    channels = first_frame_lib.input_channels(models.first_frame, frozen['first_frame'])
    made = models.first_frame.apply({'params': frozen['first_frame']},
                                    context[..., :channels]).astype(jnp.float32)
    made = jax.lax.stop_gradient(made).reshape(image[:, :tg - 1].shape)
    init_prev = tuple(layers.pyramid(made, models.n_scales))
  else:
    init_prev = tuple(layers.pyramid(image[:, :tg - 1], models.n_scales))
  prev = tuple(jnp.where(first, a, b) for a, b in zip(init_prev, seq.prev_frames))
  carry = rollout.Carry(tuple(c[:, :tg - 1] for c in cond_pyr), prev)
  cond_new = tuple(c[:, tg - 1:] for c in cond_pyr)
  use_raw_only = jnp.logical_and(first, models.first_frame_mode == 'generate')

  real = image[:, tg - 1:]
  real_prev = image[:, tg - 2:-1]
  flow_ref, conf_ref = _reference_flows(models, options, chunk, flow_fn, real, real_prev)
  flow_ref = jax.lax.stop_gradient(flow_ref)
  conf_ref = jax.lax.stop_gradient(conf_ref)
  last_fake = jnp.where(first, image[:, tg - 2], seq.last_fake)
  real_cur_cond = _flat(cond[:, tg - 1:])

  def frame_fn(g_params, windows, prevs, t):
    del t
    masks = None
    if models.fg_labels:
      masks = [generator_lib.fg_mask_from_labels(w[:, -1, ..., :models.label_nc],
                                                 models.fg_labels) for w in windows]
    outs = models.generator.apply({'params': g_params}, list(windows), list(prevs), masks,
                                  use_raw_only=use_raw_only,
                                  detach_coarse=not options.train_coarse,
                                  warp_flow_grad=options.warp_flow_grad)
    finest = outs[-1]
    keep = {k: finest[k].astype(jnp.float32) for k in ('fake', 'raw', 'flow', 'weight')
            if finest.get(k) is not None}
    return tuple(o['fake'] for o in outs), keep

  def d_image_input(x):
    return jnp.concatenate([real_cur_cond.astype(x.dtype), x], axis=-1)

  def run_face(model_params, real_x, fake_x):
    mask = disc_lib.face_mask_from_pose(real_cur_cond, models.openpose_only)
    (c_cond, c_real, c_fake), has_face = disc_lib.face_crop(
        [real_cur_cond, real_x, fake_x], mask, models.face_crop_size)
    d_real = _apply_d(models.face_d, model_params, jnp.concatenate([c_cond, c_real], -1))
    d_fake = _apply_d(models.face_d, model_params, jnp.concatenate([c_cond, c_fake], -1))
    return d_real, d_fake, has_face

  seq_real = jnp.concatenate([seq.hist_real, real], axis=1)
  seq_flow = jnp.concatenate([seq.hist_flow, flow_ref], axis=1)
  frames_done = jnp.where(first, 0, seq.frames_done)
  valid_frames = jnp.minimum(frames_done, history_length(models)) + n_new
  hist_fake = seq.hist_fake

  def temporal_terms(d_t_params, fake_all, detach_fake):
    """Per temporal scale: (mean G terms, mean D terms, has_window) over valid windows."""
    results = []
    for s in range(models.n_scales_temporal):
      if models.sparse_D:
        windows = _sparse_temporal_windows(models, seq_real, fake_all, seq_flow, frames_done,
                                           n_new, s)
      else:
        windows = [(r, f, _window_flows(flow_fn, r, w_flows, s, models.n_frames_D), v)
                   for r, f, w_flows, v in _temporal_windows(models, seq_real, fake_all,
                                                             seq_flow, valid_frames, n_new, s)]
      g_gan = g_feat = d_real = d_fake = jnp.zeros((), jnp.float32)
      count = jnp.zeros((), jnp.float32)
      for w_real, w_fake, flows, valid in windows:
        flows = jax.lax.stop_gradient(flows)
        x_real = disc_lib.temporal_d_input(w_real, flows)
        fake_in = jax.lax.stop_gradient(w_fake) if detach_fake else w_fake
        x_fake = disc_lib.temporal_d_input(fake_in, flows)
        p_real = _apply_d(models.temporal_d, d_t_params[str(s)], x_real)
        p_fake = _apply_d(models.temporal_d, d_t_params[str(s)], x_fake)
        v = valid.astype(jnp.float32)
        g_gan += v * losses_lib.gan_loss(p_fake, True, losses.gan_mode, for_discriminator=False)
        if losses.use_gan_feat:
          g_feat += v * losses.lambda_feat * losses_lib.feature_matching_loss(
              p_fake, p_real, losses.num_D, losses.n_layers_D)
        d_real += v * losses_lib.gan_loss(p_real, True, losses.gan_mode, for_discriminator=True)
        d_fake += v * losses_lib.gan_loss(p_fake, False, losses.gan_mode, for_discriminator=True)
        count += v
      norm = 1.0 / jnp.maximum(count, 1.0)
      results.append(dict(g_gan=g_gan * norm, g_feat=g_feat * norm, d_real=d_real * norm,
                          d_fake=d_fake * norm, has_window=count > 0))
    return results

  def generator_loss(g_params):
    final_carry, outs = rollout.generate(
        functools.partial(frame_fn, g_params), carry, cond_new,
        max_frames_backpropagate=options.frames_backpropagate, remat=options.remat,
        unroll=options.unroll)
    fake = outs['fake']
    raw = outs.get('raw', fake)
    fake_flat, raw_flat, real_flat = _flat(fake), _flat(raw), _flat(real)
    d_params = state.params['d']
    d_real = _apply_d(models.image_d, d_params['image'], d_image_input(real_flat))
    d_fake = _apply_d(models.image_d, d_params['image'], d_image_input(fake_flat))
    d_raw = _apply_d(models.image_d, d_params['image'], d_image_input(raw_flat))
    fake_prev = jnp.concatenate([last_fake[:, None],
                                 jax.lax.stop_gradient(fake[:, :-1])], axis=1)
    face = {}
    if models.face_d is not None:
      f_real, f_fake, has_face = run_face(d_params['face'], real_flat, fake_flat)
      face = dict(d_face_real=f_real, d_face_fake=f_fake, face_valid=has_face)
    terms = losses_lib.generator_loss_terms(
        losses, real=real, fake=fake, fake_raw=raw, d_real=d_real, d_fake=d_fake,
        d_fake_raw=d_raw, vgg_fn=vgg_fn,
        flow=None if models.no_flow else outs['flow'],
        weight=None if models.no_flow else outs['weight'],
        real_prev=real_prev, fake_prev=fake_prev, flow_ref=flow_ref, conf_ref=conf_ref, **face)
    if models.temporal_d is not None:
      fake_all = jnp.concatenate([hist_fake, fake], axis=1)
      for s, r in enumerate(temporal_terms(state.params['d_t'], fake_all, detach_fake=False)):
        terms[f'g/t_gan_{s}'] = r['g_gan']
        if losses.use_gan_feat:
          terms[f'g/t_gan_feat_{s}'] = r['g_feat']
    total = losses_lib.total_generator_loss(terms)
    return total, (terms, final_carry, outs)

  (g_total, (g_terms, final_carry, outs)), g_grads = jax.value_and_grad(
      generator_loss, has_aux=True)(state.params['g'])
  fake = jax.lax.stop_gradient(outs['fake'])
  raw = jax.lax.stop_gradient(outs.get('raw', outs['fake']))

  def discriminator_loss(d_all):
    d_params, d_t_params = d_all
    real_flat = _flat(real)
    d_real = _apply_d(models.image_d, d_params['image'], d_image_input(real_flat))
    d_fake = _apply_d(models.image_d, d_params['image'], d_image_input(_flat(fake)))
    d_raw = _apply_d(models.image_d, d_params['image'], d_image_input(_flat(raw)))
    face = {}
    if models.face_d is not None:
      f_real, f_fake, has_face = run_face(d_params['face'], real_flat, _flat(fake))
      face = dict(d_face_real=f_real, d_face_fake=f_fake, face_valid=has_face)
    terms = losses_lib.discriminator_loss_terms(losses, d_real=d_real, d_fake=d_fake,
                                                d_fake_raw=d_raw, **face)
    totals = losses_lib.discriminator_totals(terms)
    has_window = {}
    if models.temporal_d is not None:
      fake_all = jnp.concatenate([hist_fake, fake], axis=1)
      for s, r in enumerate(temporal_terms(d_t_params, fake_all, detach_fake=True)):
        terms[f'd_t{s}/real'] = r['d_real']
        terms[f'd_t{s}/fake'] = r['d_fake']
        totals[f'd_t{s}'] = 0.5 * (r['d_real'] + r['d_fake'])
        has_window[str(s)] = r['has_window']
    # Each D's parameters only appear in its own total, so one gradient of the sum serves all.
    return sum(totals.values()), (terms, totals, has_window)

  (_, (d_terms, d_totals, has_window)), (d_grads, d_t_grads) = jax.value_and_grad(
      discriminator_loss, has_aux=True)((state.params['d'], state.params['d_t']))

  finite = _all_finite(g_total, *d_totals.values(), g_grads, d_grads, d_t_grads)

  g_grads = _finest_only_unless_coarse_trains(models, options, g_grads)

  grads = {'g': g_grads, 'd': d_grads, **{f'd_t{k}': v for k, v in d_t_grads.items()}}
  apply = {f'd_t{k}': v for k, v in has_window.items()}
  new_state = _apply_gradients(txs, options, state, grads, learning_rates, finite, apply)

  hist = history_length(models)
  fake_all = jnp.concatenate([hist_fake, fake], axis=1)
  new_seq = SequenceState(
      prev_frames=rollout.detach(final_carry).prev_frames,
      last_fake=fake[:, -1],
      hist_real=seq_real[:, seq_real.shape[1] - hist:],
      hist_fake=fake_all[:, fake_all.shape[1] - hist:],
      hist_flow=seq_flow[:, seq_flow.shape[1] - hist:],
      first_chunk=jnp.zeros((), jnp.bool_),
      frames_done=(frames_done + n_new).astype(jnp.int32))
  metrics = {**g_terms, **d_terms, 'g/total': g_total,
             **{f'{k}/total': v for k, v in d_totals.items()},
             'finite': finite.astype(jnp.float32)}
  for group, rate in learning_rates.items():
    metrics[f'lr/{group}'] = jnp.asarray(rate, jnp.float32)
  images = {'fake': fake, 'raw': raw, 'real': real, 'cond': cond[:, tg - 1:],
            'flow_ref': flow_ref}
  if not models.no_flow:
    images.update(flow=jax.lax.stop_gradient(outs['flow']),
                  weight=jax.lax.stop_gradient(outs['weight']))
  return new_state, new_seq, {'scalars': metrics, 'images': images}


def _finest_only_unless_coarse_trains(models: Models, options: StepOptions, g_grads: Any) -> Any:
  """G gradients with the coarser scales' zeroed while they are not trained and updated
  (niter_fix_global, compat.frozen_global_after_fix)."""
  if models.n_scales > 1 and not (options.train_coarse and options.update_coarse):
    finest = f'scale{models.n_scales - 1}'
    g_grads = {k: (v if k == finest else jax.tree_util.tree_map(jnp.zeros_like, v))
               for k, v in g_grads.items()}
  return g_grads


def _apply_gradients(txs: Mapping[str, optax.GradientTransformation], options: StepOptions,
                     state: TrainState, grads: Mapping[str, Any],
                     learning_rates: Mapping[str, Array], finite: Array,
                     apply: Mapping[str, Array]) -> TrainState:
  """One Adam update per optimizer group ('g', 'd', 'd_t{s}'), skipped when the step is not
  finite or ``apply[group]`` is False (a temporal D without windows is not stepped, as the
  original)."""
  new_params = {**state.params, 'd_t': dict(state.params['d_t'])}  # groups without grads stay
  new_opt = dict(state.opt_state)
  for group, group_grads in grads.items():
    params = _group_params(state.params, group)
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


def _all_finite(*trees) -> Array:
  leaves = jax.tree_util.tree_leaves(trees)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def first_frame_input(models: Models, cond: Array) -> Array:
  """The single-image generator's input: cond without the instance-edge channel (spec 4.7)."""
  return cond[..., :models.first_frame_channels]


def first_frame_step(models: Models, losses: losses_lib.LossWeights, options: StepOptions,
                     txs: Mapping[str, optax.GradientTransformation], state: TrainState,
                     batch: Mapping[str, Array], learning_rates: Mapping[str, Array],
                     frozen: Mapping[str, Any]) -> tuple[TrainState, dict[str, Any]]:
  """One step of the single-image (first-frame) generator, pix2pixHD style: every frame of the
  batch's clips is an independent sample; GAN + feature matching + VGG losses.

  Args:
    batch: 'cond' [B, T, H, W, C], 'image' [B, T, H, W, 3] in [-1, 1].
    Others: as train_step.
  """
  cond, real = _flat(batch['cond']), _flat(batch['image'])
  weights = dataclasses.replace(losses, no_flow=True, use_mask_loss=False)
  vgg_fn = None
  if weights.use_vgg:
    from vid2vid_jax import vgg  # pylint: disable=g-import-not-at-top
    vgg_fn = functools.partial(vgg.vgg_loss, frozen['vgg'], dtype=models.dtype)
  d_input = lambda x: jnp.concatenate([cond.astype(x.dtype), x], axis=-1)
  d_params = state.params['d']['image']

  def generator_loss(g_params):
    fake = models.first_frame.apply({'params': g_params},
                                    first_frame_input(models, cond)).astype(jnp.float32)
    terms = losses_lib.generator_loss_terms(
        weights, real=real, fake=fake, fake_raw=None,
        d_real=_apply_d(models.image_d, d_params, d_input(real)),
        d_fake=_apply_d(models.image_d, d_params, d_input(fake)), d_fake_raw=None,
        vgg_fn=vgg_fn)
    return losses_lib.total_generator_loss(terms), (terms, fake)

  (g_total, (g_terms, fake)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
      state.params['g'])
  fake = jax.lax.stop_gradient(fake)

  def discriminator_loss(d_all):
    terms = losses_lib.discriminator_loss_terms(
        weights, d_real=_apply_d(models.image_d, d_all['image'], d_input(real)),
        d_fake=_apply_d(models.image_d, d_all['image'], d_input(fake)), d_fake_raw=None)
    totals = losses_lib.discriminator_totals(terms)
    return totals['d'], terms

  (d_total, d_terms), d_grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
      state.params['d'])
  finite = _all_finite(g_total, d_total, g_grads, d_grads)
  new_state = _apply_gradients(txs, options, state, {'g': g_grads, 'd': d_grads},
                               learning_rates, finite, {})
  metrics = {**g_terms, **d_terms, 'g/total': g_total, 'd/total': d_total,
             'finite': finite.astype(jnp.float32),
             **{f'lr/{k}': jnp.asarray(v, jnp.float32) for k, v in learning_rates.items()
                if k != 'd_t'}}
  b, t = batch['image'].shape[:2]
  images = {'cond': batch['cond'], 'fake': fake.reshape((b, t) + fake.shape[1:]),
            'real': batch['image'], 'raw': fake.reshape((b, t) + fake.shape[1:])}
  return new_state, {'scalars': metrics, 'images': images}


def flow_warmup_step(models: Models, losses: losses_lib.LossWeights, options: StepOptions,
                     txs: Mapping[str, optax.GradientTransformation], state: TrainState,
                     chunk: Mapping[str, Array], learning_rates: Mapping[str, Array],
                     frozen: Mapping[str, Any], flow_fn: Callable | None = None
                     ) -> tuple[TrainState, dict[str, Any]]:
  """One generator step on the flow terms alone (config train.flow_warmup_steps; ours).

  Every new frame of the chunk is generated from its real previous frames, all in one batch, and
  only `losses.flow_terms` (F_Flow, F_Warp, W and the occlusion term where on) train G: the flow
  and blend-weight heads learn the motion before the image path learns whether the warped frame
  can be trusted. The discriminators are not stepped.

  Args:
    chunk: as `train_step` (usually a whole clip: every frame after the first n_frames_G - 1).
    Others: as `train_step`; the 'd' and 'd_t' learning rates are unused.

  Returns:
    (new TrainState, {'scalars': flat dict of scalars incl. 'finite', 'images': as train_step's,
    with the previous real frame warped by the generated flow as 'fake' and 'raw'}).
  """
  tg = models.n_frames_G
  cond, image = chunk['cond'], chunk['image']
  n_new, flow_fn = _check_chunk(models, options, chunk, frozen, flow_fn)
  real = image[:, tg - 1:]
  real_prev = image[:, tg - 2:-1]
  flow_ref, conf_ref = _reference_flows(models, options, chunk, flow_fn, real, real_prev)
  flow_ref, conf_ref = jax.lax.stop_gradient(flow_ref), jax.lax.stop_gradient(conf_ref)
  # Frame t's input window and its real previous frames, every t of the chunk as one batch.
  windows = _flat(jnp.stack([cond[:, j:j + tg] for j in range(n_new)], axis=1))
  prevs = _flat(jnp.stack([image[:, j:j + tg - 1] for j in range(n_new)], axis=1))
  window_pyr = layers.pyramid(windows, models.n_scales)
  prev_pyr = layers.pyramid(prevs, models.n_scales)
  masks = None
  if models.fg_labels:
    masks = [generator_lib.fg_mask_from_labels(w[:, -1, ..., :models.label_nc],
                                               models.fg_labels) for w in window_pyr]

  def generator_loss(g_params):
    outs = models.generator.apply({'params': g_params}, list(window_pyr), list(prev_pyr), masks,
                                  detach_coarse=not options.train_coarse)
    finest = outs[-1]
    flow = finest['flow'].astype(jnp.float32)
    weight = finest['weight'].astype(jnp.float32)
    terms = losses_lib.flow_terms(losses, flow=flow, weight=weight, real_prev=_flat(real_prev),
                                  real=_flat(real), flow_ref=_flat(flow_ref),
                                  conf_ref=_flat(conf_ref))
    return losses_lib.total_generator_loss(terms), (terms, flow, weight)

  (g_total, (terms, flow, weight)), g_grads = jax.value_and_grad(
      generator_loss, has_aux=True)(state.params['g'])
  finite = _all_finite(g_total, g_grads)
  g_grads = _finest_only_unless_coarse_trains(models, options, g_grads)
  new_state = _apply_gradients(txs, options, state, {'g': g_grads}, learning_rates, finite, {})
  metrics = {**terms, 'g/total': g_total, 'finite': finite.astype(jnp.float32),
             'lr/g': jnp.asarray(learning_rates['g'], jnp.float32)}
  b = real.shape[0]
  as_clip = lambda x: jax.lax.stop_gradient(x).reshape((b, n_new) + x.shape[1:])
  warped = as_clip(warp_lib.warp(_flat(real_prev), flow))  # in the 'fake' and 'raw' panels
  images = {'cond': cond[:, tg - 1:], 'real': real, 'fake': warped, 'raw': warped,
            'flow': as_clip(flow), 'weight': as_clip(weight), 'flow_ref': flow_ref}
  return new_state, {'scalars': metrics, 'images': images}


# ----------------------------------------------------------------------------- host side


def summary_image(images: Mapping[str, Array], label_nc: int) -> np.ndarray:
  """[1, H, k*W, 3] uint8 panel of the first sample's newest frame: cond | fake | real | raw
  | flow | weight | reference flow (those present)."""
  pick = lambda k: np.asarray(images[k][0, -1], np.float32)
  panels = [video_io.colorize_cond(pick('cond'), label_nc), video_io.to_uint8(pick('fake')),
            video_io.to_uint8(pick('real')), video_io.to_uint8(pick('raw'))]
  if 'flow' in images:
    magnitude = max(float(np.abs(pick('flow_ref')).max()), float(np.abs(pick('flow')).max()), 1)
    panels.append(video_io.flow_to_rgb(pick('flow'), magnitude))
    panels.append(np.repeat(np.clip(pick('weight') * 255, 0, 255).astype(np.uint8), 3, axis=-1))
    panels.append(video_io.flow_to_rgb(pick('flow_ref'), magnitude))
  return video_io.side_by_side(panels)[None]


def load_frozen(config: Any) -> dict[str, Any]:
  """The frozen networks the step needs: VGG19 (if the VGG loss is on) and FlowNet2 (if used)."""
  frozen = {'vgg': None, 'flownet': None, 'first_frame': None}
  if config.loss.use_vgg:
    from vid2vid_jax import vgg  # pylint: disable=g-import-not-at-top
    frozen['vgg'] = jax.tree_util.tree_map(jnp.asarray,
                                           vgg.load_vgg19_weights(config.loss.vgg_weights))
  if config.flow.source == 'flownet2':
    if not config.flow.checkpoint:
      raise ValueError('flow.source is "flownet2" but flow.checkpoint is empty: convert the '
                       'official FlowNet2_checkpoint.pth.tar with `python -m flow.import_torch` '
                       'and set config.flow.checkpoint, or use flow.source="dataset"')
    from flow import checkpoint as flow_checkpoint  # pylint: disable=g-import-not-at-top
    frozen['flownet'] = flow_checkpoint.load_flownet2(config.flow.checkpoint)
  return frozen


def load_first_frame_params(config: Any) -> Any:
  """Params of the single-image generator in config.first_frame.checkpoint: a training workdir
  of a ``train.target='first_frame'`` config, or a checkpoint written by import_torch."""
  path = config.first_frame.checkpoint
  if not path:
    raise ValueError("first-frame mode 'single_g' needs config.first_frame.checkpoint: a "
                     "workdir trained with train.target='first_frame', or an imported "
                     'single-image generator (vid2vid_jax.tools.import_torch)')
  source = pathlib.Path(path)
  if (source / 'checkpoints').is_dir():
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    manager = checkpoint.create_manager(source)
    step = manager.latest_step()
    if step is None:
      raise ValueError(f'first_frame.checkpoint={path}: no checkpoint in {manager.directory}')
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    params = state['state']['params']['g']
  else:
    tree, _ = checkpoint.load_variables(source)
    if 'first_frame_generator' not in tree:
      raise ValueError(f'first_frame.checkpoint={path} holds no first_frame_generator '
                       f'(found {sorted(tree)})')
    params = tree['first_frame_generator']['params']
  return jax.tree_util.tree_map(jnp.asarray, params)


def load_first_frame_encoder(config: Any) -> tuple[Any, dict[int, np.ndarray]]:
  """(feature-encoder params, stored features {id: [N, feat_num + 1]}) of a feature-conditioned
  first-frame net, from the checkpoint in config.first_frame.checkpoint (written by
  vid2vid_jax.tools.import_torch from the original's net_G.pth, net_E.pth and features.npy)."""
  path = config.first_frame.checkpoint
  if not path:
    raise ValueError(f'first_frame.net={config.first_frame.net!r} needs '
                     'config.first_frame.checkpoint (an imported face first-frame model)')
  tree, _ = checkpoint.load_variables(pathlib.Path(path))
  missing = [k for k in ('first_frame_encoder', 'first_frame_features') if k not in tree]
  if missing:
    raise ValueError(f'first_frame.checkpoint={path} holds no {" / ".join(missing)} (found '
                     f'{sorted(tree)}): import the original folder with its net_E.pth and '
                     'features.npy')
  params = jax.tree_util.tree_map(jnp.asarray, tree['first_frame_encoder']['params'])
  bank = {int(k): np.asarray(v, np.float32) for k, v in tree['first_frame_features'].items()}
  return params, bank


def step_options(config: Any, schedule: Schedule, epoch: int) -> StepOptions:
  train_coarse = schedule.train_coarse(epoch)
  return StepOptions(
      frames_backpropagate=schedule.frames_backpropagate(epoch),
      train_coarse=train_coarse,
      update_coarse=train_coarse and not (schedule.frozen_global_after_fix
                                          and schedule.niter_fix_global > 0),
      flow_source=config.flow.source, remat=config.train.remat,
      ema_decay=config.train.ema_decay, unroll=config.train.unroll,
      warp_flow_grad=config.loss.warp_flow_grad, flownet_rgb_max=float(config.flow.rgb_max),
      flownet_div_flow=float(config.flow.div_flow))


def planned_steps(schedule: Schedule, dataset_for: Callable[[int], Any], n_frames_G: int,
                  target: str = 'video') -> int:
  """Optimizer steps of the whole schedule: per epoch, clips per epoch times steps per clip.

  Args:
    dataset_for: n_frames_total -> the training pipeline of that clip length (its
      ``steps_per_epoch`` and ``clip_length``).
  """
  total = 0
  for epoch in range(schedule.num_epochs):
    dataset = dataset_for(schedule.n_frames_total_at(epoch))
    per_clip = 1
    if target == 'video':
      per_clip = max(1, (dataset.clip_length - (n_frames_G - 1))
                     // schedule.frames_per_step(epoch))
    total += dataset.steps_per_epoch * per_clip
  return total


def chunks_of(batch: Mapping[str, Any], n_frames_G: int, frames_per_step: int, keys=(
    'cond', 'image', 'flow_gt', 'conf_gt')) -> list[dict[str, np.ndarray]]:
  """Splits a clip batch [B, T, ...] into the chunks of successive optimizer steps, each with
  n_frames_G - 1 frames of context and ``frames_per_step`` new frames (spec 4.1)."""
  total = batch['cond'].shape[1]
  n_chunks = (total - (n_frames_G - 1)) // frames_per_step
  if n_chunks < 1:
    raise ValueError(f'a clip of {total} frames is too short for n_frames_G={n_frames_G} and '
                     f'{frames_per_step} frames per step')
  length = frames_per_step + n_frames_G - 1
  return [{k: batch[k][:, c * frames_per_step:c * frames_per_step + length]
           for k in keys if k in batch} for c in range(n_chunks)]


def _init_from(params: dict[str, Any], path: str) -> dict[str, Any]:
  """Copies every parameter of a checkpoint (ours or imported) whose path and shape match.

  Used to grow a model coarse-to-fine (spec 4.6): the coarser scales of a lower-resolution
  model keep their weights, new scales and mismatched tensors keep their random init (the
  original's partial loading, spec 8.24). Accepts a training workdir or a checkpoint written by
  ``import_torch``.
  """
  source = pathlib.Path(path)
  manager_dir = source / 'checkpoints'
  if manager_dir.is_dir():
    manager = checkpoint.create_manager(source)
    step = manager.latest_step()
    if step is None:
      raise ValueError(f'train.init_from={path}: no checkpoint in {manager_dir}')
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    loaded = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    other = loaded['state']['params']
  else:
    tree, _ = checkpoint.load_variables(source)
    other = _params_from_import(tree)
  flat_other = flax.traverse_util.flatten_dict(other, sep='/')
  flat = flax.traverse_util.flatten_dict(params, sep='/')
  copied = 0
  for key, value in flat.items():
    if key in flat_other and np.shape(flat_other[key]) == np.shape(value):
      flat[key] = jnp.asarray(flat_other[key], value.dtype)
      copied += 1
  if copied == 0:
    raise ValueError(f'train.init_from={path}: no parameter matches this model')
  logging.info('init_from %s: copied %d of %d parameter arrays', path, copied, len(flat))
  return flax.traverse_util.unflatten_dict(flat, sep='/')


def _params_from_import(tree: Mapping[str, Any]) -> dict[str, Any]:
  """Maps an import_torch checkpoint ({'generator': {'params': ...}, 'discriminator': ...,
  'face_discriminator': ..., 'temporal_discriminator_{s}': ...}) onto our params layout."""
  params: dict[str, Any] = {'d': {}, 'd_t': {}}
  for key, value in tree.items():
    inner = value['params'] if isinstance(value, Mapping) and 'params' in value else value
    if key == 'generator':
      params['g'] = inner
    elif key == 'discriminator':
      params['d']['image'] = inner
    elif key == 'face_discriminator':
      params['d']['face'] = inner
    elif key.startswith('temporal_discriminator_'):
      params['d_t'][key[len('temporal_discriminator_'):]] = inner
  return params


def device_memory_gib() -> dict[str, float]:
  """{'memory/peak_gib', 'memory/in_use_gib'} of this process's first device where the backend
  reports them (GPU, TPU); {} on CPU."""
  stats = jax.local_devices()[0].memory_stats() or {}
  names = {'peak_bytes_in_use': 'memory/peak_gib', 'bytes_in_use': 'memory/in_use_gib'}
  return {name: stats[key] / 2**30 for key, name in names.items() if key in stats}


def train_and_evaluate(config: Any, workdir: str) -> TrainState:
  """Trains from config in workdir (resuming automatically); returns the final state.

  Runs on the ('data', 'spatial') mesh of config.sharding over all devices of all processes
  (multi-host: call `sharding.initialize_distributed` first, as train.py does); every process
  runs this with the same config and reads its own share of each batch.
  """
  config_lib.validate_config(config, num_devices=jax.device_count())
  mesh = sharding_lib.create_mesh(config)
  logging.info('Training on %s', sharding_lib.describe(mesh))
  with jax.set_mesh(mesh):
    return _train(config, pathlib.Path(workdir), mesh)


def _train(config: Any, workdir: pathlib.Path, mesh: jax.sharding.Mesh) -> TrainState:
  """train_and_evaluate's loop, with ``mesh`` in context."""
  import input_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow: only when training)

  workdir.mkdir(parents=True, exist_ok=True)
  is_main = jax.process_index() == 0
  writer = writers.create_writer(workdir, just_logging=not is_main)
  models = build_models(config)
  losses = losses_lib.loss_weights_from_config(config)
  schedule = schedule_from_config(config)
  frozen = load_frozen(config)
  if models.first_frame is not None and models.target == 'video':
    frozen['first_frame'] = load_first_frame_params(config)
  frozen = jax.device_put(jax.tree_util.tree_map(np.asarray, frozen),
                          sharding_lib.replicated(mesh))
  tg = models.n_frames_G

  rng = jax.random.PRNGKey(config.seed)
  init_key, loop_key = jax.random.split(rng)
  del rng, loop_key  # the step itself draws no random numbers (no dropout/noise in vid2vid)

  # ------------------------------------------------------------ resume position
  manager = checkpoint.create_manager(workdir, config.train.keep_checkpoints)
  latest = manager.latest_step()
  position = {'epoch': 0, 'clip': 0, 'chunk': 0}
  if latest is not None:
    position = checkpoint.restore_meta(manager, latest)['position']
    logging.info('Resuming from %s at step %d (epoch %d, clip %d, chunk %d)',
                 manager.directory, latest, position['epoch'], position['clip'],
                 position['chunk'])

  num_steps = config.train.num_steps if config.train.num_steps >= 0 else None
  datasets: dict[int, Any] = {}  # one input pipeline per clip length, reused across epochs

  def dataset_for(n_total: int):
    if n_total not in datasets:
      datasets[n_total] = input_pipeline.create_dataset(config, split='train',
                                                        n_frames_total=n_total)
    return datasets[n_total]

  warmup_steps = config.train.flow_warmup_steps if models.target == 'video' else 0
  total_steps = warmup_steps + planned_steps(schedule, dataset_for, tg, models.target)
  if num_steps is not None:
    total_steps = min(total_steps, num_steps)
  state = seq = new_sequence_state = shardings = None
  jit_steps: dict[StepOptions, Callable] = {}
  log_scalars: list[dict[str, Any]] = []
  progress = writers.ProgressLogger(total_steps, writer if is_main else None, every_secs=30.0)
  last_saved = latest

  def save(step, epoch, clip, chunk, seq_to_save):
    nonlocal last_saved
    meta = {'position': {'epoch': epoch, 'clip': clip, 'chunk': chunk},
            'config': json.loads(config.to_json())}
    checkpoint.save_train(manager, step, state, seq_to_save, meta)
    last_saved = step
    logging.info('Saved checkpoint at step %d', step)

  def ensure_state(batch):
    """Creates (or restores) the states on the first batch, whose shape fixes their layout."""
    nonlocal state, seq, shardings, new_sequence_state
    if state is not None:
      return
    b, _, height, width, _ = batch['image'].shape
    state, shardings, new_sequence_state = create_sharded_states(
        models, schedule, init_key, b * jax.process_count(), height, width, mesh,
        ema=config.train.ema_decay > 0, fsdp=config.sharding.fsdp,
        fsdp_min_size=config.sharding.fsdp_min_size)
    if latest is not None:
      state, seq = checkpoint.restore_train(manager, latest, state, new_sequence_state())
    elif config.train.init_from:
      params = _init_from(state.params, config.train.init_from)
      state = state.replace(params=params, ema_g=_copy(params['g']) if state.ema_g is not None
                            else None)
      state = jax.device_put(state, shardings[0])

  def write_logs(step, scalars, epoch, n_total, images):
    log_scalars.append(scalars)
    if step % config.train.log_every_steps == 0 or step == num_steps:
      mean = {k: float(np.mean([float(s[k]) for s in log_scalars]))
              for k in log_scalars[0] if k != 'finite'}
      mean['epoch'] = epoch
      mean['n_frames_total'] = n_total
      mean.update(device_memory_gib())
      writer.write_scalars(step, mean)
      log_scalars.clear()
    if step % config.train.image_every_steps == 0 or step == num_steps:
      images = sharding_lib.to_host(images)  # every process joins the gather
      writer.write_images(step, {'train/cond_fake_real_raw_flow_weight_flowref':
                                 summary_image(images, models.label_nc)})
    progress(step)

  evaluator = None
  if config.train.eval_every_steps > 0 and models.target == 'video':
    from vid2vid_jax import inference  # pylint: disable=g-import-not-at-top
    evaluator = inference.build_evaluator(config)  # fails on a bad eval setup before training

  def evaluate(step):
    """Scores the generator into workdir/eval_train/step_<step> and TensorBoard 'eval/'."""
    g_params = sharding_lib.to_host(state.ema_g if state.ema_g is not None else state.params['g'])
    if not is_main:
      return
    out_dir = workdir / 'eval_train' / f'step_{step:08d}'
    report = evaluator(g_params, out_dir, config.train.eval_sequences, write_png=False)
    inference.write_report_summaries(writer, step, report, out_dir, 'eval')

  if latest is not None and latest >= total_steps:
    ensure_state(next(dataset_for(schedule.n_frames_total_at(0))))  # the restored state
    logging.warning('Training in %s already finished at step %d of %d: nothing to do (raise '
                    'train.num_steps, or niter / niter_decay, to continue it)', workdir, latest,
                    total_steps)
    return state
  step = latest or 0
  next_position = (position['epoch'], position['clip'], position['chunk'])
  t_start = time.monotonic()
  if step < warmup_steps:  # a fresh run: warm-ups are not checkpointed, an interrupted one reruns
    n_total = schedule.n_frames_total_at(0)
    dataset = dataset_for(n_total)
    dataset.set_state({'step': 0})
    options = step_options(config, schedule, 0)
    rates = {k: np.float32(v) for k, v in schedule.learning_rates(0).items()}
    warmup = None
    logging.info('Flow warm-up: %d steps on clips of %d frames', warmup_steps, n_total)
    while step < warmup_steps:
      batch = next(dataset)
      ensure_state(batch)
      chunk = sharding_lib.to_global(chunks_of(batch, tg, batch['cond'].shape[1] - (tg - 1))[0],
                                     mesh)
      if warmup is None:
        warmup = jit_step(functools.partial(flow_warmup_step, models, losses, options,
                                            make_optimizers(schedule, state.params)),
                          mesh, shardings[0], None, chunk)
      state, out = warmup(state, chunk, rates, frozen)
      step += 1
      if not bool(out['scalars']['finite']):
        raise RuntimeError(f'non-finite flow warm-up loss or gradient at step {step}')
      write_logs(step, out['scalars'], 0, n_total, out['images'])
      if num_steps is not None and step >= num_steps:
        break
    del warmup
  done = num_steps is not None and step >= num_steps
  for epoch in range(position['epoch'], schedule.num_epochs):
    if done:
      break
    n_total = schedule.n_frames_total_at(epoch)
    per_step = schedule.frames_per_step(epoch)
    options = step_options(config, schedule, epoch)
    rates = schedule.learning_rates(epoch)
    # Clips depend only on (seed, position): epoch e reads positions [e * spe, (e + 1) * spe),
    # so a resumed run sees exactly the clips an uninterrupted one would.
    dataset = dataset_for(n_total)
    steps_per_epoch = dataset.steps_per_epoch
    start_clip = position['clip'] if epoch == position['epoch'] else 0
    dataset.set_state({'step': epoch * steps_per_epoch + start_clip})
    for clip in range(start_clip, steps_per_epoch):
      batch = next(dataset)  # this process's share of the global batch
      if models.target == 'first_frame':  # every frame is a sample: one step per batch
        chunks = [{'cond': batch['cond'], 'image': batch['image']}]
      else:
        chunks = chunks_of(batch, tg, per_step)
      ensure_state(batch)
      first_chunk = 0
      if (latest is not None and epoch == position['epoch'] and clip == position['clip']
          and position['chunk'] > 0):
        first_chunk = position['chunk']  # resume inside this clip with the restored seq
      else:
        seq = new_sequence_state()
      for c in range(first_chunk, len(chunks)):
        step_rates = {k: np.float32(v) for k, v in rates.items()}
        chunk = sharding_lib.to_global(chunks[c], mesh)  # this process's share -> global arrays
        if options not in jit_steps:
          txs = make_optimizers(schedule, state.params)
          if models.target == 'first_frame':
            jit_steps[options] = jit_step(
                functools.partial(first_frame_step, models, losses, options, txs), mesh,
                shardings[0], None, chunk)
          else:
            jit_steps[options] = jit_step(
                functools.partial(train_step, models, losses, options, txs), mesh, *shardings,
                chunk)
        if models.target == 'first_frame':
          state, out = jit_steps[options](state, chunk, step_rates, frozen)
        else:
          state, seq, out = jit_steps[options](state, seq, chunk, step_rates, frozen)
        step += 1
        scalars = out['scalars']
        if not bool(scalars['finite']):
          raise RuntimeError(
              f'non-finite loss or gradient at step {step} (epoch {epoch}, clip {clip}, chunk '
              f'{c}); the update was skipped. Last good checkpoint: '
              f'{"none" if last_saved is None else f"step {last_saved} in {manager.directory}"}')
        write_logs(step, scalars, epoch, n_total, out['images'])
        next_position = (epoch, clip, c + 1) if c + 1 < len(chunks) else (epoch, clip + 1, 0)
        if evaluator is not None and step % config.train.eval_every_steps == 0:
          evaluate(step)
        if step % config.train.checkpoint_every_steps == 0:
          save(step, *next_position, seq)
        if num_steps is not None and step >= num_steps:
          done = True
          break
      if done:
        break
  if state is None:
    raise ValueError(f'the training set of {config.data.root} yielded no clips')
  if last_saved != step:
    save(step, *next_position, seq if seq is not None else new_sequence_state())
  writer.flush()
  logging.info('Training finished at step %d in %.1f s', step, time.monotonic() - t_start)
  return state
