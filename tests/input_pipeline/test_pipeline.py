"""create_dataset / iterate_test_sequences on the synthetic street, face and pose sets."""

import jax.numpy as jnp
import numpy as np
import pytest

import input_pipeline
from input_pipeline import validate
from vid2vid_jax import config_lib
from vid2vid_jax import warp as warp_lib

COND_CHANNELS = {'street': 36, 'face': 15, 'pose': 6}
COND_RANGE = {'street': (0, 1), 'face': (0, 1), 'pose': (-1, 1)}


def _dataset(config, **kwargs):
  kwargs.setdefault('process_index', 0)
  kwargs.setdefault('process_count', 1)
  return input_pipeline.create_dataset(config, **kwargs)


def _warp_error(batch):
  image, flow, conf = batch['image'], batch['flow_gt'], batch['conf_gt'][..., 0] > 0
  errors = []
  for t in range(1, image.shape[1]):
    warped = np.asarray(warp_lib.warp(jnp.asarray(image[:, t - 1]), jnp.asarray(flow[:, t])))
    errors.append(np.abs(warped - image[:, t]).mean(-1)[conf[:, t]].mean())
  return max(errors), np.abs(np.diff(image, axis=1)).mean()


@pytest.mark.parametrize('layout', ['street', 'face', 'pose'])
def test_batches(datasets, make_config, layout):
  assert validate.find_problems(str(datasets[layout]), layout) == []
  config = make_config(layout, datasets[layout])
  ds = _dataset(config)
  batch = next(ds)
  b, t = config.data.batch_size, ds.clip_length
  assert t == config.data.n_frames_total  # videos of 6 frames cap the clip: 4 generated + 2 context
  cond, image = batch['cond'], batch['image']
  h, w = image.shape[2:4]
  assert cond.shape == (b, t, h, w, COND_CHANNELS[layout]) and cond.dtype == np.float32
  assert image.shape == (b, t, h, w, 3) and image.dtype == np.float32
  assert -1 <= image.min() and image.max() <= 1 and image.max() - image.min() > 1
  low, high = COND_RANGE[layout]
  assert low <= cond.min() and cond.max() <= high
  assert batch['flow_gt'].shape == (b, t, h, w, 2) and batch['conf_gt'].shape == (b, t, h, w, 1)
  assert not batch['flow_gt'][:, 0].any() and not batch['conf_gt'][:, 0].any()
  assert batch['meta']['seq_index'].shape == (b,)
  assert batch['meta']['frame_index'].shape == (b, t)
  error, motion = _warp_error(batch)
  assert error < 0.05 and error < 0.5 * motion
  if layout == 'street':
    np.testing.assert_array_equal(cond[..., :35].sum(-1), 1.0)  # one-hot
    assert batch['label'].dtype == np.int32 and batch['label'].shape == (b, t, h, w)
    np.testing.assert_array_equal(np.argmax(cond[..., :35], -1), batch['label'])
    edges = cond[..., 35]
    assert set(np.unique(edges).tolist()) == {0.0, 1.0}
    inst = batch['inst']
    assert ((inst[..., 1:] != inst[..., :-1]) <= (edges[..., 1:] > 0)).all()
  if layout == 'face':
    assert batch['inst'].max() <= 6
    assert (cond[..., 0] > 0).mean() > 0.01  # drawn edges


def test_street_crop_flip_keeps_flows_consistent(datasets, make_config):
  config = make_config('street', datasets['street'], resize_or_crop='scaleWidth_and_crop',
                       load_size=96, fine_size=64)
  ds = _dataset(config)
  for _ in range(4):  # flips with p=0.5: a few batches cover both
    batch = next(ds)
    assert batch['image'].shape[2:4] == (32, 64) or batch['image'].shape[2:4] == (64, 64)
    error, motion = _warp_error(batch)
    assert error < 0.03 and error < 0.3 * motion


def test_deterministic_and_resumable(datasets, make_config):
  config = make_config('street', datasets['street'], max_t_step=2)
  first = _dataset(config, seed=3)
  batches = [next(first) for _ in range(3)]
  state = first.get_state()
  following = next(first)
  resumed = _dataset(config, seed=3)
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)['image'], following['image'])
  again = _dataset(config, seed=3)
  np.testing.assert_array_equal(next(again)['cond'], batches[0]['cond'])
  other = _dataset(config, seed=4)
  orders = [next(other)['meta']['seq_index'].tolist() for _ in range(3)]
  assert orders != [b['meta']['seq_index'].tolist() for b in batches] or not np.array_equal(
      next(_dataset(config, seed=4))['image'], batches[0]['image'])


def test_hosts_get_disjoint_shards(datasets, make_config):
  config = make_config('street', datasets['street'], shuffle=False)
  hosts = [next(_dataset(config, process_index=i, process_count=2)) for i in range(2)]
  assert all(h['image'].shape[0] == 1 for h in hosts)
  assert [h['meta']['seq_index'][0] for h in hosts] == [0, 1]


def test_sequence_sampling_with_stride(datasets, make_config):
  config = make_config('pose', datasets['pose'], max_t_step=4, n_frames_total=1)
  config.train.max_frames_per_gpu = 1
  ds = _dataset(config)
  strides = set()
  for _ in range(6):
    frames = next(ds)['meta']['frame_index']
    assert frames.shape[1] == 3
    strides |= set(np.diff(frames, axis=1).ravel().tolist())
  assert strides <= {1, 2} and len(strides) == 2  # max_step = (6 - 1) // 2


@pytest.mark.parametrize('option,channels', [
    ({'face.no_dist_map': True}, 1), ({'face.no_canny_edge': True}, 15)])
def test_face_options(datasets, make_config, option, channels):
  batch = next(_dataset(make_config('face', datasets['face'], **option)))
  assert batch['cond'].shape[-1] == channels


@pytest.mark.parametrize('option,channels', [
    ({'pose.densepose_only': True}, 3), ({'pose.openpose_only': True}, 3),
    ({'pose.basic_point_only': True, 'pose.remove_face_labels': True,
      'pose.random_drop_prob': 0.0}, 6)])
def test_pose_options(datasets, make_config, option, channels):
  batch = next(_dataset(make_config('pose', datasets['pose'], **option)))
  cond = batch['cond']
  assert cond.shape[-1] == channels
  if option.get('pose.remove_face_labels'):
    part = np.round((cond[..., 2] + 1) * 12)
    assert part.max() <= 22 and part.max() >= 15  # body parts kept, head parts 23/24 gone


def test_test_sequences_stream_frames(datasets, make_config):
  config = make_config('street', datasets['street'])
  videos = list(input_pipeline.iterate_test_sequences(config))
  assert [name for name, _ in videos] == ['seq_0000']
  frames = list(videos[0][1])
  assert len(frames) == 6
  assert frames[0]['cond'].shape == (32, 64, 36) and frames[0]['image'].shape == (32, 64, 3)
  assert not frames[0]['conf_gt'].any() and frames[1]['conf_gt'].mean() > 0.5
  test_batch = next(_dataset(config, split='test'))
  np.testing.assert_allclose(test_batch['cond'][0, 1], frames[1]['cond'])


@pytest.mark.parametrize('mode', config_lib.RESIZE_OR_CROP)
def test_every_resize_mode_validates_and_loads(datasets, make_config, mode):
  """validate_config and the pipeline accept the same resize_or_crop modes."""
  config = make_config('street', datasets['street'], resize_or_crop=mode, load_size=128,
                       fine_size=64)
  config_lib.validate_config(config)
  batch = next(iter(_dataset(config)))
  height, width = batch['cond'].shape[2:4]
  assert height % 4 == 0 and width % 4 == 0 and batch['image'].shape[2:4] == (height, width)
  error, change = _warp_error(batch)
  assert error < 0.5 * change, (error, change)  # the flows follow every mode's resize and crop


def test_video_layout_reads_images_as_conditioning(datasets, make_config, tmp_path):
  """data.layout 'video' (label_nc 0): A holds images, scaled to [-1, 1] in input_nc channels."""
  import shutil  # pylint: disable=g-import-not-at-top
  root = tmp_path / 'video'
  shutil.copytree(datasets['street'] / 'train_B', root / 'train_B')
  shutil.copytree(datasets['street'] / 'train_B', root / 'train_A')  # frames -> frames
  assert validate.find_problems(str(root), 'video', label_nc=0) == []
  for input_nc in (1, 3):
    config = make_config('video', root, label_nc=0, input_nc=input_nc, use_instance=False,
                         flow_dir='')
    config.flow.source = 'none'
    config_lib.validate_config(config)
    batch = next(iter(_dataset(config)))
    assert batch['cond'].shape[-1] == input_nc and 'label' not in batch
    np.testing.assert_allclose(batch['cond'][..., :1], batch['image'][..., :1], atol=1e-6)
