"""The original's folder layouts and file readers, with path-naming errors.

Every leaf directory under a stream folder (e.g. ``train_A``) is one video; its files are sorted
by name; videos are matched across streams by their path relative to the stream folder.

  street: {phase}_A (label ids), {phase}_B (RGB), {phase}_inst (instance ids, with use_instance)
  video:  {phase}_A (images, e.g. edge maps: label_nc 0), {phase}_B (RGB), optional {phase}_inst
  face:   {phase}_keypoints (68 "x,y" rows per .txt), {phase}_img
  pose:   {phase}_img, {phase}_densepose (IUV png), {phase}_openpose (OpenPose .json)

Readers return NumPy arrays and raise ``ValueError`` naming the file and what was expected.
"""

import dataclasses
import json
import os
import pathlib
from typing import NamedTuple, Optional

import cv2
import numpy as np
from PIL import Image

from input_pipeline import keypoints as kp

# .npy: raw uint8/uint16/int32 frames written by ``input_pipeline.pack`` (no decoding).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.pgm', '.bmp', '.tif', '.tiff', '.npy')
STREAM_FOLDERS = {
    'street': {'label': 'A', 'image': 'B', 'inst': 'inst'},
    'video': {'label': 'A', 'image': 'B', 'inst': 'inst'},  # 'label' holds images here
    'face': {'keypoints': 'keypoints', 'image': 'img'},
    'pose': {'image': 'img', 'densepose': 'densepose', 'openpose': 'openpose'},
}
STREAM_EXTENSIONS = {'label': IMAGE_EXTENSIONS, 'image': IMAGE_EXTENSIONS,
                     'inst': IMAGE_EXTENSIONS, 'densepose': IMAGE_EXTENSIONS,
                     'keypoints': ('.txt',), 'openpose': ('.json',)}
CITYSCAPES_NUM_LABEL_IDS = 34  # labelIds 0..33 (label_nc = 35 in the original's scripts)
CITYSCAPES_NUM_TRAIN_IDS = 19  # trainIds 0..18, 255 = ignore


class Problem(NamedTuple):
  """One thing wrong with a dataset: the offending path and what was expected."""
  path: str
  message: str

  def __str__(self) -> str:
    return f'{self.path}: {self.message}'


@dataclasses.dataclass(frozen=True)
class Sequence:
  """One video: per-stream frame paths (all the same length) and optional flow paths.

  Attributes:
    name: the video's folder relative to its stream folder.
    files: stream name -> sorted frame paths.
    flows: per frame, the ground-truth flow file (frame t -> t-1) or None (frame 0).
  """
  name: str
  files: dict[str, tuple[str, ...]]
  flows: Optional[tuple[Optional[str], ...]] = None

  def __len__(self) -> int:
    return len(next(iter(self.files.values())))


def stream_dir(root: str, layout: str, phase: str, stream: str) -> str:
  """``{root}/{phase}_{folder}`` of ``stream``."""
  return os.path.join(root, f'{phase}_{STREAM_FOLDERS[layout][stream]}')


def _videos(folder: str, extensions: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
  """Leaf directories (relative name -> sorted files with ``extensions``)."""
  videos = {}
  for dirpath, dirnames, filenames in os.walk(folder):
    dirnames.sort()
    files = sorted(f for f in filenames if f.lower().endswith(extensions))
    if files:
      name = os.path.relpath(dirpath, folder)
      videos[name] = tuple(os.path.join(dirpath, f) for f in files)
  return videos


def list_sequences(root: str, layout: str, phase: str, streams: tuple[str, ...],
                   flow_dir: str = '') -> tuple[list[Sequence], list[Problem]]:
  """Lists the videos of one split.

  Args:
    root: dataset root.
    layout: 'street' | 'video' | 'face' | 'pose'.
    phase: folder prefix ('train', 'test').
    streams: the streams to read (the first one defines the video list).
    flow_dir: '' or a folder mirroring the video folders with ``<stem>.npz`` flow files, where
      ``<stem>`` is the stem of frame t's file in any stream.

  Returns:
    (videos sorted by name that are complete in every stream, problems found).
  """
  if layout not in STREAM_FOLDERS:
    raise ValueError(f'layout must be one of {sorted(STREAM_FOLDERS)}; got {layout!r}')
  problems = []
  found = {}
  for stream in streams:
    folder = stream_dir(root, layout, phase, stream)
    if not os.path.isdir(folder):
      problems.append(Problem(folder, f'missing folder (the {layout} layout needs '
                              f'{phase}_{STREAM_FOLDERS[layout][stream]}/<video>/*)'))
      continue
    found[stream] = _videos(folder, STREAM_EXTENSIONS[stream])
    if not found[stream]:
      problems.append(Problem(folder, 'no videos: expected <video>/ subfolders with files '
                              f'ending in {"/".join(STREAM_EXTENSIONS[stream])}'))
  if problems:
    return [], problems
  names = sorted(set().union(*found.values()))
  sequences = []
  for name in names:
    missing = [s for s in streams if name not in found[s]]
    if missing:
      for s in missing:
        problems.append(Problem(os.path.join(stream_dir(root, layout, phase, s), name),
                                f'video {name!r} is missing here (it exists in '
                                f'{", ".join(x for x in streams if x not in missing)})'))
      continue
    counts = {s: len(found[s][name]) for s in streams}
    if len(set(counts.values())) > 1:
      first = os.path.join(stream_dir(root, layout, phase, streams[0]), name)
      for s in streams[1:]:
        if counts[s] != counts[streams[0]]:
          problems.append(Problem(
              os.path.join(stream_dir(root, layout, phase, s), name),
              f'{counts[s]} frames, but {first} has {counts[streams[0]]}; every stream needs '
              'one file per frame'))
      continue
    files = {s: found[s][name] for s in streams}
    flows = None
    if flow_dir:
      flows, flow_problems = _match_flows(flow_dir, name, files)
      problems += flow_problems
    sequences.append(Sequence(name, files, flows))
  return sequences, problems


def _match_flows(flow_dir: str, name: str, files: dict[str, tuple[str, ...]]):
  folder = os.path.join(flow_dir, name)
  available = set(os.listdir(folder)) if os.path.isdir(folder) else set()
  flows, problems = [None], []
  length = len(next(iter(files.values())))
  for t in range(1, length):
    stems = [pathlib.Path(paths[t]).stem for paths in files.values()]
    match = next((s + '.npz' for s in stems if s + '.npz' in available), None)
    if match is None:
      problems.append(Problem(os.path.join(folder, stems[0] + '.npz'),
                              f'missing flow file for frame {t} (expected <frame stem>.npz with '
                              'backward [H, W, 2] and backward_valid [H, W])'))
    flows.append(os.path.join(folder, match) if match else None)
  return tuple(flows), problems


# ---------------------------------------------------------------- file readers


def _read_npy(path: str, ndim: int) -> np.ndarray:
  try:
    array = np.load(path)
  except (OSError, ValueError) as e:
    raise ValueError(f'{path}: unreadable or corrupt .npy frame ({e})') from e
  if array.ndim != ndim or (ndim == 3 and array.shape[-1] != 3):
    raise ValueError(f'{path}: expected a {"[H, W, 3]" if ndim == 3 else "[H, W]"} array, got '
                     f'{array.shape}')
  return array


def read_image(path: str) -> np.ndarray:
  """[H, W, 3] uint8 RGB (grey images are expanded)."""
  if path.endswith('.npy'):
    return _read_npy(path, 3)
  image = cv2.imread(path, cv2.IMREAD_COLOR)
  if image is None:
    raise ValueError(f'{path}: unreadable or corrupt image (expected an RGB image file)')
  return np.ascontiguousarray(image[..., ::-1])


def read_map(path: str) -> np.ndarray:
  """[H, W] integer map (label or instance ids): uint8, uint16 or int32 as stored."""
  if path.endswith('.npy'):
    return _read_npy(path, 2)
  image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
  if image is None:
    raise ValueError(f'{path}: unreadable or corrupt image (expected a one-channel id map)')
  if image.ndim == 3:
    if image.shape[2] >= 3 and np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(
        image[..., 1], image[..., 2]):
      image = image[..., 0]
    else:
      raise ValueError(f'{path}: expected a one-channel id map, got {image.shape[2]} channels '
                       '(a colourised label image?)')
  return image


def image_size(path: str) -> tuple[int, int]:
  """(width, height) from the file header only."""
  if path.endswith('.npy'):
    try:
      shape = np.load(path, mmap_mode='r').shape
    except (OSError, ValueError) as e:
      raise ValueError(f'{path}: unreadable or corrupt .npy frame ({e})') from e
    return shape[1], shape[0]
  try:
    with Image.open(path) as im:
      return im.size
  except (OSError, ValueError) as e:
    raise ValueError(f'{path}: unreadable or corrupt image ({e})') from e


def read_face_keypoints(path: str) -> np.ndarray:
  """[68, 2] float64 (x, y) pixels from a dlib landmark file (68 rows ``x,y``)."""
  try:
    points = np.loadtxt(path, delimiter=',', ndmin=2)
  except (OSError, ValueError) as e:
    raise ValueError(f'{path}: cannot parse keypoints ({e}); expected 68 rows "x,y"') from e
  if points.shape != (kp.NUM_FACE_POINTS, 2):
    raise ValueError(f'{path}: expected {kp.NUM_FACE_POINTS} keypoints as rows "x,y", got '
                     f'{points.shape[0]} rows of {points.shape[1]} values')
  return points


_OPENPOSE_FIELDS = (('pose_keypoints_2d', kp.NUM_BODY_POINTS, True),
                    ('face_keypoints_2d', kp.NUM_OPENPOSE_FACE_POINTS, False),
                    ('hand_left_keypoints_2d', kp.NUM_HAND_POINTS, False),
                    ('hand_right_keypoints_2d', kp.NUM_HAND_POINTS, False))


def read_openpose(path: str) -> list[dict[str, np.ndarray]]:
  """People of an OpenPose JSON file.

  Returns:
    per person {'body': [25, 3], 'face': [70, 3], 'hand_left': [21, 3], 'hand_right': [21, 3]}
    float64 (x, y, confidence); absent face/hand lists are zeros.
  """
  try:
    with open(path) as f:
      data = json.load(f)
    people = data['people']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f'{path}: cannot parse OpenPose JSON ({e!r}); expected '
                     '{"people": [{"pose_keypoints_2d": [...]}]}') from e
  result = []
  for index, person in enumerate(people):
    entry = {}
    for field, count, required in _OPENPOSE_FIELDS:
      values = person.get(field) or []
      if not values and not required:
        entry[field.split('_keypoints')[0].replace('pose', 'body')] = np.zeros((count, 3))
        continue
      if len(values) != 3 * count:
        raise ValueError(f'{path}: person {index} {field} has {len(values)} values, expected '
                         f'{3 * count} ({count} points x (x, y, confidence); BODY_25 for the body)')
      entry[field.split('_keypoints')[0].replace('pose', 'body')] = np.asarray(
          values, np.float64).reshape(count, 3)
    result.append(entry)
  return result


def read_flow(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(backward flow [H, W, 2] float32 pixels, valid [H, W] float32 in {0, 1}) of an .npz file."""
  try:
    with np.load(path) as data:
      flow = data['backward'].astype(np.float32)
      valid = data['backward_valid'].astype(np.float32)
  except (OSError, ValueError, KeyError) as e:
    raise ValueError(f'{path}: cannot read flow ({e!r}); expected an .npz with backward '
                     '[H, W, 2] and backward_valid [H, W]') from e
  if flow.ndim != 3 or flow.shape[-1] != 2 or valid.shape != flow.shape[:2]:
    raise ValueError(f'{path}: expected backward [H, W, 2] and backward_valid [H, W]; got '
                     f'{flow.shape} and {valid.shape}')
  return flow, valid


def label_value_problem(values: np.ndarray, label_nc: int) -> Optional[str]:
  """A message if the label ids ``values`` (unique values) do not fit ``label_nc`` classes."""
  values = np.asarray(values)
  bad = values[values >= label_nc]
  if not bad.size:
    return None
  message = (f'label values {sorted(int(v) for v in bad)[:8]} are >= label_nc={label_nc} '
             f'(expected ids 0..{label_nc - 1})')
  below = values[values < 255]
  if 255 in bad and (below.size == 0 or below.max() < CITYSCAPES_NUM_TRAIN_IDS):
    message += ('; these look like Cityscapes trainIds (0..18 with 255 = ignore), not the '
                'labelIds (0..33) the 35-class models use: use the *_labelIds.png files')
  elif (label_nc == CITYSCAPES_NUM_TRAIN_IDS and bad.max() < CITYSCAPES_NUM_LABEL_IDS):
    message += ('; these look like Cityscapes labelIds (0..33), not trainIds: set label_nc=35 '
                'as the original street scripts do')
  return message


def check_size(path: str, hw: tuple[int, int], expected_hw: tuple[int, int]) -> None:
  """Raises ValueError if a frame's (height, width) differs from its sequence's first frame."""
  if tuple(hw) != tuple(expected_hw):
    raise ValueError(f'{path}: size {hw[1]}x{hw[0]} differs from the first frame of its sequence '
                     f'({expected_hw[1]}x{expected_hw[0]}); frames of a video must share one size')
