"""The temporal discriminators' path: frame windows per temporal scale, their flows, their terms.

Temporal scale s looks at windows of ``n_frames`` (tD) frames spaced ``tD**s`` frames apart,
stacked with the tD - 1 reference flows between consecutive window frames (divided by 20). One
discriminator (one parameter set, one optimizer) per scale. Windows reach back into the frames of
earlier chunks of the clip: the step keeps the newest `history_length` real and generated frames
and their flows in its sequence state and passes them here in front of the chunk's new frames.

Two window layouts, as the original offers:
  * dense (default): windows end at the newest frame and step back by tD frames, one window per
    tD new frames; a window that would reach into frames the clip has not produced yet is masked
    (the original builds windows only from the history it has; our buffers have a fixed length).
    Flows between the frames of a window at scale s >= 1 are chained from the consecutive flows
    (dataset flows), or computed by ``flow_fn`` between the window's frames when one is given.
  * sparse (model.discriminator.sparse_D): scale s only sees the frames whose index in the clip is
    a multiple of tD**s, cut into groups of tD from the newest; each window frame keeps its own
    consecutive flow (the original's approximation at scales >= 1).

The training step and the tests use this module alone.
"""

from collections.abc import Callable, Mapping
import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import losses as losses_lib
from vid2vid_jax import warp as warp_lib
from vid2vid_jax.models import discriminator as disc_lib

Array = jax.Array
FLOW_DIVISOR = 20.0  # temporal-D inputs carry flow / 20
# (cur [N, H, W, 3], prev [N, H, W, 3]) -> (flow cur -> prev [N, H, W, 2] pixels, conf [N, H, W, 1])
FlowFn = Callable[[Array, Array], tuple[Array, Array]]


@dataclasses.dataclass(frozen=True)
class TemporalDs:
  """The temporal discriminators: one architecture, one parameter set per temporal scale.

  net: the multi-scale PatchGAN each scale uses (its own params under str(scale)).
  n_frames: frames per window (tD >= 2). n_scales: temporal scales (>= 1).
  sparse: the sparse window layout (see the module docstring).
  """
  net: disc_lib.MultiscaleDiscriminator
  n_frames: int
  n_scales: int
  sparse: bool = False

  @property
  def history_length(self) -> int:
    return history_length(self.n_frames, self.n_scales)

  @property
  def input_channels(self) -> int:
    """Channels of one window's input: tD RGB frames and tD - 1 flows."""
    return 3 * self.n_frames + 2 * (self.n_frames - 1)


class Window(NamedTuple):
  """One temporal window: real [B, tD, H, W, 3], fake [B, tD, H, W, 3] (oldest first), flows
  [B, tD - 1, H, W, 2] between consecutive window frames (pixels, each frame to the one before)
  and valid (scalar bool: every frame of the window exists)."""
  real: Array
  fake: Array
  flows: Array
  valid: Array


def history_length(n_frames: int, n_scales: int) -> int:
  """Frames kept between chunks so the coarsest scale's window fits: tD**(S-1) * (tD-1)."""
  return n_frames ** (n_scales - 1) * (n_frames - 1)


def d_input(frames: Array, flows: Array) -> Array:
  """Input of a temporal D: the window's frames, then its flows / 20, frame-major on channels.

  Args:
    frames: [N, tD, H, W, C] images in [-1, 1], oldest first.
    flows: [N, tD-1, H, W, 2] reference flows in pixels between consecutive window frames (the
      same real flows for the real and the generated window).

  Returns:
    [N, H, W, tD*C + 2*(tD-1)].
  """
  if frames.ndim != 5 or flows.ndim != 5 or flows.shape[1] != frames.shape[1] - 1:
    raise ValueError(f'temporal d_input expects frames [N, tD, H, W, C] and flows '
                     f'[N, tD-1, H, W, 2]; got {frames.shape} and {flows.shape}')

  def stack(x):
    n, t, h, w, c = x.shape
    return jnp.moveaxis(x, 1, 3).reshape(n, h, w, t * c)

  return jnp.concatenate(
      [stack(frames), stack(flows.astype(frames.dtype) / FLOW_DIVISOR)], axis=-1)


def compose_flows(flows: Array) -> Array:
  """Chains consecutive backward flows into one: [N, k, H, W, 2] (oldest first) -> [N, H, W, 2].

  flows[:, j] maps frame a+j+1 to frame a+j; the result maps frame a+k to frame a:
  F = f_last + warp(F_rest, f_last), applied from the newest flow back.
  """
  total = flows[:, -1]
  for j in range(flows.shape[1] - 2, -1, -1):
    total = total + warp_lib.warp(flows[:, j], total)
  return total


def _flat(x: Array) -> Array:
  return x.reshape((-1,) + x.shape[2:])


def _dense_flows(flow_fn: FlowFn | None, real: Array, consecutive: Array, scale: int,
                 n_frames: int) -> Array:
  """Flows between the frames of dense windows: [N, tD, ...] real frames and the [N, span, H, W,
  2] consecutive flows inside the window -> [N, tD - 1, H, W, 2]."""
  stride = n_frames**scale
  if scale > 0 and flow_fn is not None:
    n, t = real.shape[:2]
    flow, _ = flow_fn(_flat(real[:, 1:]), _flat(real[:, :-1]))
    return flow.reshape((n, t - 1) + flow.shape[1:])
  return jnp.stack([compose_flows(consecutive[:, k * stride:(k + 1) * stride])
                    for k in range(n_frames - 1)], axis=1)


def dense_windows(n_frames: int, seq_real: Array, seq_fake: Array, seq_flow: Array,
                  valid_frames: Array, n_new: int, scale: int,
                  flow_fn: FlowFn | None = None) -> list[Window]:
  """Windows of temporal scale ``scale`` ending at the newest frame and stepping back by tD.

  Args:
    n_frames: tD.
    seq_real, seq_fake: [B, T_all, H, W, 3] history frames, then this chunk's n_new frames.
    seq_flow: [B, T_all, H, W, 2] each frame's reference flow to the frame before it.
    valid_frames: scalar int, how many of the newest T_all frames exist in the clip.
    n_new: frames generated in this chunk.
    flow_fn: computes the flows of windows at scales >= 1 (else chained from seq_flow).

  Returns:
    One Window per tD new frames whose frames lie inside the buffers (static count).
  """
  stride = n_frames**scale
  span = stride * (n_frames - 1)
  total = seq_real.shape[1]
  out = []
  for t in range(0, n_new, n_frames):
    end = total - 1 - t
    start = end - span
    if start < 0:
      continue
    idx = np.arange(start, end + 1, stride)
    real = seq_real[:, idx]
    flows = _dense_flows(flow_fn, real, seq_flow[:, start + 1:end + 1], scale, n_frames)
    out.append(Window(real, seq_fake[:, idx], flows, t + span < valid_frames))
  return out


def sparse_windows(n_frames: int, seq_real: Array, seq_fake: Array, seq_flow: Array,
                   frames_done: Array, n_new: int, scale: int) -> list[Window]:
  """Windows of the sparse layout at temporal scale ``scale``.

  Scale s only looks at the frames whose index in the clip (0 = the first generated frame) is a
  multiple of tD**s. Each chunk keeps the last tD - 1 such frames of the earlier chunks, appends
  this chunk's, and cuts that buffer from its newest end into groups of tD consecutive frames,
  dropping the oldest remainder: a window ends at the newest selected frame, the next one tD
  selected frames earlier, for (min(selected before, tD - 1) + selected now) // tD windows. Its
  flows are window frames 1..tD-1's own consecutive flows.

  Args:
    n_frames: tD.
    seq_real, seq_fake, seq_flow: as `dense_windows`.
    frames_done: scalar int, clip index of this chunk's first frame.

  Returns:
    Candidate Windows (a static count); those beyond the buffer are masked invalid.
  """
  td = n_frames
  stride = td**scale
  total = seq_real.shape[1]
  newest = frames_done + n_new - 1  # clip index of the frame at position total - 1
  before = (frames_done + stride - 1) // stride  # selected frames in earlier chunks
  in_chunk = newest // stride - (frames_done - 1) // stride  # floor division: -1 // s = -1
  n_windows = (jnp.minimum(before, td - 1) + in_chunk) // td
  newest_selected = total - 1 - newest % stride  # its position in seq_*
  offsets = stride * np.arange(td - 1, -1, -1)
  out = []
  for j in range((td - 1 + -(-n_new // stride)) // td):
    idx = jnp.clip(newest_selected - j * td * stride - offsets, 0, total - 1)
    out.append(Window(jnp.take(seq_real, idx, axis=1), jnp.take(seq_fake, idx, axis=1),
                      jnp.take(seq_flow, idx[1:], axis=1), j < n_windows))
  return out


def windows(temporal: TemporalDs, scale: int, seq_real: Array, seq_fake: Array, seq_flow: Array,
            frames_done: Array, n_new: int, flow_fn: FlowFn | None = None) -> list[Window]:
  """The windows of ``scale`` in the layout of ``temporal`` (see `dense_windows`,
  `sparse_windows`); ``frames_done`` frames of the clip came before this chunk's n_new."""
  if temporal.sparse:
    return sparse_windows(temporal.n_frames, seq_real, seq_fake, seq_flow, frames_done, n_new,
                          scale)
  valid_frames = jnp.minimum(frames_done, temporal.history_length) + n_new
  return dense_windows(temporal.n_frames, seq_real, seq_fake, seq_flow, valid_frames, n_new,
                       scale, flow_fn)


def terms(temporal: TemporalDs, weights: losses_lib.LossWeights, params: Mapping[str, Any],
          seq_real: Array, seq_fake: Array, seq_flow: Array, frames_done: Array, n_new: int,
          flow_fn: FlowFn | None = None) -> tuple[dict[str, Array], dict[str, Array]]:
  """The temporal GAN terms of one chunk, each scale's mean over its valid windows.

  Args:
    temporal: the temporal Ds.
    weights: gan_mode, use_gan_feat, lambda_feat, num_D, n_layers_D are used.
    params: {str(scale): that scale's D params}.
    seq_real, seq_fake, seq_flow: [B, T_all, ...] history then this chunk (see `dense_windows`);
      gradients reach G through seq_fake (stop them for the D terms).
    frames_done: scalar int, frames of the clip before this chunk; n_new: frames in it.
    flow_fn: see `dense_windows`.

  Returns:
    (terms, has_window): terms 'g/t_gan_{s}' (G_T_GAN), 'g/t_gan_feat_{s}' (lambda_feat * G_T_GAN
    feature matching, if use_gan_feat), 'd_t{s}/real', 'd_t{s}/fake' (D_T); has_window
    {str(s): scalar bool}, False where scale s had no valid window (its D is not stepped).
  """
  out: dict[str, Array] = {}
  has_window: dict[str, Array] = {}
  mode = weights.gan_mode
  for s in range(temporal.n_scales):
    totals = dict(g_gan=0.0, g_feat=0.0, d_real=0.0, d_fake=0.0)
    count = jnp.zeros((), jnp.float32)
    for window in windows(temporal, s, seq_real, seq_fake, seq_flow, frames_done, n_new,
                          flow_fn):
      flows = jax.lax.stop_gradient(window.flows)
      p_real = temporal.net.apply({'params': params[str(s)]}, d_input(window.real, flows))
      p_fake = temporal.net.apply({'params': params[str(s)]}, d_input(window.fake, flows))
      v = window.valid.astype(jnp.float32)
      g_gan, g_feat = losses_lib.adversarial_terms(weights, p_fake, p_real)
      totals['g_gan'] += v * g_gan
      totals['g_feat'] += v * g_feat
      totals['d_real'] += v * losses_lib.gan_loss(p_real, True, mode, for_discriminator=True)
      totals['d_fake'] += v * losses_lib.gan_loss(p_fake, False, mode, for_discriminator=True)
      count += v
    norm = 1.0 / jnp.maximum(count, 1.0)
    out[f'g/t_gan_{s}'] = jnp.asarray(totals['g_gan'] * norm, jnp.float32)
    if weights.use_gan_feat:
      out[f'g/t_gan_feat_{s}'] = jnp.asarray(totals['g_feat'] * norm, jnp.float32)
    out[f'd_t{s}/real'] = jnp.asarray(totals['d_real'] * norm, jnp.float32)
    out[f'd_t{s}/fake'] = jnp.asarray(totals['d_fake'] * norm, jnp.float32)
    has_window[str(s)] = count > 0
  return out, has_window


def generator_terms(all_terms: Mapping[str, Array]) -> dict[str, Array]:
  """The 'g/' entries of `terms`."""
  return {k: v for k, v in all_terms.items() if k.startswith('g/')}


def discriminator_terms(all_terms: Mapping[str, Array]) -> dict[str, Array]:
  """The 'd_t{s}/' entries of `terms`."""
  return {k: v for k, v in all_terms.items() if k.startswith('d_t')}


def push_history(history: Array, new: Array, length: int) -> Array:
  """The newest ``length`` frames of history [B, L, ...] followed by new [B, n, ...]."""
  joined = jnp.concatenate([history, new], axis=1)
  return joined[:, joined.shape[1] - length:]

