"""Discriminators of vid2vid: multi-scale PatchGAN, temporal-D inputs, face crop.

docs/original_behaviour.md#discriminators. The image D, the face D and every temporal D are the
same ``MultiscaleDiscriminator``; they differ in their inputs:
  * image D: concat(label map incl. edge channel, image) -> in_c (+1) + output_nc channels;
  * face D: the same on a square crop around the face (``face_crop``), num_D = max(1, num_D - 2);
  * temporal D at temporal scale s: n_frames_D frames taken every n_frames_D**s frames, plus the
    n_frames_D - 1 reference flows between them divided by 20 (`vid2vid_jax.temporal`).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vid2vid_jax.models import layers

Dtype = Any
MAX_NDF = 64  # MultiscaleDiscriminator caps each sub-D's ndf at 64 (docs/quirks.md#channel-caps).
MAX_FEATURES = 512  # NLayerDiscriminator caps widths at 512.


class NLayerDiscriminator(nn.Module):
  """PatchGAN: Conv4x4 (zero pad 2) layers with LeakyReLU(0.2), raw logits.

  Submodules ``conv{j}`` for j in 0..n_layers+1 and ``norm{j}`` for j in 1..n_layers. Layers
  0..n_layers-1 have stride 2, the last two stride 1; widths ndf, 2ndf, ... capped at 512.

  Attributes:
    ndf: width of the first layer.
    n_layers: n_layers_D.
    norm: 'batch' or 'instance'.
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`vid2vid_jax.kernels`).
  """
  ndf: int = 64
  n_layers: int = 3
  norm: str = 'batch'
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    """[B, H, W, C] -> the n_layers + 2 layer outputs (after LeakyReLU), NHWC; the last is the
    [B, h, w, 1] float32 patch prediction. Intermediate features are in ``dtype``."""
    features = []
    width = self.ndf
    for j in range(self.n_layers + 1):
      if j > 0:
        width = min(2 * width, MAX_FEATURES)
      x = layers.Conv(width, 4, strides=2 if j < self.n_layers else 1, padding=2,
                      dtype=self.dtype, conv_impl=self.conv_impl, name=f'conv{j}')(x)
      if j > 0:
        x = layers.Norm(self.norm, dtype=self.dtype, name=f'norm{j}')(x)
      x = nn.leaky_relu(x, 0.2).astype(self.dtype)
      features.append(x)
    pred = layers.Conv(1, 4, padding=2, dtype=self.dtype, conv_impl=self.conv_impl,
                       name=f'conv{self.n_layers + 1}')(x)
    features.append(pred.astype(jnp.promote_types(self.dtype, jnp.float32)))
    return features


class MultiscaleDiscriminator(nn.Module):
  """num_D PatchGANs on an average-pool pyramid of the input.

  Submodule ``d{k}`` sees the input downsampled k times (``d0`` = full resolution) and has width
  min(64, ndf * 2**k). (The original names them ``scale{num_D-1-k}``; the importer maps them.)

  Attributes:
    ndf: first-layer width of the full-resolution sub-D.
    n_layers: n_layers_D.
    num_D: number of scales.
    norm: 'batch' or 'instance'.
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`vid2vid_jax.kernels`).
  """
  ndf: int = 64
  n_layers: int = 3
  num_D: int = 2
  norm: str = 'batch'
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, x: jax.Array) -> list[list[jax.Array]]:
    """[B, H, W, C] (float, e.g. labels + image in [-1, 1]) -> list over scales (full
    resolution first) of the NLayerDiscriminator feature lists (last = patch prediction)."""
    if x.ndim != 4:
      raise ValueError(f'MultiscaleDiscriminator expects [B, H, W, C]; got {x.shape}')
    outputs = []
    for k in range(self.num_D):
      if k > 0:
        x = layers.downsample(x)
      outputs.append(NLayerDiscriminator(min(MAX_NDF, self.ndf * 2**k), self.n_layers,
                                         self.norm, self.dtype, self.conv_impl,
                                         name=f'd{k}')(x))
    return outputs


# ---------------------------------------------------------------- face discriminator crop


def face_mask_from_pose(cond: jax.Array, openpose_only: bool = False) -> jax.Array:
  """Face pixels of a pose conditioning map (docs/quirks.md#face-crop).

  Args:
    cond: [B, H, W, C] pose input in [-1, 1] (DensePose IUV first, or OpenPose only).
    openpose_only: use the OpenPose colour test instead of the DensePose part channel.

  Returns:
    [B, H, W] bool: DensePose channel 2 > 0.9 (parts 23, 24), or for openpose_only pixels with
    0.19 < c0 < 0.21, c1 < -0.99, -0.61 < c2 < -0.59 (the nose-neck limb colour, as the original).
  """
  if cond.ndim != 4 or cond.shape[-1] < 3:
    raise ValueError(f'face_mask_from_pose expects [B, H, W, C>=3]; got {cond.shape}')
  if openpose_only:
    c0, c1, c2 = cond[..., 0], cond[..., 1], cond[..., 2]
    return (c0 > 0.19) & (c0 < 0.21) & (c1 < -0.99) & (c2 > -0.61) & (c2 < -0.59)
  return cond[..., 2] > 0.9


def face_crop(images: Sequence[jax.Array], mask: jax.Array, size: int
              ) -> tuple[list[jax.Array], jax.Array]:
  """Crops the same square around the faces of the whole batch from every image.

  The centre is the midpoint of the bounding box of ALL face pixels over the batch, clamped so
  the crop stays inside the frame; jittable (static crop size).

  Args:
    images: arrays [B, H, W, C_i] (e.g. real_A, real_B, fake_B).
    mask: [B, H, W] bool face pixels (``face_mask_from_pose``).
    size: the original's side fineSize // 32 * 8; the crop is 2 * (size // 2) pixels square.

  Returns:
    (crops [B, 2*(size//2), 2*(size//2), C_i] per image, has_face scalar bool). Without any
    face pixel the crop is centred and has_face is False (the original then skips the face D:
    weight its losses by has_face).
  """
  if mask.ndim != 3:
    raise ValueError(f'face_crop expects mask [B, H, W]; got {mask.shape}')
  height, width = mask.shape[1:]
  half = size // 2
  if 2 * half > min(height, width) or half < 1:
    raise ValueError(f'face crop size {size} does not fit a {height}x{width} frame')
  rows = jnp.any(mask, axis=(0, 2))
  cols = jnp.any(mask, axis=(0, 1))
  has_face = jnp.any(rows)

  def centre(hits, n):
    idx = jnp.arange(n)
    lo = jnp.min(jnp.where(hits, idx, n))
    hi = jnp.max(jnp.where(hits, idx, -1))
    c = jnp.where(has_face, (lo + hi) // 2, n // 2)
    return jnp.clip(c, half, n - half)

  y0 = centre(rows, height) - half
  x0 = centre(cols, width) - half
  crops = []
  for image in images:
    if image.ndim != 4 or image.shape[1:3] != (height, width):
      raise ValueError(f'face_crop: image {image.shape} does not match mask {mask.shape}')
    crops.append(jax.lax.dynamic_slice(
        image, (0, y0, x0, 0), (image.shape[0], 2 * half, 2 * half, image.shape[3])))
  return crops, has_face
