"""End to end on synthetic data: train, resume exactly, NaN guard, streaming eval, entry points."""

import json

import jax
import numpy as np
import pytest

from configs import demo
from input_pipeline import synthetic
from vid2vid_jax import inference
from vid2vid_jax import train_lib

TRAIN_FRAMES, TEST_FRAMES = 8, 24  # test sequences 3x longer than the training clips (8 frames)


pytestmark = pytest.mark.usefixtures('compilation_cache')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('street')
  synthetic.generate('street', root, sequences=2, frames=TRAIN_FRAMES, width=32, height=32,
                     seed=0, test_sequences=0)
  # Long held-out sequences, written as the test split of the same layout.
  long_root = tmp_path_factory.mktemp('street_long')
  synthetic.generate('street', long_root, sequences=0, frames=TEST_FRAMES, width=32, height=32,
                     seed=1, test_sequences=1)
  for folder in long_root.iterdir():
    folder.rename(root / folder.name)
  return root


def tiny_config(root, **train):
  config = demo.get_config()
  config.data.root = str(root)
  config.data.flow_dir = str(root / 'train_flow')
  config.data.load_size = config.data.fine_size = 32
  config.data.batch_size = 1
  config.data.n_frames_total = 6
  g = config.model.generator
  g.ngf, g.n_blocks, g.n_downsample_G = 8, 1, 2
  d = config.model.discriminator
  d.ndf, d.n_layers_D, d.num_D, d.n_frames_D, d.n_scales_temporal = 8, 2, 1, 2, 2
  config.train.max_frames_per_gpu = 3
  config.train.log_every_steps = 1
  config.train.image_every_steps = 2
  config.train.checkpoint_every_steps = 2
  config.train.ema_decay = 0.5  # EMA of G params (beyond the original); eval then uses it
  config.eval.results_dir = ''
  config.eval.how_many = 100
  config.eval.chunk_frames = 4
  for key, value in train.items():
    config.train[key] = value
  return config


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_resume_equals_uninterrupted_and_eval(data_root, tmp_path):
  interrupted = tmp_path / 'interrupted'
  train_lib.train_and_evaluate(tiny_config(data_root, num_steps=2), interrupted)
  resumed = train_lib.train_and_evaluate(tiny_config(data_root, num_steps=4), interrupted)
  straight = train_lib.train_and_evaluate(tiny_config(data_root, num_steps=4),
                                          tmp_path / 'straight')
  assert int(resumed.step) == int(straight.step) == 4
  # A finished run says so and returns its state; nothing is trained or written.
  again = train_lib.train_and_evaluate(tiny_config(data_root, num_steps=4), interrupted)
  assert int(again.step) == 4
  for a, b in zip(_leaves(again.params), _leaves(resumed.params)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(_leaves(resumed.params), _leaves(straight.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  for a, b in zip(_leaves(resumed.opt_state), _leaves(straight.opt_state)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  for a, b in zip(_leaves(resumed.ema_g), _leaves(straight.ema_g)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert any(not np.array_equal(a, b) for a, b in zip(_leaves(resumed.ema_g),
                                                      _leaves(resumed.params['g'])))

  # Checkpoints, scalars (every loss term, learning rates) and TensorBoard events were written.
  assert sorted(p.name for p in (interrupted / 'checkpoints').iterdir()) == ['2', '4']
  records = [json.loads(l) for l in (interrupted / 'metrics.jsonl').read_text().splitlines()]
  losses = [r for r in records if 'g/total' in r]
  assert [r['step'] for r in losses] == [1, 2, 3, 4]
  for key in ('g/gan', 'g/gan_feat', 'g/flow', 'g/warp', 'g/fake_warp', 'g/t_gan_0', 'd/real',
              'd_t0/fake', 'lr/g', 'lr/d', 'lr/d_t'):
    assert key in losses[-1], key
  assert list(interrupted.glob('events.out.tfevents.*'))

  # Eval streams a test sequence 3x longer than the training clips.
  config = tiny_config(data_root)
  config.eval.metrics = ('psnr', 'ssim', 'warp_error')  # FVD: tests/vid2vid_jax/test_inference.py
  report = inference.evaluate(config, interrupted)
  (name, seq), = report['sequences'].items()
  assert seq['num_frames'] == TEST_FRAMES - (config.model.generator.n_frames_G - 1)
  assert {'psnr', 'ssim', 'warp_error'} <= set(report['mean'])
  out = interrupted / 'eval'
  from vid2vid_jax import video_io
  video = video_io.read_video(out / f'{name}.mp4')
  assert video.shape == (seq['num_frames'], 32, 32, 3)
  panel = video_io.read_video(out / f'{name}_side_by_side.mp4')
  # Captioned cond | result | ground truth, each upscaled 4x to 128x128 under a 10 px caption.
  assert panel.shape == (seq['num_frames'], 138, 384, 3)
  assert set(report['baselines']) == {'label_mean', 'freeze_first', 'copy_previous',
                                      'flow_oracle'}
  assert (out / 'metrics.png').exists()
  assert len(list((out / name / 'frames').glob('*.png'))) == seq['num_frames']
  # TensorBoard / metrics.jsonl: the scores under 'test/' at the evaluated checkpoint's step.
  summary, = [json.loads(l) for l in (out / 'metrics.jsonl').read_text().splitlines()]
  assert summary['step'] == 4 and summary['test/psnr'] == pytest.approx(report['mean']['psnr'])
  assert 'test/label_mean/psnr' in summary and list(out.glob('events.out.tfevents.*'))


def test_nan_guard_names_step_and_checkpoint(data_root, tmp_path, monkeypatch):
  import input_pipeline
  real_create = input_pipeline.create_dataset

  class Poisoned:
    def __init__(self, inner):
      self._inner = inner
      self.calls = 0

    def __getattr__(self, name):  # steps_per_epoch, clip_plan, frame_size, ...
      return getattr(self._inner, name)

    def set_state(self, state):
      self._inner.set_state(state)

    def __next__(self):
      batch = next(self._inner)
      self.calls += 1
      if self.calls >= 2:
        batch['image'][:] = np.nan
      return batch

  monkeypatch.setattr(input_pipeline, 'create_dataset',
                      lambda *a, **k: Poisoned(real_create(*a, **k)))
  config = tiny_config(data_root, num_steps=6)
  config.train.max_frames_per_gpu = 6  # one chunk per clip: clip 2 = step 2
  config.train.checkpoint_every_steps = 1
  with pytest.raises(RuntimeError, match=r'non-finite loss or gradient at step 2 .*step 1 in'):
    train_lib.train_and_evaluate(config, tmp_path / 'nan')
  # The last good checkpoint is intact, and a rerun (clean data, a lower rate) continues from it.
  from vid2vid_jax import checkpoint
  assert checkpoint.create_manager(tmp_path / 'nan').all_steps() == [1]
  monkeypatch.undo()
  state = train_lib.train_and_evaluate(tiny_config(data_root, num_steps=2, lr=1e-4,
                                                   max_frames_per_gpu=6), tmp_path / 'nan')
  assert int(state.step) == 2
  assert all(np.isfinite(x).all() for x in _leaves(state.params))
  records = [json.loads(l) for l in (tmp_path / 'nan' / 'metrics.jsonl').read_text().splitlines()]
  losses = [r for r in records if 'g/total' in r]
  assert [r['step'] for r in losses][-2:] == [1, 2]
  assert losses[-1]['lr/g'] == pytest.approx(1e-4)


def test_flow_warmup_then_training_evals(data_root, tmp_path):
  """Two flow warm-up steps, then regular steps; step 3 is scored on the held-out sequence."""
  config = tiny_config(data_root, num_steps=4, flow_warmup_steps=2, eval_every_steps=3,
                       eval_sequences=1)
  config.eval.metrics = ('psnr', 'ssim', 'warp_error')  # FVD: tests/vid2vid_jax/test_inference.py
  workdir = tmp_path / 'warmup'
  state = train_lib.train_and_evaluate(config, workdir)
  assert int(state.step) == 4
  records = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  losses = {r['step']: r for r in records if 'g/total' in r}
  assert sorted(losses) == [1, 2, 3, 4]
  for step in (1, 2):  # the warm-up: flow terms only
    assert {'g/flow', 'g/warp'} <= set(losses[step]) and 'g/gan' not in losses[step]
  assert 'g/gan' in losses[3] and 'd/real' in losses[3]
  evals = [r for r in records if 'eval/psnr' in r]
  assert [r['step'] for r in evals] == [3]
  for key in ('eval/ssim', 'eval/warp_error', 'eval/label_mean/psnr', 'eval/flow_oracle/psnr',
              'eval/ground_truth/warp_error'):
    assert key in evals[0], key
  out = workdir / 'eval_train' / 'step_00000003'
  report = json.loads((out / 'metrics.json').read_text())
  assert abs(report['mean']['psnr'] - evals[0]['eval/psnr']) < 1e-6
  assert (out / 'metrics.png').stat().st_size > 0 and not list(out.glob('*/frames'))
  # Warm-up steps are not checkpointed (checkpoint_every_steps is 2).
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['4']


@pytest.mark.parametrize('program', ['train.py', 'eval.py'])
def test_user_errors_exit_2_without_a_traceback(program, repo_root, tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  result = subprocess.run(
      [sys.executable, program, '--config=configs/demo.py', f'--workdir={tmp_path}',
       f'--config.data.root={tmp_path / "nowhere"}', '--config.flow.source=none'],
      cwd=repo_root, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  expected = ('train.py: error: 3 problem(s) with the street dataset' if program == 'train.py'
              else 'eval.py: error: no training checkpoint')
  assert expected in result.stderr, result.stderr[-2000:]
