"""The original vid2vid's options (its ``opt.txt``) as our config.

``read_opt_txt`` parses the ``name: value`` lines the original writes next to its checkpoints;
``config_from_options`` maps every option that changes what is built or trained onto our config
fields (strictly: an option we cannot reproduce raises ValueError naming it). The checkpoint
importer (`original_checkpoint`) and the parity tools use it.
"""

import ast
from collections.abc import Mapping
import math
import os
import pathlib
import re
from typing import Any

from absl import logging
import ml_collections
import numpy as np

from configs import default as default_config
from vid2vid_jax import config_lib

PathLike = str | os.PathLike

# Options that never influence what we build or train (display, paths of the old run, ...).
_IGNORED_OPTIONS = frozenset({
    'name', 'checkpoints_dir', 'gpu_ids', 'n_gpus_gen', 'isTrain', 'model', 'debug', 'no_html',
    'display_id', 'display_winsize', 'tf_log', 'pool_size', 'ntest', 'local_rank', 'continue_train',
    'which_epoch', 'fp16', 'aspect_ratio', 'save_epoch_freq', 'use_real_img', 'phase'})

# (option, config field, kind): kind converts the option value to the field's type.
_OPTION_FIELDS = (
    ('dataroot', 'data.root', str), ('batchSize', 'data.batch_size', int),
    ('loadSize', 'data.load_size', int), ('fineSize', 'data.fine_size', int),
    ('resize_or_crop', 'data.resize_or_crop', str), ('label_nc', 'data.label_nc', int),
    ('input_nc', 'data.input_nc', int), ('output_nc', 'data.output_nc', int),
    ('use_instance', 'data.use_instance', bool), ('n_frames_total', 'data.n_frames_total', int),
    ('max_t_step', 'data.max_t_step', int), ('nThreads', 'data.num_parallel_calls', int),
    ('no_canny_edge', 'data.face.no_canny_edge', bool),
    ('no_dist_map', 'data.face.no_dist_map', bool),
    ('random_scale_points', 'data.face.random_scale_points', bool),
    ('densepose_only', 'data.pose.densepose_only', bool),
    ('openpose_only', 'data.pose.openpose_only', bool),
    ('remove_face_labels', 'data.pose.remove_face_labels', bool),
    ('random_drop_prob', 'data.pose.random_drop_prob', float),
    ('basic_point_only', 'data.pose.basic_point_only', bool),
    ('ngf', 'model.generator.ngf', int), ('n_blocks', 'model.generator.n_blocks', int),
    ('n_blocks_local', 'model.generator.n_blocks_local', int),
    ('n_downsample_G', 'model.generator.n_downsample_G', int),
    ('norm', 'model.generator.norm', str), ('n_frames_G', 'model.generator.n_frames_G', int),
    ('n_scales_spatial', 'model.generator.n_scales_spatial', int),
    ('fg', 'model.generator.fg', bool), ('no_flow', 'model.generator.no_flow', bool),
    ('ndf', 'model.discriminator.ndf', int), ('n_layers_D', 'model.discriminator.n_layers_D', int),
    ('num_D', 'model.discriminator.num_D', int),
    ('n_frames_D', 'model.discriminator.n_frames_D', int),
    ('n_scales_temporal', 'model.discriminator.n_scales_temporal', int),
    ('sparse_D', 'model.discriminator.sparse_D', bool),
    ('add_face_disc', 'model.discriminator.add_face_disc', bool),
    ('gan_mode', 'loss.gan_mode', str), ('lambda_feat', 'loss.lambda_feat', float),
    ('lambda_T', 'loss.lambda_T', float), ('lambda_F', 'loss.lambda_F', float),
    ('lr', 'train.lr', float), ('beta1', 'train.beta1', float), ('TTUR', 'train.ttur', bool),
    ('niter', 'train.niter', int), ('niter_decay', 'train.niter_decay', int),
    ('niter_step', 'train.niter_step', int), ('niter_fix_global', 'train.niter_fix_global', int),
    ('max_frames_per_gpu', 'train.max_frames_per_gpu', int),
    ('max_frames_backpropagate', 'train.max_frames_backpropagate', int),
    ('load_pretrain', 'train.init_from', str), ('print_freq', 'train.log_every_steps', int),
    ('display_freq', 'train.image_every_steps', int),
    ('save_latest_freq', 'train.checkpoint_every_steps', int),
    ('n_local_enhancers', 'first_frame.n_local_enhancers', int),
    ('label_feat', 'first_frame.label_feat', bool), ('feat_num', 'first_frame.feat_num', int),
    ('nef', 'first_frame.nef', int), ('load_features', 'first_frame.load_features', bool),
    ('netE', 'first_frame.netE', str), ('n_downsample_E', 'first_frame.n_downsample_E', int),
    ('how_many', 'eval.how_many', int), ('start_frame', 'eval.start_frame', int),
    ('results_dir', 'eval.results_dir', str),
)
# Handled by hand in config_from_options.
_SPECIAL_OPTIONS = frozenset({
    'netG', 'fg_labels', 'dataset_mode', 'no_flip', 'serial_batches', 'max_dataset_size',
    'no_vgg', 'no_ganFeat', 'no_first_img', 'use_single_G'})
SINGLE_IMAGE_NETS = config_lib.FIRST_FRAME_NETS


def _parse_value(text: str) -> Any:
  text = text.strip()
  if text in ('True', 'False'):
    return text == 'True'
  if text in ('inf', '-inf'):
    return float(text)
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def read_opt_txt(path: PathLike) -> dict[str, Any]:
  """Parses an original ``opt.txt`` (``name: value`` lines between the banner lines).

  Returns:
    option name -> value (bool, int, float, list or str as written).
  """
  options = {}
  for line in pathlib.Path(path).read_text().splitlines():
    if line.startswith('---') or ':' not in line:
      continue
    name, _, value = line.partition(':')
    options[name.strip()] = _parse_value(value)
  if not options:
    raise ValueError(f'{path}: no options found (expected "name: value" lines)')
  return options


def _convert(name: str, value: Any, kind: type) -> Any:
  if isinstance(value, str) and kind is not str:
    value = _parse_value(value)
  try:
    if kind is bool:
      if not isinstance(value, (bool, int, np.bool_)):
        raise TypeError
      return bool(value)
    if kind is int:
      if isinstance(value, float) and not value.is_integer():
        raise TypeError
      return int(value)
    return kind(value)
  except (TypeError, ValueError):
    raise ValueError(f'option {name}: cannot read {value!r} as {kind.__name__}') from None


def _set(config: ml_collections.ConfigDict, field: str, value: Any) -> None:
  *parents, leaf = field.split('.')
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value


def _int_list(name: str, value: Any) -> tuple[int, ...]:
  if isinstance(value, str):
    value = [v for v in re.split(r'[,\s\[\]]+', value) if v]
  if isinstance(value, (int, np.integer)):
    value = [value]
  return tuple(_convert(name, v, int) for v in value)


def config_from_options(options: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """Our config for an original run's options (``read_opt_txt`` or a plain mapping).

  Starts from configs/default.get_config() (the original's defaults) and sets every mapped field;
  options absent from ``options`` keep the original default.

  Raises:
    ValueError: naming the option, for a value we cannot read or an unsupported choice
      (netG other than composite/global/local, a norm other than batch/instance, fg without
      label maps, fg_labels outside label_nc, pix2pixHD feature options, ...).
  """
  config = default_config.get_config()
  for name, field, kind in _OPTION_FIELDS:
    if name in options:
      _set(config, field, _convert(name, options[name], kind))
  unknown = set(options) - {n for n, _, _ in _OPTION_FIELDS} - _SPECIAL_OPTIONS - _IGNORED_OPTIONS
  if unknown:
    logging.warning('ignoring unknown original options: %s', sorted(unknown))

  get = lambda name, default, kind: _convert(name, options.get(name, default), kind)
  data, g, d = config.data, config.model.generator, config.model.discriminator
  net = get('netG', 'composite', str)
  if net in SINGLE_IMAGE_NETS:
    f = config.first_frame
    f.net, f.ngf, f.n_downsample, f.n_blocks = net, g.ngf, g.n_downsample_G, g.n_blocks
    f.norm = g.norm
    f.n_blocks_local = g.n_blocks_local
    if f.label_feat or f.load_features:
      raise ValueError('options label_feat / load_features (pix2pixHD feature encoder) are not '
                       'supported')
  elif net != 'composite':
    raise ValueError(f"option netG={net!r} is not supported (composite, global, local, "
                     "global_with_features or local_with_features)")
  mode = get('dataset_mode', 'temporal', str)
  if mode in ('temporal', 'test'):
    data.layout = 'street' if data.label_nc > 0 else 'video'
  elif mode in ('face', 'pose'):
    data.layout = mode
  else:
    raise ValueError(f'option dataset_mode={mode!r} is not supported (temporal, test, face, pose)')
  data.flip = not get('no_flip', False, bool)
  data.shuffle = not get('serial_batches', False, bool)
  max_size = get('max_dataset_size', math.inf, float)
  data.max_dataset_size = -1 if math.isinf(max_size) else int(max_size)
  config.loss.use_vgg = not get('no_vgg', False, bool)
  config.loss.use_gan_feat = not get('no_ganFeat', False, bool)
  if get('no_first_img', False, bool):
    config.first_frame.mode = 'generate'
  elif get('use_single_G', False, bool):
    config.first_frame.mode = 'single_g'
  if 'fg_labels' in options:
    g.fg_labels = _int_list('fg_labels', options['fg_labels'])
  if data.pose.openpose_only:
    g.no_flow = True  # the original forces it (docs/original_behaviour.md#pose-inputs)

  if g.norm not in config_lib.NORMS:
    raise ValueError(f"option norm={g.norm!r} is not supported (batch or instance)")
  for name, value in (('n_frames_G', g.n_frames_G), ('n_scales_spatial', g.n_scales_spatial),
                      ('ngf', g.ngf), ('num_D', d.num_D), ('n_layers_D', d.n_layers_D),
                      ('n_frames_D', d.n_frames_D), ('output_nc', data.output_nc)):
    if value < 1:
      raise ValueError(f'option {name}={value} must be >= 1')
  if g.n_frames_G < 2 and net == 'composite':
    raise ValueError(f'option n_frames_G={g.n_frames_G}: the sequential generator needs >= 2')
  if data.label_nc < 0 or (data.label_nc == 0 and data.input_nc < 1):
    raise ValueError(f'options label_nc={data.label_nc}, input_nc={data.input_nc}: no input')
  if g.fg and net == 'composite':
    if data.label_nc == 0:
      raise ValueError('option fg needs label maps (label_nc > 0)')
    bad = [i for i in g.fg_labels if not 0 <= i < data.label_nc]
    if bad:
      raise ValueError(f'option fg_labels={list(g.fg_labels)}: {bad} outside label_nc='
                       f'{data.label_nc}')
  if g.ngf % 2 ** (g.n_scales_spatial - 1):
    raise ValueError(f'option ngf={g.ngf} is not divisible by 2**(n_scales_spatial-1)')
  return config
