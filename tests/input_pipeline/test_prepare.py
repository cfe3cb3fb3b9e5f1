"""input_pipeline.prepare: real photos panned into short videos -> the original's layouts."""

import json
import os
import pathlib

import numpy as np
import pytest
from skimage import data as skimage_data

from input_pipeline import footage
from input_pipeline import layouts
from input_pipeline import prepare
from input_pipeline import validate
from vid2vid_jax import video_io

SOURCE_W, SOURCE_H = 96, 64  # the videos' frame size
OUT = (64, 48)  # --size: scaled by 0.75 to 72x48, then 4 px cropped off each side


def pan_frames(photo: np.ndarray, frames: int, step: tuple[int, int]) -> list[np.ndarray]:
  """A SOURCE_WxSOURCE_H window sliding over ``photo`` by ``step`` (dx, dy) px per frame: the
  content moves by -step, so the backward flow (t -> t-1) is +step everywhere."""
  return [photo[40 + t * step[1]:40 + t * step[1] + SOURCE_H,
                60 + t * step[0]:60 + t * step[0] + SOURCE_W] for t in range(frames)]


@pytest.fixture(scope='module')
def videos(tmp_path_factory) -> pathlib.Path:
  folder = tmp_path_factory.mktemp('videos')
  video_io.write_video(folder / 'pan_right.mp4', pan_frames(skimage_data.astronaut(), 20, (2, 0)),
                       fps=10)
  video_io.write_video(folder / 'pan_down.mp4', pan_frames(skimage_data.coffee(), 20, (0, 2)),
                       fps=10)
  return folder


def run(*argv: str) -> int:
  return prepare.main([*argv])


def edges_args(videos, out, *extra) -> list[str]:
  return ['--input', str(videos), '--conditioning', 'edges', '--out', str(out),
          '--size', f'{OUT[0]}x{OUT[1]}', '--min_frames', '4', '--test_fraction', '0.25', *extra]


def test_edges_writes_the_video_layout_with_flows(videos, tmp_path, capsys):
  out = tmp_path / 'edges'
  assert run(*edges_args(videos, out)) == 0
  assert 'video dataset OK' in capsys.readouterr().out
  assert validate.find_problems(str(out), 'video', label_nc=0) == []
  for name, motion in (('pan_right', (1.5, 0.0)), ('pan_down', (0.0, 1.5))):  # 2 px x 0.75
    for phase, count in (('train', 15), ('test', 5)):
      a = sorted((out / f'{phase}_A' / name).iterdir())
      b = sorted((out / f'{phase}_B' / name).iterdir())
      flows = sorted((out / f'{phase}_flow' / name).iterdir())
      assert len(a) == len(b) == count and len(flows) == count - 1
      assert [p.stem for p in flows] == [p.stem for p in b[1:]]  # frame 0 of a video has none
      edge = layouts.read_image(str(a[3]))
      assert edge.shape == (OUT[1], OUT[0], 3) and set(np.unique(edge)) == {0, 255}
      assert 0.005 < (edge[..., 0] > 0).mean() < 0.5
      assert layouts.read_image(str(b[3])).shape == (OUT[1], OUT[0], 3)
      flow, valid = layouts.read_flow(str(flows[2]))
      inner = valid[4:-4, 4:-4] > 0
      assert inner.mean() > 0.7
      median = np.median(flow[4:-4, 4:-4][inner], axis=0)
      np.testing.assert_allclose(median, motion, atol=0.25)
  manifest = json.loads((out / 'prepare.json').read_text())
  assert manifest['videos']['pan_right']['train'] == {'pan_right': 15}
  assert not (out / prepare.STAGING).exists()


def test_footage_fit_covers_and_crops_the_centre():
  frame = np.zeros((64, 96, 3), np.uint8)
  frame[:, 48:] = 255  # right half white
  fitted = footage.fit(frame, OUT)
  assert fitted.shape == (48, 64, 3)
  scale, scaled, offset = footage.fit_geometry(96, 64, OUT)
  assert (scale, scaled, offset) == (0.75, (72, 48), (4, 0))
  # the edge at x = 48 lands at 48 * 0.75 - 4 = 32
  assert fitted[:, :31].max() < 10 and fitted[:, 33:].min() > 245


def test_test_videos_fps_and_frame_folders(videos, tmp_path):
  frames_dir = tmp_path / 'input' / 'still'
  frames_dir.mkdir(parents=True)
  for t, frame in enumerate(pan_frames(skimage_data.chelsea(), 8, (1, 1))):
    video_io.write_png(frames_dir / f'f{t:03d}.png', frame)
  os.symlink(videos / 'pan_right.mp4', tmp_path / 'input' / 'pan_right.mp4')
  out = tmp_path / 'out'
  assert run('--input', str(tmp_path / 'input'), '--conditioning', 'edges', '--out', str(out),
             '--size', '64x48', '--min_frames', '4', '--test_videos', 'still', '--fps', '5',
             '--flow', 'none') == 0
  assert len(list((out / 'test_B' / 'still').iterdir())) == 8  # a frame folder keeps every frame
  assert len(list((out / 'train_B' / 'pan_right').iterdir())) == 10  # 20 frames at 10 -> 5 fps
  assert not (out / 'test_B' / 'pan_right').exists() and not (out / 'train_flow').exists()


def test_resumes_after_an_interruption_without_half_videos(videos, tmp_path, capsys):
  out = tmp_path / 'edges'
  calls = {'frames': 0}

  class Interrupting:
    """A progress bar that stops the run in the middle of the second video."""

    def __init__(self, iterable=None, total=None, **kw):
      del total, kw
      self.iterable = iterable

    def __iter__(self):
      return iter(self.iterable)

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      return False

    def update(self, n):
      calls['frames'] += n
      if calls['frames'] == 25:
        raise KeyboardInterrupt

  args = prepare.parse_args(edges_args(videos, out))
  with pytest.raises(KeyboardInterrupt):
    prepare.run(args, progress=Interrupting)
  assert sorted(p.name for p in (out / 'train_B').iterdir()) == ['pan_down']
  first = (out / 'train_B' / 'pan_down' / '00000.png').stat().st_mtime_ns
  # A crash between two renames of the second video leaves one of its folders in place.
  (out / 'test_A' / 'pan_right').mkdir(parents=True)
  (out / 'test_A' / 'pan_right' / 'junk.png').write_bytes(b'half')
  assert run(*edges_args(videos, out)) == 0
  assert '1 of 2 videos already prepared' in capsys.readouterr().err
  assert (out / 'train_B' / 'pan_down' / '00000.png').stat().st_mtime_ns == first
  assert len(list((out / 'test_A' / 'pan_right').iterdir())) == 5
  assert validate.find_problems(str(out), 'video', label_nc=0) == []


@pytest.mark.parametrize('case', ['corrupt_video', 'bad_size', 'changed_options', 'foreign_out',
                                  'unknown_test_video', 'pose_without_keypoints', 'no_videos',
                                  'keypoint_count'])
def test_bad_input_is_one_line_and_exit_2(videos, tmp_path, capsys, case):
  out = tmp_path / 'out'
  args = edges_args(videos, out)
  expected = ''
  if case == 'corrupt_video':
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'broken.mp4').write_bytes(os.urandom(3000))
    args = edges_args(bad, out)
    expected = 'broken.mp4: cannot decode'
  elif case == 'bad_size':
    args[args.index('--size') + 1] = '64by48'
    expected = '--size: expected WxH'
  elif case == 'changed_options':
    assert run(*args) == 0
    capsys.readouterr()
    args[args.index('--size') + 1] = '128x96'
    expected = 'prepared with --size [64, 48]'
  elif case == 'foreign_out':
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    expected = 'not empty and not a prepare output'
  elif case == 'unknown_test_video':
    args = edges_args(videos, out)[:-2] + ['--test_videos', 'nope']
    expected = "--test_videos: no video named 'nope'"
  elif case == 'pose_without_keypoints':
    args[args.index('--conditioning') + 1] = 'pose'
    expected = '--keypoints: pose needs'
  elif case == 'no_videos':
    (tmp_path / 'empty').mkdir()
    args = edges_args(tmp_path / 'empty', out)
    expected = 'no videos'
  elif case == 'keypoint_count':
    keypoints = tmp_path / 'kp' / 'pan_right'
    keypoints.mkdir(parents=True)
    for t in range(12):  # the video has 20 frames
      (keypoints / f'{t:05d}_keypoints.json').write_text('{"people": []}')
    single = tmp_path / 'single'
    single.mkdir()
    os.symlink(videos / 'pan_right.mp4', single / 'pan_right.mp4')
    args = edges_args(single, out, '--keypoints', str(tmp_path / 'kp'))
    args[args.index('--conditioning') + 1] = 'pose'
    expected = '12 keypoint files'
  assert run(*args) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('prepare: error: ') and expected in err[0], err
  if out.exists() and case != 'changed_options':
    written = [p.name for p in out.iterdir() if p.name not in ('prepare.json', 'notes.txt')]
    assert written == [], written


def test_pose_keypoints_follow_the_frames(tmp_path):
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  src = synthetic.generate('pose', tmp_path / 'src', sequences=1, frames=10, width=96, height=64,
                           seed=0, test_sequences=0)
  videos = tmp_path / 'videos'
  videos.mkdir()
  frames = sorted((src / 'train_img' / 'seq_0000').iterdir())
  video_io.write_video(videos / 'seq_0000.mp4', [layouts.read_image(str(f)) for f in frames],
                       fps=10)
  out = tmp_path / 'pose'
  assert run('--input', str(videos), '--conditioning', 'pose', '--out', str(out), '--size',
             '64x48', '--keypoints', str(src / 'train_openpose'), '--test_fraction', '0',
             '--min_frames', '4') == 0
  assert validate.find_problems(str(out), 'pose') == []
  written = sorted((out / 'train_openpose' / 'seq_0000').iterdir())
  originals = sorted((src / 'train_openpose' / 'seq_0000').iterdir())
  assert len(written) == len(originals) == 10
  for ours, theirs in zip(written, originals):
    (mine,), (source,) = layouts.read_openpose(str(ours)), layouts.read_openpose(str(theirs))
    seen = source['body'][:, 2] > 0
    assert seen.sum() > 10
    np.testing.assert_allclose(mine['body'][seen, :2], source['body'][seen, :2] * 0.75 - [4, 0],
                               atol=1e-6)


def test_face_gaps_are_filled_or_split_the_video(videos, tmp_path, monkeypatch, capsys):
  """Short runs without a face are filled; a long run splits the video into parts."""
  missing = {3, 8, 9, 10, 11, 12}  # frame 3: filled; 8..12 (5 > --max_gap 2): split
  calls = {'n': 0}
  base = np.array([[20.0 + (i % 17) * 2, 10.0 + i // 4] for i in range(68)])

  def detector(frame):
    del frame
    t = calls['n']
    calls['n'] += 1
    return None if t in missing else base + t

  monkeypatch.setattr(prepare, '_face_detector', lambda: detector)
  single = tmp_path / 'single'
  single.mkdir()
  os.symlink(videos / 'pan_right.mp4', single / 'pan_right.mp4')
  out = tmp_path / 'face'
  assert run('--input', str(single), '--conditioning', 'face', '--out', str(out), '--size',
             '64x48', '--max_gap', '2', '--min_frames', '4', '--test_fraction', '0',
             '--flow', 'none') == 0
  assert 'face in 14, filled 1' in capsys.readouterr().out
  part1 = sorted((out / 'train_keypoints' / 'pan_right_part1').iterdir())
  part2 = sorted((out / 'train_keypoints' / 'pan_right_part2').iterdir())
  assert len(part1) == 8 and len(part2) == 7  # frames 0..7 and 13..19
  assert len(list((out / 'train_img' / 'pan_right_part2').iterdir())) == 7
  filled = layouts.read_face_keypoints(str(part1[3]))
  np.testing.assert_allclose(filled, np.rint(base + 3))  # midway between frames 2 and 4
  np.testing.assert_allclose(layouts.read_face_keypoints(str(part2[0])), base + 13)


def test_a_video_without_any_face_is_one_clear_error(videos, tmp_path, capsys):
  pytest.importorskip('dlib', reason="face landmarks need the 'prepare' extra")
  single = tmp_path / 'single'
  single.mkdir()
  os.symlink(videos / 'pan_down.mp4', single / 'coffee.mp4')  # a cup of coffee: no face
  assert run('--input', str(single), '--conditioning', 'face', '--out', str(tmp_path / 'out'),
             '--size', '64x48', '--min_frames', '4') == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f'prepare: error: {single / "coffee.mp4"}: no face found in any of its 20 frames']


def test_face_without_the_extra_names_it(videos, tmp_path, capsys, monkeypatch):
  import sys  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(sys.modules, 'dlib', None)  # as if `pip install -e '.[prepare]'` was not run
  single = tmp_path / 'single'
  single.mkdir()
  os.symlink(videos / 'pan_right.mp4', single / 'pan_right.mp4')
  assert run('--input', str(single), '--conditioning', 'face', '--out', str(tmp_path / 'out'),
             '--size', '64x48') == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "pip install -e '.[prepare]'" in err[0], err
