"""The time loop: generate a chunk of frames with `jax.lax.scan`, carrying the recent past.

At every step the generator sees a window of ``n_frames_G`` conditioning frames (oldest first) and
the ``n_frames_G - 1`` frames it generated before (per spatial scale: every scale keeps its own
history of its own outputs, docs/original_behaviour.md#scale-histories). The carry of the scan holds
both histories, so a chunk's final carry seeds the next chunk of a long sequence.

Gradient truncation: frames are grouped into blocks of ``max_frames_backpropagate``
(bp) consecutive frames; gradients flow between generated frames of the same block only. With the
default bp = 1 no gradient flows from a frame into the frames generated before it, exactly as the
original. For bp > 1 the original detaches the whole previous-frame stack only at steps
t % bp == 0, which with n_frames_G > 2 lets gradients leak further back than bp frames through the
older frames of the stack; we detach each previous frame that lies outside the current block, so
the truncation is exactly bp frames. Chunk boundaries always detach (the caller passes a detached
carry). See docs/original_behaviour.md#gradient-truncation and docs/quirks.md#gradient-leak.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Pyramid = tuple[jax.Array, ...]  # one array per spatial scale, coarsest first
# frame_fn(cond_windows, prev_frames, t) -> (new frame per scale, per-frame outputs):
#   cond_windows: per scale [B, n_frames_G, h, w, C]; prev_frames: per scale [B, n_frames_G-1,
#   h, w, 3]; t: scalar int32 frame index within the chunk. Outputs: a pytree of [B, ...] arrays
#   (e.g. the finest scale's image, raw image, flow and weight) stacked over time by the scan.
FrameFn = Callable[[Pyramid, Pyramid, jax.Array], tuple[Pyramid, Any]]


class Carry(NamedTuple):
  """What the time loop carries from frame to frame (and from chunk to chunk).

  cond_history: per scale [B, n_frames_G - 1, h, w, C], the newest conditioning frames seen.
  prev_frames: per scale [B, n_frames_G - 1, h, w, 3] in [-1, 1], the newest generated frames.
  """
  cond_history: Pyramid
  prev_frames: Pyramid


def detach(carry: Carry) -> Carry:
  """Stops gradients through a carry (at chunk boundaries, see the module docstring)."""
  return jax.tree_util.tree_map(jax.lax.stop_gradient, carry)


def _time_major(x: jax.Array) -> jax.Array:
  return jnp.swapaxes(x, 0, 1)


def _truncate(prev_frames: Pyramid, t: jax.Array, max_frames_backpropagate: int) -> Pyramid:
  """Detaches the previous frames generated before the current block of frames.

  Slot k of a [B, n_frames_G - 1, ...] stack holds frame t - (n_frames_G - 1) + k; it keeps its
  gradient iff it lies in the block of t, i.e. k >= n_frames_G - 1 - t % bp.
  """
  out = []
  for prev in prev_frames:
    slots = prev.shape[1]
    keep = jnp.arange(slots) >= slots - (t % max_frames_backpropagate)
    keep = keep.reshape((1, slots) + (1,) * (prev.ndim - 2))
    out.append(jnp.where(keep, prev, jax.lax.stop_gradient(prev)))
  return tuple(out)


def generate(frame_fn: FrameFn, carry: Carry, cond_new: Pyramid, *,
             max_frames_backpropagate: int = 1, remat: bool = False,
             unroll: bool = False) -> tuple[Carry, Any]:
  """Generates one frame per entry of ``cond_new`` with a scan over time.

  Args:
    frame_fn: one generator step (see ``FrameFn``); bind parameters and flags before passing it.
    carry: the histories before the first new frame (see ``Carry``).
    cond_new: per scale [B, T, h, w, C]: the conditioning frames of the T frames to generate.
    max_frames_backpropagate: gradient blocks of this many frames (>= 1), see the module doc.
    remat: rematerialise each step in the backward pass (saves activation memory).
    unroll: unroll the scan into straight-line code (no while loop). The demo's train step
      runs ~15% faster on XLA:CPU (the loop zero-fills and copies its stacked residuals and
      slices them back per frame); compile time grows with T (~10 s more for the demo's T = 4).

  Returns:
    (final carry, outputs) where outputs is frame_fn's output pytree with a time axis inserted
    after the batch axis ([B, T, ...]).
  """
  if max_frames_backpropagate < 1:
    raise ValueError(f'max_frames_backpropagate must be >= 1, got {max_frames_backpropagate}')
  if len(cond_new) != len(carry.cond_history):
    raise ValueError(f'cond_new has {len(cond_new)} scales, the carry has '
                     f'{len(carry.cond_history)}')
  for new, hist in zip(cond_new, carry.cond_history):
    if new.ndim != 5 or new.shape[0] != hist.shape[0] or new.shape[2:] != hist.shape[2:]:
      raise ValueError(f'cond_new scale shape {new.shape} does not continue the history '
                       f'{hist.shape} ([B, T, h, w, C])')

  def step(carry: Carry, xs):
    t, cond_frame = xs
    windows = tuple(jnp.concatenate([hist, new[:, None]], axis=1)
                    for hist, new in zip(carry.cond_history, cond_frame))
    prev = _truncate(carry.prev_frames, t, max_frames_backpropagate)
    frames, outputs = frame_fn(windows, prev, t)
    new_carry = Carry(
        cond_history=tuple(w[:, 1:] for w in windows),
        prev_frames=tuple(jnp.concatenate([p[:, 1:], f[:, None].astype(p.dtype)], axis=1)
                          for p, f in zip(prev, frames)))
    return new_carry, outputs

  if remat:
    step = jax.checkpoint(step, prevent_cse=False)
  num_frames = cond_new[0].shape[1]
  xs = (jnp.arange(num_frames, dtype=jnp.int32), tuple(_time_major(c) for c in cond_new))
  carry, outputs = jax.lax.scan(step, carry, xs, unroll=bool(unroll))
  return carry, jax.tree_util.tree_map(_time_major, outputs)


def generate_loop(frame_fn: FrameFn, carry: Carry, cond_new: Pyramid, *,
                  max_frames_backpropagate: int = 1) -> tuple[Carry, Any]:
  """The same computation as `generate` as a Python loop (reference for tests; slow to trace)."""
  outputs = []
  for t in range(cond_new[0].shape[1]):
    windows = tuple(jnp.concatenate([hist, new[:, t][:, None]], axis=1)
                    for hist, new in zip(carry.cond_history, cond_new))
    prev = []
    for p in carry.prev_frames:  # slot k holds frame t - slots + k; keep it if in t's block
      slots = p.shape[1]
      block_start = t - t % max_frames_backpropagate
      prev.append(jnp.stack([p[:, k] if t - slots + k >= block_start
                             else jax.lax.stop_gradient(p[:, k]) for k in range(slots)], axis=1))
    prev = tuple(prev)
    frames, out = frame_fn(windows, prev, jnp.int32(t))
    carry = Carry(tuple(w[:, 1:] for w in windows),
                  tuple(jnp.concatenate([p[:, 1:], f[:, None]], axis=1)
                        for p, f in zip(prev, frames)))
    outputs.append(out)
  stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs, axis=1), *outputs)
  return carry, stacked

