"""FlowNetC, FlowNetS, FlowNetSD, FlowNetFusion and FlowNet2 as Flax linen modules.

A port of flownet2-pytorch's ``models.FlowNet2(args, batchNorm=False, div_flow=20)`` (the class
of the official ``FlowNet2_checkpoint.pth.tar``), NHWC with HWIO kernels. Submodule and layer
names are the original's, so the parameter tree reads like its state_dict:
``flownetc.conv3_1.0.weight`` is ``params['flownetc']['conv3_1']['conv']['kernel']``
(``flow/convert_flownet2.py`` has the mapping). FlowNet2 works on sizes that are multiples of 64
(``flow/api.py`` resizes as vid2vid does).

Intermediate tensors are recorded with ``sow('intermediates', name, value)`` under the fixture's
names (``flownetc_corr``, ``warped_img1_c``, ...; NHWC), for the parity tool; apply with
``mutable=['intermediates']`` to get them, otherwise they cost nothing.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flow import correlation as correlation_lib
from flow import layers

Precision = layers.Precision


def _concat(*xs: jax.Array) -> jax.Array:
  return jnp.concatenate([x.astype(xs[0].dtype) for x in xs], axis=-1)


def _encode_and_refine(conv, deconv, predict, upflow, out_conv3: jax.Array,
                       out_conv2: jax.Array) -> jax.Array:
  """The part FlowNetC and FlowNetS share: conv4..conv6, then the coarse-to-fine refinement
  (predict, deconv, upsampled flow, concat) down to flow2. Called inside the caller's compact
  ``__call__``, so the layers keep the caller's parameter names.

  Args:
    conv, deconv, predict, upflow: the caller's layer constructors.
    out_conv3: [B, H/8, W/8, 256] features; out_conv2: [B, H/4, W/4, 128] skip features.

  Returns:
    flow2 [B, H/4, W/4, 2].
  """
  out_conv4 = conv(512, name='conv4_1')(conv(512, stride=2, name='conv4')(out_conv3))
  out_conv5 = conv(512, name='conv5_1')(conv(512, stride=2, name='conv5')(out_conv4))
  out_conv6 = conv(1024, name='conv6_1')(conv(1024, stride=2, name='conv6')(out_conv5))
  x, flow = out_conv6, predict(name='predict_flow6')(out_conv6)
  for level, skip, width in ((5, out_conv5, 512), (4, out_conv4, 256), (3, out_conv3, 128),
                             (2, out_conv2, 64)):
    x = _concat(skip, deconv(width, name=f'deconv{level}')(x),
                upflow(name=f'upsampled_flow{level + 1}_to_{level}')(flow))
    flow = predict(name=f'predict_flow{level}')(x)
  return flow


class FlowNetC(nn.Module):
  """FlowNetC: siamese conv1..conv3, correlation, then an encoder-decoder.

  Attributes:
    dtype: activation dtype (params and the correlation stay float32).
    precision: conv precision.
  """
  dtype: Any = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Flow at 1/4 resolution.

    Args:
      x: [B, H, W, 6] normalised frames (0-2 img0, 3-5 img1), H and W multiples of 64.

    Returns:
      flow2: [B, H/4, W/4, 2], in units of ``div_flow`` pixels at full resolution.
    """
    conv = functools.partial(layers.ConvBlock, dtype=self.dtype, precision=self.precision)
    deconv = functools.partial(layers.Deconv, dtype=self.dtype, precision=self.precision)
    predict = functools.partial(conv, 2, 3, activation=False)
    upflow = functools.partial(deconv, 2, use_bias=True, activation=False)

    conv1 = conv(64, 7, 2, name='conv1')
    conv2 = conv(128, 5, 2, name='conv2')
    conv3 = conv(256, 5, 2, name='conv3')
    # The two streams share conv1..conv3: run them as one batch.
    batch = x.shape[0]
    pair = jnp.concatenate([x[..., 0:3], x[..., 3:6]], axis=0).astype(self.dtype)
    out_conv2_pair = conv2(conv1(pair))
    out_conv3_pair = conv3(out_conv2_pair)
    out_conv2a = out_conv2_pair[:batch]
    out_conv3a, out_conv3b = out_conv3_pair[:batch], out_conv3_pair[batch:]
    self.sow('intermediates', 'flownetc_conv3a', out_conv3a)
    self.sow('intermediates', 'flownetc_conv3b', out_conv3b)

    out_corr = correlation_lib.correlation(out_conv3a, out_conv3b, pad_size=20, kernel_size=1,
                                           max_displacement=20, stride1=1, stride2=2)
    self.sow('intermediates', 'flownetc_corr', out_corr)
    out_corr = nn.leaky_relu(out_corr, layers.LEAKY_SLOPE)
    out_conv_redir = conv(32, 1, 1, name='conv_redir')(out_conv3a)
    self.sow('intermediates', 'flownetc_conv_redir', out_conv_redir)

    out_conv3_1 = conv(256, name='conv3_1')(_concat(out_conv_redir, out_corr))
    return _encode_and_refine(conv, deconv, predict, upflow, out_conv3_1, out_conv2a)


class FlowNetS(nn.Module):
  """FlowNetS (FlowNet2's ``flownets_1`` / ``flownets_2``, 12 input channels).

  Attributes:
    dtype: activation dtype.
    precision: conv precision.
  """
  dtype: Any = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C_in] -> flow2 [B, H/4, W/4, 2] (units of div_flow pixels)."""
    conv = functools.partial(layers.ConvBlock, dtype=self.dtype, precision=self.precision)
    deconv = functools.partial(layers.Deconv, dtype=self.dtype, precision=self.precision)
    predict = functools.partial(conv, 2, 3, activation=False)
    # FlowNetS's flow upsamplers have no bias (FlowNetC/SD/Fusion's have one).
    upflow = functools.partial(deconv, 2, use_bias=False, activation=False)

    x = x.astype(self.dtype)
    out_conv1 = conv(64, 7, 2, name='conv1')(x)
    out_conv2 = conv(128, 5, 2, name='conv2')(out_conv1)
    out_conv3 = conv(256, name='conv3_1')(conv(256, 5, 2, name='conv3')(out_conv2))
    return _encode_and_refine(conv, deconv, predict, upflow, out_conv3, out_conv2)


class FlowNetSD(nn.Module):
  """FlowNetSD (small displacements): 3x3 convs from full resolution, inter_convs in decoding.

  Attributes:
    dtype: activation dtype.
    precision: conv precision.
  """
  dtype: Any = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, 6] -> flow2 [B, H/4, W/4, 2] (FlowNet2 *divides* it by div_flow)."""
    conv = functools.partial(layers.ConvBlock, dtype=self.dtype, precision=self.precision)
    deconv = functools.partial(layers.Deconv, dtype=self.dtype, precision=self.precision)
    predict = functools.partial(conv, 2, 3, activation=False)
    inter = functools.partial(conv, kernel_size=3, activation=False)
    upflow = functools.partial(deconv, 2, use_bias=True, activation=False)

    x = x.astype(self.dtype)
    out_conv0 = conv(64, name='conv0')(x)
    out_conv1 = conv(128, name='conv1_1')(conv(64, stride=2, name='conv1')(out_conv0))
    out_conv2 = conv(128, name='conv2_1')(conv(128, stride=2, name='conv2')(out_conv1))
    out_conv3 = conv(256, name='conv3_1')(conv(256, stride=2, name='conv3')(out_conv2))
    out_conv4 = conv(512, name='conv4_1')(conv(512, stride=2, name='conv4')(out_conv3))
    out_conv5 = conv(512, name='conv5_1')(conv(512, stride=2, name='conv5')(out_conv4))
    out_conv6 = conv(1024, name='conv6_1')(conv(1024, stride=2, name='conv6')(out_conv5))

    flow6 = predict(name='predict_flow6')(out_conv6)
    concat5 = _concat(out_conv5, deconv(512, name='deconv5')(out_conv6),
                      upflow(name='upsampled_flow6_to_5')(flow6))
    flow5 = predict(name='predict_flow5')(inter(512, name='inter_conv5')(concat5))
    concat4 = _concat(out_conv4, deconv(256, name='deconv4')(concat5),
                      upflow(name='upsampled_flow5_to_4')(flow5))
    flow4 = predict(name='predict_flow4')(inter(256, name='inter_conv4')(concat4))
    concat3 = _concat(out_conv3, deconv(128, name='deconv3')(concat4),
                      upflow(name='upsampled_flow4_to_3')(flow4))
    flow3 = predict(name='predict_flow3')(inter(128, name='inter_conv3')(concat3))
    concat2 = _concat(out_conv2, deconv(64, name='deconv2')(concat3),
                      upflow(name='upsampled_flow3_to_2')(flow3))
    return predict(name='predict_flow2')(inter(64, name='inter_conv2')(concat2))


class FlowNetFusion(nn.Module):
  """FlowNetFusion: a shallow encoder-decoder that merges the S2 and SD flows at full size.

  Attributes:
    dtype: activation dtype.
    precision: conv precision.
  """
  dtype: Any = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, 11] -> flow0 [B, H, W, 2] in pixels (FlowNet2's output, not rescaled)."""
    conv = functools.partial(layers.ConvBlock, dtype=self.dtype, precision=self.precision)
    deconv = functools.partial(layers.Deconv, dtype=self.dtype, precision=self.precision)
    predict = functools.partial(conv, 2, 3, activation=False)
    inter = functools.partial(conv, kernel_size=3, activation=False)
    upflow = functools.partial(deconv, 2, use_bias=True, activation=False)

    x = x.astype(self.dtype)
    out_conv0 = conv(64, name='conv0')(x)
    out_conv1 = conv(128, name='conv1_1')(conv(64, stride=2, name='conv1')(out_conv0))
    out_conv2 = conv(128, name='conv2_1')(conv(128, stride=2, name='conv2')(out_conv1))

    flow2 = predict(name='predict_flow2')(out_conv2)
    concat1 = _concat(out_conv1, deconv(32, name='deconv1')(out_conv2),
                      upflow(name='upsampled_flow2_to_1')(flow2))
    flow1 = predict(name='predict_flow1')(inter(32, name='inter_conv1')(concat1))
    concat0 = _concat(out_conv0, deconv(16, name='deconv0')(concat1),
                      upflow(name='upsampled_flow1_to_0')(flow1))
    return predict(name='predict_flow0')(inter(16, name='inter_conv0')(concat0))


class FlowNet2(nn.Module):
  """FlowNet2 = FlowNetC -> FlowNetS -> FlowNetS, FlowNetSD, FlowNetFusion (batchNorm=False).

  Attributes:
    rgb_max: input scale: ``x = (img - mean) / rgb_max``. 255 for the official 0..255 usage; 1
      as vid2vid calls it on [-1, 1] frames (which gives FlowNet2 twice the official contrast).
    div_flow: 20, the flow scale the sub-networks were trained with.
    dtype: activation dtype (params, correlation, warps and norms stay float32).
    precision: conv precision (``'highest'`` for parity on GPUs with TF32).
  """
  rgb_max: float = 255.0
  div_flow: float = 20.0
  dtype: Any = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, img0: jax.Array, img1: jax.Array) -> jax.Array:
    """Optical flow from img0 to img1 on img0's grid.

    Args:
      img0: [B, H, W, 3] reference frame, RGB in [0, rgb_max] (vid2vid: [-1, 1] with rgb_max
        1); H and W multiples of 64.
      img1: [B, H, W, 3] the other frame, same range.

    Returns:
      [B, H, W, 2] float32 (float64 if ``dtype`` is float64) flow in pixels, (dx, dy):
      ``resample2d(img1, flow) ~ img0``.
    """
    if img0.ndim != 4 or img0.shape != img1.shape or img0.shape[-1] != 3:
      raise ValueError(f'FlowNet2 expects two [B, H, W, 3] frames; got {img0.shape} and '
                       f'{img1.shape}')
    if img0.shape[1] % 64 or img0.shape[2] % 64:
      raise ValueError(f'FlowNet2 needs H and W multiples of 64; got {img0.shape[1:3]} '
                       '(flow.api.compute_flow_and_conf resizes as vid2vid does)')
    height, width = img0.shape[1:3]
    # Warps, norms, resizes and the correlation run in float32 (float64 in a float64 run).
    f32 = jnp.promote_types(self.dtype, jnp.float32)
    sow = functools.partial(self.sow, 'intermediates')
    up_bilinear4 = functools.partial(layers.resize_bilinear, height=height, width=width)
    up_nearest4 = functools.partial(layers.upsample_nearest, factor=4)
    img0 = img0.astype(f32)
    img1 = img1.astype(f32)

    # Mean of each (sample, channel) over both frames and all pixels.
    rgb_mean = (jnp.mean(img0, axis=(1, 2)) + jnp.mean(img1, axis=(1, 2))) / 2.0
    sow('rgb_mean', rgb_mean)
    rgb_mean = rgb_mean[:, None, None, :]
    img0n = (img0 - rgb_mean) / self.rgb_max
    img1n = (img1 - rgb_mean) / self.rgb_max
    x = jnp.concatenate([img0n, img1n], axis=-1)
    sow('x_normalized', x)

    kw = dict(dtype=self.dtype, precision=self.precision)
    div = self.div_flow

    def branch(flow: jax.Array, suffix: str) -> jax.Array:
      warped = layers.resample2d(img1n, flow)
      norm_diff = layers.channel_norm(img0n - warped)
      sow(f'warped_img1_{suffix}', warped)
      sow(f'norm_diff_img0_{suffix}', norm_diff)
      return _concat(x, warped, flow / div, norm_diff)

    flownetc_flow2 = FlowNetC(**kw, name='flownetc')(x).astype(f32)
    flownetc_flow = up_bilinear4(flownetc_flow2 * div)
    sow('flownetc_flow2', flownetc_flow2)
    sow('flownetc_flow', flownetc_flow)

    flownets1_flow2 = FlowNetS(**kw, name='flownets_1')(branch(flownetc_flow, 'c'))
    flownets1_flow2 = flownets1_flow2.astype(f32)
    flownets1_flow = up_bilinear4(flownets1_flow2 * div)
    sow('flownets1_flow2', flownets1_flow2)
    sow('flownets1_flow', flownets1_flow)

    flownets2_flow2 = FlowNetS(**kw, name='flownets_2')(branch(flownets1_flow, 's1'))
    flownets2_flow2 = flownets2_flow2.astype(f32)
    flownets2_flow = up_nearest4(flownets2_flow2 * div)
    norm_flownets2_flow = layers.channel_norm(flownets2_flow)
    warped_img1_s2 = layers.resample2d(img1n, flownets2_flow)
    diff_flownets2_img1 = layers.channel_norm(img0n - warped_img1_s2)
    for name, value in (('flownets2_flow2', flownets2_flow2), ('flownets2_flow', flownets2_flow),
                        ('norm_flownets2_flow', norm_flownets2_flow),
                        ('warped_img1_s2', warped_img1_s2),
                        ('diff_flownets2_img1', diff_flownets2_img1)):
      sow(name, value)

    flownetsd_flow2 = FlowNetSD(**kw, name='flownets_d')(x).astype(f32)
    # The one branch that divides by div_flow (the original's quirk, kept: the checkpoint's
    # FlowNetSD was trained for it).
    flownetsd_flow = up_nearest4(flownetsd_flow2 / div)
    norm_flownetsd_flow = layers.channel_norm(flownetsd_flow)
    warped_img1_sd = layers.resample2d(img1n, flownetsd_flow)
    diff_flownetsd_img1 = layers.channel_norm(img0n - warped_img1_sd)
    for name, value in (('flownetsd_flow2', flownetsd_flow2), ('flownetsd_flow', flownetsd_flow),
                        ('norm_flownetsd_flow', norm_flownetsd_flow),
                        ('warped_img1_sd', warped_img1_sd),
                        ('diff_flownetsd_img1', diff_flownetsd_img1)):
      sow(name, value)

    concat3 = _concat(img0n, flownetsd_flow, flownets2_flow, norm_flownetsd_flow,
                      norm_flownets2_flow, diff_flownetsd_img1, diff_flownets2_img1)
    flow = FlowNetFusion(**kw, name='flownetfusion')(concat3).astype(f32)
    sow('flow', flow)
    return flow
