"""Face landmarks for raw videos: dlib tracking, gap filling, smoothing and the keypoint files."""

import sys

import cv2
import numpy as np
import pytest

from input_pipeline import face_landmarks
from input_pipeline import layouts

FRAMES = 18
SIZE = 256
# The astronaut photo (512x512) has its face at about x 179..272, y 87..178; the crop centres it.
CROP = np.array([[1., 0., -97.], [0., 1., 0.]])


@pytest.fixture(scope='module')
def detector():
  try:
    return face_landmarks.load_detector()
  except ImportError as e:
    pytest.skip(str(e))


def _motion(t: int) -> np.ndarray:
  """[2, 3] affine from the crop to frame t: a small head-like sway, rotation and zoom."""
  phase = 2 * np.pi * t / FRAMES
  matrix = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 3.0 * np.sin(phase),
                                   1.0 + 0.03 * np.sin(2 * phase))
  matrix[:, 2] += (4.0 * np.sin(phase + 1.0), 3.0 * np.cos(phase))
  return matrix


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
  return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


def test_tracks_known_affine_motion(detector):
  data = pytest.importorskip('skimage.data')
  photo = data.astronaut()  # [512, 512, 3] uint8 RGB, ships with scikit-image
  motions = [_motion(t) for t in range(FRAMES)]
  # Warping the whole photo (not a crop of it) keeps the frame borders real image content.
  frames = [cv2.warpAffine(photo, _compose(m, CROP), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT) for m in motions]
  points = [detector(frame) for frame in frames]
  found = [t for t, p in enumerate(points) if p is not None]
  assert len(found) >= 0.9 * FRAMES, found
  assert 0 in found
  reference = points[0]
  assert reference.shape == (68, 2) and reference.dtype == np.float64
  assert (reference.min(axis=0) > 60).all() and (reference.max(axis=0) < 200).all()

  errors = []
  for t in found[1:]:
    relative = _compose(motions[t], cv2.invertAffineTransform(motions[0]))  # frame 0 -> frame t
    expected = reference @ relative[:, :2].T + relative[:, 2]
    errors.append(np.linalg.norm(points[t] - expected, axis=-1))
  errors = np.stack(errors)
  # Measured (dlib-bin 20.0.1.post1, opencv 5.1.0): all 18 frames found; per-frame mean error
  # 0.62..0.91 px (0.76 overall); max 3.16 px, at jaw point 0 beside the hair, whose mean is 2.2 px
  # (every other point's mean <= 1.8 px). dlib returns whole pixels, so rounding in frame 0 and in
  # frame t alone adds about 0.5 px on average.
  assert errors.mean(axis=-1).max() <= 1.5, errors.mean(axis=-1)
  assert errors.max() <= 4.5, errors.max()


def test_detector_returns_none_without_face(detector):
  frame = np.full((SIZE, SIZE, 3), 127, np.uint8)
  assert detector(frame) is None
  with pytest.raises(ValueError, match=r'\[H, W, 3\] uint8'):
    detector(frame.astype(np.float32))


def test_missing_extra_names_it(monkeypatch):
  monkeypatch.setitem(sys.modules, 'dlib', None)  # `import dlib` raises ImportError
  with pytest.raises(ImportError, match=r"\.\[prepare\]") as info:
    face_landmarks.load_detector()
  assert '\n' not in str(info.value)


def test_missing_model_names_the_extra(monkeypatch):
  pytest.importorskip('dlib')
  monkeypatch.setattr(face_landmarks, '_PREDICTOR_FILE', 'models/absent.dat')
  with pytest.raises(ImportError, match=r"\.\[prepare\]"):
    face_landmarks.load_detector()


def _frame(value: float) -> np.ndarray:
  return np.full((68, 2), value)


def _values(segment: face_landmarks.Segment) -> list[float]:
  """Each frame's constant value (the test frames are constant arrays)."""
  assert (segment.points == segment.points[:, :1, :1]).all()
  return segment.points[:, 0, 0].tolist()


def test_fill_gaps_interpolates_short_interior_gap():
  points = [_frame(0.), None, None, _frame(3.), _frame(4.)]
  points[3] = points[3] + np.arange(136.).reshape(68, 2)  # a per-point, per-coordinate ramp
  (segment,) = face_landmarks.fill_gaps(points, max_gap=2)
  assert (segment.start, segment.stop, segment.filled) == (0, 5, (1, 2))
  assert segment.points.shape == (5, 68, 2) and segment.points.dtype == np.float64
  np.testing.assert_allclose(segment.points[1], points[3] / 3)
  np.testing.assert_allclose(segment.points[2], 2 * points[3] / 3)
  np.testing.assert_array_equal(segment.points[[0, 3, 4]], np.stack([points[0], points[3],
                                                                     points[4]]))


def test_fill_gaps_long_gap_splits():
  points = [_frame(0.), _frame(1.), None, None, None, _frame(5.), None, _frame(7.)]
  first, second = face_landmarks.fill_gaps(points, max_gap=2)
  assert (first.start, first.stop, first.filled) == (0, 2, ())
  assert (second.start, second.stop, second.filled) == (5, 8, (6,))
  assert _values(first) == [0., 1.] and _values(second) == [5., 6., 7.]


def test_fill_gaps_ends():
  held = face_landmarks.fill_gaps([None, None, _frame(2.), _frame(3.), None], max_gap=2)
  assert [(s.start, s.stop, s.filled) for s in held] == [(0, 5, (0, 1, 4))]
  assert _values(held[0]) == [2., 2., 2., 3., 3.]
  dropped = face_landmarks.fill_gaps([None, None, None, _frame(3.), None, None, None], max_gap=2)
  assert [(s.start, s.stop, s.filled) for s in dropped] == [(3, 4, ())]


def test_fill_gaps_nothing_to_fill():
  assert face_landmarks.fill_gaps([None, None], max_gap=5) == []
  assert face_landmarks.fill_gaps([], max_gap=5) == []
  segments = face_landmarks.fill_gaps([None, _frame(1.), None, _frame(3.)], max_gap=0)
  assert [(s.start, s.stop, s.filled) for s in segments] == [(1, 2, ()), (3, 4, ())]
  with pytest.raises(ValueError, match='max_gap'):
    face_landmarks.fill_gaps([_frame(0.)], max_gap=-1)
  with pytest.raises(ValueError, match=r'points\[1\].*\[68, 2\]'):
    face_landmarks.fill_gaps([_frame(0.), np.zeros((5, 2))], max_gap=1)


def test_smooth():
  rng = np.random.default_rng(0)
  noisy = rng.normal(size=(40, 68, 2))
  np.testing.assert_array_equal(face_landmarks.smooth(noisy, 1), noisy)
  constant = np.broadcast_to(rng.normal(size=(68, 2)), (10, 68, 2))
  np.testing.assert_allclose(face_landmarks.smooth(constant, 5), constant)
  # Linear motion passes unchanged everywhere: the window shrinks symmetrically at the ends.
  ramp = rng.normal(size=(68, 2)) + np.arange(12.)[:, None, None] * rng.normal(size=(68, 2))
  for window in (3, 5, 7, 15):
    np.testing.assert_allclose(face_landmarks.smooth(ramp, window), ramp, atol=1e-12)
  smoothed = face_landmarks.smooth(noisy, 5)
  assert smoothed.shape == noisy.shape
  np.testing.assert_allclose(smoothed[10], noisy[8:13].mean(axis=0))
  np.testing.assert_allclose(smoothed[1], noisy[0:3].mean(axis=0))
  np.testing.assert_array_equal(smoothed[0], noisy[0])
  assert smoothed[2:-2].var() < 0.3 * noisy.var()  # 1/5 for independent noise
  for window in (0, 4):
    with pytest.raises(ValueError, match='odd'):
      face_landmarks.smooth(noisy, window)
  with pytest.raises(ValueError, match=r'\[n, 68, 2\]'):
    face_landmarks.smooth(noisy[0], 3)


def test_write_keypoints_round_trip(tmp_path):
  points = np.random.default_rng(0).uniform(0, 255, size=(68, 2))
  path = tmp_path / 'frame_000000.txt'
  face_landmarks.write_keypoints(path, points)
  read = layouts.read_face_keypoints(str(path))
  assert read.shape == (68, 2)
  np.testing.assert_array_equal(read, np.rint(points))
  assert path.read_text().splitlines()[0] == '%d,%d' % tuple(np.rint(points[0]))
  with pytest.raises(ValueError, match=r'\[68, 2\]'):
    face_landmarks.write_keypoints(tmp_path / 'bad.txt', points[:67])
