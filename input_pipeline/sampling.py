"""Which frames make a clip, as a pure function of (seed, stream position).

Clips are drawn from an endless stream of items: epoch e is a permutation (seeded by (seed, e))
of the dataset's items, epochs concatenated. Item = one video (street, face) or one (video,
frame) pair (pose: a video's weight is its frame count, start = frame % offset_max). The clip's
random choices (temporal stride, start, spatial params, drops) come from a generator seeded by
(seed, stream position), so any position can be recomputed without replaying the ones before it:
that makes the pipeline deterministic under parallel loading and resumable from a step count.
"""

import dataclasses
import functools
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class ClipPlan:
  """How a training clip is read and cut into optimizer steps (the one place this is computed).

  A clip holds n_frames_G - 1 context frames, then ``n_chunks`` chunks of ``frames_per_step``
  new frames; each step sees the chunk's new frames with the n_frames_G - 1 frames before them.
  """
  n_frames_G: int
  frames_per_step: int
  n_chunks: int

  @property
  def context(self) -> int:
    return self.n_frames_G - 1

  @property
  def length(self) -> int:
    """T_read: frames read per clip."""
    return self.frames_per_step * self.n_chunks + self.context

  @property
  def chunk_length(self) -> int:
    """Frames in one step's chunk: context plus the new frames."""
    return self.frames_per_step + self.context


def clip_plan(n_frames_total: int, n_frames_G: int, max_frames_per_step: int,
              seq_len: int) -> ClipPlan:
  """The clip layout of the original's sequence loading (docs/original_behaviour.md#clip-loading).

  Args:
    n_frames_total: frames to generate per clip (curriculum value).
    n_frames_G: the generator's conditioning window (current + previous frames).
    max_frames_per_step: frames generated per optimizer step (max_frames_per_gpu).
    seq_len: length of the (shortest) video.

  Returns:
    n_gen = min(n_frames_total, seq_len - n_frames_G + 1) frames to generate, cut into
    n_gen // per_step chunks of per_step = min(n_gen, max_frames_per_step) frames.
  """
  n_gen = min(n_frames_total, seq_len - n_frames_G + 1)
  if n_gen < 1:
    raise ValueError(f'videos of {seq_len} frames are too short for n_frames_G={n_frames_G} '
                     '(need at least n_frames_G frames)')
  per_step = min(n_gen, max(1, max_frames_per_step))
  return ClipPlan(n_frames_G=n_frames_G, frames_per_step=per_step, n_chunks=n_gen // per_step)


def clip_length(n_frames_total: int, n_frames_G: int, max_frames_per_step: int,
                seq_len: int) -> int:
  """T_read of `clip_plan`."""
  return clip_plan(n_frames_total, n_frames_G, max_frames_per_step, seq_len).length


@dataclasses.dataclass(frozen=True)
class ClipRef:
  """One clip: video index, frame indices [T] and the seed of its random choices."""
  seq_index: int
  frame_ids: tuple[int, ...]
  seed: tuple[int, ...]

  def rng(self, purpose: int) -> np.random.Generator:
    """Independent generators per purpose (0 = spatial params, 1 = per-frame drops)."""
    return np.random.default_rng(self.seed + (purpose,))


@dataclasses.dataclass(frozen=True)
class Sampler:
  """Maps stream positions to clips.

  Attributes:
    seq_lengths: frames per video.
    clip_len: T_read (``clip_length``).
    max_t_step: largest temporal stride.
    per_frame_items: pose-style items (one per frame) instead of one per video.
    n_frames_G: conditioning window, for the per-frame item count (len - n_frames_G + 1).
    shuffle: permute items every epoch.
    seed: the data seed.
    train: False = deterministic clips from frame 0 with stride 1 (test split).
  """
  seq_lengths: tuple[int, ...]
  clip_len: int
  max_t_step: int = 1
  per_frame_items: bool = False
  n_frames_G: int = 3
  shuffle: bool = True
  seed: int = 0
  train: bool = True

  @functools.cached_property
  def items(self) -> tuple[tuple[int, int], ...]:
    """(video, frame) per item."""
    if self.per_frame_items and self.train:
      return tuple((i, k) for i, n in enumerate(self.seq_lengths)
                   for k in range(max(1, n - self.n_frames_G + 1)))
    return tuple((i, 0) for i in range(len(self.seq_lengths)))

  def __len__(self) -> int:
    return len(self.items)

  @functools.lru_cache(maxsize=4)
  def _order(self, epoch: int) -> np.ndarray:
    if not self.shuffle:
      return np.arange(len(self.items))
    return np.random.default_rng([self.seed, 0x5EED, epoch]).permutation(len(self.items))

  def clip(self, position: int) -> ClipRef:
    """The clip at stream ``position`` (>= 0)."""
    epoch, offset = divmod(position, len(self.items))
    seq_index, frame = self.items[int(self._order(epoch)[offset])]
    seq_len = self.seq_lengths[seq_index]
    seed = (self.seed, position)
    if not self.train:
      return ClipRef(seq_index, tuple(range(min(self.clip_len, seq_len))), seed)
    rng = np.random.default_rng(seed + (2,))
    span = max(1, self.clip_len - 1)
    max_step = max(1, min(self.max_t_step, (seq_len - 1) // span))
    t_step = int(rng.integers(1, max_step + 1))
    offset_max = max(1, seq_len - (self.clip_len - 1) * t_step)
    start = frame % offset_max if self.per_frame_items else int(rng.integers(0, offset_max))
    return ClipRef(seq_index, tuple(start + k * t_step for k in range(self.clip_len)), seed)


def shard_position(step: int, k: int, *, global_batch: int, process_index: int,
                   process_count: int) -> int:
  """Stream position of the k-th clip of this host's batch at ``step``.

  Hosts take consecutive slices of every global batch: host i gets positions
  step * global_batch + i * local_batch + [0, local_batch).
  """
  local = global_batch // process_count
  return step * global_batch + process_index * local + k

