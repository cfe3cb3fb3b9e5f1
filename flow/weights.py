"""The deterministic FlowNet2 test weights of the fixtures' ``weights_recipe.md``.

The fixtures were computed with made-up weights built from ``param_shapes.json`` (keys and
shapes, in state_dict order) and a seed. This module rebuilds them bit for bit, in the
original's (PyTorch) layout, so that ``flow.convert_flownet2.state_dict_to_variables`` turns them
into our variables exactly as it would the official checkpoint.
"""

import json
import math
import os
import re

import numpy as np

from flow import convert_flownet2

# Layers with no activation after them (gain 1 instead of sqrt(2)).
_LINEAR_TOKENS = ('predict_flow', 'upsampled_flow', 'inter_conv')
_SEED_RE = re.compile(r'SEED\s*=\s*(\d+)')


def read_param_shapes(fixture_dir: str) -> dict:
  """Returns the parsed ``param_shapes.json`` of a fixture folder."""
  path = os.path.join(fixture_dir, 'param_shapes.json')
  try:
    with open(path) as f:
      spec = json.load(f)
  except FileNotFoundError as e:
    raise ValueError(f'{path}: not found (a FlowNet2 fixture folder needs '
                     'param_shapes.json)') from e
  if 'params' not in spec:
    raise ValueError(f'{path}: no "params" list')
  return spec


def read_seed(fixture_dir: str) -> int:
  """The weight seed of a fixture folder.

  Read from ``weights_recipe.md`` (``SEED = <n>``); ``param_shapes.json``'s ``weights_seed`` is
  the fallback and, when both exist, must agree.

  Raises:
    ValueError: no seed found, or the two files disagree.
  """
  recipe_path = os.path.join(fixture_dir, 'weights_recipe.md')
  recipe_seed = None
  if os.path.exists(recipe_path):
    with open(recipe_path) as f:
      seeds = set(int(s) for s in _SEED_RE.findall(f.read()))
    if len(seeds) > 1:
      raise ValueError(f'{recipe_path}: several different seeds {sorted(seeds)}')
    recipe_seed = seeds.pop() if seeds else None
  json_seed = read_param_shapes(fixture_dir).get('weights_seed')
  if recipe_seed is not None and json_seed is not None and int(json_seed) != recipe_seed:
    raise ValueError(f'{fixture_dir}: weights_recipe.md says SEED = {recipe_seed} but '
                     f'param_shapes.json says weights_seed = {json_seed}')
  seed = recipe_seed if recipe_seed is not None else json_seed
  if seed is None:
    raise ValueError(f'{fixture_dir}: no seed in weights_recipe.md ("SEED = <n>") or '
                     'param_shapes.json ("weights_seed")')
  return int(seed)


def recipe_state_dict(params_spec: list[dict], seed: int) -> dict[str, np.ndarray]:
  """Builds the test weights, following weights_recipe.md rule by rule.

  Args:
    params_spec: ``param_shapes.json["params"]``: dicts with ``key`` and ``shape``, in order.
    seed: the folder's seed.

  Returns:
    {state_dict key: float32 array in the original's layout}, in ``params_spec`` order.
  """
  rng = np.random.default_rng(seed)
  out = {}
  for entry in params_spec:
    key, shape = entry['key'], tuple(entry['shape'])
    module, kind = key.rsplit('.', 1)
    z = rng.standard_normal(size=shape)
    if kind == 'weight':
      if len(shape) != 4:
        raise ValueError(f'{key}: weights are expected 4-D, got shape {shape}')
      transposed = 'deconv' in module or 'upsampled_flow' in module
      if transposed:
        fan_in = shape[0] * (shape[2] // 2) * (shape[3] // 2)
      else:
        fan_in = shape[1] * shape[2] * shape[3]
      gain = 1.0 if any(t in key for t in _LINEAR_TOKENS) else math.sqrt(2.0)
      std = gain / math.sqrt(fan_in)
    else:
      std = 0.01
    if key == 'flownets_d.predict_flow2.weight':
      std = std * 400.0
    w = z * std
    if key == 'flownetc.conv3_1.0.weight':
      w[:, 32:] *= 8.0
    out[key] = w.astype(np.float32)
  return out


def check_state_dict(state_dict: dict[str, np.ndarray], params_spec: list[dict]) -> None:
  """Compares tensors with the check values of ``param_shapes.json``.

  Raises:
    ValueError: naming the first tensor whose shape, first four values or sums differ (a
      changed numpy ``Generator`` stream would show up here).
  """
  for entry in params_spec:
    key = entry['key']
    value = state_dict[key]
    if list(value.shape) != list(entry['shape']):
      raise ValueError(f'{key}: shape {value.shape}, param_shapes.json says {entry["shape"]}')
    if 'check_first4' in entry:
      first4 = value.reshape(-1)[:4].astype(np.float64)
      if not np.array_equal(first4, np.asarray(entry['check_first4'], np.float64)):
        raise ValueError(f'{key}: first values {first4.tolist()} differ from check_first4 '
                         f'{entry["check_first4"]}')
    for name, fn in (('check_sum', np.sum), ('check_abs_sum', lambda v: np.sum(np.abs(v)))):
      if name in entry:
        got = float(fn(value.astype(np.float64)))
        if not math.isclose(got, entry[name], rel_tol=1e-9, abs_tol=1e-9):
          raise ValueError(f'{key}: {name} {got!r} differs from param_shapes.json {entry[name]!r}')


def fixture_state_dict(fixture_dir: str, verify: bool = True) -> dict[str, np.ndarray]:
  """The test weights of a fixture folder (its seed and key list), in the original's layout.

  Args:
    fixture_dir: folder with ``param_shapes.json`` and ``weights_recipe.md``.
    verify: compare every tensor with the check values of ``param_shapes.json``.

  Returns:
    {state_dict key: float32 array}, ready for ``flow.convert_flownet2.state_dict_to_variables``.
  """
  spec = read_param_shapes(fixture_dir)['params']
  state_dict = recipe_state_dict(spec, read_seed(fixture_dir))
  if verify:
    check_state_dict(state_dict, spec)
  return state_dict


def random_variables(seed: int = 0) -> dict:
  """FlowNet2 variables with the recipe's He-normal weights, without a fixture folder.

  For benchmarks and tests that need realistic activations but no particular values: the
  recipe applied to the model's own key list (an order other than the original's, so these are
  not the fixtures' weights). About 4 s on CPU, much faster than ``FlowNet2().init``.

  Returns:
    ``{'params': ...}`` of float32 numpy arrays.
  """
  shapes = convert_flownet2.expected_state_dict_shapes()
  spec = [{'key': key, 'shape': list(shape)} for key, shape in shapes.items()]
  return convert_flownet2.state_dict_to_variables(recipe_state_dict(spec, seed))
