"""The sequential composite generator of vid2vid and its coarse-to-fine multi-scale form.

The original's CompositeGenerator (docs/original_behaviour.md#generator) and CompositeLocalGenerator with the
multi-scale forward (docs/original_behaviour.md#coarse-to-fine). Scale index s = 0 is the COARSEST generator (width ngf), scale s runs
at 2**s times its resolution with width ngf // 2**s, as in the original.

One time step is a pure function of arrays, ``MultiScaleGenerator.apply(variables, conds, prevs,
fg_masks, use_raw_only)``, so the rollout can call it inside ``lax.scan``.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vid2vid_jax import warp as warp_lib
from vid2vid_jax.models import layers

Dtype = Any
Outputs = dict[str, jax.Array | None]

# Flow heads output flow / 20; a local generator at scale s multiplies by 20 * 2**s.
FLOW_SCALE = 20.0


def fg_mask_from_labels(label: jax.Array, fg_labels: Sequence[int]) -> jax.Array:
  """Foreground mask of the fg/bg generator (docs/original_behaviour.md#foreground).

  Args:
    label: [B, H, W, C] the CURRENT (newest) label frame, one-hot label channels first (soft at
      coarse scales).
    fg_labels: label ids treated as foreground.

  Returns:
    [B, H, W, 1] float32 in [0, 1]: clamp(sum of the fg label channels, 0, 1).
  """
  if label.ndim != 4:
    raise ValueError(f'fg_mask_from_labels expects [B, H, W, C]; got {label.shape}')
  for idx in fg_labels:
    if not 0 <= idx < label.shape[-1]:
      raise ValueError(f'fg label {idx} outside the {label.shape[-1]} label channels')
  mask = jnp.sum(label[..., list(fg_labels)].astype(jnp.float32), axis=-1, keepdims=True)
  return jnp.clip(mask, 0.0, 1.0)


def _stack_frames(x: jax.Array, name: str) -> jax.Array:
  """[B, T, H, W, C] -> [B, H, W, T*C], frame-major (docs/quirks.md#frame-major-channels)."""
  if x.ndim != 5:
    raise ValueError(f'{name} must be [B, T, H, W, C]; got shape {x.shape}')
  b, t, h, w, c = x.shape
  return jnp.moveaxis(x, 1, 3).reshape(b, h, w, t * c)


def _compose(raw: jax.Array, prev_stack: jax.Array, flow: jax.Array, weight: jax.Array,
             output_nc: int, use_raw_only: bool | jax.Array,
             warp_flow_grad: bool = True) -> jax.Array:
  """final = w * raw + (1 - w) * warp(newest previous frame, flow).

  With ``warp_flow_grad`` False the warp samples along stop_gradient(flow): losses on the final
  image then train the blend weight and the images but not the flow."""
  if isinstance(use_raw_only, bool) and use_raw_only:
    return raw
  newest = prev_stack[..., -output_nc:].astype(raw.dtype)
  if not warp_flow_grad:
    flow = jax.lax.stop_gradient(flow)
  blended = weight * raw + (1.0 - weight) * warp_lib.warp(newest, flow)
  if isinstance(use_raw_only, bool):
    return blended
  return jnp.where(use_raw_only, raw, blended)


def _head(x: jax.Array, features: int, activation, dtype: Dtype, conv_impl: str,
          name: str) -> jax.Array:
  """ReflPad3 + Conv7x7 (+ activation), output in float32 (float64 for float64 dtype)."""
  y = layers.Conv(features, 7, padding=3, padding_mode='reflect', dtype=dtype,
                  conv_impl=conv_impl, name=name)(x)
  return y if activation is None else activation(y)


def _flow_and_weight_heads(flow_feat: jax.Array, dtype: Dtype,
                           conv_impl: str) -> tuple[jax.Array, jax.Array]:
  """The flow head (ReflPad3 + Conv7x7 -> 2, flow / 20 before scaling) and the weight head
  (ReflPad3 + Conv7x7 -> 1, sigmoid) on the same features, run as one 3-channel conv; their
  parameters stay ``flow_head`` / ``weight_head``. Returns ([B, H, W, 2], [B, H, W, 1])."""
  in_features = flow_feat.shape[-1]
  flow_params = layers.ConvParams(2, 7, name='flow_head')(in_features)
  weight_params = layers.ConvParams(1, 7, name='weight_head')(in_features)
  flow, weight = layers.fused_conv(flow_feat, [flow_params, weight_params], 3, 'reflect', dtype,
                                   conv_impl)
  return flow, jax.nn.sigmoid(weight)


class CompositeGenerator(nn.Module):
  """The coarsest (or only) scale: label and previous-frame branches fused at the bottleneck.

  Submodules (the importer maps the original's names to these): ``label_encoder``
  (model_down_seg), ``prev_encoder`` (model_down_img), ``img_decoder`` (model_res_img +
  model_up_img), ``img_head``; unless no_flow: ``flow_decoder`` (model_res_flow +
  model_up_flow), ``flow_head``, ``weight_head``; with fg: ``fg_encoder`` (indv_down),
  ``fg_decoder`` (indv_res + indv_up), ``fg_head``.

  Attributes:
    ngf: width after the stem; the bottleneck has ngf * 2**n_downsample channels (no cap).
    n_downsample: stride-2 convs (n_downsample_G).
    n_blocks: residual blocks: n_blocks - n_blocks // 2 per encoder branch, n_blocks // 2 per
      decoder; the fg decoder has all n_blocks.
    norm: 'batch' or 'instance'.
    output_nc: image channels.
    fg: separate foreground branch.
    no_flow: no flow / weight heads; the output is the hallucinated image.
    dtype: activation dtype.
    conv_impl: 'tuned' or 'plain' (`vid2vid_jax.kernels`).
  """
  ngf: int = 128
  n_downsample: int = 3
  n_blocks: int = 9
  norm: str = 'batch'
  output_nc: int = 3
  fg: bool = False
  no_flow: bool = False
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, label: jax.Array, prev: jax.Array, fg_mask: jax.Array | None = None,
               use_raw_only: bool | jax.Array = False, warp_flow_grad: bool = True) -> Outputs:
    """One frame at this scale.

    Args:
      label: [B, H, W, tG*C] stacked conditioning frames (oldest first).
      prev: [B, H, W, (tG-1)*output_nc] previous generated frames in [-1, 1], oldest first.
      fg_mask: [B, H, W, 1] in [0, 1] (required when fg).
      use_raw_only: output the hallucinated image without warping (the original's first frame
        with no_first_img); Python bool or a traced scalar bool.
      warp_flow_grad: losses on 'fake' reach the flow through the warp (see `_compose`).

    Returns:
      dict with 'fake' and 'raw' [B, H, W, output_nc] float32 in [-1, 1]; 'flow' [B, H, W, 2]
      float32 in pixels (x, y) and 'weight' [B, H, W, 1] in (0, 1) (None if no_flow);
      'img_feat', 'flow_feat', 'fg_feat' [B, H, W, ngf or ngf_indv] float32 features for the next
      finer scale (None where absent).
    """
    kw = dict(norm=self.norm, dtype=self.dtype, conv_impl=self.conv_impl)
    n_enc = self.n_blocks - self.n_blocks // 2
    n_dec = self.n_blocks // 2
    nd = self.n_downsample
    down = layers.DownPath(self.ngf, nd, n_enc, name='label_encoder', **kw)(label)
    down = down + layers.DownPath(self.ngf, nd, n_enc, name='prev_encoder', **kw)(prev)
    img_feat = layers.UpPath(self.ngf, nd, n_dec, name='img_decoder', **kw)(down)
    raw = _head(img_feat, self.output_nc, jnp.tanh, self.dtype, self.conv_impl, 'img_head')
    flow = weight = flow_feat = fg_feat = None
    if self.no_flow:
      fake = raw
    else:
      flow_feat = layers.UpPath(self.ngf, nd, n_dec, name='flow_decoder', **kw)(down)
      flow, weight = _flow_and_weight_heads(flow_feat, self.dtype, self.conv_impl)
      flow = flow * FLOW_SCALE
      fake = _compose(raw, prev, flow, weight, self.output_nc, use_raw_only, warp_flow_grad)
    if self.fg:
      ngf_fg = self.ngf // 2 if nd > 2 else self.ngf
      fg_feat = layers.DownPath(ngf_fg, nd, 0, name='fg_encoder', **kw)(label)
      fg_feat = layers.UpPath(ngf_fg, nd, self.n_blocks, name='fg_decoder', **kw)(fg_feat)
      fake, raw = _blend_fg(fg_feat, fg_mask, fake, raw, self.output_nc, self.dtype,
                            self.conv_impl)
    return dict(fake=fake, raw=raw, flow=flow, weight=weight, img_feat=img_feat,
                flow_feat=flow_feat, fg_feat=fg_feat)


def _blend_fg(fg_feat, fg_mask, fake, raw, output_nc, dtype, conv_impl):
  if fg_mask is None:
    raise ValueError('a generator with fg=True needs fg_mask [B, H, W, 1]')
  img_fg = _head(fg_feat, output_nc, jnp.tanh, dtype, conv_impl, 'fg_head')
  mask = fg_mask.astype(img_fg.dtype)
  return img_fg * mask + fake * (1 - mask), img_fg * mask + raw * (1 - mask)


class CompositeLocalGenerator(nn.Module):
  """A finer scale s >= 1 (width ngf_s = ngf // 2**s): one stride-2 level plus the coarser
  scale's features.

  Submodules: ``label_encoder`` / ``prev_encoder`` (model_down_seg / model_down_img),
  ``img_decoder`` (model_up_img: n_blocks_local residual blocks + one up conv), ``img_head``;
  unless no_flow ``flow_decoder`` (model_up_flow), ``flow_head``, ``weight_head``; with fg
  ``fg_encoder`` (indv_down), ``fg_decoder`` (indv_up), ``fg_head``.

  Attributes:
    ngf: this scale's width ngf_s.
    scale: the generator index s (>= 1); the flow head multiplies by 20 * 2**s
      (docs/quirks.md#flow-scaling).
    n_blocks_local: residual blocks per decoder.
    fg_wide: True when the coarsest generator's n_downsample <= 2 (then ngf_indv = ngf_s, else
      ngf_s // 2).
    norm, output_nc, fg, no_flow, dtype, conv_impl: as CompositeGenerator.
  """
  ngf: int = 64
  scale: int = 1
  n_blocks_local: int = 3
  fg_wide: bool = False
  norm: str = 'batch'
  output_nc: int = 3
  fg: bool = False
  no_flow: bool = False
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, label: jax.Array, prev: jax.Array, fg_mask: jax.Array | None,
               coarse: Outputs, use_raw_only: bool | jax.Array = False,
               warp_flow_grad: bool = True) -> Outputs:
    """One frame at this scale; arguments as CompositeGenerator plus ``coarse``, the outputs of
    the next coarser scale (its 'img_feat', 'flow_feat', 'fg_feat' at half this resolution with
    2 * ngf_s channels)."""
    kw = dict(norm=self.norm, dtype=self.dtype, conv_impl=self.conv_impl)
    # Features and branch sums stay float32 (the coarse scale's features too): bfloat16 rounding
    # happens once, at the next conv's input.
    down = layers.DownPath(self.ngf, 1, 0, name='label_encoder', **kw)(label)
    down = down + layers.DownPath(self.ngf, 1, 0, name='prev_encoder', **kw)(prev)
    img_feat = layers.UpPath(self.ngf, 1, self.n_blocks_local, name='img_decoder', **kw)(
        down + coarse['img_feat'])
    raw = _head(img_feat, self.output_nc, jnp.tanh, self.dtype, self.conv_impl, 'img_head')
    flow = weight = flow_feat = fg_feat = None
    if self.no_flow:
      fake = raw
    else:
      flow_feat = layers.UpPath(self.ngf, 1, self.n_blocks_local, name='flow_decoder', **kw)(
          down + coarse['flow_feat'])
      flow, weight = _flow_and_weight_heads(flow_feat, self.dtype, self.conv_impl)
      flow = flow * (FLOW_SCALE * 2**self.scale)
      fake = _compose(raw, prev, flow, weight, self.output_nc, use_raw_only, warp_flow_grad)
    if self.fg:
      ngf_fg = self.ngf if self.fg_wide else self.ngf // 2
      fg_feat = layers.DownPath(ngf_fg, 1, 0, name='fg_encoder', **kw)(label)
      fg_feat = layers.UpPath(ngf_fg, 1, self.n_blocks_local, name='fg_decoder', **kw)(
          fg_feat + coarse['fg_feat'])
      fake, raw = _blend_fg(fg_feat, fg_mask, fake, raw, self.output_nc, self.dtype,
                            self.conv_impl)
    return dict(fake=fake, raw=raw, flow=flow, weight=weight, img_feat=img_feat,
                flow_feat=flow_feat, fg_feat=fg_feat)


class MultiScaleGenerator(nn.Module):
  """One time step of the sequential generator over all spatial scales, coarse to fine.

  Submodules ``scale0`` (CompositeGenerator, coarsest) ... ``scale{n_scales-1}``
  (CompositeLocalGenerator, finest). Each scale keeps its own history of generated frames
  (docs/quirks.md#scale-histories): the caller passes per-scale previous frames and appends
  each scale's 'fake'.

  Attributes:
    n_scales: spatial scales (n_scales_spatial), >= 1.
    ngf: width of the coarsest scale; scale s has ngf // 2**s.
    n_downsample: stride-2 convs of the coarsest scale (n_downsample_G).
    n_blocks: residual blocks of the coarsest scale.
    n_blocks_local: residual blocks of each finer scale's decoders.
    norm: 'batch' or 'instance'.
    output_nc: image channels.
    fg: foreground branch.
    no_flow: no flow / weight heads.
    dtype: activation dtype ('float32' or 'bfloat16' arrays dtype); params stay float32.
    conv_impl: 'tuned' or 'plain' (`vid2vid_jax.kernels`); same params and values either way.
  """
  n_scales: int = 1
  ngf: int = 128
  n_downsample: int = 3
  n_blocks: int = 9
  n_blocks_local: int = 3
  norm: str = 'batch'
  output_nc: int = 3
  fg: bool = False
  no_flow: bool = False
  dtype: Dtype = jnp.float32
  conv_impl: str = 'tuned'

  @nn.compact
  def __call__(self, conds: Sequence[jax.Array], prevs: Sequence[jax.Array],
               fg_masks: Sequence[jax.Array] | None = None,
               use_raw_only: bool | jax.Array = False,
               detach_coarse: bool = False, warp_flow_grad: bool = True) -> list[Outputs]:
    """Generates one frame at every scale.

    Args:
      conds: per scale s (coarsest first), [B, tG, H_s, W_s, C] conditioning window, oldest
        first, the newest frame is the one generated (one-hot labels + edge channel, or images in
        [-1, 1]). H_s = H / 2**(n_scales - 1 - s); ``layers.pyramid`` builds the list.
      prevs: per scale, [B, tG-1, H_s, W_s, output_nc] previously generated frames of THAT
        scale in [-1, 1], oldest first.
      fg_masks: per scale [B, H_s, W_s, 1] in [0, 1] (``fg_mask_from_labels`` of the newest
        label frame); required when fg.
      use_raw_only: output the hallucinated images without warping (first frame with
        no_first_img); Python bool or traced scalar bool.
      detach_coarse: stop gradients through the coarser scales' outputs and features (the
        original detaches them unless finetune_all; docs/original_behaviour.md#coarse-to-fine).
      warp_flow_grad: losses on 'fake' train the flow through the warp (the original); False
        leaves the flow to the flow and warp losses (config loss.warp_flow_grad).

    Returns:
      list over scales (coarsest first) of dicts as CompositeGenerator returns: 'fake', 'raw'
      [B, H_s, W_s, output_nc], 'flow' [B, H_s, W_s, 2] pixels, 'weight' [B, H_s, W_s, 1],
      'img_feat', 'flow_feat', 'fg_feat'.
    """
    if len(conds) != self.n_scales or len(prevs) != self.n_scales:
      raise ValueError(f'expected {self.n_scales} scales of conds and prevs; got '
                       f'{len(conds)} and {len(prevs)}')
    if self.fg and (fg_masks is None or len(fg_masks) != self.n_scales):
      raise ValueError(f'fg=True needs {self.n_scales} fg masks')
    common = dict(norm=self.norm, output_nc=self.output_nc, fg=self.fg, no_flow=self.no_flow,
                  dtype=self.dtype, conv_impl=self.conv_impl)
    outputs = []
    for s in range(self.n_scales):
      label = _stack_frames(conds[s], f'conds[{s}]')
      prev = _stack_frames(prevs[s], f'prevs[{s}]')
      mask = fg_masks[s] if self.fg else None
      if s == 0:
        out = CompositeGenerator(self.ngf, self.n_downsample, self.n_blocks, name='scale0',
                                 **common)(label, prev, mask, use_raw_only, warp_flow_grad)
      else:
        coarse = outputs[-1]
        if detach_coarse:
          coarse = jax.tree_util.tree_map(jax.lax.stop_gradient, coarse)
        out = CompositeLocalGenerator(
            self.ngf // 2**s, s, self.n_blocks_local, fg_wide=self.n_downsample <= 2,
            name=f'scale{s}', **common)(label, prev, mask, coarse, use_raw_only, warp_flow_grad)
      outputs.append(out)
    if detach_coarse:
      outputs[:-1] = [jax.tree_util.tree_map(jax.lax.stop_gradient, o) for o in outputs[:-1]]
    return outputs
