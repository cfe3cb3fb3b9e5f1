"""Every dataset fault is reported with its file, by validate and by the pipeline."""

import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

import input_pipeline
from input_pipeline import validate


@pytest.fixture
def copy(datasets, tmp_path):
  def make(domain):
    root = tmp_path / domain
    shutil.copytree(datasets[domain], root)
    return root
  return make


def _only_problem(root, layout, **kwargs):
  problems = validate.find_problems(str(root), layout, **kwargs)
  assert len(problems) == 1, problems
  return problems[0]


def _pipeline_error(make_config, layout, root, **data):
  config = make_config(layout, root, **data)
  with pytest.raises(ValueError) as info:
    ds = input_pipeline.create_dataset(config, process_index=0, process_count=1)
    for _ in range(4):
      next(ds)
  return str(info.value)


def test_missing_folder(copy, make_config):
  root = copy('street')
  shutil.rmtree(root / 'train_inst')
  problem = _only_problem(root, 'street', use_instance=True)
  assert problem.path == str(root / 'train_inst') and 'missing folder' in problem.message
  assert str(root / 'train_inst') in _pipeline_error(make_config, 'street', root)


def test_frame_counts_differ(copy, make_config):
  root = copy('street')
  (root / 'train_B/seq_0001/seq_0001_000003.png').unlink()
  problem = _only_problem(root, 'street')
  assert problem.path == str(root / 'train_B/seq_0001')
  assert '5 frames' in problem.message and 'has 6' in problem.message
  assert str(root / 'train_B/seq_0001') in _pipeline_error(make_config, 'street', root)


def test_label_ids_out_of_range(copy, make_config):
  root = copy('street')
  path = root / 'train_A/seq_0000/seq_0000_000000.png'
  label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  label[0, :4] = 40
  cv2.imwrite(str(path), label)
  problem = _only_problem(root, 'street')
  assert problem.path == str(path)
  assert '[40]' in problem.message and 'label_nc=35' in problem.message
  assert str(path) in _pipeline_error(make_config, 'street', root, shuffle=False)


def test_train_ids_instead_of_label_ids_are_named(copy):
  root = copy('street')
  path = root / 'train_A/seq_0000/seq_0000_000002.png'
  label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  train_ids = np.where(label == 23, 255, label % 19).astype(np.uint8)  # sky -> ignore
  cv2.imwrite(str(path), train_ids)
  problem = _only_problem(root, 'street')
  assert problem.path == str(path) and 'trainIds' in problem.message
  # label_nc=19 with labelIds: the opposite mistake is named too.
  problems = validate.find_problems(str(root), 'street', label_nc=19, phases=['test'])
  assert problems and all('labelIds' in p.message and 'label_nc=35' in p.message
                          for p in problems)


def test_corrupt_image(copy, make_config):
  root = copy('street')
  path = root / 'train_B/seq_0000/seq_0000_000001.png'
  path.write_bytes(path.read_bytes()[:60])
  problem = _only_problem(root, 'street')
  assert problem.path == str(path) and 'corrupt' in problem.message
  message = _pipeline_error(make_config, 'street', root, shuffle=False)
  assert str(path) in message and 'corrupt' in message


def test_size_differs_within_sequence(copy, make_config):
  root = copy('street')
  for stream in ('A', 'B', 'inst'):
    path = root / f'train_{stream}/seq_0001/seq_0001_000004.png'
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(path), cv2.resize(image, (32, 16), interpolation=cv2.INTER_NEAREST))
  problems = validate.find_problems(str(root), 'street', flows=False)
  assert {p.path for p in problems} == {
      str(root / f'train_{s}/seq_0001/seq_0001_000004.png') for s in ('A', 'B', 'inst')}
  assert all('differs from the first frame' in p.message for p in problems)
  message = _pipeline_error(make_config, 'street', root, shuffle=False, flow_dir='')
  assert 'seq_0001_000004.png' in message and 'differs' in message


def test_face_keypoints_wrong_count(copy, make_config):
  root = copy('face')
  path = root / 'train_keypoints/seq_0000/seq_0000_000002.txt'
  path.write_text(''.join(path.read_text().splitlines(keepends=True)[:60]))
  problem = _only_problem(root, 'face')
  assert problem.path == str(path) and 'expected 68 keypoints' in problem.message
  assert str(path) in _pipeline_error(make_config, 'face', root, shuffle=False)


def test_openpose_wrong_count(copy, make_config):
  root = copy('pose')
  path = root / 'train_openpose/seq_0001/seq_0001_000000_keypoints.json'
  path.write_text(path.read_text().replace('"pose_keypoints_2d": [', '"pose_keypoints_2d": [1.0, '))
  problem = _only_problem(root, 'pose')
  assert problem.path == str(path) and '76 values, expected 75' in problem.message
  assert str(path) in _pipeline_error(make_config, 'pose', root, shuffle=False)


def test_cli_exit_status(copy, datasets):
  root = copy('street')
  (root / 'train_B/seq_0001/seq_0001_000003.png').unlink()
  for path, status in ((root, 1), (datasets['street'], 0)):
    cmd = [sys.executable, '-m', 'input_pipeline.validate', '--layout', 'street', str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == status, result.stdout + result.stderr
  assert str(root / 'train_B/seq_0001') in subprocess.run(
      [sys.executable, '-m', 'input_pipeline.validate', '--layout', 'street', str(root)],
      capture_output=True, text=True, timeout=120, check=False).stdout
