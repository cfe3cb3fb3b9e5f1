"""VGG19 perceptual loss of vid2vid and its weight import (docs/original_behaviour.md#vgg-loss).

The network is torchvision's ``vgg19().features`` up to relu5_1 (features[0:30]), NHWC, with the
loss taps relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (torchvision slices [0:2], [2:7], [7:12],
[12:21], [21:30]) weighted 1/32, 1/16, 1/8, 1/4, 1. As in the original, images in [-1, 1] are fed
directly (no ImageNet mean/std, no [0, 1] rescale) and both images are 2x2-average-pooled while
their width exceeds 1024.

Weights come from torchvision's ImageNet file ``vgg19-dcbb9e9d.pth`` (read without torch and
without running pickled code by ``vid2vid_jax.pth``) or from the ``.npz`` this module writes.
There is deliberately no way to get a randomly initialised perceptual loss: an empty path raises
(config.loss.use_vgg=False is the explicit way to train without the term).

Convert once (the .npz holds only the 13 convolutions the loss uses, ~52 MB):
  python -m vid2vid_jax.vgg --pth vgg19-dcbb9e9d.pth --out vgg19.npz
"""

import argparse
import functools
import os
from typing import Any, Callable, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import pth

# (our name, torchvision ``features`` index, in channels, out channels) of every conv up to conv5_1.
VGG19_CONVS = (
    ('conv1_1', 0, 3, 64), ('conv1_2', 2, 64, 64),
    ('conv2_1', 5, 64, 128), ('conv2_2', 7, 128, 128),
    ('conv3_1', 10, 128, 256), ('conv3_2', 12, 256, 256), ('conv3_3', 14, 256, 256),
    ('conv3_4', 16, 256, 256),
    ('conv4_1', 19, 256, 512), ('conv4_2', 21, 512, 512), ('conv4_3', 23, 512, 512),
    ('conv4_4', 25, 512, 512),
    ('conv5_1', 28, 512, 512),
)
# Ops of each loss slice (every conv is followed by ReLU); 'pool' is MaxPool 2x2, stride 2.
# Equal to torchvision features[0:2], [2:7], [7:12], [12:21], [21:30].
_SLICES = (
    ('conv1_1',),
    ('conv1_2', 'pool', 'conv2_1'),
    ('conv2_2', 'pool', 'conv3_1'),
    ('conv3_2', 'conv3_3', 'conv3_4', 'pool', 'conv4_1'),
    ('conv4_2', 'conv4_3', 'conv4_4', 'pool', 'conv5_1'),
)
LAYER_NAMES = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1')
LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
# The original halves both images while their width exceeds this many pixels.
MAX_WIDTH = 1024

VGG_WEIGHTS_REQUIRED = (
    'VGG weights required: set config.loss.vgg_weights to torchvision\'s vgg19 .pth (or '
    'converted .npz), or disable with config.loss.use_vgg=False — never random weights.')

Params = Mapping[str, Mapping[str, Any]]


class VGG19Features(nn.Module):
  """torchvision VGG19 ``features[0:30]`` in NHWC, returning the five loss taps.

  Attributes:
    dtype: activation dtype (float32, or bfloat16 with float32 params).
    precision: lax precision of the convolutions (None = backend default).
  """
  dtype: Any = jnp.float32
  precision: Optional[jax.lax.Precision] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, ...]:
    """Runs the network.

    Args:
      x: [N, H, W, 3], any range (vid2vid feeds [-1, 1]); H, W >= 16 so relu5_1 is non-empty.

    Returns:
      (relu1_1 [N, H, W, 64], relu2_1 [N, H/2, W/2, 128], relu3_1 [N, H/4, W/4, 256],
       relu4_1 [N, H/8, W/8, 512], relu5_1 [N, H/16, W/16, 512]), sizes floored, dtype ``dtype``.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'VGG19Features expects [N, H, W, 3]; got {x.shape}')
    widths = {name: cout for name, _, _, cout in VGG19_CONVS}
    x = x.astype(self.dtype)
    taps = []
    for ops in _SLICES:
      for op in ops:
        if op == 'pool':
          x = nn.max_pool(x, (2, 2), strides=(2, 2), padding='VALID')
        else:
          x = nn.Conv(widths[op], (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                      param_dtype=jnp.float32, precision=self.precision, name=op)(x)
          x = nn.relu(x)
      taps.append(x)
    return tuple(taps)


def downsample_for_vgg(x: jax.Array, y: jax.Array,
                       max_width: int = MAX_WIDTH) -> tuple[jax.Array, jax.Array]:
  """2x2 average pooling (stride 2, floor) of both images while their width exceeds max_width.

  Args:
    x, y: [N, H, W, C] with equal shapes.
    max_width: widths above this are halved (1024 in the original).

  Returns:
    (x, y) pooled k times, the smallest k with W / 2**k <= max_width.
  """
  while x.shape[2] > max_width:
    x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding='VALID')
    y = nn.avg_pool(y, (2, 2), strides=(2, 2), padding='VALID')
  return x, y


def vgg_loss(params: Params, x: jax.Array, y: jax.Array, *, max_width: int = MAX_WIDTH,
             dtype: Any = jnp.float32,
             precision: Optional[jax.lax.Precision] = None) -> jax.Array:
  """The original's VGGLoss: sum_k w_k * mean|phi_k(x) - stop_gradient(phi_k(y))|.

  Args:
    params: VGG19 params, {'conv1_1': {'kernel': [3, 3, 3, 64], 'bias': [64]}, ...} as returned by
      load_vgg19_weights (frozen: gradients are stopped).
    x: [N, H, W, 3] generated images in [-1, 1] (fed as they are, docs/quirks.md#vgg-input).
    y: [N, H, W, 3] target images in [-1, 1]; no gradient flows into them.
    max_width: see downsample_for_vgg.
    dtype: activation dtype of the network; the loss is float32.
    precision: lax precision of the convolutions.

  Returns:
    Scalar float32 >= 0.
  """
  if x.ndim != 4 or x.shape[-1] != 3 or x.shape != y.shape:
    raise ValueError(
        f'vgg_loss expects x and y [N, H, W, 3] of one shape; got {x.shape}, {y.shape}')
  x, y = downsample_for_vgg(x, jax.lax.stop_gradient(y), max_width)
  n = x.shape[0]
  # One forward over the concatenated batch: same result as two, half the kernel launches.
  feats = VGG19Features(dtype=dtype, precision=precision).apply(
      {'params': jax.lax.stop_gradient(params)}, jnp.concatenate([x, y], axis=0))
  total = jnp.zeros((), jnp.float32)
  for w, f in zip(LAYER_WEIGHTS, feats):
    f = f.astype(jnp.float32)
    total += w * jnp.mean(jnp.abs(f[:n] - jax.lax.stop_gradient(f[n:])))
  return total


# ----------------------------------------------------------------------------- weights


def params_from_torch_state_dict(state_dict: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
  """Maps torchvision vgg19 ``features.{i}.weight/bias`` (OIHW) to our params (HWIO).

  Only the 13 convolutions up to conv5_1 are read; conv5_2+ and ``classifier.*`` are ignored.

  Args:
    state_dict: key -> array (numpy or anything np.asarray accepts), torchvision layout.

  Returns:
    {'conv1_1': {'kernel': float32 [3, 3, 3, 64], 'bias': float32 [64]}, ...}.
  """
  params = {}
  for name, index, cin, cout in VGG19_CONVS:
    expected = {'weight': (cout, cin, 3, 3), 'bias': (cout,)}
    arrays = {}
    for kind, shape in expected.items():
      key = f'features.{index}.{kind}'
      if key not in state_dict:
        raise ValueError(f'VGG19 weights: missing key {key!r} ({name} {kind})')
      value = np.asarray(state_dict[key], dtype=np.float32)
      if value.shape != shape:
        raise ValueError(
            f'VGG19 weights: {key!r} ({name} {kind}) has shape {value.shape}, expected {shape}')
      arrays[kind] = value
    params[name] = {'kernel': np.ascontiguousarray(arrays['weight'].transpose(2, 3, 1, 0)),
                    'bias': arrays['bias']}
  return params


def _check_params(params: Mapping[str, Mapping[str, np.ndarray]]) -> None:
  for name, _, cin, cout in VGG19_CONVS:
    for kind, shape in (('kernel', (3, 3, cin, cout)), ('bias', (cout,))):
      key = f'{name}/{kind}'
      if name not in params or kind not in params[name]:
        raise ValueError(f'VGG19 weights: missing key {key!r}')
      if params[name][kind].shape != shape:
        raise ValueError(
            f'VGG19 weights: {key!r} has shape {params[name][kind].shape}, expected {shape}')


def load_vgg19_weights(path: str) -> dict[str, dict[str, np.ndarray]]:
  """Loads VGG19 params from torchvision's ``.pth`` or from our converted ``.npz``.

  Args:
    path: torchvision ``vgg19-*.pth`` (state_dict, legacy or zip format), or an ``.npz`` written by
      save_vgg19_npz (keys 'conv1_1/kernel' ...), or an ``.npz`` of torchvision keys. '' raises
      the "VGG weights required" ValueError: there is no random-weight fallback.

  Returns:
    {'conv1_1': {'kernel': float32 [3, 3, 3, 64], 'bias': float32 [64]}, ..., 'conv5_1': ...}
    as NumPy arrays (the caller places them on devices).
  """
  if not path:
    raise ValueError(VGG_WEIGHTS_REQUIRED)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'VGG19 weights file not found: {path!r} (config.loss.vgg_weights)')
  if path.endswith('.npz'):
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
    if any(k.startswith('features.') for k in arrays):
      return params_from_torch_state_dict(arrays)
    params: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
      name, _, kind = key.partition('/')
      params.setdefault(name, {})[kind] = np.asarray(value, np.float32)
    _check_params(params)
    return {name: params[name] for name, *_ in VGG19_CONVS}
  return params_from_torch_state_dict(pth.load_state_dict(path))


def save_vgg19_npz(params: Mapping[str, Mapping[str, Any]], path: str) -> None:
  """Writes params (our layout) to ``path`` as an .npz with keys 'conv1_1/kernel', ...

  Args:
    params: as returned by load_vgg19_weights.
    path: output file; '.npz' is appended by NumPy if missing.
  """
  _check_params({n: {k: np.asarray(v) for k, v in p.items()} for n, p in params.items()})
  np.savez(path, **{f'{name}/{kind}': np.asarray(params[name][kind], np.float32)
                    for name, *_ in VGG19_CONVS for kind in ('kernel', 'bias')})


def vgg_loss_fn_from_path(path: str, **kwargs: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """vgg_loss with params loaded from ``path`` and bound, for eval scripts and notebooks.

  Inside a jitted training step prefer ``functools.partial(vgg_loss, params)`` with ``params`` a
  traced argument of the step: a bound function makes the ~52 MB of weights jit constants.

  Args:
    path: see load_vgg19_weights ('' raises the "VGG weights required" ValueError).
    **kwargs: forwarded to vgg_loss (max_width, dtype, precision).

  Returns:
    fn(x, y) -> scalar float32, x and y [N, H, W, 3] in [-1, 1].
  """
  params = jax.tree_util.tree_map(jnp.asarray, load_vgg19_weights(path))
  return functools.partial(vgg_loss, params, **kwargs)


def main(argv: Optional[Sequence[str]] = None) -> None:
  """CLI: convert torchvision's vgg19 .pth into our .npz (plain argparse: importing this library
  module must not define global absl flags)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--pth', required=True, help="torchvision's vgg19-dcbb9e9d.pth")
  parser.add_argument('--out', required=True, help='output .npz')
  args = parser.parse_args(argv)
  save_vgg19_npz(load_vgg19_weights(args.pth), args.out)


if __name__ == '__main__':
  main()
