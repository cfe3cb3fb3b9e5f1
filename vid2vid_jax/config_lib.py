"""Config checks: reject inconsistent option combinations before anything is built.

`validate_config` is called by every entry point (train.py, eval.py, the tools) right after the
config is loaded, so a bad combination fails in one line naming the field and the rule instead
of deep inside a jitted function.
"""

from collections.abc import Sequence

import ml_collections

from input_pipeline import transforms
from vid2vid_jax import kernels
from vid2vid_jax import losses
from vid2vid_jax.models import builders
from vid2vid_jax.models import layers

# 'street' and 'video' share the original's temporal folder layout (train_A/train_B[/train_inst]):
# street's A holds label ids (label_nc > 0), video's A holds images (label_nc == 0), e.g. for
# edge->image or frame prediction. face and pose are the original's face/pose dataset modes.
LAYOUTS = ('street', 'video', 'face', 'pose')
RESIZE_OR_CROP = transforms.MODES  # the pipeline's modes: one list
NORMS = layers.NORMS  # what the layers implement
GAN_MODES = losses.GAN_MODES  # what the losses implement
FIRST_FRAME_MODES = ('real', 'single_g', 'generate')
FIRST_FRAME_NETS = ('global', 'local', 'global_with_features', 'local_with_features')
FLOW_SOURCES = ('flownet2', 'dataset', 'none')
DTYPES = tuple(builders.ACTIVATION_DTYPES)  # what the builders map to jnp dtypes
# Cityscapes has 35 labelIds (0..33 used, plus -1 for the license plate); 19 trainIds.
CITYSCAPES_LABEL_NC = 35
CITYSCAPES_TRAIN_ID_NC = 19


class ConfigError(ValueError):
  """A config field holds a value, or a combination of values, that cannot work."""


def total_downsampling(config: ml_collections.ConfigDict) -> int:
  """The factor H and W must be divisible by: 2**(n_downsample_G + n_scales_spatial - 1)."""
  g = config.model.generator
  return 2 ** (g.n_downsample_G + g.n_scales_spatial - 1)


def training_frame_sizes(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
  """The configured pixel sizes that end up as a frame side, with the field that sets each.

  For modes with a crop the crop size (fine_size) is the frame side; for pure resizes the resize
  target (load_size) is. The other side follows the aspect ratio and is rounded to a multiple of
  32 by the pipeline (docs/original_behaviour.md#preprocessing), so it only needs checking when
  the factor exceeds 32.
  """
  mode = config.data.resize_or_crop
  if 'crop' in mode.lower():
    return [('data.fine_size', config.data.fine_size)]
  if mode == 'none':
    return []
  return [('data.load_size', config.data.load_size)]


def _check(condition: bool, field: str, rule: str, errors: list[str]) -> None:
  if not condition:
    errors.append(f'{field}: {rule}')


def config_errors(config: ml_collections.ConfigDict, num_devices: int | None = None
                  ) -> list[str]:
  """Every problem with ``config``, one line each: '<field>: <rule, with the values seen>'."""
  errors: list[str] = []
  data, g, d = config.data, config.model.generator, config.model.discriminator
  train, loss = config.train, config.loss

  # Data.
  _check(data.layout in LAYOUTS, 'data.layout',
         f'must be one of {LAYOUTS}, got {data.layout!r}', errors)
  _check(data.resize_or_crop in RESIZE_OR_CROP, 'data.resize_or_crop',
         f'must be one of {RESIZE_OR_CROP}, got {data.resize_or_crop!r}', errors)
  _check(data.batch_size >= 1, 'data.batch_size', f'must be >= 1, got {data.batch_size}', errors)
  _check(data.load_size > 0 and data.fine_size > 0, 'data.load_size/fine_size',
         f'must be positive, got {data.load_size}/{data.fine_size}', errors)
  if 'crop' in data.resize_or_crop.lower() and data.resize_or_crop != 'crop':
    _check(data.fine_size <= data.load_size, 'data.fine_size',
           f'the crop ({data.fine_size}) cannot exceed the resize target data.load_size '
           f'({data.load_size})', errors)
  _check(data.label_nc >= 0, 'data.label_nc', f'must be >= 0, got {data.label_nc}', errors)
  _check(data.output_nc == 3, 'data.output_nc', f'must be 3 (RGB), got {data.output_nc}', errors)
  if data.layout == 'street':
    _check(data.label_nc > 0, 'data.label_nc',
           'must be > 0 for the street layout (train_A holds label ids); for images in '
           'train_A use data.layout="video" with label_nc 0', errors)
  else:
    _check(data.label_nc == 0, 'data.label_nc',
           f'must be 0 for the {data.layout} layout (its inputs are images, not label ids; '
           f'label maps belong to data.layout="street"), got {data.label_nc}', errors)
  if data.layout == 'face':
    expected = 1 if data.face.no_dist_map else 15
    _check(data.input_nc == expected, 'data.input_nc',
           f'the face layout gives {expected} channels (edges'
           f'{"" if data.face.no_dist_map else " + 14 distance maps"}), got {data.input_nc}',
           errors)
  if data.layout == 'pose':
    pose = data.pose
    _check(not (pose.densepose_only and pose.openpose_only),
           'data.pose.densepose_only/openpose_only', 'at most one of them may be True', errors)
    expected = 3 if (pose.densepose_only or pose.openpose_only) else 6
    _check(data.input_nc == expected, 'data.input_nc',
           f'the pose layout gives {expected} channels here, got {data.input_nc}', errors)
    _check(not pose.openpose_only or g.no_flow, 'model.generator.no_flow',
           'must be True with data.pose.openpose_only (the original forces it)', errors)
    _check(0.0 <= pose.random_drop_prob < 1.0, 'data.pose.random_drop_prob',
           f'must be in [0, 1), got {pose.random_drop_prob}', errors)
  _check(data.max_t_step >= 1, 'data.max_t_step', f'must be >= 1, got {data.max_t_step}', errors)
  _check(data.n_frames_total >= g.n_frames_G, 'data.n_frames_total',
         f'({data.n_frames_total}) must be >= model.generator.n_frames_G ({g.n_frames_G})',
         errors)
  if config.flow.source == 'dataset':
    _check(bool(data.flow_dir), 'data.flow_dir',
           'must name a folder of ground-truth flows when flow.source is "dataset"', errors)

  # Generator.
  _check(g.net == 'composite', 'model.generator.net',
         f'only "composite" exists in the original, got {g.net!r}', errors)
  _check(g.norm in NORMS, 'model.generator.norm', f'must be one of {NORMS}, got {g.norm!r}',
         errors)
  _check(g.n_frames_G >= 2, 'model.generator.n_frames_G',
         f'must be >= 2 (the current frame and at least one previous one), got {g.n_frames_G}',
         errors)
  _check(1 <= g.n_scales_spatial <= 3, 'model.generator.n_scales_spatial',
         f'must be 1, 2 or 3, got {g.n_scales_spatial}', errors)
  _check(g.n_downsample_G >= 1, 'model.generator.n_downsample_G',
         f'must be >= 1, got {g.n_downsample_G}', errors)
  _check(g.n_blocks >= 0 and g.n_blocks_local >= 0, 'model.generator.n_blocks',
         f'must be >= 0, got {g.n_blocks} / n_blocks_local {g.n_blocks_local}', errors)
  ngf_finest = g.ngf // 2 ** (g.n_scales_spatial - 1)
  _check(ngf_finest >= 1 and g.ngf % 2 ** (g.n_scales_spatial - 1) == 0, 'model.generator.ngf',
         f'({g.ngf}) must be divisible by 2**(n_scales_spatial-1) = '
         f'{2 ** (g.n_scales_spatial - 1)}: scale s uses ngf // 2**s', errors)
  factor = total_downsampling(config)
  for field, size in training_frame_sizes(config):
    _check(size % factor == 0, field,
           f'({size}) must be divisible by the generator\'s total downsampling {factor} = '
           f'2**(n_downsample_G {g.n_downsample_G} + n_scales_spatial {g.n_scales_spatial} - 1)',
           errors)
  if factor > 32:
    errors.append(
        f'model.generator.n_downsample_G: total downsampling {factor} exceeds 32, but the '
        'pipeline rounds derived frame sides to multiples of 32')
  if g.fg:
    labels: Sequence[int] = tuple(g.fg_labels or ())
    _check(len(labels) > 0, 'model.generator.fg_labels',
           'must list at least one label id when model.generator.fg is True', errors)
    _check(data.label_nc > 0, 'model.generator.fg',
           'needs label inputs (data.label_nc > 0): the fg mask is built from label ids',
           errors)
    bad = [l for l in labels if not 0 <= l < max(data.label_nc, 1)]
    _check(not bad, 'model.generator.fg_labels',
           f'ids {bad} are outside [0, data.label_nc={data.label_nc})', errors)
  first = config.first_frame
  _check(first.netE == 'simple', 'first_frame.netE',
         f"only the original's 'simple' feature encoder exists, got {first.netE!r}", errors)
  for name in ('label_feat', 'load_features'):
    _check(not first[name], f'first_frame.{name}',
           'is not supported (the pix2pixHD feature-clustering options of the original, unused '
           'by its vid2vid models); set False', errors)
  _check(not data.face.random_scale_points, 'data.face.random_scale_points',
         "is not supported (the original's test-time face reshaping); set False", errors)
  _check(config.model.dtype in DTYPES, 'model.dtype',
         f'must be one of {DTYPES}, got {config.model.dtype!r}', errors)
  _check(config.model.conv_impl in kernels.CONV_IMPLS, 'model.conv_impl',
         f'must be one of {kernels.CONV_IMPLS}, got {config.model.conv_impl!r}', errors)

  # Discriminators.
  _check(d.num_D >= 1, 'model.discriminator.num_D', f'must be >= 1, got {d.num_D}', errors)
  _check(d.n_layers_D >= 1, 'model.discriminator.n_layers_D', f'must be >= 1, got {d.n_layers_D}',
         errors)
  _check(d.n_frames_D >= 2, 'model.discriminator.n_frames_D',
         f'must be >= 2 (a temporal window), got {d.n_frames_D}', errors)
  _check(d.n_scales_temporal >= 0, 'model.discriminator.n_scales_temporal',
         f'must be >= 0, got {d.n_scales_temporal}', errors)
  if d.add_face_disc:
    _check(data.layout == 'pose', 'model.discriminator.add_face_disc',
           f'needs the pose layout (the face crop comes from DensePose parts), got '
           f'data.layout={data.layout!r}', errors)

  # Losses.
  _check(loss.gan_mode in GAN_MODES, 'loss.gan_mode',
         f'must be one of {GAN_MODES}, got {loss.gan_mode!r}', errors)
  for name in ('lambda_feat', 'lambda_T', 'lambda_F', 'face_weight', 'lambda_occlusion'):
    _check(loss[name] >= 0, f'loss.{name}', f'must be >= 0, got {loss[name]}', errors)

  # Training.
  _check(train.target in ('video', 'first_frame'), 'train.target',
         f'must be "video" or "first_frame", got {train.target!r}', errors)
  _check(train.lr > 0, 'train.lr', f'must be > 0, got {train.lr}', errors)
  _check(train.flow_head_init in ('normal', 'zeros'), 'train.flow_head_init',
         f'must be "normal" or "zeros", got {train.flow_head_init!r}', errors)
  _check(train.flow_head_lr_scale > 0, 'train.flow_head_lr_scale',
         f'must be > 0, got {train.flow_head_lr_scale}', errors)
  _check(train.eval_every_steps >= 0, 'train.eval_every_steps',
         f'must be >= 0 (0 = off), got {train.eval_every_steps}', errors)
  _check(train.eval_sequences >= 1, 'train.eval_sequences',
         f'must be >= 1, got {train.eval_sequences}', errors)
  _check(train.flow_warmup_steps >= 0, 'train.flow_warmup_steps',
         f'must be >= 0, got {train.flow_warmup_steps}', errors)
  if train.flow_warmup_steps > 0:
    _check(not g.no_flow and config.flow.source != 'none', 'train.flow_warmup_steps',
           f'({train.flow_warmup_steps}) trains the flow terms, so it needs a flow source and '
           f'flow heads; got flow.source={config.flow.source!r}, '
           f'model.generator.no_flow={g.no_flow}', errors)
  _check(0.0 <= train.beta1 < 1.0, 'train.beta1', f'must be in [0, 1), got {train.beta1}', errors)
  _check(train.niter >= 0 and train.niter_decay >= 0 and train.niter + train.niter_decay > 0,
         'train.niter/niter_decay',
         f'must be >= 0 with a positive sum, got {train.niter}/{train.niter_decay}', errors)
  _check(train.niter_step >= 1, 'train.niter_step', f'must be >= 1, got {train.niter_step}',
         errors)
  _check(train.max_frames_per_gpu >= 1, 'train.max_frames_per_gpu',
         f'must be >= 1, got {train.max_frames_per_gpu}', errors)
  _check(train.max_frames_backpropagate >= 1, 'train.max_frames_backpropagate',
         f'must be >= 1, got {train.max_frames_backpropagate}', errors)
  _check(train.num_steps == -1 or train.num_steps >= 0, 'train.num_steps',
         f'must be -1 (derive from epochs) or >= 0, got {train.num_steps}', errors)
  if train.niter_fix_global > 0:
    _check(g.n_scales_spatial > 1, 'train.niter_fix_global',
           f'({train.niter_fix_global}) freezes the coarser scales, so it needs '
           f'model.generator.n_scales_spatial > 1, got {g.n_scales_spatial}', errors)
  _check(0.0 <= train.ema_decay < 1.0, 'train.ema_decay',
         f'must be in [0, 1), got {train.ema_decay}', errors)
  _check(train.keep_checkpoints >= 1, 'train.keep_checkpoints',
         f'must be >= 1, got {train.keep_checkpoints}', errors)

  # Flow and first frame.
  _check(config.flow.source in FLOW_SOURCES, 'flow.source',
         f'must be one of {FLOW_SOURCES}, got {config.flow.source!r}', errors)
  for field, mode in (('first_frame.mode', config.first_frame.mode),
                      ('eval.first_frame_mode', config.eval.first_frame_mode or 'real')):
    _check(mode in FIRST_FRAME_MODES, field,
           f'must be one of {FIRST_FRAME_MODES}, got {mode!r}', errors)
  first = config.first_frame
  _check(first.norm in NORMS, 'first_frame.norm',
         f'must be "batch" or "instance", got {first.norm!r}', errors)
  _check(first.net in FIRST_FRAME_NETS, 'first_frame.net',
         f'must be one of {FIRST_FRAME_NETS}, got {first.net!r}', errors)
  if first.net.endswith('_with_features'):
    _check(train.target != 'first_frame', 'first_frame.net',
           f'{first.net!r} can be imported and run, not trained (the original only loads it): '
           'train a "global" or "local" first-frame net', errors)
    for field in ('feat_num', 'nef', 'n_downsample_E', 'num_instance_ids'):
      _check(first[field] >= 1, f'first_frame.{field}', f'must be >= 1, got {first[field]}',
             errors)

  # Sharding.
  sh = config.sharding
  _check(sh.spatial >= 1, 'sharding.spatial', f'must be >= 1, got {sh.spatial}', errors)
  _check(sh.data == -1 or sh.data >= 1, 'sharding.data',
         f'must be -1 (all devices) or >= 1, got {sh.data}', errors)
  data_parallel = sh.data if sh.data > 0 else None
  if num_devices is not None and sh.spatial >= 1:
    if num_devices % sh.spatial:
      errors.append(f'sharding.spatial: {sh.spatial} does not divide the {num_devices} devices')
    elif data_parallel is None:
      data_parallel = num_devices // sh.spatial
    elif data_parallel * sh.spatial != num_devices:
      errors.append(f'sharding.data: data ({data_parallel}) x spatial ({sh.spatial}) must equal '
                    f'the number of devices ({num_devices})')
  if data_parallel is not None and data.batch_size % data_parallel:
    errors.append(f'data.batch_size: {data.batch_size} is not divisible by the '
                  f'{data_parallel} data-parallel devices (sharding.data)')
  if sh.spatial > 1:
    for field, size in training_frame_sizes(config):
      frame_h = size // 2 if config.data.layout == 'street' else size
      step = sh.spatial * factor
      if frame_h % step:
        errors.append(f'sharding.spatial: frame height {frame_h} (from {field}) must be '
                      f'divisible by spatial devices x downsampling = {step}')

  # Eval.
  _check(config.eval.how_many >= 1, 'eval.how_many', f'must be >= 1, got {config.eval.how_many}',
         errors)
  _check(config.eval.start_frame >= 0, 'eval.start_frame',
         f'must be >= 0, got {config.eval.start_frame}', errors)
  _check(config.eval.fps > 0, 'eval.fps', f'must be > 0, got {config.eval.fps}', errors)
  return errors


def validate_config(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
  """Raises ConfigError listing every inconsistent field of ``config``.

  Args:
    config: a config as returned by a ``configs/*.py`` ``get_config()``.
    num_devices: devices of the mesh to check data/spatial parallelism against; None skips the
      checks that need it.
  """
  errors = config_errors(config, num_devices)
  if errors:
    raise ConfigError('invalid config:\n  ' + '\n  '.join(errors))

