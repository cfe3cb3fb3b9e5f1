"""resize_or_crop params, flow transforms and clip sampling."""

import numpy as np
from PIL import Image
import pytest

from input_pipeline import sampling
from input_pipeline import transforms


@pytest.mark.parametrize('mode,expected_size', [
    ('scaleWidth', (512, 256)), ('scaleWidth_and_crop', (256, 256)), ('crop', (256, 256)),
    ('scaledCrop', (512, 256)),  # no resize; crop fine in height, fine*w//h in width
    ('resize', (512, 512)), ('none', (2048, 1024)),
    ('scaleHeight', (1024, 512))])
def test_output_sizes(mode, expected_size):
  rng = np.random.default_rng(0)
  params = transforms.get_params(rng, mode, 512, 256, 2048, 1024, flip=True)
  assert params.out_size == expected_size


def test_random_scale_height_and_pose_centre_crop():
  rng = np.random.default_rng(1)
  for _ in range(20):
    params = transforms.get_params(rng, 'randomScaleHeight_and_scaledCrop', 384, 256, 1920, 1080,
                                   flip=False, pose_centre_crop=True)
    w, h = params.resize
    assert 256 <= h <= 388 and h % 4 == 0 and w % 4 == 0
    assert params.out_size[1] == 256 and params.out_size[0] % 64 == 0
    assert not params.flip


def test_crop_offsets_biased_to_top():
  rng = np.random.default_rng(2)
  ys = [transforms.get_params(rng, 'scaleWidth_and_crop', 1024, 256, 2048, 1024,
                              flip=False).crop[1] for _ in range(50)]
  assert max(ys) <= 512 // 8


def test_flow_follows_resize_crop_and_flip():
  flow = np.zeros((32, 64, 2), np.float32)
  flow[..., 0], flow[..., 1] = 2.0, 1.0
  valid = np.ones((32, 64), np.float32)
  params = transforms.SpatialParams(resize=(128, 64), crop=(8, 4, 64, 32), flip=True)
  out, conf = transforms.apply_flow(flow, valid, params)
  assert out.shape == (32, 64, 2)
  np.testing.assert_allclose(out[..., 0], -4.0)
  np.testing.assert_allclose(out[..., 1], 2.0)
  # targets left of or below the frame are invalid
  assert not conf[:, :4].any() and not conf[-2:].any() and conf[:-2, 4:].all()


def test_compose_backward_integer_flows():
  a = np.zeros((8, 8, 2), np.float32)
  a[..., 0] = 1
  b = np.zeros((8, 8, 2), np.float32)
  b[..., 1] = -1
  valid = np.ones((8, 8), np.float32)
  flow, conf = transforms.compose_backward(a, valid, b, valid)
  np.testing.assert_allclose(flow[..., 0], 1)
  np.testing.assert_allclose(flow[..., 1], -1)
  assert conf[:, :7].all() and not conf[:, 7].any()  # x + 1 leaves the frame


def test_clip_length_follows_the_original():
  # street 512: n_frames_total 6, tG 3, 2 frames per step -> 6 generated + 2 context frames
  assert sampling.clip_length(6, 3, 2, 30) == 8
  assert sampling.clip_length(30, 3, 1, 30) == 30  # capped by the video: 28 + 2
  assert sampling.clip_length(5, 3, 2, 30) == 6  # 2 loadings of 2
  with pytest.raises(ValueError):
    sampling.clip_length(6, 3, 1, 2)


def test_sampler_is_a_function_of_position():
  sampler = sampling.Sampler(seq_lengths=(10, 20, 30), clip_len=4, max_t_step=3, seed=7)
  clips = [sampler.clip(p) for p in range(9)]
  assert sorted(c.seq_index for c in clips[:3]) == [0, 1, 2]  # an epoch visits every video
  for clip in clips:
    n = sampler.seq_lengths[clip.seq_index]
    steps = set(np.diff(clip.frame_ids).tolist())
    assert len(steps) == 1 and 1 <= steps.pop() <= min(3, (n - 1) // 3)
    assert clip.frame_ids[-1] < n
  again = sampling.Sampler(seq_lengths=(10, 20, 30), clip_len=4, max_t_step=3, seed=7)
  assert again.clip(5) == clips[5]


def test_nearest_matches_pil_bit_for_bit():
  rng = np.random.default_rng(0)
  for _ in range(20):
    (sh, sw), (dh, dw) = rng.integers(5, 300, 2), rng.integers(5, 400, 2)
    image = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(image).resize((int(dw), int(dh)), Image.NEAREST))
    np.testing.assert_array_equal(transforms.resize_nearest(image, (dw, dh)), expected)


def test_draws_follow_the_original_order_even_when_unused():
  class Recorder:
    def __init__(self):
      self.calls = []

    def integers(self, low, high):
      self.calls.append('integers')
      return low

    def standard_normal(self):
      self.calls.append('standard_normal')
      return 0.0

    def random(self):
      self.calls.append('random')
      return 0.9

  recorder = Recorder()
  params = transforms.get_params(recorder, 'randomScaleHeight_and_scaledCrop', 384, 256, 512, 256,
                                 flip=False, pose_centre_crop=True)
  assert recorder.calls == ['integers', 'standard_normal', 'integers', 'random']
  assert not params.flip  # the coin is drawn, but flips are off
  recorder = Recorder()
  transforms.get_params(recorder, 'scaleWidth', 256, 256, 210, 210, flip=True)
  assert recorder.calls == ['random']
