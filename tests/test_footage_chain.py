"""Your own footage end to end: prepare -> train 2 steps -> eval, for edges and for faces, and an
imported label_nc 0 checkpoint of the original evaluated on prepared data."""

import json
import shutil

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data

from configs import edges_256
from configs import face_g1_256
from input_pipeline import prepare
from vid2vid_jax import checkpoint
from vid2vid_jax import original_checkpoint
from vid2vid_jax import inference
from vid2vid_jax import train_lib
from vid2vid_jax import video_io

FRAMES = 20


pytestmark = pytest.mark.usefixtures('compilation_cache')


def _moving_photo(photo: np.ndarray, size: int, seed: int) -> list[np.ndarray]:
  """``FRAMES`` frames of ``photo`` under small smooth affine motions (a hand-held camera)."""
  rng = np.random.default_rng(seed)
  phase = rng.uniform(0, 2 * np.pi, 3)
  centre = (photo.shape[1] / 2, photo.shape[0] / 2)
  frames = []
  for t in range(FRAMES):
    s = t / FRAMES * 2 * np.pi
    matrix = cv2.getRotationMatrix2D(centre, 2.0 * np.sin(s + phase[0]),
                                     1.0 + 0.02 * np.sin(s + phase[1]))
    matrix[:, 2] += (4 * np.sin(s + phase[2]), 1.5 * t / FRAMES * 4)
    warped = cv2.warpAffine(photo, matrix, (photo.shape[1], photo.shape[0]),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    frames.append(cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA))
  return frames


def _shrink(config, root, size: int):
  config.data.root = str(root)
  config.data.flow_dir = str(root / 'train_flow')
  config.data.load_size = config.data.fine_size = size
  config.data.batch_size = 1
  config.data.n_frames_total = 4
  g = config.model.generator
  g.ngf, g.n_blocks, g.n_downsample_G, g.norm = 8, 1, 2, 'instance'
  d = config.model.discriminator
  d.ndf, d.n_layers_D, d.num_D, d.n_scales_temporal = 8, 2, 1, 1
  config.loss.use_vgg = False
  config.train.max_frames_per_gpu = 2
  config.train.num_steps = 2
  config.train.log_every_steps = 1
  config.train.checkpoint_every_steps = 2
  config.eval.metrics = ('psnr', 'ssim', 'warp_error')
  config.eval.chunk_frames = 4
  return config


def _check_eval(report, out, size_hw, test_frames, n_frames_g):
  (name, seq), = report['sequences'].items()
  assert seq['num_frames'] == test_frames - (n_frames_g - 1)
  assert np.isfinite(report['mean']['psnr'])
  assert {'freeze_first', 'copy_previous'} <= set(report['baselines'])
  assert video_io.read_video(out / f'{name}.mp4').shape == (seq['num_frames'], *size_hw, 3)
  assert (out / 'metrics.png').exists() and (out / f'{name}_side_by_side.mp4').exists()


@pytest.fixture(scope='module')
def edges_root(tmp_path_factory):
  videos = tmp_path_factory.mktemp('edge_videos')
  video_io.write_video(videos / 'coffee.mp4', _moving_photo(skimage_data.coffee(), 96, 0), fps=10)
  root = tmp_path_factory.mktemp('edges') / 'data'
  assert prepare.main(['--input', str(videos), '--conditioning', 'edges', '--out', str(root),
                       '--size', '64x64', '--min_frames', '4', '--test_fraction', '0.3',
                       '--canny_low', '50', '--canny_high', '120']) == 0
  return root


def test_edges_footage_trains_and_evaluates(edges_root, tmp_path):
  config = _shrink(edges_256.get_config(), edges_root, 64)
  train_lib.train_and_evaluate(config, tmp_path)
  records = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records if 'g/total' in r] == [1, 2]
  assert all(np.isfinite(r['g/flow']) for r in records if 'g/flow' in r)  # DIS flows are used
  report = inference.evaluate(config, tmp_path)
  _check_eval(report, tmp_path / 'eval', (64, 64), 6, config.model.generator.n_frames_G)


def test_face_footage_trains_and_evaluates(tmp_path_factory, tmp_path):
  pytest.importorskip('dlib', reason="face landmarks need the 'prepare' extra")
  videos = tmp_path_factory.mktemp('face_videos')
  video_io.write_video(videos / 'astronaut.mp4',
                       _moving_photo(skimage_data.astronaut(), 256, 1), fps=10)
  root = tmp_path_factory.mktemp('face') / 'data'
  assert prepare.main(['--input', str(videos), '--conditioning', 'face', '--out', str(root),
                       '--size', '256x256', '--min_frames', '4', '--test_fraction', '0.3',
                       '--smooth', '3']) == 0
  manifest = json.loads((root / 'prepare.json').read_text())
  assert manifest['videos']['astronaut']['faces_found'] >= 0.9 * FRAMES
  config = _shrink(face_g1_256.get_config(), root, 64)
  config.flow.source = 'dataset'
  train_lib.train_and_evaluate(config, tmp_path)
  report = inference.evaluate(config, tmp_path)
  _check_eval(report, tmp_path / 'eval', (64, 64), 6, config.model.generator.n_frames_G)


def test_imported_label_nc0_checkpoint_evaluates_on_prepared_edges(vid2vid_fixtures, edges_root,
                                                                    tmp_path):
  case = vid2vid_fixtures / 'gen_edges_input_nc'
  for name in ('opt.txt', 'latest_net_G0.pth'):
    shutil.copy(case / name, tmp_path / name)
  config, variables = original_checkpoint.import_checkpoint_dir(tmp_path)
  assert config.data.layout == 'video' and config.data.input_nc == 3
  path = checkpoint.save_variables(tmp_path / 'imported', variables, config)
  config.data.root = str(edges_root)
  config.data.load_size = config.data.fine_size = 64
  config.eval.checkpoint = str(path)
  config.eval.metrics = ('psnr', 'ssim')
  config.eval.results_dir = str(tmp_path / 'eval')
  config.loss.use_vgg = False
  config.flow.source = 'none'
  report = inference.evaluate(config, tmp_path / 'unused_workdir')
  (name, seq), = report['sequences'].items()
  frames = sorted((tmp_path / 'eval' / name / 'frames').glob('*.png'))
  assert len(frames) == seq['num_frames'] == 6 - (config.model.generator.n_frames_G - 1)
  assert all(np.isfinite(f['psnr']) for f in seq['frames'])
