"""Import of original vid2vid checkpoints: opt.txt + ``.pth`` state_dicts -> config + variables.

An original checkpoint folder holds ``opt.txt`` and ``{epoch}_net_G{s}.pth`` (one per spatial
scale, s = 0 the coarsest), optionally ``{epoch}_net_D.pth``, ``{epoch}_net_D_f.pth`` (face D)
and ``{epoch}_net_D_T{s}.pth`` (temporal Ds); a first-frame (pix2pixHD) folder holds
``{epoch}_net_G.pth`` with netG 'global' or 'local', or with netG 'global_with_features' /
'local_with_features' (the original's face model, edge2face_single) also ``{epoch}_net_E.pth``
(the instance-wise feature encoder) and ``features.npy`` (the training images' per-instance
features that test-time features are drawn from; read without unpickling code, `read_features`).

The mapping is strict: an unexpected key, a missing key or a shape mismatch raises ValueError
naming the key; so does an option we cannot reproduce. Norm buffers (running_mean, running_var,
num_batches_tracked) are accepted and dropped: the original always normalises with the current
input's statistics, so they never affect its outputs (docs/quirks.md#norm-statistics).

Returned variables: ``{'generator': {'params': ...}, 'discriminator': ..., 'face_discriminator':
..., 'temporal_discriminator_{s}': ..., 'first_frame_generator': ..., 'first_frame_encoder': ...,
'first_frame_features': {'<id>': [N_id, feat_num + 1]}}`` (present networks only).
Layout: NHWC activations, HWIO conv kernels; transposed convs store ``[kH, kW, C_in, C_out]``
(``layers.UpConv``).
"""

import importlib
from collections.abc import Mapping, Sequence
import os
import pathlib
import pickle
import re
from typing import Any

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vid2vid_jax import original_options
from vid2vid_jax.models import builders

StateDict = Mapping[str, np.ndarray]
PathLike = str | os.PathLike
_BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked')

# ---------------------------------------------------------------- state_dict -> params


class _KeyMap:
  """Original state_dict key -> (our param path, layout) for one network."""

  def __init__(self):
    self.params: dict[str, tuple[tuple[str, ...], str]] = {}
    self.buffers: set[str] = set()

  def conv(self, key: str, path: tuple[str, ...], transposed: bool = False) -> None:
    self.params[f'{key}.weight'] = (path + ('kernel',), 'iokk' if transposed else 'oikk')
    self.params[f'{key}.bias'] = (path + ('bias',), 'vector')

  def norm(self, key: str, path: tuple[str, ...], kind: str) -> None:
    if kind == 'batch':
      self.params[f'{key}.weight'] = (path + ('scale',), 'vector')
      self.params[f'{key}.bias'] = (path + ('bias',), 'vector')
    self.buffers.update(f'{key}.{suffix}' for suffix in _BUFFER_SUFFIXES)

  def resblock(self, key: str, path: tuple[str, ...], kind: str) -> None:
    self.conv(f'{key}.conv_block.1', path + ('conv1',))
    self.norm(f'{key}.conv_block.2', path + ('norm1',), kind)
    self.conv(f'{key}.conv_block.5', path + ('conv2',))
    self.norm(f'{key}.conv_block.6', path + ('norm2',), kind)

  def down_path(self, key: str, path: tuple[str, ...], n_down: int, n_res: int,
                kind: str) -> None:
    """layers.DownPath from a Sequential [ReflPad, Conv, Norm, ReLU, (Conv, Norm, ReLU)*n, Res*m]."""
    self.conv(f'{key}.1', path + ('stem',))
    self.norm(f'{key}.2', path + ('stem_norm',), kind)
    for i in range(n_down):
      self.conv(f'{key}.{4 + 3 * i}', path + (f'down{i}',))
      self.norm(f'{key}.{5 + 3 * i}', path + (f'down{i}_norm',), kind)
    for j in range(n_res):
      self.resblock(f'{key}.{4 + 3 * n_down + j}', path + (f'res{j}',), kind)

  def up_path(self, res_key: str, res_start: int, up_key: str, up_start: int,
              path: tuple[str, ...], n_res: int, n_up: int, kind: str) -> None:
    """layers.UpPath from residual blocks at res_key.{res_start + j} and [ConvT, Norm, ReLU]
    triples at up_key.{up_start + 3i}."""
    for j in range(n_res):
      self.resblock(f'{res_key}.{res_start + j}', path + (f'res{j}',), kind)
    for i in range(n_up):
      self.conv(f'{up_key}.{up_start + 3 * i}', path + (f'up{i}',), transposed=True)
      self.norm(f'{up_key}.{up_start + 3 * i + 1}', path + (f'up{i}_norm',), kind)


def _to_ours(value: np.ndarray, layout: str) -> np.ndarray:
  value = np.asarray(value, dtype=np.float32)
  if layout == 'oikk':  # Conv2d (C_out, C_in, kH, kW) -> HWIO
    return value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
  if layout == 'iokk':  # ConvTranspose2d (C_in, C_out, kH, kW) -> (kH, kW, C_in, C_out)
    return value.transpose(2, 3, 0, 1) if value.ndim == 4 else value
  return value


def _strip_module_prefix(state_dict: StateDict) -> StateDict:
  if state_dict and all(k.startswith('module.') for k in state_dict):
    return {k[len('module.'):]: v for k, v in state_dict.items()}
  return state_dict


def _apply_keymap(state_dict: StateDict, keymap: _KeyMap, expected: Any, what: str) -> dict:
  """Converts ``state_dict`` with ``keymap`` and checks it against the abstract ``expected``
  params tree (from jax.eval_shape); returns {'params': tree}."""
  state_dict = _strip_module_prefix(state_dict)
  flat_expected = flax.traverse_util.flatten_dict(expected)
  mapped_paths = {path for path, _ in keymap.params.values()}
  if mapped_paths != set(flat_expected):  # an importer bug, not a checkpoint problem
    raise ValueError(f'{what}: key map and module disagree on '
                     f'{sorted(mapped_paths ^ set(flat_expected))[:5]}')
  flat = {}
  for key in sorted(state_dict):
    value = np.asarray(state_dict[key])
    if key in keymap.buffers:
      continue
    if key not in keymap.params:
      raise ValueError(f'{what}: unexpected key {key!r} in the state_dict')
    path, layout = keymap.params[key]
    converted = _to_ours(value, layout)
    want = tuple(flat_expected[path].shape)
    if converted.shape != want:
      raise ValueError(f'{what}: key {key!r} has shape {tuple(value.shape)}, which does not fit '
                       f'{"/".join(path)} of shape {want} (check the options)')
    flat[path] = converted
  missing = sorted(k for k in keymap.params if k not in state_dict)
  if missing:
    raise ValueError(f'{what}: missing key {missing[0]!r} in the state_dict'
                     + (f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''))
  return {'params': flax.traverse_util.unflatten_dict(flat)}


def _abstract_params(module: Any, *args: Any) -> Any:
  shapes = jax.eval_shape(module.init, jax.random.key(0), *args)
  return shapes['params']


def _composite_keymap(n_down: int, n_blocks: int, fg: bool, no_flow: bool, kind: str) -> _KeyMap:
  km = _KeyMap()
  n_enc = n_blocks - n_blocks // 2
  n_dec = n_blocks // 2
  km.down_path('model_down_seg', ('label_encoder',), n_down, n_enc, kind)
  km.down_path('model_down_img', ('prev_encoder',), n_down, n_enc, kind)
  km.up_path('model_res_img', 0, 'model_up_img', 0, ('img_decoder',), n_dec, n_down, kind)
  km.conv('model_final_img.1', ('img_head',))
  if not no_flow:
    km.up_path('model_res_flow', 0, 'model_up_flow', 0, ('flow_decoder',), n_dec, n_down, kind)
    km.conv('model_final_flow.1', ('flow_head',))
    km.conv('model_final_w.1', ('weight_head',))
  if fg:
    km.down_path('indv_down', ('fg_encoder',), n_down, 0, kind)
    km.up_path('indv_res', 0, 'indv_up', 0, ('fg_decoder',), n_blocks, n_down, kind)
    km.conv('indv_final.1', ('fg_head',))
  return km


def _local_keymap(n_blocks_local: int, fg: bool, no_flow: bool, kind: str) -> _KeyMap:
  km = _KeyMap()
  nbl = n_blocks_local
  km.down_path('model_down_seg', ('label_encoder',), 1, 0, kind)
  km.down_path('model_down_img', ('prev_encoder',), 1, 0, kind)
  km.up_path('model_up_img', 0, 'model_up_img', nbl, ('img_decoder',), nbl, 1, kind)
  km.conv('model_final_img.1', ('img_head',))
  if not no_flow:
    km.up_path('model_up_flow', 0, 'model_up_flow', nbl, ('flow_decoder',), nbl, 1, kind)
    km.conv('model_final_flow.1', ('flow_head',))
    km.conv('model_final_w.1', ('weight_head',))
  if fg:
    km.down_path('indv_down', ('fg_encoder',), 1, 0, kind)
    km.up_path('indv_up', 0, 'indv_up', nbl, ('fg_decoder',), nbl, 1, kind)
    km.conv('indv_final.1', ('fg_head',))
  return km


def generator_variables(state_dicts: Sequence[StateDict],
                        config: ml_collections.ConfigDict) -> dict:
  """Variables of ``builders.generator_from_config(config)`` from the original's netG{s}.

  Args:
    state_dicts: one per spatial scale, index s = 0 the coarsest (``latest_net_G0.pth``).
    config: from ``config_from_options``.

  Returns:
    {'params': {'scale0': ..., 'scale1': ...}} float32 NumPy arrays.
  """
  g = config.model.generator
  if len(state_dicts) != g.n_scales_spatial:
    raise ValueError(f'option n_scales_spatial={g.n_scales_spatial} needs that many generator '
                     f'state_dicts (net_G0..); got {len(state_dicts)}')
  model = builders.generator_from_config(config)
  expected = _abstract_params(model, *_generator_dummy_inputs(config))
  params = {}
  for s, state_dict in enumerate(state_dicts):
    if s == 0:
      km = _composite_keymap(g.n_downsample_G, g.n_blocks, g.fg, g.no_flow, g.norm)
    else:
      km = _local_keymap(g.n_blocks_local, g.fg, g.no_flow, g.norm)
    params[f'scale{s}'] = _apply_keymap(state_dict, km, expected[f'scale{s}'], f'net_G{s}')[
        'params']
  return {'params': params}


def _generator_dummy_inputs(config: ml_collections.ConfigDict) -> tuple:
  g = config.model.generator
  side = 4 * 2 ** g.n_downsample_G
  conds, prevs, masks = [], [], []
  for s in range(g.n_scales_spatial):
    size = side * 2**s
    conds.append(jax.ShapeDtypeStruct((1, g.n_frames_G, size, size,
                                       builders.cond_channels(config)), jnp.float32))
    prevs.append(jax.ShapeDtypeStruct((1, g.n_frames_G - 1, size, size, config.data.output_nc),
                                      jnp.float32))
    masks.append(jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32))
  return conds, prevs, masks if g.fg else None


def first_frame_variables(state_dict: StateDict, config: ml_collections.ConfigDict) -> dict:
  """Variables of ``builders.first_frame_generator_from_config(config)`` from a pix2pixHD
  ``net_G.pth`` (global: one Sequential ``model``; local: ``model`` + ``model{n}_1/_2``)."""
  f = config.first_frame
  kind = config.first_frame.norm
  model = builders.first_frame_generator_from_config(config)
  levels = f.n_local_enhancers if f.net.startswith('local') else 0
  side = 4 * 2 ** (f.n_downsample + levels)
  with_features = f.net.endswith('_with_features')
  # The input is a conditioning frame with or without its instance-edge channel: the original's
  # own first-frame models take the label maps only, others may take the edges too.
  # The checkpoint's stem says which.
  cond = builders.cond_channels(config)
  channels = cond
  stem_key = 'model_downsample.1.weight' if with_features else 'model.1.weight'
  state_dict = _strip_module_prefix(state_dict)
  if stem_key in state_dict and np.ndim(state_dict[stem_key]) == 4:
    channels = int(np.shape(state_dict[stem_key])[1]) - (f.feat_num if with_features else 0)
    allowed = {cond, cond - 1} if config.data.label_nc > 0 and config.data.use_instance else {cond}
    if channels not in allowed:
      extra = f' besides feat_num={f.feat_num} feature channels' if with_features else ''
      raise ValueError(f'net_G ({f.net}): key {stem_key!r} takes {channels} input channels'
                       f'{extra}; the options give {" or ".join(map(str, sorted(allowed)))} (check '
                       f'feat_num, input_nc, label_nc, use_instance)')
  inputs = [jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32)]
  if with_features:
    inputs.append(jax.ShapeDtypeStruct((1, side, side, f.feat_num), jnp.float32))
  expected = _abstract_params(model, *inputs)
  km = _KeyMap()
  nd, nb = f.n_downsample, f.n_blocks
  local = f.net.startswith('local')
  root = ('global_generator',) if local else ()
  if f.net.endswith('_with_features'):
    # Global_with_z: model_downsample (stem + downs), model_resnet, model_upsample, and
    # model_upsample_conv (global) / model_final (local) for the head.
    km.down_path('model_downsample', root + ('encoder',), nd, 0, kind)
    for j in range(nb):
      km.resblock(f'model_resnet.{j}', root + (f'res{j}',), kind)
    km.up_path('model_upsample', 0, 'model_upsample', 0, root + ('decoder',), 0, nd, kind)
    head_key = 'model_final.1' if local else 'model_upsample_conv.1'
  else:  # one Sequential `model` (the local net: without its last ReflPad, Conv, Tanh)
    km.down_path('model', root + ('encoder',), nd, nb, kind)
    km.up_path('model', 0, 'model', 4 + 3 * nd + nb, root + ('decoder',), 0, nd, kind)
    head_key = (f'model{f.n_local_enhancers}_2.{f.n_blocks_local + 4}' if local
                else f'model.{4 + 6 * nd + nb + 1}')
  if local:
    nbl = f.n_blocks_local
    for n in range(1, f.n_local_enhancers + 1):
      km.down_path(f'model{n}_1', (f'enhancer{n}_encoder',), 1, 0, kind)
      km.up_path(f'model{n}_2', 0, f'model{n}_2', nbl, (f'enhancer{n}_decoder',), nbl, 1, kind)
  km.conv(head_key, ('head',))
  return _apply_keymap(state_dict, km, expected, f'net_G ({f.net})')


def feature_encoder_variables(state_dict: StateDict, config: ml_collections.ConfigDict) -> dict:
  """Variables of ``builders.feature_encoder_from_config(config)`` from the original's
  ``net_E.pth`` (Encoder: one Sequential ``model`` = stem, downs, transposed convs, head)."""
  f = config.first_frame
  kind = config.first_frame.norm
  model = builders.feature_encoder_from_config(config)
  side = 4 * 2 ** f.n_downsample_E
  expected = _abstract_params(
      model, jax.ShapeDtypeStruct((1, side, side, config.data.output_nc), jnp.float32),
      jax.ShapeDtypeStruct((1, side, side), jnp.int32))
  km = _KeyMap()
  nd = f.n_downsample_E
  km.down_path('model', ('encoder',), nd, 0, kind)
  km.up_path('model', 0, 'model', 4 + 3 * nd, ('decoder',), 0, nd, kind)
  km.conv(f'model.{4 + 6 * nd + 1}', ('head',))
  return _apply_keymap(state_dict, km, expected, 'net_E (feature encoder)')


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles numpy arrays, dicts, lists and numbers only: any other global is refused, so a
  crafted file cannot run code."""

  _ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
              ('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', 'scalar'),
              ('numpy._core.multiarray', 'scalar'),
              ('_codecs', 'encode')}  # protocol-2 pickles of Python 3 bytes

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f'refusing to unpickle {module}.{name}')
    return getattr(importlib.import_module(module), name)


def read_features(path: PathLike) -> dict[int, np.ndarray]:
  """The original's ``features.npy`` (a pickled dict id -> [N_id, feat_num + 1] array, saved by
  Python 2 numpy as a 0-d object array) -> {id: float32 array}, without running pickled code.
  ``.npz`` files with keys '<id>' are read as well."""
  path = pathlib.Path(path)
  if path.suffix == '.npz':
    with np.load(path, allow_pickle=False) as npz:
      return {int(k): np.asarray(npz[k], np.float32) for k in npz.files}
  with open(path, 'rb') as f:
    try:
      version = np.lib.format.read_magic(f)
      read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                     (2, 0): np.lib.format.read_array_header_2_0}.get(version)
      if read_header is None:
        raise ValueError(f'unsupported .npy version {version}')
      shape, _, dtype = read_header(f, max_header_size=2**20)
    except ValueError as e:
      raise ValueError(f'{path}: not a .npy file ({e})') from e
    if dtype.hasobject:
      if shape != ():
        raise ValueError(f'{path}: expected a pickled dict (0-d object array); got shape {shape}')
      try:
        value = _ArrayUnpickler(f, encoding='latin1').load()
      except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as e:
        raise ValueError(f'{path}: cannot read the stored features safely ({e})') from e
      if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        value = value.item()
      elif isinstance(value, np.ndarray) and value.dtype == object and value.shape == (1,):
        value = value[0]
    else:
      raise ValueError(f'{path}: expected a dict of per-instance features; got a {dtype} array')
  if not isinstance(value, dict) or not value:
    raise ValueError(f'{path}: expected a dict id -> [N, feat_num + 1] array; got '
                     f'{type(value).__name__}')
  out = {}
  for key, table in value.items():
    table = np.asarray(table, np.float32)
    if table.ndim != 2:
      raise ValueError(f'{path}: features of id {key} must be [N, feat_num + 1]; got '
                       f'{table.shape}')
    out[int(key)] = table
  return out


def discriminator_variables(state_dict: StateDict, *, input_nc: int, ndf: int, n_layers: int,
                            num_D: int, norm: str, intermediate_features: bool = True,
                            what: str = 'net_D') -> dict:
  """Variables of ``MultiscaleDiscriminator(ndf, n_layers, num_D, norm)`` from an original
  multi-scale D state_dict (``scale{i}_layer{j}.*`` with getIntermFeat, else ``layer{i}.*``).

  Args:
    state_dict: the original's tensors.
    input_nc: D input channels (checked against the first conv).
    ndf, n_layers, num_D, norm: the original's ndf, n_layers_D, num_D, norm.
    intermediate_features: the original's getIntermFeat (not no_ganFeat).
    what: name used in error messages.
  """
  from vid2vid_jax.models import discriminator as disc_lib  # pylint: disable=g-import-not-at-top
  model = disc_lib.MultiscaleDiscriminator(ndf, n_layers, num_D, norm)
  side = 8 * 2 ** num_D
  expected = _abstract_params(model, jax.ShapeDtypeStruct((1, side, side, input_nc),
                                                          jnp.float32))
  km = _discriminator_keymap(n_layers, num_D, norm, intermediate_features)
  return _apply_keymap(state_dict, km, expected, what)


def _discriminator_keymap(n_layers: int, num_D: int, norm: str,
                          intermediate_features: bool) -> _KeyMap:
  km = _KeyMap()
  for k in range(num_D):
    orig = num_D - 1 - k  # the original's sub-D num_D-1 sees full resolution
    for j in range(n_layers + 2):
      if intermediate_features:
        conv_key, norm_key = f'scale{orig}_layer{j}.0', f'scale{orig}_layer{j}.1'
      else:  # one flat Sequential: [conv, lrelu], then [conv, norm, lrelu]..., last conv
        base = 0 if j == 0 else 2 + 3 * (j - 1)
        conv_key, norm_key = f'layer{orig}.{base}', f'layer{orig}.{base + 1}'
      km.conv(conv_key, (f'd{k}', f'conv{j}'))
      if 1 <= j <= n_layers:
        km.norm(norm_key, (f'd{k}', f'norm{j}'), norm)
  return km


def parameter_names(config: ml_collections.ConfigDict
                    ) -> dict[str, dict[str, tuple[tuple[str, ...], str]]]:
  """Where each original parameter of a sequential model lands in our variables.

  Args:
    config: from ``config_from_options`` (netG composite).

  Returns:
    {tag: {original state_dict key: (path in that network's params, layout)}} for the tags
    'G0', 'G1', ... (paths start with 'scale{s}'), 'D', 'D_f' (with add_face_disc) and 'D_T{s}';
    layout is what `tensor_to_ours` takes. Norm buffers are not parameters and are left out.
  """
  g, d = config.model.generator, config.model.discriminator
  names = {}
  for s in range(g.n_scales_spatial):
    km = (_composite_keymap(g.n_downsample_G, g.n_blocks, g.fg, g.no_flow, g.norm) if s == 0
          else _local_keymap(g.n_blocks_local, g.fg, g.no_flow, g.norm))
    names[f'G{s}'] = {k: ((f'scale{s}',) + path, layout)
                      for k, (path, layout) in km.params.items()}
  common = dict(n_layers=d.n_layers_D, norm=g.norm,
                intermediate_features=config.loss.use_gan_feat)
  names['D'] = _discriminator_keymap(num_D=d.num_D, **common).params
  if d.add_face_disc:
    names['D_f'] = _discriminator_keymap(num_D=max(1, d.num_D - 2), **common).params
  for s in range(d.n_scales_temporal):
    names[f'D_T{s}'] = _discriminator_keymap(num_D=d.num_D, **common).params
  return names


def tensor_to_ours(value: np.ndarray, layout: str) -> np.ndarray:
  """One original tensor in our layout (``layout`` from `parameter_names`): conv kernels
  OIHW -> HWIO, transposed-conv kernels (C_in, C_out, kH, kW) -> (kH, kW, C_in, C_out)."""
  return _to_ours(value, layout)


# ---------------------------------------------------------------- files


def read_state_dict(path: PathLike) -> dict[str, np.ndarray]:
  """Tensors of a ``.pth`` (torch zip or legacy format, read safely without torch by
  vid2vid_jax.pth) or of an ``.npz`` holding the same keys."""
  path = pathlib.Path(path)
  if path.suffix == '.npz':
    with np.load(path, allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  from vid2vid_jax import pth  # pylint: disable=g-import-not-at-top
  return {k: np.asarray(v) for k, v in pth.load_state_dict(path).items()}


def import_state_dicts(state_dicts: Mapping[str, StateDict], options: Mapping[str, Any],
                       features: Mapping[int, np.ndarray] | None = None
                       ) -> tuple[ml_collections.ConfigDict, dict]:
  """Config and variables from in-memory state_dicts plus the run's options.

  Args:
    state_dicts: by the original's file tag: 'G0', 'G1', ... (sequential generator, all scales
      required), 'G' (single-image generator, netG global/local/*_with_features), 'E' (the
      feature encoder of a *_with_features G, which eval's single_g needs), and optionally 'D',
      'D_f', 'D_T0', 'D_T1', ...
    options: original option name -> value (``read_opt_txt`` or typed values).
    features: for a *_with_features G, the stored per-instance training features
      (`read_features`), kept as variables['first_frame_features'].

  Returns:
    (config, variables) as described in the module docstring.
  """
  config = original_options.config_from_options(options)
  unknown = [t for t in state_dicts if not re.fullmatch(r'G\d*|E|D|D_f|D_T\d+', t)]
  if unknown:
    raise ValueError(f'unknown network tag(s) {unknown}; expected G0.., G, E, D, D_f, D_T0..')
  variables = {}
  net = config.first_frame.net if str(options.get('netG', 'composite')) in original_options.SINGLE_IMAGE_NETS \
      else 'composite'
  if net == 'composite':
    if 'G' in state_dicts:
      raise ValueError("a 'G' state_dict needs option netG global, local, global_with_features "
                     'or local_with_features')
    n = config.model.generator.n_scales_spatial
    extra = [t for t in state_dicts if re.fullmatch(r'G\d+', t) and int(t[1:]) >= n]
    if extra:
      raise ValueError(f'state_dicts {extra} beyond option n_scales_spatial={n}')
    missing = [f'G{s}' for s in range(n) if f'G{s}' not in state_dicts]
    if missing:
      raise ValueError(f'missing generator state_dict(s) {missing} for n_scales_spatial={n}')
    variables['generator'] = generator_variables([state_dicts[f'G{s}'] for s in range(n)],
                                                 config)
  else:
    if 'G' not in state_dicts:
      raise ValueError(f"option netG={net!r} needs a 'G' state_dict (net_G.pth)")
    variables['first_frame_generator'] = first_frame_variables(state_dicts['G'], config)
    if net.endswith('_with_features') and 'E' in state_dicts:  # eval needs it; parity does not
      variables['first_frame_encoder'] = feature_encoder_variables(state_dicts['E'], config)
  if features is not None:
    if not net.endswith('_with_features'):
      raise ValueError(f'stored features (features.npy) need option netG global_with_features '
                       f'or local_with_features; got {net!r}')
    feat_num = config.first_frame.feat_num
    for key, table in features.items():
      if np.ndim(table) != 2 or np.shape(table)[1] != feat_num + 1:
        raise ValueError(f'stored features of id {key}: expected [N, feat_num + 1 = '
                         f'{feat_num + 1}]; got {np.shape(table)}')
    variables['first_frame_features'] = {str(int(k)): np.asarray(v, np.float32)
                                         for k, v in features.items()}
  if 'E' in state_dicts and not net.endswith('_with_features'):
    raise ValueError(f"an 'E' state_dict (feature encoder) needs option netG "
                     f"global_with_features or local_with_features; got {net!r}")
  d = config.model.discriminator
  channels = builders.discriminator_input_channels(config)
  common = dict(ndf=d.ndf, n_layers=d.n_layers_D, norm=config.model.generator.norm,
                intermediate_features=config.loss.use_gan_feat)
  for tag, state_dict in sorted(state_dicts.items()):
    if tag == 'D':
      variables['discriminator'] = discriminator_variables(
          state_dict, input_nc=channels['image'], num_D=d.num_D, what='net_D', **common)
    elif tag == 'D_f':
      variables['face_discriminator'] = discriminator_variables(
          state_dict, input_nc=channels['face'], num_D=max(1, d.num_D - 2), what='net_D_f',
          **common)
    elif tag.startswith('D_T'):
      s = int(tag[3:])
      if s >= d.n_scales_temporal:
        raise ValueError(f'{tag}: beyond option n_scales_temporal={d.n_scales_temporal}')
      variables[f'temporal_discriminator_{s}'] = discriminator_variables(
          state_dict, input_nc=channels['temporal'], num_D=d.num_D, what=f'net_{tag}', **common)
  return config, variables


def import_checkpoint_dir(ckpt_dir: PathLike, which_epoch: str = 'latest'
                          ) -> tuple[ml_collections.ConfigDict, dict]:
  """Reads an original checkpoint folder (opt.txt + ``{which_epoch}_net_*.pth``).

  Every ``{which_epoch}_net_{tag}.pth`` of the folder is imported (G0.. or G [+ E], D, D_f,
  D_T{s}), and ``features.npy`` when present (the face first-frame model's stored features); a
  file we do not recognise is an error.

  Returns:
    (config, variables), see ``import_state_dicts``.
  """
  ckpt_dir = pathlib.Path(ckpt_dir)
  opt_path = ckpt_dir / 'opt.txt'
  if not opt_path.is_file():
    raise ValueError(f'{ckpt_dir}: no opt.txt')
  options = original_options.read_opt_txt(opt_path)
  prefix = f'{which_epoch}_net_'
  files = sorted(ckpt_dir.glob(f'{prefix}*.pth'))
  if not files:
    raise ValueError(f'{ckpt_dir}: no {prefix}*.pth files')
  state_dicts = {}
  for path in files:
    tag = path.name[len(prefix):-len('.pth')]
    logging.info('reading %s', path)
    state_dicts[tag] = read_state_dict(path)
  features = None
  if (ckpt_dir / 'features.npy').is_file():
    logging.info('reading %s', ckpt_dir / 'features.npy')
    features = read_features(ckpt_dir / 'features.npy')
  return import_state_dicts(state_dicts, options, features)
