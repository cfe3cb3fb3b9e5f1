"""Import the official ``FlowNet2_checkpoint.pth.tar`` into our FlowNet2 variables.

  python -m flow.convert_flownet2 --pth FlowNet2_checkpoint.pth.tar --out /path/flownet2_ckpt

The checkpoint is ``{'epoch', 'state_dict', 'best_EPE'}`` in PyTorch's legacy (pre-zip) format;
it is read with ``vid2vid_jax.pth`` (torch-free, never unpickles arbitrary code). The output is
an orbax checkpoint that ``flow.load_flownet2`` restores (``config.flow.checkpoint``).

Key mapping (state_dict -> our params), e.g. for ``flownetc``::

  flownetc.conv1.0.weight   (O, I, kh, kw) -> flownetc/conv1/conv/kernel   (kh, kw, I, O)
  flownetc.conv1.0.bias                    -> flownetc/conv1/conv/bias
  flownetc.predict_flow6.weight            -> flownetc/predict_flow6/conv/kernel
  flownetc.deconv5.0.weight (I, O, kh, kw) -> flownetc/deconv5/kernel      (kh, kw, I, O)
  flownetc.upsampled_flow6_to_5.weight     -> flownetc/upsampled_flow6_to_5/kernel

``conv*``, ``deconv*`` and ``inter_conv*`` carry the ``.0.`` of the original's nn.Sequential;
``predict_flow*`` and ``upsampled_flow*`` do not. Transposed convs (``deconv*``,
``upsampled_flow*``) keep their unflipped kernel (see ``flow.layers.Deconv``).
"""

import argparse
import os
import sys
from typing import Any, Mapping, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from flow import checkpoint as checkpoint_lib
from flow import networks
from vid2vid_jax import pth

_TRANSPOSED = ('deconv', 'upsampled_flow')


def _is_transposed(layer: str) -> bool:
  return layer.startswith(_TRANSPOSED)


def _torch_key(path: tuple[str, ...]) -> str:
  """Our param path (net, layer[, 'conv'], leaf) -> the original's state_dict key."""
  net, layer, leaf = path[0], path[1], path[-1]
  kind = {'kernel': 'weight', 'bias': 'bias'}[leaf]
  sequential = layer.startswith(('conv', 'deconv', 'inter_conv'))
  return f'{net}.{layer}.0.{kind}' if sequential else f'{net}.{layer}.{kind}'


def _torch_shape(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
  if path[-1] == 'bias':
    return tuple(shape)
  kh, kw, cin, cout = shape
  return (cin, cout, kh, kw) if _is_transposed(path[1]) else (cout, cin, kh, kw)


def _to_ours(path: tuple[str, ...], value: np.ndarray) -> np.ndarray:
  if path[-1] == 'bias':
    return value
  if _is_transposed(path[1]):
    return np.ascontiguousarray(value.transpose(2, 3, 0, 1))  # (I, O, kh, kw) -> (kh, kw, I, O)
  return np.ascontiguousarray(value.transpose(2, 3, 1, 0))  # (O, I, kh, kw) -> (kh, kw, I, O)


def abstract_variables(model: networks.FlowNet2 | None = None) -> dict[str, Any]:
  """``{'params': ...}`` of FlowNet2 as ``jax.ShapeDtypeStruct`` leaves (nothing allocated)."""
  model = model or networks.FlowNet2()
  image = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), image, image)


def expected_state_dict_shapes(model: networks.FlowNet2 | None = None) -> dict[str, tuple]:
  """{original state_dict key: shape} that our FlowNet2 expects (all 220 tensors)."""
  flat = jax.tree_util.tree_flatten_with_path(abstract_variables(model)['params'])[0]
  out = {}
  for key_path, leaf in flat:
    path = tuple(k.key for k in key_path)
    out[_torch_key(path)] = _torch_shape(path, leaf.shape)
  return out


def state_dict_to_variables(state_dict: Mapping[str, Any],
                            model: networks.FlowNet2 | None = None) -> dict[str, Any]:
  """Converts the original's state_dict into our FlowNet2 variables.

  Args:
    state_dict: {key: array-like float (NCHW / OIHW layout)}: exactly the 220 keys of
      ``models.FlowNet2`` (the official checkpoint's ``state_dict``).
    model: the module the variables are for (only its parameter shapes matter).

  Returns:
    ``{'params': nested dict of float32 numpy arrays}`` (NHWC / HWIO layout).

  Raises:
    ValueError: naming every missing key, every unexpected key, or the first key whose shape
      differs from what the model expects.
  """
  abstract = abstract_variables(model)['params']
  flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
  paths = [tuple(k.key for k in key_path) for key_path, _ in flat]
  wanted = {_torch_key(p): p for p in paths}
  missing = [k for k in wanted if k not in state_dict]
  unexpected = sorted(k for k in state_dict if k not in wanted)
  if missing or unexpected:
    msg = []
    if missing:
      msg.append(f'missing keys ({len(missing)}): {", ".join(missing)}')
    if unexpected:
      msg.append(f'unexpected keys ({len(unexpected)}): {", ".join(unexpected)}')
    raise ValueError('FlowNet2 state_dict does not match the model: ' + '; '.join(msg))
  leaves = []
  for (_, leaf), path in zip(flat, paths):
    key = _torch_key(path)
    value = np.asarray(state_dict[key])
    want = _torch_shape(path, leaf.shape)
    if tuple(value.shape) != want:
      raise ValueError(f'FlowNet2 state_dict key {key!r}: shape {tuple(value.shape)}, '
                       f'expected {want}')
    if not np.issubdtype(value.dtype, np.floating):
      raise ValueError(f'FlowNet2 state_dict key {key!r}: dtype {value.dtype}, expected float')
    leaves.append(_to_ours(path, value.astype(np.float32)))
  return {'params': jax.tree_util.tree_unflatten(treedef, leaves)}


def read_state_dict(pth_path: str) -> dict[str, np.ndarray]:
  """The ``state_dict`` of a FlowNet2 ``.pth.tar`` (legacy or zip format), torch-free and safe.

  ``{'epoch', 'state_dict', 'best_EPE'}`` is unwrapped to its state_dict and a DataParallel
  ``module.`` prefix is stripped (``vid2vid_jax.pth.load_state_dict``).

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a torch file, or no state_dict of tensors in it (naming the file / key).
  """
  return pth.load_state_dict(pth_path)


def import_checkpoint(pth_path: str, out_path: str, overwrite: bool = False) -> dict[str, Any]:
  """Reads the official checkpoint, converts it and writes our checkpoint at ``out_path``.

  Returns:
    The converted variables.
  """
  state_dict = read_state_dict(pth_path)
  logging.info('Read %d tensors from %s', len(state_dict), pth_path)
  try:
    variables = state_dict_to_variables(state_dict)
  except ValueError as e:
    raise ValueError(f'{pth_path}: {e}') from e
  checkpoint_lib.save_flownet2(variables, out_path, overwrite=overwrite)
  logging.info('Wrote FlowNet2 variables to %s', out_path)
  return variables


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m flow.convert_flownet2', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--pth', required=True, help='FlowNet2_checkpoint.pth.tar')
  parser.add_argument('--out', required=True, help='output checkpoint directory')
  parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
  args = parser.parse_args(argv)
  try:
    variables = import_checkpoint(args.pth, args.out, overwrite=args.overwrite)
  except (OSError, ValueError) as e:
    sys.stderr.write(f'flow.convert_flownet2: {e}\n')
    return 1
  leaves = jax.tree_util.tree_leaves(variables)
  count = sum(int(np.prod(x.shape)) for x in leaves)
  sys.stdout.write(f'Imported {len(leaves)} tensors ({count} parameters) from {args.pth} into '
                   f'{os.path.abspath(args.out)}; load it with flow.load_flownet2(path)\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
