"""From your own footage to a training set in the original's folder layouts.

  python -m input_pipeline.prepare --input VIDEO_OR_DIR --conditioning edges --out datasets/my_edges \
      --size 256x256 [--test_fraction 0.1 | --test_videos NAME,NAME] [--fps 15]
  python -m input_pipeline.prepare --input clips/ --conditioning face --out datasets/my_face \
      --size 512x512 [--max_gap 5] [--smooth 3]                    (needs pip install -e '.[prepare]')
  python -m input_pipeline.prepare --input clips/ --conditioning pose --out datasets/my_pose \
      --size 512x512 --keypoints openpose_json/ [--keypoint_format openpose|wholebody]

--input is a video file, a folder of videos, a folder of frame folders, or one folder of frames.
Each frame is scaled to cover --size (aspect kept) and centre-cropped. The tail --test_fraction of
every video (or the whole videos named by --test_videos) becomes the test split. Written:

  edges  {phase}_A (Canny edge maps, 0/255 grey PNG), {phase}_B (frames)  -> data.layout 'video',
         data.input_nc 1 (configs/edges_256.py)
  face   {phase}_keypoints (68 dlib landmarks per frame, the original's "x,y" .txt),
         {phase}_img (frames)                                          -> data.layout 'face'
  pose   {phase}_img (frames), {phase}_openpose (OpenPose JSON from --keypoints, which holds one
         folder per video named like it, one file per source frame)   -> data.layout 'pose',
         data.pose.openpose_only (no DensePose model ships offline)
  every  {phase}_flow (with --flow dis, the default): backward optical flow between consecutive
         frames from OpenCV's DIS, with a forward-backward validity mask, for flow.source
         'dataset' when no FlowNet2 checkpoint is at hand.

Faces: frames without a detected face are filled from their neighbours for runs of at most
--max_gap frames; a longer run splits the video into <name>_part1, _part2, ... (parts shorter than
--min_frames are dropped, and reported).

A video is written beside the output and renamed into place when complete, and prepare.json
records it: an interrupted run resumes with the next video and never leaves half a video. The
finished set is checked with ``input_pipeline.validate``. Bad input (an unreadable video, no face
in a whole video, keypoint files that do not match the frames, options that differ from the
ones the folder was prepared with) prints one line naming the file or option, and exits 2.
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from typing import Any, Optional

import cv2
import numpy as np
from tqdm import tqdm

from input_pipeline import edges
from input_pipeline import footage
from input_pipeline import layouts
from input_pipeline import optical_flow
from input_pipeline import validate

CONDITIONINGS = ('edges', 'face', 'pose')
LAYOUT = {'edges': 'video', 'face': 'face', 'pose': 'pose'}
MANIFEST = 'prepare.json'
STAGING = '.prepare_staging'
# Options that shape the written data: a folder is resumed only with the same values.
DATA_OPTIONS = ('conditioning', 'size', 'fps', 'test_fraction', 'test_videos', 'min_frames',
                'flow', 'canny_low', 'canny_high', 'blur', 'max_gap', 'smooth', 'keypoints',
                'keypoint_format', 'min_score')


class UserError(ValueError):
  """Bad input or options: reported as one line, exit status 2."""


@dataclasses.dataclass
class Frames:
  """One video's frames as decoded (all kept frames, in order), before splitting."""
  count: int = 0
  points: list[Optional[np.ndarray]] = dataclasses.field(default_factory=list)  # face
  people: list[Any] = dataclasses.field(default_factory=list)  # pose


def parse_size(text: str) -> tuple[int, int]:
  """'WxH' -> (W, H); both positive multiples of 4."""
  try:
    width, height = (int(v) for v in text.lower().split('x'))
  except ValueError:
    raise UserError(f'--size: expected WxH in pixels (e.g. 256x256), got {text!r}') from None
  if width < 16 or height < 16 or width % 4 or height % 4:
    raise UserError(f'--size: width and height must be multiples of 4 and >= 16, got {text!r}')
  return width, height


# ---------------------------------------------------------------- the output folder


def _write_json(path: str, data: Any) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(data, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def _open_manifest(out: str, options: dict[str, Any]) -> dict[str, Any]:
  """prepare.json of ``out`` (a new one for a new or empty folder); resumes only on same options."""
  path = os.path.join(out, MANIFEST)
  if os.path.isfile(path):
    try:
      with open(path) as f:
        manifest = json.load(f)
      previous = manifest['options']
    except (OSError, ValueError, KeyError) as e:
      raise UserError(f'{path}: unreadable ({e}); remove it with the folder or choose a new --out'
                      ) from None
    changed = [k for k in DATA_OPTIONS if previous.get(k) != options.get(k)]
    if changed:
      first = changed[0]
      raise UserError(f'{out}: prepared with --{first} {previous.get(first)!r}, now '
                      f'{options.get(first)!r}; rerun with the same options or a new --out')
    return manifest
  if os.path.isdir(out) and [e for e in os.listdir(out) if e != STAGING]:
    raise UserError(f'{out}: not empty and not a prepare output (no {MANIFEST}); choose a new '
                    '--out')
  os.makedirs(out, exist_ok=True)
  manifest = {'options': options, 'videos': {}}
  _write_json(path, manifest)
  return manifest


def _remove_leftovers(out: str, name: str, finished: set[str]) -> None:
  """Removes what an interrupted move of video ``name`` put in place (its parts included), never
  the ``finished`` sequences of other videos."""
  for folder in os.listdir(out):
    full = os.path.join(out, folder)
    if folder.startswith('.') or not os.path.isdir(full):
      continue
    for entry in os.listdir(full):
      if (entry == name or entry.startswith(name + '_part')) and entry not in finished:
        shutil.rmtree(os.path.join(full, entry))


def _finished_sequences(manifest: dict[str, Any]) -> set[str]:
  return {seq for report in manifest['videos'].values()
          for phase in ('train', 'test') for seq in report.get(phase, {})}


# ---------------------------------------------------------------- per video


def _split(length: int, test: bool, fraction: float, min_frames: int) -> tuple[int, str]:
  """(train frames, note) of a sequence of ``length`` frames; the rest is test."""
  if test:
    return 0, ''
  n_test = int(round(fraction * length))
  if n_test == 0:
    return length, ''
  n_test = max(n_test, min_frames)
  if length - n_test < min_frames:
    return length, f'too short to split ({length} frames): train only'
  return length - n_test, ''


def _sequences(frames: Frames, args, source: footage.Source, report: dict[str, Any]
               ) -> list[tuple[str, int, int, Optional[np.ndarray]]]:
  """(sequence name, first frame, stop, landmarks [n, 68, 2] or None) of one video."""
  name = source.name
  if args.conditioning != 'face':
    return [(name, 0, frames.count, None)]
  from input_pipeline import face_landmarks  # pylint: disable=g-import-not-at-top
  detected = sum(p is not None for p in frames.points)
  report['faces_found'] = detected
  if not detected:
    raise UserError(f'{source.path}: no face found in any of its {frames.count} frames')
  segments = face_landmarks.fill_gaps(frames.points, args.max_gap)
  report['faces_filled'] = sum(len(s.filled) for s in segments)
  kept = [s for s in segments if len(s.points) >= args.min_frames]
  dropped = len(segments) - len(kept)
  if dropped:
    report['parts_dropped'] = f'{dropped} part(s) shorter than --min_frames {args.min_frames}'
  if not kept:
    raise UserError(f'{source.path}: no run of at least --min_frames {args.min_frames} frames with a '
                    f'face (found faces in {detected} of {frames.count} frames)')
  out = []
  for i, segment in enumerate(kept):
    points = face_landmarks.smooth(segment.points, args.smooth)
    seq_name = name if len(kept) == 1 else f'{name}_part{i + 1}'
    out.append((seq_name, segment.start, segment.stop, points))
  return out


def _stage_frames(source: footage.Source, args, staging: str, progress) -> Frames:
  """Decodes one video into ``staging`` (frames, conditioning maps, flows) with one progress bar."""
  os.makedirs(os.path.join(staging, 'frames'))
  if args.conditioning == 'edges':
    os.makedirs(os.path.join(staging, 'edges'))
  if args.flow != 'none':
    os.makedirs(os.path.join(staging, 'flow'))
  estimator = optical_flow.FlowEstimator(args.flow) if args.flow != 'none' else None
  detector = _face_detector() if args.conditioning == 'face' else None
  keypoint_files = _keypoint_files(source, args) if args.conditioning == 'pose' else None
  frames, previous = Frames(), None
  total = footage.estimated_frames(source, args.fps)
  with progress(total=total, desc=source.name, unit='frame', leave=False) as bar:
    for index, raw in footage.read_frames(source, args.fps):
      frame = footage.fit(raw, args.size)
      stem = f'{frames.count:05d}'
      _write_png(os.path.join(staging, 'frames', stem + '.png'), frame)
      if args.conditioning == 'edges':
        _write_png(os.path.join(staging, 'edges', stem + '.png'),
                   edges.canny(frame, args.canny_low, args.canny_high, args.blur))
      elif args.conditioning == 'face':
        frames.points.append(detector(frame))
      else:
        frames.people.append(_frame_people(keypoint_files, index, raw.shape, args))
      if estimator is not None and previous is not None:
        flow, valid = estimator.backward(previous, frame)
        np.savez_compressed(os.path.join(staging, 'flow', stem + '.npz'), backward=flow,
                            backward_valid=valid)
      previous = frame
      frames.count += 1
      bar.update(1)
  if keypoint_files is not None and not args.fps and len(keypoint_files) != index + 1:
    raise UserError(f'{os.path.dirname(keypoint_files[0])}: {len(keypoint_files)} keypoint files '
                    f'for the {index + 1} frames of {source.path}; expected one per frame')
  return frames


def _face_detector():
  from input_pipeline import face_landmarks  # pylint: disable=g-import-not-at-top
  try:
    return face_landmarks.load_detector()
  except ImportError as e:
    raise UserError(str(e)) from None


def _keypoint_files(source: footage.Source, args) -> list[str]:
  from input_pipeline import pose_keypoints  # pylint: disable=g-import-not-at-top
  folder = os.path.join(args.keypoints, source.name)
  if not os.path.isdir(folder):
    raise UserError(f'{folder}: missing (--keypoints needs one folder per video, named like the '
                    f'video {source.name!r}, with one keypoint .json per source frame)')
  try:
    return pose_keypoints.list_keypoint_files(folder)
  except ValueError as e:
    raise UserError(str(e)) from None


def _frame_people(files: list[str], index: int, raw_shape, args):
  from input_pipeline import pose_keypoints  # pylint: disable=g-import-not-at-top
  if index >= len(files):
    raise UserError(f'{os.path.dirname(files[0])}: {len(files)} keypoint files, but the video has '
                    f'more frames (frame {index + 1} has none); expected one per source frame')
  height, width = raw_shape[:2]
  scale, _, offset = footage.fit_geometry(width, height, args.size)
  try:
    people = pose_keypoints.read_people(files[index], args.keypoint_format, args.min_score)
  except ValueError as e:
    raise UserError(str(e)) from None
  return pose_keypoints.transform_people(people, scale, offset)


def _write_png(path: str, image: np.ndarray) -> None:
  bgr = image[..., ::-1] if image.ndim == 3 else image
  if not cv2.imwrite(path, np.ascontiguousarray(bgr)):
    raise OSError(f'{path}: could not write the frame')


def _lay_out(frames: Frames, sequences, split_of, staging: str, args) -> dict[str, list]:
  """Moves staged files into ``staging/out/{phase}_{folder}/<sequence>/``; returns per phase
  [(sequence, frames)]."""
  layout = LAYOUT[args.conditioning]
  folders = layouts.STREAM_FOLDERS[layout]
  written = {'train': [], 'test': []}
  for seq_name, start, stop, points in sequences:
    n_train = split_of(seq_name, stop - start)
    for phase, lo, hi in (('train', start, start + n_train), ('test', start + n_train, stop)):
      if hi <= lo:
        continue
      written[phase].append((seq_name, hi - lo))

      def target(stream, phase=phase, seq_name=seq_name):
        folder = (f'{phase}_flow' if stream == 'flow' else
                  f'{phase}_{folders[stream]}')
        path = os.path.join(staging, 'out', folder, seq_name)
        os.makedirs(path, exist_ok=True)
        return path
      image_dir = target('image')
      cond_dir = target('label') if layout == 'video' else None
      flow_dir = target('flow') if args.flow != 'none' else None
      extra_dir = target('keypoints' if layout == 'face' else 'openpose') if layout != 'video' \
          else None
      for k in range(lo, hi):
        stem = f'{k:05d}'
        os.replace(os.path.join(staging, 'frames', stem + '.png'),
                   os.path.join(image_dir, stem + '.png'))
        if cond_dir:
          os.replace(os.path.join(staging, 'edges', stem + '.png'),
                     os.path.join(cond_dir, stem + '.png'))
        if flow_dir and k > lo:
          os.replace(os.path.join(staging, 'flow', stem + '.npz'),
                     os.path.join(flow_dir, stem + '.npz'))
        if layout == 'face':
          _write_landmarks(os.path.join(extra_dir, stem + '.txt'), points[k - start])
        elif layout == 'pose':
          _write_openpose(os.path.join(extra_dir, stem + '_keypoints.json'), frames.people[k])
  return written


def _write_landmarks(path: str, points: np.ndarray) -> None:
  from input_pipeline import face_landmarks  # pylint: disable=g-import-not-at-top
  face_landmarks.write_keypoints(path, points)


def _write_openpose(path: str, people) -> None:
  from input_pipeline import pose_keypoints  # pylint: disable=g-import-not-at-top
  with open(path, 'w') as f:
    json.dump(pose_keypoints.to_openpose_json(people), f)


def _publish(staging: str, out: str) -> None:
  """Renames every staged sequence folder into ``out`` (each rename is atomic)."""
  staged = os.path.join(staging, 'out')
  for folder in sorted(os.listdir(staged)):
    os.makedirs(os.path.join(out, folder), exist_ok=True)
    for seq_name in sorted(os.listdir(os.path.join(staged, folder))):
      os.replace(os.path.join(staged, folder, seq_name), os.path.join(out, folder, seq_name))


def prepare_video(source: footage.Source, args, out: str, finished: set[str], progress
                  ) -> dict[str, Any]:
  """Writes one video's sequences into ``out`` (beside the ``finished`` sequences of other
  videos); returns its report."""
  staging = os.path.join(out, STAGING, source.name)
  shutil.rmtree(staging, ignore_errors=True)
  try:
    frames = _stage_frames(source, args, staging, progress)
    report: dict[str, Any] = {'source': source.path, 'frames': frames.count}
    sequences = _sequences(frames, args, source, report)
    notes = []

    def split_of(seq_name: str, length: int) -> int:
      n_train, note = _split(length, source.name in args.test_videos, args.test_fraction,
                             args.min_frames)
      if note:
        notes.append(f'{seq_name}: {note}')
      return n_train
    written = _lay_out(frames, sequences, split_of, staging, args)
    _remove_leftovers(out, source.name, finished)
    _publish(staging, out)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  report.update({phase: dict(seqs) for phase, seqs in written.items() if seqs})
  if notes:
    report['notes'] = notes
  return report


# ---------------------------------------------------------------- the command


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m input_pipeline.prepare', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--input', required=True, help='video file, folder of videos or of frames')
  parser.add_argument('--conditioning', required=True, choices=CONDITIONINGS)
  parser.add_argument('--out', required=True, help='dataset root to write (new, or resumed)')
  parser.add_argument('--size', required=True, type=str, help='output frames WxH, e.g. 256x256')
  split = parser.add_mutually_exclusive_group()
  split.add_argument('--test_fraction', type=float, default=0.1,
                     help='tail of every video that goes to the test split (default 0.1)')
  split.add_argument('--test_videos', default='',
                     help='comma-separated video names that go whole to the test split')
  parser.add_argument('--fps', type=float, default=0.0,
                      help='resample videos to this frame rate (0 = keep every frame)')
  parser.add_argument('--min_frames', type=int, default=12,
                      help='shortest sequence written (train clips need n_frames_total frames)')
  parser.add_argument('--flow', choices=('medium', 'fast', 'ultrafast', 'none'), default='medium',
                      help="DIS optical-flow preset for {phase}_flow, or 'none'")
  parser.add_argument('--canny_low', type=float, default=100.0, help='edges: lower threshold')
  parser.add_argument('--canny_high', type=float, default=200.0, help='edges: upper threshold')
  parser.add_argument('--blur', type=int, default=3, help='edges: Gaussian kernel (0 = none)')
  parser.add_argument('--max_gap', type=int, default=5,
                      help='face: longest run of frames without a face that is filled in')
  parser.add_argument('--smooth', type=int, default=1,
                      help='face: moving-average window over frames for the landmarks (odd)')
  parser.add_argument('--keypoints', default='', help='pose: folder of per-video keypoint JSON')
  parser.add_argument('--keypoint_format', choices=('openpose', 'wholebody'), default='openpose',
                      help='pose: OpenPose BODY_25 JSON or COCO-WholeBody (DWPose/RTMPose)')
  parser.add_argument('--min_score', type=float, default=0.0,
                      help='pose: keypoints below this confidence are dropped')
  return parser.parse_args(argv)


def _check_args(args) -> None:
  args.size = parse_size(args.size)
  if args.test_videos:
    args.test_fraction = 0.0
  args.test_videos = tuple(v for v in args.test_videos.split(',') if v)
  if not 0.0 <= args.test_fraction < 1.0:
    raise UserError(f'--test_fraction: must be in [0, 1), got {args.test_fraction}')
  if args.fps < 0:
    raise UserError(f'--fps: must be >= 0, got {args.fps}')
  if args.min_frames < 1:
    raise UserError(f'--min_frames: must be >= 1, got {args.min_frames}')
  if args.blur not in (0, 1) and (args.blur < 0 or args.blur % 2 == 0):
    raise UserError(f'--blur: must be 0 or an odd kernel size, got {args.blur}')
  if not 0 <= args.canny_low <= args.canny_high:
    raise UserError(f'--canny_low/--canny_high: need 0 <= low <= high, got {args.canny_low}, '
                    f'{args.canny_high}')
  if args.max_gap < 0:
    raise UserError(f'--max_gap: must be >= 0, got {args.max_gap}')
  if args.smooth < 1 or args.smooth % 2 == 0:
    raise UserError(f'--smooth: must be an odd window >= 1, got {args.smooth}')
  if args.conditioning == 'pose' and not args.keypoints:
    raise UserError('--keypoints: pose needs a folder of keypoint JSON per video (OpenPose or '
                    'COCO-WholeBody); no pose model ships with this package')
  if args.keypoints and not os.path.isdir(args.keypoints):
    raise UserError(f'--keypoints: {args.keypoints} is not a folder')


def _options(args) -> dict[str, Any]:
  values = vars(args)
  options = {k: values[k] for k in DATA_OPTIONS}
  options['size'] = list(options['size'])
  options['test_videos'] = list(options['test_videos'])
  options['keypoints'] = os.path.abspath(args.keypoints) if args.keypoints else ''
  return options


def _progress(*args, **kwargs):
  """tqdm bars on a terminal (none when stderr is redirected)."""
  return tqdm(*args, disable=None, dynamic_ncols=True, **kwargs)


def run(args, progress=_progress) -> dict[str, Any]:
  """Prepares every video of ``args.input`` into ``args.out``; returns the manifest."""
  _check_args(args)
  sources = footage.find_sources(args.input)
  unknown = sorted(set(args.test_videos) - {s.name for s in sources})
  if unknown:
    raise UserError(f'--test_videos: no video named {unknown[0]!r} in {args.input} (names: '
                    f'{", ".join(s.name for s in sources[:8])})')
  manifest = _open_manifest(args.out, _options(args))
  shutil.rmtree(os.path.join(args.out, STAGING), ignore_errors=True)
  todo = [s for s in sources if s.name not in manifest['videos']]
  if len(todo) < len(sources):
    print(f'{len(sources) - len(todo)} of {len(sources)} videos already prepared in {args.out}',
          file=sys.stderr)
  try:
    for source in progress(todo, desc='videos', unit='video'):
      start = time.time()
      report = prepare_video(source, args, args.out, _finished_sequences(manifest), progress)
      report['seconds'] = round(time.time() - start, 1)
      manifest['videos'][source.name] = report
      _write_json(os.path.join(args.out, MANIFEST), manifest)
  finally:
    shutil.rmtree(os.path.join(args.out, STAGING), ignore_errors=True)
  return manifest


def summary(manifest: dict[str, Any]) -> list[str]:
  """One line per video, then the totals."""
  lines, totals = [], {'train': 0, 'test': 0}
  for name, report in sorted(manifest['videos'].items()):
    parts = [f'{name}: {report["frames"]} frames']
    if 'faces_found' in report:
      parts.append(f'face in {report["faces_found"]}, filled {report.get("faces_filled", 0)}')
    for phase in ('train', 'test'):
      seqs = report.get(phase, {})
      totals[phase] += sum(seqs.values())
      if seqs:
        parts.append(f'{phase} ' + ' '.join(f'{k}:{v}' for k, v in sorted(seqs.items())))
    parts += report.get('notes', []) + ([report['parts_dropped']] if 'parts_dropped' in report
                                        else [])
    lines.append('  ' + '; '.join(parts))
  lines.append(f'{len(manifest["videos"])} videos: {totals["train"]} train frames, '
               f'{totals["test"]} test frames')
  return lines


def main(argv: Optional[list[str]] = None) -> int:
  args = parse_args(argv)
  try:
    manifest = run(args)
  except (UserError, ValueError) as e:
    print(f'prepare: error: {e}', file=sys.stderr)
    return 2
  layout = LAYOUT[args.conditioning]
  print('\n'.join(summary(manifest)))
  problems = validate.find_problems(args.out, layout, label_nc=0)
  for problem in problems:
    print(problem)
  if problems:
    print(f'prepare: {len(problems)} problem(s) in {args.out} (python -m input_pipeline.validate '
          f'--layout {layout} {args.out})', file=sys.stderr)
    return 1
  print(f'{args.out}: {layout} dataset OK ({MANIFEST} lists what was written)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
