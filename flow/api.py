"""vid2vid's use of FlowNet2 (the original's models/flownet.py): reference flow + confidence.

``compute_flow_and_conf(variables, cur, prev)`` reproduces ``flowNet(real_B, real_B_prev)``:

* frames are RGB in [-1, 1] fed with ``rgb_max = 1`` (FlowNet2 then sees twice the contrast
  of the official 0..255 usage; the reference flows of vid2vid depend on it);
* if H is not a multiple of 64, both frames are bilinearly resized (align_corners=False, no
  antialias) to ``(H // 64 * 64, W // 64 * 64)``. Only H is checked (the original's quirk); an
  H that is a multiple of 64 with a W that is not crashes the original, and raises here;
* ``flow = FlowNet2(cur, prev)``: on the current frame's grid, pointing into the previous frame,
  so ``warp(prev, flow) ~ cur``;
* ``conf = 1[sum_c (cur - warp(prev, flow))^2 < 0.02]`` at the FlowNet resolution (no sqrt,
  strict ``<``), with ``vid2vid_jax.warp.warp`` (the original's ``BaseModel.resample``);
* when resized, flow and conf are resized back bilinearly and the flow is multiplied by
  ``H / new_h`` in *both* components (the original's quirk; dx "should" use ``W / new_w``).
  conf is then soft in [0, 1] and not thresholded again.
"""

from typing import Any

import jax
import jax.numpy as jnp

from flow import layers
from flow import networks
from vid2vid_jax import warp as warp_lib

CONF_THRESHOLD = 0.02  # sum over RGB of the squared warp error, images in [-1, 1].


def flownet_size(height: int, width: int) -> tuple[int, int]:
  """The size FlowNet2 runs at for an H x W frame, as vid2vid decides it.

  Returns:
    ``(H // 64 * 64, W // 64 * 64)`` if H is not a multiple of 64, else ``(H, W)`` unchanged.

  Raises:
    ValueError: the resulting size is not usable by FlowNet2 (H < 64, or H a multiple of 64
      with W not one, which the original does not resize and cannot run either).
  """
  new_h, new_w = height // 64 * 64, width // 64 * 64
  if new_h == 0 or new_w == 0:
    raise ValueError(f'FlowNet2 needs frames of at least 64x64; got {height}x{width}')
  if height != new_h:
    return new_h, new_w
  if width != new_w:
    raise ValueError(
        f'frames {height}x{width}: H is a multiple of 64 but W is not. vid2vid only resizes when '
        'H is not a multiple of 64, so the original FlowNet2 fails on this size too; crop or '
        'resize the frames to a width that is a multiple of 64')
  return height, width


def flow_and_conf_stages(variables: dict[str, Any], image_cur: jax.Array,
                         image_prev: jax.Array, *, rgb_max: float = 1.0, div_flow: float = 20.0,
                         dtype: Any = jnp.float32, precision: layers.Precision = None,
                         conf_threshold: float = CONF_THRESHOLD) -> dict[str, jax.Array]:
  """``compute_flow_and_conf`` with its intermediate tensors (for parity checks).

  Args: as ``compute_flow_and_conf``, frames [N, H, W, 3] only.

  Returns:
    dict of NHWC arrays: ``flownet_input_cur``, ``flownet_input_prev`` [N, h, w, 3] (the
    resized frames), ``flownet2_flow`` [N, h, w, 2], ``warped_prev`` [N, h, w, 3],
    ``sq_error`` [N, h, w, 1], ``flow`` [N, H, W, 2] and ``conf`` [N, H, W, 1].
  """
  if image_cur.ndim != 4 or image_cur.shape != image_prev.shape or image_cur.shape[-1] != 3:
    raise ValueError(f'expected two [N, H, W, 3] frames; got {image_cur.shape} and '
                     f'{image_prev.shape}')
  height, width = image_cur.shape[1:3]
  new_h, new_w = flownet_size(height, width)
  resized = (new_h, new_w) != (height, width)
  cur = image_cur.astype(jnp.promote_types(image_cur.dtype, jnp.float32))
  prev = image_prev.astype(cur.dtype)
  if resized:
    cur = layers.resize_bilinear(cur, new_h, new_w)
    prev = layers.resize_bilinear(prev, new_h, new_w)
  model = networks.FlowNet2(rgb_max=rgb_max, div_flow=div_flow, dtype=dtype, precision=precision)
  flow = model.apply({'params': variables['params']}, cur, prev)
  warped_prev = layers.resample2d(prev, flow)
  sq_error = jnp.sum(jnp.square(cur - warped_prev), axis=-1, keepdims=True)
  conf = (sq_error < conf_threshold).astype(flow.dtype)
  out = {'flownet_input_cur': cur, 'flownet_input_prev': prev, 'flownet2_flow': flow,
         'warped_prev': warped_prev, 'sq_error': sq_error}
  if resized:
    flow = layers.resize_bilinear(flow, height, width) * (height / new_h)
    conf = layers.resize_bilinear(conf, height, width)
  out['flow'] = jax.lax.stop_gradient(flow)
  out['conf'] = jax.lax.stop_gradient(conf)
  return out


def compute_flow_and_conf(variables: dict[str, Any], image_cur: jax.Array,
                          image_prev: jax.Array, *, rgb_max: float = 1.0,
                          div_flow: float = 20.0, dtype: Any = jnp.float32,
                          precision: layers.Precision = None,
                          conf_threshold: float = CONF_THRESHOLD) -> tuple[jax.Array, jax.Array]:
  """vid2vid's reference flow and confidence (``flowNet(real_B, real_B_prev)``). Jittable.

  Args:
    variables: FlowNet2 variables (``flow.load_flownet2`` or the importer).
    image_cur: [N, H, W, 3] or [B, T, H, W, 3] current frames, RGB in [-1, 1].
    image_prev: the previous frames, same shape and range.
    rgb_max: FlowNet2's input scale; 1 as vid2vid calls it (``config.flow.rgb_max``).
    div_flow: FlowNet2's flow scale (``config.flow.div_flow``), 20.
    dtype: FlowNet2 activation dtype (float32 reproduces the original).
    precision: FlowNet2 conv precision (``'highest'`` disables TF32 on GPUs).
    conf_threshold: the squared-error threshold, 0.02 in the original.

  Returns:
    flow: same leading dims as the input, then [H, W, 2]: pixels, (dx, dy), on the current
      frame's grid pointing into the previous frame (``warp(prev, flow) ~ cur``).
    conf: [..., H, W, 1] in [0, 1]: binary where no resize happened, soft after resizing back.
    Both are wrapped in ``stop_gradient`` (the original detaches them).
  """
  if image_cur.shape != image_prev.shape or image_cur.ndim not in (4, 5):
    raise ValueError(f'expected frames [N, H, W, 3] or [B, T, H, W, 3] of equal shape; got '
                     f'{image_cur.shape} and {image_prev.shape}')
  lead = image_cur.shape[:-3]
  frame = image_cur.shape[-3:]
  stages = flow_and_conf_stages(
      variables, image_cur.reshape((-1,) + frame), image_prev.reshape((-1,) + frame),
      rgb_max=rgb_max, div_flow=div_flow, dtype=dtype, precision=precision,
      conf_threshold=conf_threshold)
  flow, conf = stages['flow'], stages['conf']
  return flow.reshape(lead + flow.shape[1:]), conf.reshape(lead + conf.shape[1:])
