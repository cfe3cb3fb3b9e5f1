"""Video/PNG writers round-trip, are atomic, and renderings have the right shapes and colours."""

import os

import numpy as np
import pytest

from vid2vid_jax import video_io


def test_write_video_roundtrip(tmp_path):
  t = np.linspace(0, 1, 6)[:, None, None, None]
  frames = (np.broadcast_to(t, (6, 32, 48, 3)) * 255).astype(np.uint8)
  path = tmp_path / 'out' / 'video.mp4'
  assert video_io.write_video(path, iter(frames), fps=5) == 6
  back = video_io.read_video(path)
  assert back.shape == (6, 32, 48, 3)
  assert np.abs(back.astype(int) - frames.astype(int)).mean() < 4  # lossy codec
  assert [p.name for p in path.parent.iterdir()] == ['video.mp4']  # no temp files left


def test_write_video_odd_size_and_failure_leaves_nothing(tmp_path):
  frames = np.zeros((2, 31, 45, 3), np.uint8)
  assert video_io.write_video(tmp_path / 'odd.mp4', frames, fps=2) == 2
  assert video_io.read_video(tmp_path / 'odd.mp4').shape[1:3] == (32, 46)

  def broken():
    yield np.zeros((8, 8, 3), np.uint8)
    raise RuntimeError('renderer crashed')

  with pytest.raises(RuntimeError):
    video_io.write_video(tmp_path / 'broken.mp4', broken(), fps=2)
  assert not (tmp_path / 'broken.mp4').exists()
  assert sorted(os.listdir(tmp_path)) == ['odd.mp4']


def test_png_roundtrip(tmp_path):
  image = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
  video_io.write_png(tmp_path / 'a' / 'f.png', image)
  import imageio.v2 as imageio
  np.testing.assert_array_equal(imageio.imread(tmp_path / 'a' / 'f.png'), image)


def test_colorize_labels_and_edges():
  cond = np.zeros((2, 3, 36), np.float32)
  cond[0, :, 7] = 1  # road
  cond[1, :, 26] = 1  # car
  cond[1, 2, 35] = 1  # instance edge
  rgb = video_io.colorize_cond(cond, label_nc=35)
  assert tuple(rgb[0, 0]) == (128, 64, 128)
  assert tuple(rgb[1, 0]) == (0, 0, 142)
  assert tuple(rgb[1, 2]) == (255, 255, 255)


def test_colorize_continuous_and_helpers():
  face = np.zeros((4, 4, 15), np.float32)
  face[..., 0] = 1.0
  assert video_io.colorize_cond(face, 0).shape == (4, 4, 3)
  assert video_io.colorize_cond(face, 0)[0, 0, 0] == 255
  pose = -np.ones((4, 4, 6), np.float32)
  assert video_io.colorize_cond(pose, 0).max() == 0
  assert video_io.to_uint8(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
  palette = video_io.label_palette(12)
  assert palette.shape == (12, 3) and len({tuple(c) for c in palette}) == 12
  flow = np.zeros((3, 3, 2), np.float32)
  flow[1, 1] = (2.0, 0.0)
  rgb = video_io.flow_to_rgb(flow)
  assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[1, 1]) != (255, 255, 255)
  with pytest.raises(ValueError, match='one height'):
    video_io.side_by_side([np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2, 3), np.uint8)])


def test_side_by_side_captions_and_upscale():
  panels = [np.full((40, 96, 3), v, np.uint8) for v in (30, 60, 90)]
  plain = video_io.side_by_side(panels)
  assert plain.shape == (40, 288, 3)
  captioned = video_io.side_by_side(panels, ['conditioning', 'ours', 'ground truth'])
  strip = captioned.shape[0] - 40
  assert strip == 10 and captioned.shape[1] == 288
  np.testing.assert_array_equal(captioned[strip:], plain)  # panels unchanged under the strip
  texts = [captioned[:strip, 96 * k:96 * (k + 1)].astype(int) for k in range(3)]
  assert all(t.max() > 150 for t in texts)  # white text drawn
  assert np.abs(texts[0] - texts[1]).sum() > 0 and np.abs(texts[1] - texts[2]).sum() > 0
  with pytest.raises(ValueError, match='captions'):
    video_io.side_by_side(panels, ['a'])
  small = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
  big = video_io.upscale(small, 5)
  assert big.shape == (6, 6, 3) and (big[:3, :3] == small[0, 0]).all()
  assert video_io.upscale(small, 2) is small
