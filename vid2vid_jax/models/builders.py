"""Config -> network modules, in one place (STYLE.md: config stops at the builders).

The modules themselves take explicit dataclass fields; these functions are the only code that
reads ``config.model.*`` / ``config.data.*`` / ``config.first_frame.*`` to fill them. They only
read attributes (no ml_collections import), so tests may pass any object with the same fields.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vid2vid_jax.models import discriminator as disc_lib
from vid2vid_jax.models import first_frame as first_frame_lib
from vid2vid_jax.models import generator as generator_lib

ACTIVATION_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}  # config.model.dtype


def activation_dtype(config: Any) -> Any:
  """config.model.dtype ('float32' | 'bfloat16') -> the jnp dtype."""
  name = config.model.dtype
  if name not in ACTIVATION_DTYPES:
    raise ValueError(f'model.dtype must be one of {tuple(ACTIVATION_DTYPES)}; got {name!r}')
  return ACTIVATION_DTYPES[name]


def cond_channels(config: Any) -> int:
  """Channels of one conditioning frame: label_nc one-hot (or input_nc) + 1 edge channel if
  use_instance (docs/original_behaviour.md#input-packing)."""
  data = config.data
  base = data.label_nc if data.label_nc != 0 else data.input_nc
  return base + (1 if data.use_instance else 0)


def generator_from_config(config: Any) -> generator_lib.MultiScaleGenerator:
  """The sequential generator (all spatial scales) of ``config.model.generator``."""
  g = config.model.generator
  if g.net != 'composite':
    raise ValueError(f"model.generator.net must be 'composite'; got {g.net!r}")
  if g.n_scales_spatial < 1:
    raise ValueError(f'model.generator.n_scales_spatial must be >= 1; got {g.n_scales_spatial}')
  if g.fg and config.data.label_nc == 0:
    raise ValueError('model.generator.fg needs label maps (data.label_nc > 0)')
  return generator_lib.MultiScaleGenerator(
      n_scales=g.n_scales_spatial, ngf=g.ngf, n_downsample=g.n_downsample_G,
      n_blocks=g.n_blocks, n_blocks_local=g.n_blocks_local, norm=g.norm,
      output_nc=config.data.output_nc, fg=g.fg, no_flow=g.no_flow,
      dtype=activation_dtype(config), conv_impl=config.model.conv_impl)


def first_frame_generator_from_config(config: Any) -> nn.Module:
  """The single-image first-frame generator of ``config.first_frame``:
  GlobalGenerator, LocalEnhancer or their feature-conditioned forms (called as (x, feat))."""
  f = config.first_frame
  common = dict(norm=f.norm, output_nc=config.data.output_nc,
                dtype=activation_dtype(config), conv_impl=config.model.conv_impl)
  if f.net == 'global':
    return first_frame_lib.GlobalGenerator(f.ngf, f.n_downsample, f.n_blocks, **common)
  if f.net == 'local':
    return first_frame_lib.LocalEnhancer(f.ngf, f.n_downsample, f.n_blocks, f.n_local_enhancers,
                                         f.n_blocks_local, **common)
  if f.net == 'global_with_features':
    return first_frame_lib.GlobalGeneratorWithFeatures(f.feat_num, f.ngf, f.n_downsample,
                                                       f.n_blocks, **common)
  if f.net == 'local_with_features':
    return first_frame_lib.LocalEnhancer(f.ngf, f.n_downsample, f.n_blocks, f.n_local_enhancers,
                                         f.n_blocks_local, feat_nc=f.feat_num, **common)
  raise ValueError('first_frame.net must be global, local, global_with_features or '
                   f'local_with_features; got {f.net!r}')


def feature_encoder_from_config(config: Any) -> first_frame_lib.FeatureEncoder:
  """The instance-wise feature encoder of a '*_with_features' first-frame generator: widths
  first_frame.nef, first_frame.n_downsample_E stride-2 convs, first_frame.feat_num outputs."""
  f = config.first_frame
  return first_frame_lib.FeatureEncoder(
      output_nc=f.feat_num, ngf=f.nef, n_downsample=f.n_downsample_E,
      norm=f.norm, num_ids=f.num_instance_ids,
      dtype=activation_dtype(config), conv_impl=config.model.conv_impl)


def image_discriminator_from_config(config: Any) -> disc_lib.MultiscaleDiscriminator:
  """The conditional image D; its input is concat(cond frame, image): cond_channels +
  output_nc channels."""
  d = config.model.discriminator
  return disc_lib.MultiscaleDiscriminator(d.ndf, d.n_layers_D, d.num_D,
                                          config.model.generator.norm,
                                          activation_dtype(config), config.model.conv_impl)


def face_discriminator_from_config(config: Any) -> disc_lib.MultiscaleDiscriminator:
  """The face D: as the image D with max(1, num_D - 2) scales."""
  d = config.model.discriminator
  return disc_lib.MultiscaleDiscriminator(d.ndf, d.n_layers_D, max(1, d.num_D - 2),
                                          config.model.generator.norm,
                                          activation_dtype(config), config.model.conv_impl)


def temporal_discriminator_from_config(config: Any) -> disc_lib.MultiscaleDiscriminator:
  """One temporal D (one per temporal scale; all have this architecture). Input channels:
  output_nc * n_frames_D + 2 * (n_frames_D - 1)."""
  return image_discriminator_from_config(config)


def discriminator_input_channels(config: Any) -> dict[str, int]:
  """Input channels of the image / face D ('image', 'face') and the temporal Ds ('temporal')."""
  d = config.model.discriminator
  image = cond_channels(config) + config.data.output_nc
  return dict(image=image, face=image,
              temporal=config.data.output_nc * d.n_frames_D + 2 * (d.n_frames_D - 1))
