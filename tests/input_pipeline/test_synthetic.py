"""Synthetic datasets: layouts, value conventions and exact ground-truth flows."""

import json

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from input_pipeline import layouts
from input_pipeline import synthetic_scenes
from vid2vid_jax import warp as warp_lib

IMAGE_FOLDER = {'street': 'train_B', 'face': 'train_img', 'pose': 'train_img'}
# Mean |error| (images in [-1, 1]) of warping frame t-1 onto t on valid pixels. Street motions
# are whole pixels (exact); face/pose move sub-pixel (bilinear resampling error, JPEG for face).
MAX_WARP_ERROR = {'street': 1e-6, 'face': 0.02, 'pose': 0.01}


def _image(path):
  return cv2.imread(str(path))[..., ::-1].astype(np.float32) / 127.5 - 1


@pytest.mark.parametrize('domain', ['street', 'face', 'pose'])
def test_flows_warp_previous_frame_onto_current(datasets, domain):
  root = datasets[domain]
  frames = sorted((root / IMAGE_FOLDER[domain] / 'seq_0000').iterdir())
  for t in range(1, len(frames)):
    prev, cur = _image(frames[t - 1]), _image(frames[t])
    with np.load(root / 'train_flow' / 'seq_0000' / (frames[t].stem + '.npz')) as f:
      backward, valid = f['backward'], f['backward_valid'].astype(bool)
      forward, fvalid = f['forward'], f['forward_valid'].astype(bool)
    assert backward.shape == prev.shape[:2] + (2,) and backward.dtype == np.float32
    assert 0.5 < valid.mean() < 1.0  # occlusions and borders exist, but most pixels are valid
    warped = np.asarray(warp_lib.warp(jnp.asarray(prev[None]), jnp.asarray(backward[None])))[0]
    error = np.abs(warped - cur).mean(-1)
    assert error[valid].mean() <= MAX_WARP_ERROR[domain]
    assert error[valid].mean() < 0.5 * np.abs(prev - cur).mean()  # the flow explains motion
    back = np.asarray(warp_lib.warp(jnp.asarray(cur[None]), jnp.asarray(forward[None])))[0]
    assert np.abs(back - prev).mean(-1)[fvalid].mean() <= MAX_WARP_ERROR[domain]


def test_street_labels_and_instances(datasets):
  root = datasets['street']
  label = layouts.read_map(str(root / 'train_A/seq_0000/seq_0000_000003.png'))
  inst = layouts.read_map(str(root / 'train_inst/seq_0000/seq_0000_000003.png'))
  assert label.dtype == np.uint8 and inst.dtype == np.uint16
  assert label.max() <= 33
  assert {synthetic_scenes.ROAD, synthetic_scenes.SKY, synthetic_scenes.BUILDING} <= set(
      np.unique(label).tolist())
  things = inst >= 1000
  np.testing.assert_array_equal(inst[things] // 1000, label[things])  # id*1000 + k
  np.testing.assert_array_equal(inst[~things], label[~things])
  assert set(np.unique(label[things]).tolist()) <= {synthetic_scenes.PERSON, synthetic_scenes.CAR}


def test_face_keypoints_follow_ibug_order(datasets):
  root = datasets['face']
  points = layouts.read_face_keypoints(str(root / 'train_keypoints/seq_0000/seq_0000_000000.txt'))
  assert points.shape == (68, 2)
  assert points[0, 0] < points[8, 0] < points[16, 0]  # jaw from image-left over the chin
  assert points[8, 1] == points[:17, 1].max()  # chin lowest
  assert points[17:27, 1].max() < points[36:48, 1].min()  # brows above eyes
  assert points[36:42, 0].mean() < points[42:48, 0].mean()  # right eye on the image left
  assert points[48:68, 1].min() > points[27:36, 1].mean()  # mouth below the nose


def test_pose_openpose_and_densepose(datasets):
  root = datasets['pose']
  people = layouts.read_openpose(
      str(root / 'train_openpose/seq_0000/seq_0000_000000_keypoints.json'))
  assert len(people) == 1
  body = people[0]['body']
  assert body.shape == (25, 3) and people[0]['face'].shape == (70, 3)
  assert people[0]['hand_left'].shape == (21, 3)
  assert body[1, 1] < body[8, 1] < body[11, 1]  # neck above mid-hip above ankle
  iuv = layouts.read_image(str(root / 'train_densepose/seq_0000/seq_0000_000000_IUV.png'))
  parts = set(np.unique(iuv[..., 2]).tolist())
  assert parts <= set(range(25)) and {2, 23, 24} <= parts
  raw = json.loads((root / 'train_openpose/seq_0000/seq_0000_000000_keypoints.json').read_text())
  assert len(raw['people'][0]['pose_keypoints_2d']) == 75
