"""Baselines on a hand-built sequence: a textured square translating over a two-label scene."""

import numpy as np
import pytest

from vid2vid_jax import baselines

_H, _W, _T, _STEP = 12, 16, 6, 2  # the square moves _STEP px right per frame


def _sequence():
  """Frames whose 'flow_gt' / 'conf_gt' are exact: background label 0 (fixed colour), square
  label 1 (a random texture moving with it)."""
  rng = np.random.default_rng(0)
  texture = rng.uniform(-1, 1, (4, 4, 3)).astype(np.float32)
  background = np.array([0.2, -0.4, 0.6], np.float32)
  frames = []
  for t in range(_T):
    x0 = 1 + _STEP * t
    image = np.broadcast_to(background, (_H, _W, 3)).copy()
    label = np.zeros((_H, _W), np.int32)
    image[4:8, x0:x0 + 4] = texture
    label[4:8, x0:x0 + 4] = 1
    flow = np.zeros((_H, _W, 2), np.float32)
    flow[4:8, x0:x0 + 4, 0] = -_STEP  # the square's pixels came from _STEP px to the left
    conf = np.ones((_H, _W, 1), np.float32)
    if t:  # background pixels the square covered at t-1 and no longer covers
      conf[4:8, x0 - _STEP:x0] = 0.0
    else:
      conf[:] = 0.0
    frames.append({'image': image, 'label': label, 'flow_gt': flow, 'conf_gt': conf})
  return frames, texture, background


def test_label_mean_colours_and_prediction():
  frames, texture, background = _sequence()
  colours = baselines.label_mean_colours([frames], 3)
  np.testing.assert_allclose(colours[0], background, atol=1e-6)
  np.testing.assert_allclose(colours[1], texture.reshape(-1, 3).mean(0), atol=1e-6)
  np.testing.assert_array_equal(colours[2], 0.0)  # unseen label
  preds = np.stack(list(baselines.label_mean(frames, 2, colours)))
  assert preds.shape == (_T - 2, _H, _W, 3)
  for pred, frame in zip(preds, frames[2:]):
    np.testing.assert_allclose(pred, colours[frame['label']])


def test_freeze_and_copy_previous():
  frames, _, _ = _sequence()
  frozen = list(baselines.freeze_first(frames, 2))
  copied = list(baselines.copy_previous(frames, 2))
  assert len(frozen) == len(copied) == _T - 2
  for k, (f, c) in enumerate(zip(frozen, copied)):
    np.testing.assert_array_equal(f, frames[1]['image'])
    np.testing.assert_array_equal(c, frames[1 + k]['image'])
  with pytest.raises(ValueError, match='context'):
    next(baselines.freeze_first(frames, 0))


def test_flow_oracle_exact_where_visible_and_fills_holes_with_label_colour():
  frames, _, _ = _sequence()
  colours = baselines.label_mean_colours([frames], 2)
  preds = list(baselines.flow_oracle(frames, 2, colours))
  assert len(preds) == _T - 2
  for pred, frame in zip(preds, frames[2:]):
    hole = frame['conf_gt'][..., 0] < 0.5
    assert hole.any() and not hole.all()
    # Visible pixels are carried exactly along the chain of warps.
    np.testing.assert_allclose(pred[~hole], frame['image'][~hole], atol=1e-5)
    np.testing.assert_allclose(pred[hole], colours[frame['label']][hole])
  # Without the flow, holding the frame would be wrong on the square.
  assert np.abs(frames[1]['image'] - frames[2]['image']).max() > 0.1


def test_newly_visible_marks_samples_outside_the_frame():
  flow = np.zeros((4, 5, 2), np.float32)
  flow[..., 0] = 2.0  # sample 2 px to the right: the last two columns fall outside
  hole = baselines.newly_visible(flow)
  np.testing.assert_array_equal(hole, np.broadcast_to([0, 0, 0, 1, 1], (4, 5)).astype(bool))
  conf = np.ones((4, 5, 1), np.float32)
  conf[0, 0] = 0.0
  assert baselines.newly_visible(flow, conf)[0, 0]


def test_applicable_depends_on_the_frame_keys():
  frames, _, _ = _sequence()
  colours = np.zeros((2, 3), np.float32)
  assert tuple(baselines.applicable(frames[0], 2, colours)) == baselines.NAMES
  no_flow = {k: v for k, v in frames[0].items() if k not in ('flow_gt', 'conf_gt')}
  assert tuple(baselines.applicable(no_flow, 2, colours)) == baselines.NAMES[:3]
  assert tuple(baselines.applicable(frames[0], 2, None)) == ('freeze_first', 'copy_previous')
  assert not baselines.applicable({'cond': frames[0]['label']}, 2, colours)
