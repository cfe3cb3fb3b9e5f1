"""Checks a dataset before training; lists every problem with its file and what was expected.

  python -m input_pipeline.validate --layout street datasets/Cityscapes
  python -m input_pipeline.validate --layout face --phase train datasets/face
  python -m input_pipeline.validate --layout video datasets/my_edges

Exits 0 if the dataset is fine, 1 after printing one line per problem. Checked: missing folders,
videos missing from a stream, frame counts that differ between streams (A/B/inst, keypoints/img,
img/densepose/openpose), unreadable or corrupt files, label values >= label_nc (naming the
Cityscapes trainId/labelId mix-up), frame sizes that differ within a video or between the
streams of a frame, keypoint files with the wrong number of points, and (if present) flow files
that are missing, unreadable or of the wrong size.
"""

import os
import sys
from typing import Optional, Sequence

from absl import app
from absl import flags
import numpy as np

from input_pipeline import layouts
from input_pipeline.layouts import Problem

PHASES = ('train', 'test')


def _read(reader, path: str, problems: list[Problem]):
  try:
    return reader(path)
  except ValueError as e:
    message = str(e)
    if message.startswith(path + ': '):
      message = message[len(path) + 2:]
    problems.append(Problem(path, message))
    return None


def _check_sizes(sizes: dict[str, list], problems: list[Problem]) -> None:
  """sizes: stream -> per-frame (path, (h, w)) or None; checks within video and across streams."""
  reference = None
  for stream, frames in sizes.items():
    first = next((f for f in frames if f is not None), None)
    if first is None:
      continue
    if reference is None:
      reference = (stream, first)
    for entry in frames:
      if entry is not None and entry[1] != first[1]:
        problems.append(Problem(entry[0], f'size {entry[1][1]}x{entry[1][0]} differs from the '
                                f'first frame of its video {first[0]} '
                                f'({first[1][1]}x{first[1][0]})'))
    if stream != reference[0] and first[1] != reference[1][1]:
      problems.append(Problem(first[0], f'size {first[1][1]}x{first[1][0]} differs from '
                              f'{reference[1][0]} ({reference[1][1][1]}x{reference[1][1][0]}); '
                              'all streams of a frame must have one size'))


def _check_sequence(layout: str, seq: layouts.Sequence, label_nc: int,
                    problems: list[Problem]) -> None:
  sizes = {stream: [] for stream in seq.files}
  for stream, paths in seq.files.items():
    for path in paths:
      shape = None
      if stream in ('image', 'densepose') or (stream == 'label' and layout == 'video'):
        image = _read(layouts.read_image, path, problems)
        shape = None if image is None else image.shape[:2]
      elif stream in ('label', 'inst'):
        ids = _read(layouts.read_map, path, problems)
        shape = None if ids is None else ids.shape[:2]
        if ids is not None and stream == 'label' and label_nc > 0:
          message = layouts.label_value_problem(np.unique(ids), label_nc)
          if message:
            problems.append(Problem(path, message))
      elif stream == 'keypoints':
        _read(layouts.read_face_keypoints, path, problems)
      elif stream == 'openpose':
        _read(layouts.read_openpose, path, problems)
      sizes[stream].append(None if shape is None else (path, tuple(shape)))
  _check_sizes({k: v for k, v in sizes.items() if v}, problems)
  if seq.flows:
    frame_sizes = next((v for v in sizes.values() if v), [])
    for t, path in enumerate(seq.flows):
      if path is None:
        continue
      flow = _read(layouts.read_flow, path, problems)
      expected = frame_sizes[t][1] if t < len(frame_sizes) and frame_sizes[t] else None
      if flow is not None and expected is not None and flow[0].shape[:2] != expected:
        problems.append(Problem(path, f'flow is {flow[0].shape[1]}x{flow[0].shape[0]}, expected '
                                f'the frame size {expected[1]}x{expected[0]}'))


def find_problems(root: str, layout: str, *, phases: Optional[Sequence[str]] = None,
                  label_nc: int = 35, use_instance: Optional[bool] = None,
                  flows: Optional[bool] = None) -> list[Problem]:
  """Every problem of the dataset at ``root``.

  Args:
    root: dataset root.
    layout: 'street', 'video', 'face' or 'pose'.
    phases: phases to check; default every phase among train/test with any folder present.
    label_nc: street label classes (0 = A holds images; no value check); 'video' uses 0.
    use_instance: street and video: require {phase}_inst (default: check it if present).
    flows: check {phase}_flow (default: if present). Pose checks {phase}_densepose and
      {phase}_openpose where present (openpose_only / densepose_only data lack one).

  Returns:
    Problems (path, what was expected); empty if the dataset is fine.
  """
  if layout not in layouts.STREAM_FOLDERS:
    raise ValueError(f'layout must be one of {sorted(layouts.STREAM_FOLDERS)}; got {layout!r}')
  if not os.path.isdir(root):
    return [Problem(root, 'dataset root does not exist')]
  folders = layouts.STREAM_FOLDERS[layout]
  if phases is None:
    phases = [p for p in PHASES
              if any(os.path.isdir(layouts.stream_dir(root, layout, p, s)) for s in folders)]
    if not phases:
      expected = ', '.join(f'train_{f}' for f in folders.values())
      return [Problem(root, f'no {layout} folders found (expected {expected} and/or test_*)')]
  problems = []
  for phase in phases:
    streams = list(folders)
    if layout in ('street', 'video'):
      inst_dir = layouts.stream_dir(root, layout, phase, 'inst')
      if use_instance is False or (use_instance is None and not os.path.isdir(inst_dir)):
        streams.remove('inst')
      if phase != 'train' and not os.path.isdir(layouts.stream_dir(root, layout, phase, 'image')):
        streams.remove('image')  # test splits need real frames only for use_real_img
    if layout == 'pose':
      for optional in ('densepose', 'openpose'):  # data.pose.openpose_only / densepose_only
        if not os.path.isdir(layouts.stream_dir(root, layout, phase, optional)):
          streams.remove(optional)
    flow_dir = os.path.join(root, f'{phase}_flow')
    check_flows = flows if flows is not None else os.path.isdir(flow_dir)
    sequences, found = layouts.list_sequences(root, layout, phase, tuple(streams),
                                              flow_dir if check_flows else '')
    problems += found
    for seq in sequences:
      _check_sequence(layout, seq, label_nc if layout == 'street' else 0, problems)
  return problems


def main(argv):
  if len(argv) != 2:
    raise app.UsageError('usage: python -m input_pipeline.validate --layout LAYOUT DIR')
  root = argv[1]
  problems = find_problems(root, FLAGS.layout, phases=FLAGS.phase or None,
                           label_nc=FLAGS.label_nc,
                           use_instance=True if FLAGS.use_instance else None)
  for problem in problems:
    print(problem)
  if problems:
    print(f'{len(problems)} problem(s) in the {FLAGS.layout} dataset at {root}')
    sys.exit(1)
  print(f'{root}: {FLAGS.layout} dataset OK')


if __name__ == '__main__':
  FLAGS = flags.FLAGS
  flags.DEFINE_enum('layout', 'street', sorted(layouts.STREAM_FOLDERS), 'Dataset layout.')
  flags.DEFINE_multi_string('phase', [], 'Phases to check (default: train and test if present).')
  flags.DEFINE_integer('label_nc', 35, 'Street label classes (0: A holds images).')
  flags.DEFINE_bool('use_instance', False, 'Street: require {phase}_inst folders.')
  app.run(main)
