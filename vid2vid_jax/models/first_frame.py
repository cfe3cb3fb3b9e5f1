"""The single-image first-frame generators (pix2pixHD style).

The original's pix2pixHD generators (docs/original_behaviour.md#first-frame-generator). Used by
the 'single_g' first-frame mode to synthesise the
first n_frames_G - 1 frames of a sequence from labels:
  * GlobalGenerator, LocalEnhancer: the street models (label2city_single);
  * GlobalGeneratorWithFeatures and LocalEnhancer with feat_nc > 0 (the original's Global_with_z /
    Local_with_z): conditioned on a feature map z as well, the face model (edge2face_single);
  * FeatureEncoder (the original's Encoder): the image -> per-instance mean features that z is
    made of; `nearest_features` turns them into the z of a stored training image (the original's
    test-time face features).
"""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax.models import layers

Dtype = Any
MAX_FEATURES = 1024  # pix2pixHD caps every width at 1024 (docs/quirks.md#channel-caps).


def _image_head(x: jax.Array, output_nc: int, dtype: Dtype, conv_impl: str,
                name: str) -> jax.Array:
  y = layers.Conv(output_nc, 7, padding=3, padding_mode='reflect', dtype=dtype,
                  conv_impl=conv_impl, name=name)(x)
  return jnp.tanh(y.astype(jnp.promote_types(dtype, jnp.float32)))


class GlobalGenerator(nn.Module):
  """Stem, n_downsample stride-2 convs, n_blocks residual blocks, n_downsample up convs, head.

  Submodules: ``encoder`` (layers.DownPath with the residual blocks), ``decoder``
  (layers.UpPath), ``head`` (ReflPad3 + Conv7x7 + tanh; absent when ``with_head`` is False, as
  inside the local enhancer). Widths min(1024, ngf * 2**i).

  Attributes:
    ngf: width after the stem.
    n_downsample: stride-2 convs.
    n_blocks: residual blocks at the bottleneck.
    norm: 'batch' or 'instance'.
    output_nc: image channels.
    with_head: add the image head (False inside LocalEnhancer).
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`vid2vid_jax.kernels`).
  """
  ngf: int = 64
  n_downsample: int = 3
  n_blocks: int = 9
  norm: str = 'batch'
  output_nc: int = 3
  with_head: bool = True
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] labels (+ edges) -> [B, H, W, output_nc] float32 in [-1, 1]
    (or the [B, H, W, ngf] decoder features when with_head is False)."""
    kw = dict(norm=self.norm, max_features=MAX_FEATURES, dtype=self.dtype,
              conv_impl=self.conv_impl)
    x = layers.DownPath(self.ngf, self.n_downsample, self.n_blocks, name='encoder', **kw)(x)
    x = layers.UpPath(self.ngf, self.n_downsample, 0, name='decoder', **kw)(x)
    if not self.with_head:
      return x
    return _image_head(x, self.output_nc, self.dtype, self.conv_impl, 'head')


def _with(x: jax.Array, feat: jax.Array) -> jax.Array:
  """Channel concat [x, feat] in the wider of the two dtypes."""
  dtype = jnp.promote_types(x.dtype, feat.dtype)
  return jnp.concatenate([x.astype(dtype), feat.astype(dtype)], axis=-1)


def _check_feat(x: jax.Array, feat: jax.Array | None, feat_nc: int, name: str) -> None:
  if feat is None:
    raise ValueError(f'{name} with feat_nc={feat_nc} needs a feature map')
  if feat.shape != x.shape[:-1] + (feat_nc,):
    raise ValueError(f'{name}: feature map must be {x.shape[:-1] + (feat_nc,)} (input '
                     f'{x.shape} and feat_nc {feat_nc}); got {feat.shape}')


def _downsample_times(x: jax.Array, n: int) -> jax.Array:
  for _ in range(n):
    x = layers.downsample(x)
  return x


class GlobalGeneratorWithFeatures(nn.Module):
  """The global generator conditioned on a feature map z (the original's Global_with_z).

  z [B, H, W, feat_nc] is concatenated four times: onto the input, onto the
  bottleneck before the residual blocks (z pooled n_downsample times; the blocks are
  feat_nc wider), again onto their output before the first up conv (so that conv takes
  width + 2 * feat_nc channels, a quirk of the original kept for its checkpoints), and onto the
  decoder output before the head.

  Submodules: ``encoder`` (layers.DownPath, no residual blocks), ``res{j}``, ``decoder``
  (layers.UpPath), ``head`` (absent when ``with_head`` is False, inside a feature-conditioned
  LocalEnhancer). Widths min(1024, ngf * 2**i).

  Attributes:
    feat_nc: channels of z (the original's feat_num; 16 for the face model).
    ngf, n_downsample, n_blocks, norm, output_nc, with_head, dtype, conv_impl: as
      GlobalGenerator.
  """
  feat_nc: int
  ngf: int = 64
  n_downsample: int = 3
  n_blocks: int = 9
  norm: str = 'batch'
  output_nc: int = 3
  with_head: bool = True
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array, feat: jax.Array) -> jax.Array:
    """x [B, H, W, C_in] labels, feat [B, H, W, feat_nc] -> [B, H, W, output_nc] float32 in
    [-1, 1] (or the [B, H, W, ngf] decoder features when with_head is False)."""
    _check_feat(x, feat, self.feat_nc, 'GlobalGeneratorWithFeatures')
    kw = dict(norm=self.norm, max_features=MAX_FEATURES, dtype=self.dtype,
              conv_impl=self.conv_impl)
    feat_bottom = _downsample_times(feat, self.n_downsample)
    y = layers.DownPath(self.ngf, self.n_downsample, 0, name='encoder', **kw)(_with(x, feat))
    y = _with(y, feat_bottom)
    for j in range(self.n_blocks):
      y = layers.ResnetBlock(y.shape[-1], self.norm, dtype=self.dtype,
                             conv_impl=self.conv_impl, name=f'res{j}')(y)
    y = layers.UpPath(self.ngf, self.n_downsample, 0, name='decoder', **kw)(
        _with(y, feat_bottom))
    if not self.with_head:
      return y
    return _image_head(_with(y, feat), self.output_nc, self.dtype, self.conv_impl, 'head')


class LocalEnhancer(nn.Module):
  """pix2pixHD local enhancer: a global generator at the coarsest input level, refined by
  n_local_enhancers stride-2 branches; optionally conditioned on a feature map z (feat_nc > 0:
  the original's Local_with_z).

  With z [B, H, W, feat_nc]: the global part is a GlobalGeneratorWithFeatures seeing z
  pooled n_local_enhancers times; the finest enhancer's input gets z concatenated, the first
  (coarsest) enhancer's residual blocks get the pooled z concatenated after the sum (they are
  feat_nc wider), and the head sees [output, z].

  Submodules: ``global_generator`` (GlobalGenerator, or GlobalGeneratorWithFeatures, of width
  ngf * 2**n_local_enhancers without head), and for n = 1..n_local_enhancers:
  ``enhancer{n}_encoder`` (stem + one stride-2 conv, width ngf * 2**(n_local_enhancers - n)),
  ``enhancer{n}_decoder`` (n_blocks_local residual blocks + one up conv); ``head`` after the last
  enhancer.

  Attributes:
    ngf: width of the finest enhancer.
    n_downsample_global: stride-2 convs of the global generator.
    n_blocks_global: residual blocks of the global generator.
    n_local_enhancers: enhancer levels (input pyramid has n_local_enhancers + 1 levels).
    n_blocks_local: residual blocks per enhancer.
    norm, output_nc, dtype: as GlobalGenerator.
    feat_nc: channels of z (the original's feat_num); 0 = no feature map.
    conv_impl: 'tuned' or 'plain' (`vid2vid_jax.kernels`).
  """
  ngf: int = 32
  n_downsample_global: int = 3
  n_blocks_global: int = 9
  n_local_enhancers: int = 1
  n_blocks_local: int = 3
  norm: str = 'batch'
  output_nc: int = 3
  dtype: Dtype = jnp.float32
  feat_nc: int = 0
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array, feat: jax.Array | None = None) -> jax.Array:
    """x [B, H, W, C_in] (+ feat [B, H, W, feat_nc] when feat_nc > 0) -> [B, H, W, output_nc]
    float32 in [-1, 1]. H and W must be divisible by 2**(n_local_enhancers +
    n_downsample_global)."""
    nle = self.n_local_enhancers
    inputs = layers.pyramid(x, nle + 1)  # coarsest first
    global_kw = dict(with_head=False, dtype=self.dtype, conv_impl=self.conv_impl,
                     name='global_generator')
    global_args = (self.ngf * 2**nle, self.n_downsample_global, self.n_blocks_global, self.norm,
                   self.output_nc)
    if self.feat_nc:
      _check_feat(x, feat, self.feat_nc, 'LocalEnhancer')
      feat_local = _downsample_times(feat, nle)
      out = GlobalGeneratorWithFeatures(self.feat_nc, *global_args, **global_kw)(
          inputs[0], feat_local)
    else:
      out = GlobalGenerator(*global_args, **global_kw)(inputs[0])
    kw = dict(norm=self.norm, dtype=self.dtype, conv_impl=self.conv_impl)
    for n in range(1, nle + 1):
      width = self.ngf * 2**(nle - n)
      x_n = _with(inputs[n], feat) if self.feat_nc and n == nle else inputs[n]
      y = layers.DownPath(width, 1, 0, name=f'enhancer{n}_encoder', **kw)(x_n) + out
      if self.feat_nc and n == 1:
        y = _with(y, feat_local)
      out = layers.UpPath(width, 1, self.n_blocks_local, res_features=y.shape[-1],
                          name=f'enhancer{n}_decoder', **kw)(y)
    return _image_head(_with(out, feat) if self.feat_nc else out, self.output_nc, self.dtype,
                       self.conv_impl, 'head')


def input_channels(module: nn.Module, params: Mapping[str, Any]) -> int:
  """The conditioning channels a first-frame generator's ``params`` take, read off its stem
  kernel (without the feature channels of the *WithFeatures nets): a conditioning frame with or
  without its instance-edge channel (the original's own first-frame models take the label maps
  only; other checkpoints may include the edges)."""
  root = params.get('global_generator', params)
  return int(root['encoder']['stem']['kernel'].shape[2]) - getattr(module, 'feat_nc', 0)


def instance_mean(x: jax.Array, inst: jax.Array, num_ids: int) -> jax.Array:
  """Replaces every pixel's features by their mean over its instance (per sample, per channel).

  Args:
    x: [B, H, W, C].
    inst: [B, H, W] int instance ids in [0, num_ids) (ids outside are not pooled: zeros).
    num_ids: static bound on the ids.

  Returns:
    [B, H, W, C] float32: each pixel holds the mean of x over the pixels of its sample with the
    same id (the original Encoder's instance-wise average pooling).
  """
  batch = x.shape[0]
  valid = ((inst >= 0) & (inst < num_ids)).reshape(-1)
  segments = jnp.where(valid, (inst + num_ids * jnp.arange(batch)[:, None, None]).reshape(-1),
                       batch * num_ids)  # invalid ids -> one extra, discarded segment
  values = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
  sums = jax.ops.segment_sum(values, segments, num_segments=batch * num_ids + 1)
  counts = jax.ops.segment_sum(jnp.ones_like(segments, jnp.float32), segments,
                               num_segments=batch * num_ids + 1)
  means = sums / jnp.maximum(counts, 1.0)[:, None]
  out = jnp.where(valid[:, None], means[segments], 0.0)
  return out.reshape(x.shape[:-1] + (x.shape[-1],))


class FeatureEncoder(nn.Module):
  """Image -> per-instance mean features (the original's Encoder).

  Stem (ReflPad3, Conv7x7, Norm, ReLU), n_downsample stride-2 convs (widths ngf * 2**i, NOT
  capped), n_downsample up convs back to ngf, ReflPad3 + Conv7x7 -> output_nc, tanh; then
  `instance_mean` over the instance map.

  Submodules: ``encoder`` (layers.DownPath), ``decoder`` (layers.UpPath), ``head``.

  Attributes:
    output_nc: feature channels (the original's feat_num; 16 for the face model).
    ngf: width after the stem (the original's nef; 16 for the face model).
    n_downsample: stride-2 convs (the original's n_downsample_E; 4 for the face model).
    norm: 'batch' or 'instance'.
    num_ids: static bound on the instance ids (face part labels: 0..6).
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`vid2vid_jax.kernels`).
  """
  output_nc: int = 16
  ngf: int = 16
  n_downsample: int = 4
  norm: str = 'batch'
  num_ids: int = 7
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, image: jax.Array, inst: jax.Array) -> jax.Array:
    """image [B, H, W, 3] in [-1, 1], inst [B, H, W] int in [0, num_ids) ->
    [B, H, W, output_nc] float32 in [-1, 1], constant over each instance."""
    kw = dict(norm=self.norm, dtype=self.dtype, conv_impl=self.conv_impl)
    y = layers.DownPath(self.ngf, self.n_downsample, 0, name='encoder', **kw)(image)
    y = layers.UpPath(self.ngf, self.n_downsample, 0, name='decoder', **kw)(y)
    head = _image_head(y, self.output_nc, self.dtype, self.conv_impl, 'head')
    return instance_mean(head, inst, self.num_ids)


def nearest_features(encoded: np.ndarray, inst: np.ndarray,
                     bank: Mapping[int, np.ndarray]) -> np.ndarray:
  """The feature map z of the stored training image nearest to an encoded test image.

  The original's test-time face features (get_face_features; docs/quirks.md#face-features):
  per instance id present in ``inst``, take the encoded features (constant over the instance); find the ONE
  training image m whose stored features, summed over the present ids, are nearest in squared
  distance (rows m of ``bank[id]``, m < the row count of the highest id's table, as the original
  counts images by its part 6); then paint every instance with row min(m, rows - 1) of its own
  table. Where the original compares uninitialised memory for ids absent from the image, only
  the present ids are compared here.

  Args:
    encoded: [H, W, C] FeatureEncoder output for one image.
    inst: [H, W] int instance ids.
    bank: id -> [N_id, C + 1] stored features (the original's features.npy; the last column is
      not a feature and is ignored).

  Returns:
    [H, W, C] float32.
  """
  encoded = np.asarray(encoded, np.float32)
  inst = np.asarray(inst)
  channels = encoded.shape[-1]
  ids = [int(i) for i in np.unique(inst)]
  missing = [i for i in ids if i not in bank]
  if missing:
    raise ValueError(f'instance ids {missing} have no stored features (the bank has ids '
                     f'{sorted(bank)})')
  for i in ids:
    if bank[i].ndim != 2 or bank[i].shape[1] != channels + 1:
      raise ValueError(f'stored features of id {i}: expected [N, {channels + 1}] rows; got '
                       f'{bank[i].shape}')
  num_images = bank[max(bank)].shape[0]
  dists = np.zeros(num_images, np.float64)
  for i in ids:
    y, x = np.argwhere(inst == i)[0]  # the original reads the first pixel of each instance
    rows = bank[i][:num_images, :channels].astype(np.float64)
    if rows.shape[0] < num_images:
      raise ValueError(f'stored features of id {i}: {rows.shape[0]} rows, fewer than the '
                       f'{num_images} images of id {max(bank)}')
    dists += np.sum(np.square(encoded[y, x].astype(np.float64) - rows), axis=1)
  nearest = int(np.argmin(dists))
  out = np.zeros(encoded.shape, np.float32)
  for i in ids:
    table = bank[i][:, :channels]
    out[inst == i] = table[min(nearest, table.shape[0] - 1)]
  return out
