"""Keypoint files made elsewhere (OpenPose, COCO-WholeBody) -> OpenPose people -> OpenPose JSON."""

import json
import re

import numpy as np
import pytest

from input_pipeline import keypoints as kp
from input_pipeline import layouts
from input_pipeline import pose_keypoints

# COCO-WholeBody body 0..16 and feet 17..22 (the dataset's keypoint names).
COCO_BODY_NAMES = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
    'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip',
    'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'left_big_toe', 'left_small_toe',
    'left_heel', 'right_big_toe', 'right_small_toe', 'right_heel')
BODY_25_TO_COCO = {
    'Nose': 'nose', 'RShoulder': 'right_shoulder', 'RElbow': 'right_elbow',
    'RWrist': 'right_wrist', 'LShoulder': 'left_shoulder', 'LElbow': 'left_elbow',
    'LWrist': 'left_wrist', 'RHip': 'right_hip', 'RKnee': 'right_knee', 'RAnkle': 'right_ankle',
    'LHip': 'left_hip', 'LKnee': 'left_knee', 'LAnkle': 'left_ankle', 'REye': 'right_eye',
    'LEye': 'left_eye', 'REar': 'right_ear', 'LEar': 'left_ear', 'LBigToe': 'left_big_toe',
    'LSmallToe': 'left_small_toe', 'LHeel': 'left_heel', 'RBigToe': 'right_big_toe',
    'RSmallToe': 'right_small_toe', 'RHeel': 'right_heel'}
FACE, LEFT_HAND, RIGHT_HAND = 23, 91, 112


def _wholebody(shift: float = 0.0) -> np.ndarray:
  """[133, 3] distinct (x, y, score) per point, all scores in (0, 1)."""
  i = np.arange(133, dtype=np.float64)
  return np.stack([10 + 3 * i + 0.25 + shift, 500 - 2 * i + 0.5, 0.3 + 0.005 * i], axis=-1)


def _instance(points: np.ndarray) -> dict:
  """What MMPose's split_instances writes for one person."""
  return {'keypoints': points[:, :2].tolist(), 'keypoint_scores': points[:, 2].tolist(),
          'bbox': [[0.0, 0.0, 100.0, 200.0]], 'bbox_score': 0.9}


def _write(tmp_path, data, name='frame.json') -> str:
  path = tmp_path / name
  path.write_text(data if isinstance(data, str) else json.dumps(data))
  return str(path)


def _read_one(tmp_path, points, min_score=0.0) -> dict:
  people = pose_keypoints.read_people(_write(tmp_path, [_instance(points)]), 'wholebody',
                                      min_score)
  assert len(people) == 1
  return people[0]


def _assert_people_equal(a, b):
  assert len(a) == len(b)
  for pa, pb in zip(a, b):
    assert set(pa) == set(pb) == {'body', 'face', 'hand_left', 'hand_right'}
    for part in pa:
      assert pa[part].dtype == np.float64 and pa[part].shape == pb[part].shape
      np.testing.assert_array_equal(pa[part], pb[part])


# ---------------------------------------------------------------- COCO-WholeBody -> OpenPose


def test_body_25_points_by_name(tmp_path):
  points = _wholebody()
  body = _read_one(tmp_path, points)['body']
  assert body.shape == (kp.NUM_BODY_POINTS, 3)
  for index, name in enumerate(kp.BODY_25_NAMES):
    if name in ('Neck', 'MidHip'):
      continue
    np.testing.assert_array_equal(body[index], points[COCO_BODY_NAMES.index(BODY_25_TO_COCO[name])],
                                  err_msg=name)


def test_neck_and_midhip_are_midpoints_with_min_score(tmp_path):
  points = _wholebody()
  body = _read_one(tmp_path, points)['body']
  names = kp.BODY_25_NAMES
  for target, (a, b) in (('Neck', ('left_shoulder', 'right_shoulder')),
                         ('MidHip', ('left_hip', 'right_hip'))):
    pa, pb = points[COCO_BODY_NAMES.index(a)], points[COCO_BODY_NAMES.index(b)]
    np.testing.assert_allclose(body[names.index(target), :2], (pa[:2] + pb[:2]) / 2)
    assert body[names.index(target), 2] == min(pa[2], pb[2])
  # A missing shoulder (score 0) leaves the neck missing, the hips untouched.
  points[COCO_BODY_NAMES.index('right_shoulder'), 2] = 0.0
  body = _read_one(tmp_path, points)['body']
  np.testing.assert_array_equal(body[names.index('Neck')], 0.0)
  np.testing.assert_array_equal(body[names.index('RShoulder')], 0.0)
  assert body[names.index('MidHip'), 2] > 0


def test_face_points_and_pupils(tmp_path):
  points = _wholebody()
  # A plausible head: the subject's right eye (COCO right_eye) is on the image's left, and the
  # iBUG right-eye contour 36..41 surrounds it.
  right_eye, left_eye = np.array([100.0, 50.0]), np.array([140.0, 50.0])
  points[COCO_BODY_NAMES.index('right_eye'), :2] = right_eye
  points[COCO_BODY_NAMES.index('left_eye'), :2] = left_eye
  ring = np.array([[-6, 0], [-3, -2], [3, -2], [6, 0], [3, 2], [-3, 2]], np.float64)
  points[FACE + 36:FACE + 42, :2] = right_eye + ring
  points[FACE + 42:FACE + 48, :2] = left_eye + ring
  person = _read_one(tmp_path, points)
  face, body = person['face'], person['body']
  assert face.shape == (kp.NUM_OPENPOSE_FACE_POINTS, 3)
  np.testing.assert_array_equal(face[:68], points[FACE:FACE + 68])
  np.testing.assert_allclose(face[68, :2], right_eye)  # OpenPose 68: right pupil
  np.testing.assert_allclose(face[69, :2], left_eye)
  np.testing.assert_allclose(face[68, :2], body[kp.BODY_25_NAMES.index('REye'), :2])
  assert face[68, 2] == points[FACE + 36:FACE + 42, 2].min()
  assert face[69, 2] == points[FACE + 42:FACE + 48, 2].min()
  # One contour point missing -> that pupil is missing.
  points[FACE + 44, 2] = 0.0
  face = _read_one(tmp_path, points)['face']
  np.testing.assert_array_equal(face[69], 0.0)
  np.testing.assert_array_equal(face[44], 0.0)
  assert face[68, 2] > 0


def test_hands(tmp_path):
  points = _wholebody()
  person = _read_one(tmp_path, points)
  np.testing.assert_array_equal(person['hand_left'], points[LEFT_HAND:LEFT_HAND + 21])
  np.testing.assert_array_equal(person['hand_right'], points[RIGHT_HAND:RIGHT_HAND + 21])


def test_min_score_and_non_finite_points(tmp_path):
  points = _wholebody()
  points[COCO_BODY_NAMES.index('nose'), 0] = np.nan
  low = points[:, 2] < 0.5
  person = _read_one(tmp_path, points, min_score=0.5)
  np.testing.assert_array_equal(person['body'][0], 0.0)  # NaN nose
  np.testing.assert_array_equal(person['hand_left'][low[LEFT_HAND:LEFT_HAND + 21]], 0.0)
  np.testing.assert_array_equal(person['face'][:68][low[FACE:FACE + 68]], 0.0)
  np.testing.assert_array_equal(person['hand_right'], points[RIGHT_HAND:RIGHT_HAND + 21])
  # Shoulders (5, 6) are below 0.5: the neck goes with them.
  np.testing.assert_array_equal(person['body'][kp.BODY_25_NAMES.index('Neck')], 0.0)
  for part in person.values():
    kept = part[:, 2] > 0
    assert (part[kept, 2] >= 0.5).all() and (part[~kept] == 0).all()


def _layouts(points: list[np.ndarray]) -> dict:
  """The accepted whole-body layouts of the same people."""
  def flat3(p):
    return {'keypoints': p.reshape(-1).tolist()}
  return {
      'list': [_instance(p) for p in points],
      'instances': {'frame_id': 0, 'instances': [_instance(p) for p in points]},
      'instance_info': {'meta_info': {'dataset_name': 'coco_wholebody'},
                        'instance_info': [_instance(p) for p in points]},
      'rows_xys': [{'keypoints': p.tolist()} for p in points],
      'flat_xys': [flat3(p) for p in points],
      'flat_xy_scores': [{'keypoints': p[:, :2].reshape(-1).tolist(),
                          'keypoint_scores': p[:, 2].tolist()} for p in points],
      # keypoint_scores, when present, win over a third column.
      'rows_xys_and_scores': [{'keypoints': np.concatenate([p[:, :2], p[:, 2:] * 0 + 9], 1)
                               .tolist(), 'keypoint_scores': p[:, 2].tolist()} for p in points],
  }


@pytest.mark.parametrize('layout', list(_layouts([_wholebody()])))
def test_every_wholebody_layout(tmp_path, layout):
  points = [_wholebody(), _wholebody(shift=1000.0)]
  expected = pose_keypoints.read_people(_write(tmp_path, _layouts(points)['list'], 'ref.json'),
                                        'wholebody')
  got = pose_keypoints.read_people(_write(tmp_path, _layouts(points)[layout]), 'wholebody')
  assert len(got) == 2
  _assert_people_equal(got, expected)
  assert got[1]['body'][0, 0] == points[1][0, 0]


@pytest.mark.parametrize('data,fmt', [([], 'wholebody'), ({'instances': []}, 'wholebody'),
                                      ({'instance_info': []}, 'wholebody'),
                                      ({'version': 1.3, 'people': []}, 'openpose')])
def test_no_people_is_valid(tmp_path, data, fmt):
  assert pose_keypoints.read_people(_write(tmp_path, data), fmt) == []


# ---------------------------------------------------------------- OpenPose


def _openpose_person(seed: int, parts=('pose', 'face', 'hand_left', 'hand_right')) -> dict:
  rng = np.random.default_rng(seed)
  person = {'person_id': [-1]}
  for part, count in (('pose', 25), ('face', 70), ('hand_left', 21), ('hand_right', 21)):
    if part in parts:
      points = np.round(np.concatenate([rng.uniform(0, 300, (count, 2)),
                                        rng.uniform(0.05, 1, (count, 1))], 1), 3)
      points[::4] = 0.0  # undetected, as OpenPose writes them
      person[f'{part}_keypoints_2d'] = points.reshape(-1).tolist()
    else:
      person[f'{part}_keypoints_2d'] = []
  return person


def test_openpose_passthrough(tmp_path):
  path = _write(tmp_path, {'version': 1.3, 'people': [
      _openpose_person(0), _openpose_person(1, parts=('pose',))]})
  people = pose_keypoints.read_people(path, 'openpose')
  _assert_people_equal(people, layouts.read_openpose(path))
  np.testing.assert_array_equal(people[1]['face'], 0.0)
  np.testing.assert_array_equal(people[1]['hand_right'], 0.0)


def test_openpose_min_score(tmp_path):
  path = _write(tmp_path, {'people': [_openpose_person(0)]})
  body = pose_keypoints.read_people(path, 'openpose', min_score=0.5)[0]['body']
  raw = layouts.read_openpose(path)[0]['body']
  keep = raw[:, 2] >= 0.5
  np.testing.assert_array_equal(body[keep], raw[keep])
  np.testing.assert_array_equal(body[~keep], 0.0)


# ---------------------------------------------------------------- transform and write


def test_transform_people(tmp_path):
  points = _wholebody()
  points[COCO_BODY_NAMES.index('left_knee'), 2] = 0.0
  people = pose_keypoints.read_people(_write(tmp_path, [_instance(points)]), 'wholebody')
  # A stray zero-confidence point with coordinates is dropped too.
  people[0]['face'][5] = (7.0, 8.0, 0.0)
  before = {part: value.copy() for part, value in people[0].items()}
  moved = pose_keypoints.transform_people(people, 0.5, (3.0, 4.0))
  for part, value in before.items():
    np.testing.assert_array_equal(people[0][part], value)  # input untouched
    out = moved[0][part]
    valid = value[:, 2] > 0
    np.testing.assert_allclose(out[valid, 0], value[valid, 0] * 0.5 - 3.0)
    np.testing.assert_allclose(out[valid, 1], value[valid, 1] * 0.5 - 4.0)
    np.testing.assert_array_equal(out[:, 2], np.where(valid, value[:, 2], 0.0))
    np.testing.assert_array_equal(out[~valid], 0.0)
  assert (moved[0]['body'][kp.BODY_25_NAMES.index('LKnee')] == 0).all()
  assert pose_keypoints.transform_people([], 2.0, (0, 0)) == []


@pytest.mark.parametrize('scale,offset,match', [(0.0, (0, 0), 'scale'),
                                                (float('nan'), (0, 0), 'scale'),
                                                (1.0, (1, 2, 3), 'offset')])
def test_transform_people_rejects_bad_geometry(scale, offset, match):
  people = [{'body': np.zeros((25, 3)), 'face': np.zeros((70, 3)),
             'hand_left': np.zeros((21, 3)), 'hand_right': np.zeros((21, 3))}]
  with pytest.raises(ValueError, match=match):
    pose_keypoints.transform_people(people, scale, offset)


def test_people_structure_is_checked():
  bad = [{'body': np.zeros((18, 3)), 'face': np.zeros((70, 3)),
          'hand_left': np.zeros((21, 3)), 'hand_right': np.zeros((21, 3))}]
  with pytest.raises(ValueError, match=r'person 0 body: expected shape \(25, 3\)'):
    pose_keypoints.to_openpose_json(bad)
  with pytest.raises(ValueError, match='expected the keys'):
    pose_keypoints.transform_people([{'body': np.zeros((25, 3))}], 1.0, (0, 0))


def test_openpose_json_round_trip(tmp_path):
  points = _wholebody()
  points[:, :2] /= 3.0  # values without a short decimal form
  points[FACE + 40, 2] = 0.0
  people = pose_keypoints.read_people(
      _write(tmp_path, [_instance(points), _instance(_wholebody(7.0))]), 'wholebody')
  people = pose_keypoints.transform_people(people, 1 / 3, (0.5, 1.25))
  data = pose_keypoints.to_openpose_json(people)
  assert data['version'] == 1.3 and len(data['people']) == 2
  assert len(data['people'][0]['pose_keypoints_2d']) == 75
  assert len(data['people'][0]['face_keypoints_2d']) == 210
  path = tmp_path / 'out_keypoints.json'
  path.write_text(json.dumps(data))
  _assert_people_equal(layouts.read_openpose(str(path)), people)
  _assert_people_equal(pose_keypoints.read_people(str(path), 'openpose'), people)
  assert pose_keypoints.to_openpose_json([]) == {'version': 1.3, 'people': []}


# ---------------------------------------------------------------- files and errors


def test_list_keypoint_files(tmp_path):
  for name in ('b_000010.json', 'b_000002.json', 'a.JSON', 'notes.txt', '.hidden.json'):
    (tmp_path / name).write_text('[]')
  (tmp_path / 'sub.json').mkdir()
  assert pose_keypoints.list_keypoint_files(str(tmp_path)) == [
      str(tmp_path / n) for n in ('a.JSON', 'b_000002.json', 'b_000010.json')]


def test_list_keypoint_files_errors(tmp_path):
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'frame.txt').write_text('')
  with pytest.raises(ValueError, match='empty: no keypoint .json files'):
    pose_keypoints.list_keypoint_files(str(tmp_path / 'empty'))
  with pytest.raises(ValueError, match='missing: not a folder'):
    pose_keypoints.list_keypoint_files(str(tmp_path / 'missing'))
  (tmp_path / 'unpadded').mkdir()
  for k in (1, 2, 10):
    (tmp_path / 'unpadded' / f'f_{k}.json').write_text('[]')
  with pytest.raises(ValueError, match=r'unpadded: frame numbers are not zero-padded '
                     r'\(f_10.json sorts before f_2.json\)'):
    pose_keypoints.list_keypoint_files(str(tmp_path / 'unpadded'))


def _body17() -> list:
  return [{'keypoints': [[1.0, 2.0]] * 17, 'keypoint_scores': [0.9] * 17}]


def _wb_no_scores() -> list:
  return [{'keypoints': _wholebody()[:, :2].tolist()}]


ERRORS = [
    ('{"people": [', 'openpose', r'cannot read it as JSON'),
    ('not json', 'wholebody', r'cannot read it as JSON'),
    ([], 'mmpose', r"unknown keypoint format 'mmpose', expected one of \('openpose', "
     r"'wholebody'\)"),
    (_body17(), 'wholebody', r'instance 0: expected 133 COCO-WholeBody keypoints per person .* '
     r'got 17 \(COCO body only\)'),
    ([{'keypoints': [[1.0, 2.0, 1.0]] * 25}], 'wholebody',
     r'got 25: use --keypoint_format openpose for BODY_25 files'),
    ([{'keypoints': [1.0] * 100}], 'wholebody', r'got 100 values'),
    ({'people': [_openpose_person(0)]}, 'wholebody',
     r'got OpenPose JSON \("people"\): use --keypoint_format openpose'),
    ([_instance(_wholebody())], 'openpose', r'use --keypoint_format wholebody'),
    ({'instance_info': [_instance(_wholebody())]}, 'openpose', r'use --keypoint_format wholebody'),
    ({'people': [{'pose_keypoints_2d': [1.0] * 54}]}, 'openpose',
     r'person 0 pose_keypoints_2d has 54 values, expected 75 \(25 points x \(x, y, confidence\); '
     r'BODY_25 for the body; 54 values is the 18-point COCO layout'),
    ({'people': [dict(_openpose_person(0), face_keypoints_2d=[0.0] * 204)]}, 'openpose',
     r'person 0 face_keypoints_2d has 204 values, expected 210 \(70 points x \(x, y, '
     r'confidence\)\)$'),
    ({'people': [{'pose_keypoints_2d': [[0.0] * 3] * 25}]}, 'openpose', r'not a flat list'),
    ({'people': [{'pose_keypoints_2d': ['a'] * 75}]}, 'openpose', r'are not numbers'),
    ({'people': ['x']}, 'openpose', r'person 0 is a str'),
    ({'version': 1.3}, 'openpose', r'expected OpenPose JSON'),
    (_wb_no_scores(), 'wholebody', r'no "keypoint_scores"'),
    ([dict(_instance(_wholebody()), keypoint_scores=[0.5] * 17)], 'wholebody',
     r'instance 0 has 17 keypoint_scores, expected 133'),
    ([{'frame_id': 0, 'instances': []}, {'frame_id': 1, 'instances': []}], 'wholebody',
     r'is a whole-video file \(2 \{"frame_id", "instances"\} records.*expected one file per '
     r'frame'),
    ({'meta_info': {}, 'instance_info': [{'frame_id': 1, 'instances': []}]}, 'wholebody',
     r'is a whole-video file \(1 '),
    ({'predictions': []}, 'wholebody', r'"instances" or "instance_info", got a dict with keys'),
    (['x'], 'wholebody', r'instance 0 has no "keypoints"'),
    ({'instances': None}, 'wholebody', r'expected a list of instances, got a NoneType'),
]


@pytest.mark.parametrize('data,fmt,match', ERRORS)
def test_errors_name_the_file_in_one_line(tmp_path, data, fmt, match):
  path = _write(tmp_path, data)
  with pytest.raises(ValueError) as info:
    pose_keypoints.read_people(path, fmt)
  message = str(info.value)
  assert message.startswith(f'{path}: ') and '\n' not in message, message
  assert re.search(match, message), message


def test_missing_file_and_bad_min_score(tmp_path):
  path = str(tmp_path / 'missing.json')
  with pytest.raises(ValueError, match=re.escape(path) + ': cannot read it as JSON'):
    pose_keypoints.read_people(path, 'openpose')
  with pytest.raises(ValueError, match='min_score'):
    pose_keypoints.read_people(_write(tmp_path, []), 'wholebody', min_score=-1.0)
