"""What training builds once and carries along: the networks, their parameters and optimizers,
the train state (checkpointed) and the per-clip sequence state.
"""

from collections.abc import Callable, Mapping
import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from vid2vid_jax import sharding as sharding_lib
from vid2vid_jax import temporal as temporal_lib
from vid2vid_jax.models import builders
from vid2vid_jax.models import discriminator as disc_lib
from vid2vid_jax.models import generator as generator_lib

Array = jax.Array

# ----------------------------------------------------------------------------- networks


@dataclasses.dataclass(frozen=True)
class VideoGenerator:
  """The sequential generator and the facts its inputs need.

  net: the multi-scale generator (scales, flow heads, dtype are its fields).
  n_frames: n_frames_G, conditioning frames per generated frame (>= 2).
  label_nc: label channels leading every cond frame (0 for image inputs).
  fg_labels: label ids of the foreground mask when the net has a fg branch, else ().
  zero_flow_heads: the flow heads start at zero (identity warps) instead of random.
  """
  net: generator_lib.MultiScaleGenerator
  n_frames: int
  label_nc: int
  fg_labels: tuple[int, ...] = ()
  zero_flow_heads: bool = False

  @property
  def n_scales(self) -> int:
    return self.net.n_scales

  def fg_masks(self, windows: list[Array]) -> list[Array] | None:
    """Per scale, the fg mask of each window's newest frame ([B, T, h, w, C] -> [B, h, w, 1])."""
    if not self.fg_labels:
      return None
    return [generator_lib.fg_mask_from_labels(w[:, -1, ..., :self.label_nc], self.fg_labels)
            for w in windows]


@dataclasses.dataclass(frozen=True)
class FaceD:
  """The face discriminator (pose with add_face_disc) on crops of side ``crop_size``; face pixels
  come from the OpenPose colours (``openpose_only``) or the DensePose part channel."""
  net: disc_lib.MultiscaleDiscriminator
  crop_size: int
  openpose_only: bool = False


@dataclasses.dataclass(frozen=True)
class FirstFrameG:
  """The single-image generator: trained alone (train.target 'first_frame') or frozen to make
  each clip's first frames (first-frame mode 'single_g'); it reads the first ``channels`` cond
  channels (the cond frame without its instance-edge channel)."""
  net: Any
  channels: int


@dataclasses.dataclass(frozen=True)
class Models:
  """The networks of a training run; built once by `build_models`.

  generator: the sequential generator (None when training the first-frame generator alone).
  image_d: the conditional multi-scale image D (input: cond frame + image).
  cond_channels: channels of one conditioning frame.
  temporal: the temporal Ds, or None. face: the face D, or None.
  first_frame: the single-image generator, or None.
  """
  generator: VideoGenerator | None
  image_d: disc_lib.MultiscaleDiscriminator
  cond_channels: int
  temporal: temporal_lib.TemporalDs | None = None
  face: FaceD | None = None
  first_frame: FirstFrameG | None = None

  @property
  def dtype(self) -> Any:
    """Activation dtype of every network."""
    return self.image_d.dtype


def first_frame_checkpoint(config: Any) -> str:
  """config.first_frame.checkpoint, which first-frame mode 'single_g' needs."""
  path = config.first_frame.checkpoint
  if not path:
    raise ValueError("first-frame mode 'single_g' needs config.first_frame.checkpoint: a "
                     "workdir trained with train.target='first_frame', or an imported "
                     'single-image generator (vid2vid_jax.tools.convert_checkpoint)')
  return path


def video_generator_from_config(config: Any) -> VideoGenerator:
  """The sequential generator of ``config`` (training and inference build it here)."""
  g = config.model.generator
  return VideoGenerator(
      net=builders.generator_from_config(config), n_frames=g.n_frames_G,
      label_nc=config.data.label_nc, fg_labels=tuple(g.fg_labels) if g.fg else (),
      zero_flow_heads=config.train.flow_head_init == 'zeros')


def build_models(config: Any) -> Models:
  """Config -> networks (the one place training reads model options)."""
  g, d = config.model.generator, config.model.discriminator
  target = config.train.target
  use_first_frame = target == 'first_frame' or config.first_frame.mode == 'single_g'
  if use_first_frame and config.first_frame.net.endswith('_with_features'):
    raise ValueError(f'first_frame.net={config.first_frame.net!r} (feature-conditioned, the '
                     "original's face model) runs at eval time only (eval.first_frame_mode "
                     "'single_g'); training uses a global or local first-frame net")
  cond_channels = builders.cond_channels(config)
  drop_edge = config.data.label_nc > 0 and config.data.use_instance
  first_frame = None
  if use_first_frame:
    first_frame = FirstFrameG(builders.first_frame_generator_from_config(config),
                              cond_channels - 1 if drop_edge else cond_channels)
  generator = temporal = None
  if target == 'video':
    generator = video_generator_from_config(config)
    if d.n_scales_temporal > 0:
      temporal = temporal_lib.TemporalDs(builders.temporal_discriminator_from_config(config),
                                         d.n_frames_D, d.n_scales_temporal, bool(d.sparse_D))
  face = None
  if d.add_face_disc:
    face = FaceD(builders.face_discriminator_from_config(config),
                 config.data.fine_size // 32 * 8, config.data.pose.openpose_only)
  return Models(generator=generator, image_d=builders.image_discriminator_from_config(config),
                cond_channels=cond_channels, temporal=temporal, face=face,
                first_frame=first_frame)


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

  'g' is the sequential generator's, or the first-frame generator's when that trains alone.
  Jitted (one compiled init instead of thousands of eager ops); ``models`` is static.
  """
  g_key, d_key, f_key, t_key = jax.random.split(key, 4)
  gen = models.generator
  if gen is None:
    params = {'g': models.first_frame.net.init(
        g_key, jnp.zeros((batch, height, width, models.first_frame.channels)))['params']}
  else:
    sizes = frame_sizes(height, width, gen.n_scales)
    conds = [jnp.zeros((batch, gen.n_frames, h, w, models.cond_channels)) for h, w in sizes]
    prevs = [jnp.zeros((batch, gen.n_frames - 1, h, w, 3)) for h, w in sizes]
    masks = gen.fg_masks(conds)
    params = {'g': gen.net.init(g_key, conds, prevs, masks)['params']}
    if gen.zero_flow_heads:
      params['g'] = flax.traverse_util.path_aware_map(
          lambda path, x: jnp.zeros_like(x) if 'flow_head' in path else x, params['g'])
  d_in = jnp.zeros((batch, height, width, models.cond_channels + 3))
  params['d'] = {'image': models.image_d.init(d_key, d_in)['params']}
  if models.face is not None:
    side = 2 * (models.face.crop_size // 2)
    params['d']['face'] = models.face.net.init(
        f_key, jnp.zeros((batch, side, side, models.cond_channels + 3)))['params']
  params['d_t'] = {}
  if models.temporal is not None:
    t_in = jnp.zeros((batch, height, width, models.temporal.input_channels))
    for s, k in enumerate(jax.random.split(t_key, models.temporal.n_scales)):
      params['d_t'][str(s)] = models.temporal.net.init(k, t_in)['params']
  return params


# ----------------------------------------------------------------------------- optimizers


def make_optimizers(schedule: Any, params: Mapping[str, Any]
                    ) -> dict[str, optax.GradientTransformation]:
  """Adam per optimizer group: 'g', 'd' (image and face D) and 'd_t{s}' per temporal scale.

  Learning rates are hyperparameters set per step from the host (`schedule.Schedule`).
  """
  adam = optax.inject_hyperparams(optax.adam)
  rates, betas = schedule.learning_rates(0), schedule.betas()
  g_adam = adam
  if schedule.flow_head_lr_scale != 1.0:
    g_adam = optax.inject_hyperparams(functools.partial(
        _adam_scaled_flow_heads, flow_head_scale=schedule.flow_head_lr_scale))
  txs = {'g': g_adam(learning_rate=rates['g'], b1=betas['g'][0], b2=betas['g'][1]),
         'd': adam(learning_rate=rates['d'], b1=betas['d'][0], b2=betas['d'][1])}
  for s in params['d_t']:
    txs[f'd_t{s}'] = adam(learning_rate=rates['d_t'], b1=betas['d_t'][0], b2=betas['d_t'][1])
  return txs


def _adam_scaled_flow_heads(learning_rate: float, b1: float, b2: float,
                            flow_head_scale: float) -> optax.GradientTransformation:
  """Adam whose updates of the generator's ``flow_head`` parameters are scaled.

  Adam's steps do not depend on the gradient's scale, and the flow head's output is multiplied
  by 20 * 2**s to give pixels: at the generator's learning rate the predicted flow moves by a
  sizeable fraction of a pixel per step. A scale of 1 / 20 gives the head the step size of an
  unscaled output.
  """
  def is_flow_head(params):
    return flax.traverse_util.path_aware_map(lambda path, _: 'flow_head' in path, params)
  return optax.chain(optax.adam(learning_rate, b1=b1, b2=b2),
                     optax.masked(optax.scale(flow_head_scale), is_flow_head))


def group_params(params: Mapping[str, Any], group: str) -> Any:
  """The parameters one optimizer group updates ('g', 'd' or 'd_t{s}')."""
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
  L = `temporal.history_length`; the newest `hist_count` entries are valid.
  first_chunk: scalar bool, True before the clip's first chunk.
  frames_done: scalar int32, frames generated in this clip before this chunk.
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


def empty_sequence_state(models: Models, batch: int, height: int, width: int) -> SequenceState:
  """The state before a clip's first chunk (filled by the first step from the real frames)."""
  gen = models.generator
  sizes = frame_sizes(height, width, gen.n_scales) if gen is not None else []
  context = gen.n_frames - 1 if gen is not None else 0
  hist = models.temporal.history_length if models.temporal is not None else 0
  return SequenceState(
      prev_frames=tuple(jnp.zeros((batch, context, h, w, 3)) for h, w in sizes),
      last_fake=jnp.zeros((batch, height, width, 3)),
      hist_real=jnp.zeros((batch, hist, height, width, 3)),
      hist_fake=jnp.zeros((batch, hist, height, width, 3)),
      hist_flow=jnp.zeros((batch, hist, height, width, 2)),
      first_chunk=jnp.ones((), jnp.bool_),
      frames_done=jnp.zeros((), jnp.int32))


def create_train_state(models: Models, schedule: Any, key: Array, batch: int,
                       height: int, width: int, ema: bool = False) -> TrainState:
  """A fresh train state: random params, Adam states, the EMA (a copy of 'g') if ``ema``."""
  params = init_params(models, key, batch, height, width)
  txs = make_optimizers(schedule, params)
  opt_state = {name: tx.init(group_params(params, name)) for name, tx in txs.items()}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                    ema_g=copy_tree(params['g']) if ema else None)


@dataclasses.dataclass(frozen=True)
class Layouts:
  """Where the states live on the mesh: state and sequence shardings, and their abstract
  shapes (jax.ShapeDtypeStruct trees, for restoring a checkpoint straight into the layout)."""
  state: Any
  sequence: Any
  abstract_state: Any
  abstract_sequence: Any


def state_layouts(models: Models, schedule: Any, batch: int, height: int, width: int,
                  mesh: jax.sharding.Mesh, ema: bool = False, fsdp: bool = False,
                  fsdp_min_size: int = 2**14) -> Layouts:
  """The states' mesh layouts, from their shapes alone (`jax.eval_shape`: nothing is allocated).

  Args:
    batch, height, width: the GLOBAL batch and frame size.
  """
  make_state = functools.partial(create_train_state, models, schedule, batch=batch,
                                 height=height, width=width, ema=ema)
  state_shape = jax.eval_shape(make_state, jax.random.key(0))
  state_sharding = sharding_lib.state_shardings(mesh, state_shape, fsdp, fsdp_min_size)
  seq_shape = jax.eval_shape(functools.partial(empty_sequence_state, models, batch, height,
                                               width))
  seq_sharding = sharding_lib.activation_shardings(mesh, seq_shape)
  with_sharding = lambda shape, sharding: jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shape, sharding)
  return Layouts(state_sharding, seq_sharding, with_sharding(state_shape, state_sharding),
                 with_sharding(seq_shape, seq_sharding))


def create_sharded_state(models: Models, schedule: Any, key: Array, layouts: Layouts,
                         batch: int, height: int, width: int, ema: bool = False) -> TrainState:
  """A fresh train state created directly in its mesh layout."""
  make_state = functools.partial(create_train_state, models, schedule, batch=batch,
                                 height=height, width=width, ema=ema)
  return jax.jit(make_state, out_shardings=layouts.state)(key)


def sequence_state_factory(models: Models, layouts: Layouts, batch: int, height: int,
                           width: int) -> Callable[[], SequenceState]:
  """A function making a fresh, laid-out `empty_sequence_state` (called once per clip)."""
  return jax.jit(functools.partial(empty_sequence_state, models, batch, height, width),
                 out_shardings=layouts.sequence)


def copy_tree(tree: Any) -> Any:
  """Fresh buffers (the EMA must not alias the params: both are donated to the step)."""
  return jax.tree_util.tree_map(jnp.copy, tree)



def create_sharded_states(models: Models, schedule: Any, key: Array, batch: int, height: int,
                          width: int, mesh: jax.sharding.Mesh, ema: bool = False,
                          fsdp: bool = False, fsdp_min_size: int = 2**14
                          ) -> tuple[TrainState, Layouts, Callable[[], SequenceState]]:
  """(a fresh train state in its mesh layout, the layouts, a fresh-sequence-state function)."""
  layouts = state_layouts(models, schedule, batch, height, width, mesh, ema, fsdp, fsdp_min_size)
  state = create_sharded_state(models, schedule, key, layouts, batch, height, width, ema)
  return state, layouts, sequence_state_factory(models, layouts, batch, height, width)
