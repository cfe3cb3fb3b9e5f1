"""The original's epoch schedules: learning rates, the clip-length curriculum, gradient blocks.

Epochs are 0-based. How one clip is cut into optimizer steps is `input_pipeline.sampling.ClipPlan`
(the pipeline reads clips of that length); this module only says how long clips are per epoch and
how each step trains.
"""

from collections.abc import Callable, Mapping
import dataclasses
import math
from typing import Any

import numpy as np

MAX_CLIP_FRAMES = 128  # the original never reads clips longer than this
CHUNK_KEYS = ('cond', 'image', 'flow_gt', 'conf_gt')  # what a step reads of a clip batch

@dataclasses.dataclass(frozen=True)
class Schedule:
  """Epoch-driven training schedule.

  Attributes:
    lr, beta1, ttur: Adam's base rate and beta1; ttur: the two time-scale update rule (G at
      lr / 2, D at 2 lr, betas (0, 0.9)).
    niter, niter_decay: epochs at the base rate, then epochs of linear decay to 0.
    niter_step: epochs between doublings of the frames generated per clip.
    n_frames_total: frames generated per clip in the first epochs.
    max_n_frames_total: the curriculum's cap, MAX_CLIP_FRAMES - (n_frames_G - 1) as the
      original's (the data may cap it further, see `ClipPlan`).
    max_frames_backpropagate: cap of the gradient block length.
    niter_fix_global: epochs during which only the finest generator scale trains.
    decay_only_g_and_d: the original's temporal-D rate never decays (config.compat).
    frozen_global_after_fix: the original never updates the coarse scales (config.compat).
    flow_head_lr_scale: multiplies the Adam updates of every scale's flow head (1 = the
      original; see config train.flow_head_lr_scale).
  """
  lr: float
  beta1: float
  ttur: bool
  niter: int
  niter_decay: int
  niter_step: int
  n_frames_total: int
  max_frames_backpropagate: int
  niter_fix_global: int
  max_n_frames_total: int | None = None
  decay_only_g_and_d: bool = False
  frozen_global_after_fix: bool = False
  flow_head_lr_scale: float = 1.0

  @property
  def num_epochs(self) -> int:
    return self.niter + self.niter_decay

  def lr_factor(self, epoch: int) -> float:
    """Constant for niter epochs, then linear decay: the last epoch runs at lr / niter_decay."""
    if epoch < self.niter or self.niter_decay == 0:
      return 1.0
    return max(0.0, 1.0 - (epoch - self.niter) / self.niter_decay)

  def learning_rates(self, epoch: int) -> dict[str, float]:
    """Learning rates of the 'g', 'd' and temporal 'd_t' optimizers during ``epoch``."""
    f = self.lr_factor(epoch)
    g_scale, d_scale = (0.5, 2.0) if self.ttur else (1.0, 1.0)
    return {'g': self.lr * g_scale * f, 'd': self.lr * d_scale * f,
            'd_t': self.lr if self.decay_only_g_and_d else self.lr * f}

  def betas(self) -> dict[str, tuple[float, float]]:
    """Adam's (b1, b2) of the 'g', 'd' and 'd_t' optimizers (TTUR: (0, 0.9) for G and D)."""
    g_d = (0.0, 0.9) if self.ttur else (self.beta1, 0.999)
    return {'g': g_d, 'd': g_d, 'd_t': (self.beta1, 0.999)}

  def n_frames_total_at(self, epoch: int) -> int:
    """Frames to generate per clip during ``epoch``: doubles every niter_step epochs up to
    max_n_frames_total (the data caps it at what its shortest video holds, see `ClipPlan`)."""
    n = self.n_frames_total * 2 ** (epoch // self.niter_step)
    return n if self.max_n_frames_total is None else min(n, self.max_n_frames_total)

  def frames_backpropagate(self, epoch: int, frames_per_step: int) -> int:
    """Gradient block length: nfl // ceil(nfl / min(max_bp, 2**(epoch // niter_step), nfl))
    with nfl = frames_per_step (the original's n_frames_load)."""
    cap = min(self.max_frames_backpropagate, 2**(epoch // self.niter_step), frames_per_step)
    return max(1, frames_per_step // math.ceil(frames_per_step / cap))

  def train_coarse(self, epoch: int) -> bool:
    """Whether the coarser generator scales are optimised (and not detached) in ``epoch``."""
    return epoch >= self.niter_fix_global

  def update_coarse(self, epoch: int) -> bool:
    """Whether the coarser scales' parameters change in ``epoch`` (never with
    compat.frozen_global_after_fix once niter_fix_global > 0)."""
    return self.train_coarse(epoch) and not (self.frozen_global_after_fix
                                             and self.niter_fix_global > 0)


def schedule_from_config(config: Any) -> Schedule:
  t = config.train
  return Schedule(
      lr=t.lr, beta1=t.beta1, ttur=t.ttur, niter=t.niter, niter_decay=t.niter_decay,
      niter_step=t.niter_step, n_frames_total=config.data.n_frames_total,
      max_frames_backpropagate=t.max_frames_backpropagate,
      niter_fix_global=t.niter_fix_global,
      max_n_frames_total=MAX_CLIP_FRAMES - (config.model.generator.n_frames_G - 1),
      decay_only_g_and_d=config.compat.decay_only_g_and_d,
      frozen_global_after_fix=config.compat.frozen_global_after_fix,
      flow_head_lr_scale=t.flow_head_lr_scale)


def planned_steps(schedule: Schedule, dataset_for: Callable[[int], Any],
                  target: str = 'video') -> int:
  """Optimizer steps of the whole schedule: per epoch, clips per epoch times steps per clip.

  Args:
    dataset_for: n_frames_total -> the training pipeline of that clip length (its
      ``steps_per_epoch`` and ``clip_plan``).
    target: 'video' (one step per chunk) or 'first_frame' (one step per clip).
  """
  total = 0
  for epoch in range(schedule.num_epochs):
    dataset = dataset_for(schedule.n_frames_total_at(epoch))
    per_clip = dataset.clip_plan.n_chunks if target == 'video' else 1
    total += dataset.steps_per_epoch * per_clip
  return total


def chunks_of(batch: Mapping[str, Any], plan: Any, keys=CHUNK_KEYS
              ) -> list[dict[str, np.ndarray]]:
  """Splits a clip batch [B, T, ...] into the chunks of successive optimizer steps.

  Args:
    batch: clip arrays [B, plan.length, ...].
    plan: the clip's `input_pipeline.sampling.ClipPlan`.

  Returns:
    plan.n_chunks dicts of [B, plan.chunk_length, ...]: chunk c starts at frame
    c * plan.frames_per_step.
  """
  total = batch['cond'].shape[1]
  if total < plan.length:
    raise ValueError(f'a clip of {total} frames is shorter than its plan ({plan.length})')
  step = plan.frames_per_step
  return [{k: batch[k][:, c * step:c * step + plan.chunk_length] for k in keys if k in batch}
          for c in range(plan.n_chunks)]
