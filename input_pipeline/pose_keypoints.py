"""Per-frame body keypoints made elsewhere, read into OpenPose's BODY_25 layout and written back.

No pose model ships offline, so ``prepare`` takes the keypoints of each source frame from one JSON
file per frame, in one of two formats (``FORMATS``):

* 'openpose': OpenPose's ``--write_json`` output, ``{"version": 1.3, "people": [{
  "pose_keypoints_2d": 25 x [x, y, c], "face_keypoints_2d": 70 x [x, y, c],
  "hand_left_keypoints_2d": 21 x [x, y, c], "hand_right_keypoints_2d": 21 x [x, y, c]}]}``, flat
  lists, body in BODY_25 order. Absent or empty face/hand lists become zeros (as
  ``layouts.read_openpose``); the body list is required.
* 'wholebody': COCO-WholeBody predictions (133 points: body 0..16, feet 17..22, face 23..90 in the
  68-point iBUG order, left hand 91..111, right hand 112..132), as MMPose's inferencer writes
  them with ``pred_out_dir`` for image inputs (one ``<image stem>.json`` per image: a list of
  ``split_instances`` dicts ``{"keypoints": [[x, y], ...], "keypoint_scores": [...], "bbox": ...,
  "bbox_score": ...}``), e.g. for RTMPose-wholebody or DWPose checkpoints run through MMPose.
  The file's top level is one of
    (a) a list of instances;
    (b) a dict with the list under "instances" (one record of MMPose's per-video file,
        ``{"frame_id": i, "instances": [...]}``) or "instance_info" (MMPose's
        ``topdown_demo_with_mmdet.py --save-predictions`` on an image; its "meta_info" is ignored).
  Each instance is a dict whose "keypoints" is 133 x [x, y] (then "keypoint_scores", 133 numbers,
  is required), 133 x [x, y, score], or the same flattened (266 numbers with "keypoint_scores",
  or 399 numbers as [x, y, score] * 133). When "keypoint_scores" is present it gives the scores
  (MMPose's own field); otherwise the third column does. Other keys are ignored. A whole video in
  one file (a list of ``{"frame_id", "instances"}`` records, MMPose's output for video inputs) is
  rejected: split it into one file per frame.

Coordinates are pixels of the source frame. Non-finite values (NaN, null) and points whose score
is <= 0 or below ``min_score`` become (0, 0, 0), OpenPose's "not detected"; every other point keeps
its score as its confidence, unchanged (RTMPose's SimCC scores may exceed 1). OpenPose already
writes undetected points as zeros, but RTMPose/DWPose score all 133 points, guesses included: the
renderer drops body points <= 0.01 and face/hand points <= 0.1 only, so a ``min_score`` near 0.3
(the keypoint threshold of MMPose's demos and of DWPose's own drawing) suits 'wholebody'.

COCO-WholeBody -> OpenPose: BODY_25 takes the COCO body and feet points by name; Neck and MidHip,
which COCO lacks, are the midpoints of the shoulders and of the hips with the smaller of the two
scores (0 if either is missing). The 68 face points are OpenPose face 0..67 (both use the iBUG
order); OpenPose's 68 (right pupil) and 69 (left pupil) are the means of the right-eye contour
36..41 and the left-eye contour 42..47, with the smallest score of the six (0 if any is missing).
Both hands use OpenPose's 21-point order already.

Errors are ``ValueError`` with one line naming the file and what was expected; a file with no
people is valid (no people).
"""

import json
import os
import re

import numpy as np

from input_pipeline import keypoints as kp

FORMATS = ('openpose', 'wholebody')
People = list[dict[str, np.ndarray]]  # per person {part: [N, 3] float64 (x, y, confidence)}

# (part, OpenPose JSON field, points), in the order OpenPose writes them.
_PARTS = (('body', 'pose_keypoints_2d', kp.NUM_BODY_POINTS),
          ('face', 'face_keypoints_2d', kp.NUM_OPENPOSE_FACE_POINTS),
          ('hand_left', 'hand_left_keypoints_2d', kp.NUM_HAND_POINTS),
          ('hand_right', 'hand_right_keypoints_2d', kp.NUM_HAND_POINTS))

NUM_WHOLEBODY_POINTS = 133
# COCO-WholeBody index of each BODY_25 point; -1 marks the midpoints in _BODY_25_MIDPOINTS.
_BODY_25_FROM_WHOLEBODY = (0, -1, 6, 8, 10, 5, 7, 9, -1, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3,
                           17, 18, 19, 20, 21, 22)
_BODY_25_MIDPOINTS = {1: (5, 6), 8: (11, 12)}  # Neck: shoulders; MidHip: hips
_WHOLEBODY_FACE = 23  # first of the 68 iBUG face points
_WHOLEBODY_HANDS = {'hand_left': 91, 'hand_right': 112}
# OpenPose face 68 is the right pupil (the subject's right eye, iBUG 36..41), 69 the left.
_PUPILS = ((68, tuple(range(36, 42))), (69, tuple(range(42, 48))))

_WHOLEBODY_EXPECTED = (f'{NUM_WHOLEBODY_POINTS} COCO-WholeBody keypoints per person (body 17, '
                       'feet 6, face 68, hands 2 x 21)')


def _error(path: str, message: str) -> ValueError:
  """A one-line ValueError naming ``path`` (messages of caught errors may span lines)."""
  return ValueError(f'{path}: ' + ' '.join(message.split()))


def _digits_key(name: str) -> list:
  return [(0, int(s), s) if s.isdigit() else (1, 0, s) for s in re.split(r'(\d+)', name)]


def list_keypoint_files(folder: str) -> list[str]:
  """The per-frame keypoint files of one video.

  Args:
    folder: a folder holding one ``.json`` file per source frame (hidden files and sub-folders are
      ignored).

  Returns:
    the paths, sorted by name as the frames of a folder are.

  Raises:
    ValueError: naming ``folder`` if it is missing or holds no ``.json`` file, or if its names
      number frames without zero padding (``f_10.json`` would sort before ``f_2.json``).
  """
  if not os.path.isdir(folder):
    raise _error(folder, 'not a folder (expected one keypoint .json file per source frame)')
  names = sorted(f for f in os.listdir(folder) if f.lower().endswith('.json')
                 and not f.startswith('.') and os.path.isfile(os.path.join(folder, f)))
  if not names:
    raise _error(folder, 'no keypoint .json files (expected one per source frame)')
  numeric = sorted(names, key=_digits_key)
  if numeric != names:
    first = next(i for i, (a, b) in enumerate(zip(names, numeric)) if a != b)
    raise _error(folder, f'frame numbers are not zero-padded ({names[first]} sorts before '
                 f'{numeric[first]}); rename the files with zero-padded numbers so that name '
                 'order is frame order')
  return [os.path.join(folder, f) for f in names]


def _as_points(values, path: str, what: str) -> np.ndarray:
  try:
    return np.asarray(values, np.float64)
  except (TypeError, ValueError) as e:
    raise _error(path, f'{what} are not numbers ({e})') from None


def _clean(points: np.ndarray, min_score: float) -> np.ndarray:
  """[N, 3] -> [N, 3] with missing, non-finite and low-score points set to (0, 0, 0)."""
  keep = np.isfinite(points).all(axis=-1) & (points[:, 2] > 0) & (points[:, 2] >= min_score)
  return np.where(keep[:, None], points, 0.0)


def _openpose_people(data, path: str, min_score: float) -> People:
  if isinstance(data, list) or (isinstance(data, dict) and 'people' not in data and (
      'instances' in data or 'instance_info' in data)):
    raise _error(path, 'expected OpenPose JSON {"people": [...]}, got what looks like MMPose '
                 'predictions: use --keypoint_format wholebody for COCO-WholeBody files')
  people = data.get('people') if isinstance(data, dict) else None
  if not isinstance(people, list):
    raise _error(path, 'expected OpenPose JSON {"people": [{"pose_keypoints_2d": [...]}]}')
  result = []
  for index, person in enumerate(people):
    if not isinstance(person, dict):
      raise _error(path, f'person {index} is a {type(person).__name__}, expected a dict of '
                   'OpenPose keypoint lists')
    entry = {}
    for part, field, count in _PARTS:
      values = person.get(field) or []
      if not values and part != 'body':
        entry[part] = np.zeros((count, 3))
        continue
      flat = _as_points(values, path, f'person {index} {field}')
      if flat.ndim != 1:
        raise _error(path, f'person {index} {field} is not a flat list (shape {flat.shape}), '
                     f'expected {3 * count} numbers: [x, y, confidence] * {count}')
      if flat.size != 3 * count:
        hint = '; BODY_25 for the body' if part == 'body' else ''
        if part == 'body' and flat.size == 54:
          hint += '; 54 values is the 18-point COCO layout (e.g. ControlNet annotators)'
        raise _error(path, f'person {index} {field} has {flat.size} values, expected '
                     f'{3 * count} ({count} points x (x, y, confidence){hint})')
      entry[part] = _clean(flat.reshape(count, 3), min_score)
    result.append(entry)
  return result


def _wholebody_instances(data, path: str) -> list:
  if isinstance(data, dict):
    if 'people' in data:
      raise _error(path, f'expected {_WHOLEBODY_EXPECTED}, got OpenPose JSON ("people"): use '
                   '--keypoint_format openpose for BODY_25 files')
    key = next((k for k in ('instances', 'instance_info') if k in data), None)
    if key is None:
      raise _error(path, 'expected a list of instances or a dict with "instances" or '
                   f'"instance_info", got a dict with keys {sorted(map(str, data))[:6]}')
    data = data[key]
  if not isinstance(data, list):
    raise _error(path, f'expected a list of instances, got a {type(data).__name__}')
  if any(isinstance(item, dict) and 'instances' in item for item in data):
    raise _error(path, f'is a whole-video file ({len(data)} {{"frame_id", "instances"}} records, '
                 'as MMPose writes for a video input); expected one file per frame')
  return data


def _wholebody_points(instance, index: int, path: str) -> np.ndarray:
  """One instance -> [133, 3] (x, y, score)."""
  if not isinstance(instance, dict) or 'keypoints' not in instance:
    raise _error(path, f'instance {index} has no "keypoints" (expected a dict with "keypoints" '
                 'and "keypoint_scores")')
  points = _as_points(instance['keypoints'], path, f'instance {index} keypoints')
  n = NUM_WHOLEBODY_POINTS
  if points.ndim == 1 and points.size in (2 * n, 3 * n):
    points = points.reshape(n, points.size // n)
  if points.ndim == 1:
    got = f'{points.size} values (flat lists hold {2 * n} or {3 * n})'
    count = points.size // 3 if points.size % 3 == 0 else None
  elif points.ndim == 2 and points.shape[1] in (2, 3):
    got, count = str(points.shape[0]), points.shape[0]
  else:
    got, count = f'an array of shape {points.shape}', None
  if count != n:
    hint = ': use --keypoint_format openpose for BODY_25 files'
    if count == 17:
      hint = ' (COCO body only): a whole-body model such as RTMPose-wholebody or DWPose is needed'
    raise _error(path, f'instance {index}: expected {_WHOLEBODY_EXPECTED} as [x, y] or '
                 f'[x, y, score], got {got}{hint}')
  if 'keypoint_scores' in instance:
    scores = _as_points(instance['keypoint_scores'], path, f'instance {index} keypoint_scores')
    if scores.size != n:
      raise _error(path, f'instance {index} has {scores.size} keypoint_scores, expected {n}')
    return np.concatenate([points[:, :2], scores.reshape(n, 1)], axis=1)
  if points.shape[1] == 2:
    raise _error(path, f'instance {index} has [x, y] keypoints but no "keypoint_scores" '
                 f'(expected {n} scores, or [x, y, score] keypoints)')
  return points


def _body_25_from_wholebody(points: np.ndarray) -> dict[str, np.ndarray]:
  """[133, 3] cleaned COCO-WholeBody points -> one OpenPose person."""
  index = np.array(_BODY_25_FROM_WHOLEBODY)
  body = points[np.maximum(index, 0)]
  for target, (a, b) in _BODY_25_MIDPOINTS.items():
    score = min(points[a, 2], points[b, 2])
    body[target] = (*((points[a, :2] + points[b, :2]) / 2), score) if score > 0 else 0.0
  face = np.zeros((kp.NUM_OPENPOSE_FACE_POINTS, 3))
  face[:kp.NUM_FACE_POINTS] = points[_WHOLEBODY_FACE:_WHOLEBODY_FACE + kp.NUM_FACE_POINTS]
  for target, contour in _PUPILS:
    eye = face[list(contour)]
    score = eye[:, 2].min()
    face[target] = (*eye[:, :2].mean(axis=0), score) if score > 0 else 0.0
  person = {'body': body, 'face': face}
  for part, start in _WHOLEBODY_HANDS.items():
    person[part] = points[start:start + kp.NUM_HAND_POINTS].copy()
  return person


def read_people(path: str, fmt: str, min_score: float = 0.0) -> People:
  """The people of one frame's keypoint file, in OpenPose's layout.

  Args:
    path: a JSON file in ``fmt`` (module docstring).
    fmt: 'openpose' or 'wholebody'.
    min_score: points scored below this (and all points scored <= 0) become (0, 0, 0).

  Returns:
    per person {'body': [25, 3] BODY_25, 'face': [70, 3], 'hand_left': [21, 3],
    'hand_right': [21, 3]} float64 (x, y, confidence), pixels of the source frame; [] if the file
    has no people.
  """
  if fmt not in FORMATS:
    raise _error(path, f'unknown keypoint format {fmt!r}, expected one of {FORMATS}')
  if not np.isfinite(min_score) or min_score < 0:
    raise ValueError(f'min_score must be a finite number >= 0, got {min_score}')
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise _error(path, f'cannot read it as JSON ({e}); expected one {fmt} keypoint file per '
                 'frame') from None
  if fmt == 'openpose':
    return _openpose_people(data, path, min_score)
  people = []
  for index, instance in enumerate(_wholebody_instances(data, path)):
    points = _clean(_wholebody_points(instance, index, path), min_score)
    people.append(_body_25_from_wholebody(points))
  return people


def _check_people(people: People) -> None:
  if not isinstance(people, list):
    raise ValueError(f'people must be a list of dicts, got a {type(people).__name__}')
  parts = {part for part, _, _ in _PARTS}
  for index, person in enumerate(people):
    if not isinstance(person, dict) or set(person) != parts:
      keys = sorted(person) if isinstance(person, dict) else type(person).__name__
      raise ValueError(f'person {index}: expected the keys {sorted(parts)}, got {keys}')
    for part, _, count in _PARTS:
      shape = np.shape(person[part])
      if shape != (count, 3):
        raise ValueError(f'person {index} {part}: expected shape ({count}, 3), got {shape}')
      if not np.isfinite(person[part]).all():
        raise ValueError(f'person {index} {part}: non-finite keypoints')


def transform_people(people: People, scale: float, offset: tuple[float, float]) -> People:
  """Maps keypoints from the source frame into the prepared (scaled, then cropped) frame.

  Args:
    people: as ``read_people`` returns.
    scale: the frame's scale factor (> 0).
    offset: (x, y) pixels cropped from the scaled frame's left and top.

  Returns:
    new people with x' = x * scale - offset[0], y' = y * scale - offset[1] and the same
    confidence; points with confidence <= 0 are (0, 0, 0). Points may fall outside the frame.
  """
  _check_people(people)
  if not np.isfinite(scale) or scale <= 0:
    raise ValueError(f'scale must be a finite number > 0, got {scale}')
  shift = np.asarray(offset, np.float64)
  if shift.shape != (2,) or not np.isfinite(shift).all():
    raise ValueError(f'offset must be two finite numbers (x, y), got {offset}')
  result = []
  for person in people:
    entry = {}
    for part, points in person.items():
      points = np.asarray(points, np.float64)
      moved = np.concatenate([points[:, :2] * scale - shift, points[:, 2:]], axis=1)
      entry[part] = np.where(points[:, 2:] > 0, moved, 0.0)
    result.append(entry)
  return result


def to_openpose_json(people: People) -> dict:
  """The OpenPose JSON dict (version 1.3) of ``people``; ``layouts.read_openpose`` reads it back.

  Args:
    people: as ``read_people`` returns.

  Returns:
    {'version': 1.3, 'people': [{'person_id': [-1], 'pose_keypoints_2d': 75 floats,
    'face_keypoints_2d': 210, 'hand_left_keypoints_2d': 63, 'hand_right_keypoints_2d': 63,
    and empty '*_3d' lists}]}.
  """
  _check_people(people)
  result = []
  for person in people:
    entry = {'person_id': [-1]}
    for part, field, _ in _PARTS:
      entry[field] = [float(v) for v in np.asarray(person[part], np.float64).reshape(-1)]
    for _, field, _ in _PARTS:
      entry[field.replace('_2d', '_3d')] = []
    result.append(entry)
  return {'version': 1.3, 'people': result}
