"""Eval: first frames from a single-image generator ('single_g', street and face models), and the
report (baselines, FVD, ground-truth warp error, eval.metrics, plot, captioned panels)."""

import json

import imageio.v2 as imageio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from vid2vid_jax import baselines
from vid2vid_jax import checkpoint
from vid2vid_jax import inference
from vid2vid_jax import video_io
from vid2vid_jax.models import builders
from vid2vid_jax.models import first_frame

_H, _W = 32, 32


def _street_config(ckpt):
  config = default.get_config()
  config.data.label_nc, config.data.use_instance = 5, True
  f = config.first_frame
  f.mode, f.checkpoint, f.net = 'single_g', str(ckpt), 'global'
  f.ngf, f.n_downsample, f.n_blocks = 4, 2, 1
  return config


def _face_config(ckpt):
  config = default.get_config()
  config.data.label_nc, config.data.input_nc, config.data.use_instance = 0, 6, False
  f = config.first_frame
  f.mode, f.checkpoint, f.net = 'single_g', str(ckpt), 'global_with_features'
  f.ngf, f.n_downsample, f.n_blocks, f.feat_num, f.nef, f.n_downsample_E = 4, 2, 1, 3, 4, 2
  return config


def _frames(n, channels, seed, with_image=True):
  rng = np.random.default_rng(seed)
  frames = []
  for _ in range(n):
    frame = {'cond': rng.uniform(0, 1, (_H, _W, channels)).astype(np.float32)}
    if with_image:
      frame['image'] = rng.uniform(-1, 1, (_H, _W, 3)).astype(np.float32)
      inst = np.zeros((_H, _W), np.int32)
      inst[4:20, 6:26] = 1 + rng.integers(0, 3)
      inst[22:30, 2:12] = 5
      frame['inst'] = inst
    frames.append(frame)
  return frames


@pytest.mark.parametrize('with_edges', [False, True])
def test_single_g_street_feeds_the_channels_its_stem_takes(tmp_path, with_edges):
  """The original's first-frame models take the label maps without the instance-edge channel;
  checkpoints whose stem takes the edges as well get them."""
  config = _street_config(tmp_path / 'ckpt')
  model = builders.first_frame_generator_from_config(config)
  channels = 6 if with_edges else 5
  params = model.init(jax.random.key(0), jnp.zeros((1, _H, _W, channels)))['params']
  checkpoint.save_variables(tmp_path / 'ckpt', {'first_frame_generator': {'params': params}})
  context = _frames(2, 6, seed=1, with_image=False)
  made = inference._first_frame_fn(config)(context)  # pylint: disable=protected-access
  cond = np.stack([f['cond'] for f in context])[..., :channels]
  np.testing.assert_allclose(made, model.apply({'params': params}, cond), atol=1e-5)
  assert made.shape == (2, _H, _W, 3)


def test_single_g_face_encodes_and_uses_the_nearest_stored_features(tmp_path):
  config = _face_config(tmp_path / 'ckpt')
  model = builders.first_frame_generator_from_config(config)
  encoder = builders.feature_encoder_from_config(config)
  g_params = model.init(jax.random.key(0), jnp.zeros((1, _H, _W, 6)),
                        jnp.zeros((1, _H, _W, 3)))['params']
  e_params = encoder.init(jax.random.key(1), jnp.zeros((1, _H, _W, 3)),
                          jnp.zeros((1, _H, _W), jnp.int32))['params']
  rng = np.random.default_rng(2)
  bank = {i: rng.uniform(-1, 1, (4, 4)).astype(np.float32) for i in range(7)}
  checkpoint.save_variables(tmp_path / 'ckpt', {
      'first_frame_generator': {'params': g_params}, 'first_frame_encoder': {'params': e_params},
      'first_frame_features': {str(i): v for i, v in bank.items()}})
  context = _frames(2, 6, seed=3)
  made = inference._first_frame_fn(config)(context)  # pylint: disable=protected-access

  for k, frame in enumerate(context):
    encoded = encoder.apply({'params': e_params}, frame['image'][None], frame['inst'][None])[0]
    feat = first_frame.nearest_features(np.asarray(encoded), frame['inst'], bank)
    # Every instance carries one row of its own stored table.
    for i in np.unique(frame['inst']):
      rows = bank[i][:, :3]
      assert any(np.allclose(feat[frame['inst'] == i], row) for row in rows)
    want = model.apply({'params': g_params}, frame['cond'][None], feat[None])[0]
    np.testing.assert_allclose(made[k], want, atol=1e-5)

  with pytest.raises(ValueError, match='inst'):
    inference._first_frame_fn(config)(  # pylint: disable=protected-access
        [{k: v for k, v in f.items() if k != 'inst'} for f in context])
  bad = [dict(f, inst=np.full((_H, _W), 9, np.int32)) for f in context]
  with pytest.raises(ValueError, match='num_instance_ids'):
    inference._first_frame_fn(config)(bad)  # pylint: disable=protected-access


def test_single_g_face_needs_the_encoder_in_the_checkpoint(tmp_path):
  config = _face_config(tmp_path / 'ckpt')
  model = builders.first_frame_generator_from_config(config)
  g_params = model.init(jax.random.key(0), jnp.zeros((1, _H, _W, 6)),
                        jnp.zeros((1, _H, _W, 3)))['params']
  checkpoint.save_variables(tmp_path / 'ckpt', {'first_frame_generator': {'params': g_params}})
  with pytest.raises(ValueError, match='first_frame_encoder'):
    inference._first_frame_fn(config)  # pylint: disable=protected-access


# ---------------------------------------------------------------- eval report: baselines, FVD

_LABEL_NC, _CONTEXT = 3, 2


def _moving_square_sequence(num_frames, seed):
  """Street-like frames with exact flows: a textured square (label 1) moving 2 px right per
  frame over a two-colour background (labels 0 and 2)."""
  rng = np.random.default_rng(seed)
  texture = rng.uniform(-1, 1, (8, 8, 3)).astype(np.float32)
  frames = []
  for t in range(num_frames):
    x0 = 2 + (t % 10) * 2
    label = np.zeros((_H, _W), np.int32)
    label[_H // 2:] = 2
    image = np.where((label == 0)[..., None], np.float32([0.3, 0.5, 0.9]),
                     np.float32([-0.2, -0.2, -0.3])).astype(np.float32)
    image[10:18, x0:x0 + 8] = texture
    label[10:18, x0:x0 + 8] = 1
    flow = np.zeros((_H, _W, 2), np.float32)
    conf = np.ones((_H, _W, 1), np.float32)
    if t % 10:  # the square jumps back every 10 frames: treat that frame as a cut
      flow[10:18, x0:x0 + 8, 0] = -2.0
      conf[10:18, x0 - 2:x0] = 0.0
    else:
      conf[:] = 0.0
    frames.append({'cond': np.eye(_LABEL_NC, dtype=np.float32)[label], 'image': image,
                   'label': label, 'flow_gt': flow, 'conf_gt': conf})
  return frames


class _BrightenedPrevious:
  """Stands in for SequenceGenerator: 'generates' the previous real frame, brightened."""
  n_frames_G = _CONTEXT + 1

  def run(self, g_params, frames, first_frame_fn=None, max_frames=None):
    del g_params, first_frame_fn
    frames = list(frames)
    for t in range(_CONTEXT, len(frames))[:max_frames]:
      yield frames[t], np.clip(frames[t - 1]['image'] + 0.4, -1, 1)


def _mean_colour_features(clips):
  """A cheap stand-in for I3D: per-frame mean colours [N, 16 * 3]."""
  return np.asarray(clips).mean(axis=(2, 3)).reshape(len(clips), -1)


def _evaluate(tmp_path, lengths=(20, 20), **kwargs):
  sequences = [(f'seq_{i}', iter(_moving_square_sequence(n, i))) for i, n in enumerate(lengths)]
  colours = baselines.label_mean_colours([_moving_square_sequence(12, 9)], _LABEL_NC)
  kwargs.setdefault('fvd_extractor', _mean_colour_features)
  return inference.evaluate_sequences(
      _BrightenedPrevious(), None, sequences, tmp_path, label_nc=_LABEL_NC, fps=4, write_png=False,
      label_colours=colours, **kwargs)


def test_eval_report_has_baselines_ground_truth_fvd_and_plot(tmp_path):
  report = _evaluate(tmp_path, lengths=(20, 20, 12),
                     metrics=('psnr', 'ssim', 'warp_error', 'fvd'))
  assert report == json.loads((tmp_path / 'metrics.json').read_text())
  assert tuple(report['baselines']) == baselines.NAMES
  for name, baseline in report['baselines'].items():
    frames = baseline['sequences']['seq_0']['frames']
    assert len(frames) == 18 and [f['index'] for f in frames] == list(range(18)), name
    assert {'psnr', 'ssim', 'warp_error'} <= set(baseline['mean']), name
  # The model 'generates' a brightened copy of the previous frame: the copy baseline beats it.
  copy = report['baselines']['copy_previous']['mean']['psnr']
  assert copy > report['mean']['psnr']
  # Exact flows: the real video and the oracle have (near) zero warp error on visible pixels.
  assert report['ground_truth']['mean']['warp_error'] < 1e-5
  assert report['baselines']['flow_oracle']['mean']['warp_error'] < 1e-5
  assert report['baselines']['freeze_first']['mean']['warp_error'] > 1e-3  # ignores motion
  fvd = report['fvd']
  assert fvd['num_clips'] == 2 and fvd['short_sequences'] == ['seq_2']
  assert set(fvd['scores']) == {'model', *baselines.NAMES}
  assert all(np.isfinite(v) and v >= -1e-6 for v in fvd['scores'].values())
  assert fvd['scores']['model'] > fvd['scores']['copy_previous']  # brightened vs exact colours
  image = imageio.imread(tmp_path / 'metrics.png')
  assert image.ndim == 3 and image.shape[1] > 3 * image.shape[0] // 2  # three subplots
  table = inference.summary_table(report)
  assert 'flow_oracle' in table and 'fvd' in table.splitlines()[0]


def test_eval_metrics_option_is_honoured(tmp_path):
  report = _evaluate(tmp_path, metrics=('psnr',))
  assert set(report['mean']) == {'psnr'}
  assert all(set(b['mean']) == {'psnr'} for b in report['baselines'].values())
  assert 'fvd' not in report and not report['ground_truth']
  assert (tmp_path / 'metrics.png').exists()
  with pytest.raises(ValueError, match=r"config.eval.metrics: unknown metric\(s\) \['lpips'\]"):
    _evaluate(tmp_path, metrics=('psnr', 'lpips'))
  report = _evaluate(tmp_path, metrics=('psnr',), use_baselines=False)
  assert not report['baselines']


def test_side_by_side_video_has_captions(tmp_path):
  _evaluate(tmp_path, lengths=(6,), metrics=('psnr',))
  video = video_io.read_video(tmp_path / 'seq_0_side_by_side.mp4')
  # 32x32 panels are upscaled 4x; a caption strip (10 px for 128 px wide panels) sits on top.
  assert video.shape == (4, 138, 384, 3)
  strip = video[0, :10].astype(np.float32)
  body = video[0, 10:].astype(np.float32)
  for k in range(3):
    assert strip[:, 128 * k:128 * (k + 1)].max() > 150  # white text on black
  # Different captions: the strips differ between panels; the panels themselves start below.
  assert np.abs(strip[:, :128] - strip[:, 128:256]).mean() > 5
  assert np.abs(body[:, 128:256] - body[:, 256:]).mean() > 1  # ours (brightened) vs ground truth


def test_report_scalars_flattens_model_baselines_and_fvd():
  report = {'mean': {'psnr': 20.0, 'ssim': 0.5},
            'baselines': {'label_mean': {'mean': {'psnr': 17.0}}},
            'ground_truth': {'mean': {'warp_error': 0.01}},
            'fvd': {'scores': {'model': 300.0, 'label_mean': 900.0, 'copy_previous': None}}}
  assert inference.report_scalars(report) == {
      'eval/psnr': 20.0, 'eval/ssim': 0.5, 'eval/label_mean/psnr': 17.0,
      'eval/ground_truth/warp_error': 0.01, 'eval/fvd': 300.0, 'eval/label_mean/fvd': 900.0}


def test_start_frame_skips_frames_of_the_first_sequence_only():
  sequences = [('a', iter(range(10))), ('b', iter(range(5)))]
  out = [(name, list(frames)) for name, frames in inference._from_start_frame(sequences, 3)]
  assert out == [('a', list(range(3, 10))), ('b', list(range(5)))]


def test_how_many_counts_generated_frames_over_the_run(tmp_path):
  """eval.how_many, as the original's --how_many: one budget of frames over the sequences."""
  report = _evaluate(tmp_path, lengths=(20, 20, 12), metrics=('psnr',), max_frames=25)
  counts = {name: len(seq['frames']) for name, seq in report['sequences'].items()}
  assert counts == {'seq_0': 18, 'seq_1': 7}
