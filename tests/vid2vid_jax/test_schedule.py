"""Epoch schedules and how clips are cut into steps, against the original's arithmetic."""

import numpy as np
import pytest

from configs import demo
from input_pipeline import sampling
from vid2vid_jax import schedule as schedule_lib


def _schedule(**overrides):
  values = dict(lr=2e-4, beta1=0.5, ttur=False, niter=10, niter_decay=10, niter_step=5,
                n_frames_total=6, max_frames_backpropagate=4, niter_fix_global=3)
  return schedule_lib.Schedule(**{**values, **overrides})


def test_schedule_matches_original():
  s = _schedule()
  assert [s.lr_factor(e) for e in (0, 9, 10, 11, 19)] == [1.0, 1.0, 1.0, 0.9, pytest.approx(0.1)]
  assert s.learning_rates(15) == {'g': pytest.approx(1e-4), 'd': pytest.approx(1e-4),
                                  'd_t': pytest.approx(1e-4)}
  compat = _schedule(decay_only_g_and_d=True, ttur=True)
  assert compat.learning_rates(15) == {'g': pytest.approx(5e-5), 'd': pytest.approx(2e-4),
                                       'd_t': pytest.approx(2e-4)}
  assert compat.betas() == {'g': (0.0, 0.9), 'd': (0.0, 0.9), 'd_t': (0.5, 0.999)}
  assert [s.n_frames_total_at(e) for e in (0, 4, 5, 10)] == [6, 6, 12, 24]
  # The original caps the curriculum at 128 - (n_frames_G - 1) frames.
  config = demo.get_config()
  config.data.n_frames_total, config.train.niter_step = 12, 1
  from_config = schedule_lib.schedule_from_config(config)
  assert [from_config.n_frames_total_at(e) for e in (3, 4, 20)] == [96, 126, 126]
  # The original's n_frames_bp: nfl // ceil(nfl / min(max_bp, 2**(epoch // niter_step), nfl)).
  assert [s.frames_backpropagate(e, 2) for e in (0, 5, 10)] == [1, 2, 2]
  assert [s.frames_backpropagate(e, 6) for e in (0, 5, 10, 15)] == [1, 2, 3, 3]
  assert [s.train_coarse(e) for e in (2, 3)] == [False, True]
  frozen = _schedule(frozen_global_after_fix=True)
  assert [frozen.update_coarse(e) for e in (2, 3)] == [False, False]
  assert s.update_coarse(3)


def test_clip_plan_follows_the_original_loading():
  # n_frames_total 6, n_frames_G 3, 2 frames per step, 30-frame videos: 3 chunks, T_read 8.
  plan = sampling.clip_plan(6, 3, 2, 30)
  assert (plan.frames_per_step, plan.n_chunks, plan.length, plan.chunk_length) == (2, 3, 8, 4)
  # The video caps the clip: 28 frames to generate, one per step.
  assert sampling.clip_plan(30, 3, 1, 30).n_chunks == 28
  # Fewer frames than max_frames_per_gpu: one chunk of all of them.
  short = sampling.clip_plan(30, 3, 8, 6)
  assert (short.frames_per_step, short.n_chunks, short.length) == (4, 1, 6)
  assert sampling.clip_length(5, 3, 2, 30) == sampling.clip_plan(5, 3, 2, 30).length == 6


def test_planned_steps_counts_clips_and_chunks():
  s = _schedule(niter=2, niter_decay=1, niter_step=1, n_frames_total=4)

  class FakeDataset:
    def __init__(self, n_total):
      self.clip_plan = sampling.clip_plan(n_total, 3, 2, seq_len=12)  # caps at 10 new frames
      self.steps_per_epoch = 3

  # Epochs of 4, 8 and 16 (capped at 10) new frames: 2, 4 and 5 steps per clip, 3 clips each.
  assert schedule_lib.planned_steps(s, FakeDataset) == 3 * (2 + 4 + 5)
  assert schedule_lib.planned_steps(s, FakeDataset, target='first_frame') == 9


def test_chunks_of_cuts_a_clip_as_planned():
  batch = {'cond': np.arange(9)[None, :, None, None, None], 'image': np.zeros((1, 9, 1, 1, 3))}
  plan = sampling.ClipPlan(n_frames_G=3, frames_per_step=3, n_chunks=2)
  chunks = schedule_lib.chunks_of(batch, plan)
  assert [c['cond'][0, :, 0, 0, 0].tolist() for c in chunks] == [[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]]
  assert set(chunks[0]) == {'cond', 'image'}
  with pytest.raises(ValueError, match='shorter than its plan'):
    schedule_lib.chunks_of(batch, sampling.ClipPlan(n_frames_G=3, frames_per_step=8, n_chunks=1))
