"""Compares our face and pose conditioning with what the original's loaders returned.

  python -m input_pipeline.conditioning_parity ../shared/fixtures/conditioning_reference

DIR holds one folder per case: ``opt.txt`` (the original's options), ``meta.json`` (its loader's
geometry and a log of its random draws), ``arrays.npz`` (the A, B and inst it returned, frames
stacked along channels, CHW float32) and ``raw/`` (the dataroot). Per case we build the config
from opt.txt with the importer's mapping, turn on the ``compat`` flags that select the original's
conditioning, read raw/ with our loaders and replay the logged draws as their ``rng`` (the
sampler's draws, np.random.choice / randint, are taken as meta.json's video_params instead). The
table has one row per compared array: exact for ids, part labels, geometry and unresampled
renderings; for smoothly resampled arrays max abs error <= 1/255 and mean <= 1e-4.

Exit status: 0 if every row passes, 1 on any failure, 2 on bad input (one line naming the path).
"""

import argparse
import dataclasses
import json
import pathlib
import sys
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf

from input_pipeline import face
from input_pipeline import layouts
from input_pipeline import pipeline
from input_pipeline import pose
from vid2vid_jax import original_options

CASE_FILES = ('opt.txt', 'meta.json', 'arrays.npz', 'raw')
# The compat flags that select the original's conditioning (docs/conditioning.md).
ORIGINAL_COMPAT = ('pose_jitter_missing_points',)
MAX_ERROR = 1 / 255  # for smoothly resampled arrays
MAX_MEAN_ERROR = 1e-4
# Draws of the original's sequence and frame sampler; meta.json's video_params stand for them.
_SAMPLER_DRAWS = ('np.random.choice', 'np.random.randint')


class DrawMismatch(ValueError):
  """Our loaders asked for a draw the original's log does not have at that point."""


class LoggedDraws:
  """Replays the original's logged draws through the ``np.random.Generator`` methods we use.

  ``integers(low, high)`` answers ``random.randint(low, high - 1)``, ``standard_normal(size)``
  answers ``np.random.randn(*size)``, ``random()`` answers ``np.random.rand()`` or
  ``random.random()``; anything else, or a draw out of order, raises ``DrawMismatch``.
  """

  def __init__(self, calls: Sequence[dict[str, Any]]):
    self._calls = [c for c in calls if c['fn'] not in _SAMPLER_DRAWS]
    self._next = 0

  @property
  def left(self) -> int:
    """Logged draws not replayed yet."""
    return len(self._calls) - self._next

  def _take(self, fns: tuple[str, ...], args: list) -> Any:
    if self._next >= len(self._calls):
      raise DrawMismatch(f'we draw {fns[0]}{tuple(args)} after the log ended')
    call = self._calls[self._next]
    if call['fn'] not in fns or list(call['args']) != args:
      raise DrawMismatch(f'draw {self._next}: we draw {fns[0]}{tuple(args)}, the original drew '
                         f'{call["fn"]}{tuple(call["args"])}')
    self._next += 1
    return call['result']

  def integers(self, low: int, high: int) -> int:
    return int(self._take(('random.randint',), [int(low), int(high) - 1]))

  def standard_normal(self, size=None):
    shape = [] if size is None else list(np.atleast_1d(size).tolist())
    result = self._take(('np.random.randn',), shape)
    return float(result) if size is None else np.asarray(result, np.float64).reshape(shape)

  def random(self) -> float:
    return float(self._take(('np.random.rand', 'random.random'), []))


@dataclasses.dataclass(frozen=True)
class Row:
  """One compared array of one case."""
  case: str
  array: str
  max_error: float
  mean_error: float
  exact: bool
  note: str = ''

  @property
  def passed(self) -> bool:
    if np.isnan(self.max_error):
      return False
    if self.exact:
      return self.max_error == 0
    return self.max_error <= MAX_ERROR and self.mean_error <= MAX_MEAN_ERROR


def _compare(case: str, name: str, ours: np.ndarray, theirs: np.ndarray, exact: bool) -> Row:
  if ours.shape != theirs.shape:
    return Row(case, name, float('nan'), float('nan'), exact,
               f'shape {ours.shape}, original {theirs.shape}')
  error = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
  return Row(case, name, float(error.max(initial=0)), float(error.mean()) if error.size else 0.0,
             exact)


def _check_case_dir(case_dir: pathlib.Path) -> None:
  missing = [f for f in CASE_FILES if not (case_dir / f).exists()]
  if missing:
    raise FileNotFoundError(f'{case_dir}: missing {", ".join(missing)} (a case folder holds '
                            f'{", ".join(CASE_FILES)})')


def _config(case_dir: pathlib.Path, options: dict[str, Any], meta: dict[str, Any]):
  """Our config for the case's options, reading case_dir/raw, with the original's compat."""
  overrides = meta.get('post_parse_overrides_like_test_py') or {}
  config = original_options.config_from_options({**options, **overrides})
  config.data.root = str(case_dir / 'raw')
  phase = str(options.get('phase', 'train'))
  config.data.phase = phase
  config.eval.phase = phase
  for flag in ORIGINAL_COMPAT:
    config.compat[flag] = True
  return config


def _sequence(plan: pipeline.Plan, a_path: str) -> layouts.Sequence:
  """The video of the original's returned A_path (``raw/{phase}_{stream}/<video>/<file>``)."""
  name = str(pathlib.PurePosixPath(*pathlib.PurePosixPath(a_path).parts[2:-1]))
  for seq in plan.sequences:
    if seq.name == name:
      return seq
  raise ValueError(f'{a_path}: no video {name!r} among ours ({[s.name for s in plan.sequences]})')


def _frames_on_channels(frames: np.ndarray) -> np.ndarray:
  """[T, H, W, C] -> [T * C, H, W] (frame t in channels t*C .. t*C + C - 1)."""
  return np.transpose(frames, (0, 3, 1, 2)).reshape((-1,) + frames.shape[1:3])


def _item(domain, seq: layouts.Sequence, video_params: dict[str, int], params,
          rng: Optional[LoggedDraws]) -> dict[str, np.ndarray]:
  """A, B and inst of one item, as the original lays them out: [T * C, H, W] float32."""
  n, start, step = (video_params[k] for k in ('n_frames_total', 'start_idx', 't_step'))
  frame_ids = [start + i * step for i in range(n)]
  width, height = layouts.image_size(seq.files['image'][frame_ids[0]])
  frames = [domain.load_frame(seq, t, params, rng, (height, width)) for t in frame_ids]
  features = {key: tf.convert_to_tensor(np.stack([f[key] for f in frames])) for key in frames[0]}
  features['seq_index'] = tf.constant(0, tf.int32)
  features['frame_index'] = tf.constant(frame_ids, tf.int32)
  out = pipeline.finalize(domain, features)
  item = {'A': _frames_on_channels(out['cond'].numpy()),
          'B': _frames_on_channels(out['image'].numpy())}
  if 'inst' in out:
    item['inst'] = out['inst'].numpy().astype(np.float32)
  return item


def _geometry(domain, params, meta: dict[str, Any]) -> tuple[list[int], list[int]]:
  """(ours, original's) geometry as integer lists: the resize (w, h), the output window in resized
  pixels (x0, y0, x1, y1), the flip, and for face the face box in source pixels (x0, y0, x1, y1)."""
  img = meta['img_params']
  new_w, new_h = img['new_size_wh']
  crop_w, crop_h = img['crop_size_wh']
  x, y = img['crop_pos_xy']
  window = [0, 0, new_w, new_h]
  if crop_w and (new_w > crop_w or new_h > crop_h):
    window = [x, y, min(new_w, x + crop_w), min(new_h, y + crop_h)]
  if 'central_crop_x' in meta:
    x0, x1 = meta['central_crop_x']
    window = [window[0] + x0, window[1], window[0] + x1, window[3]]
  theirs = [new_w, new_h] + window + [int(img['flip_applied'])]
  crop = params.crop or (0, 0) + params.resize
  ours = list(params.resize) + [crop[0], crop[1], crop[0] + crop[2], crop[1] + crop[3],
                                int(params.flip)]
  if isinstance(domain, face.FaceDomain):
    box = meta['face_crop_box']
    theirs += [box['min_x'], box['min_y'], box['max_x'], box['max_y']]
    px, py, pw, ph = params.pre_crop
    ours += [px, py, px + pw, py + ph]
  return ours, theirs


def _openpose_full(domain, seq: layouts.Sequence, video_params: dict[str, int],
                   calls: Optional[Sequence[dict[str, Any]]]) -> Optional[np.ndarray]:
  """Our OpenPose renderings [T, H, W, 3] uint8 at the source size with the logged draws (None:
  test time), or None without OpenPose. The DensePose drops are redone only for their draws."""
  if not isinstance(domain, pose.PoseDomain) or domain.densepose_only:
    return None
  rng = None if calls is None else LoggedDraws(calls)
  domain.clip_params(seq, (0,), rng)
  n, start, step = (video_params[k] for k in ('n_frames_total', 'start_idx', 't_step'))
  renderings = []
  for t in [start + i * step for i in range(n)]:
    if not domain.openpose_only:
      pose.densepose_map(layouts.read_image(seq.files['densepose'][t]), rng,
                         random_drop_prob=domain.random_drop_prob,
                         remove_face_labels=domain.remove_face_labels)
    width, height = layouts.image_size(seq.files['image'][t])
    renderings.append(pose.openpose_map(
        layouts.read_openpose(seq.files['openpose'][t]), height, width, rng,
        random_drop_prob=domain.random_drop_prob, remove_face_labels=domain.remove_face_labels,
        basic_point_only=domain.basic_point_only,
        jitter_missing_points=domain.jitter_missing_points))
  return np.stack(renderings)


def compare_case(case_dir: pathlib.Path) -> list[Row]:
  """Rows for every array of one case (see the module docstring).

  Raises:
    FileNotFoundError: a file of the case is missing.
    ValueError: the case is not a face or pose case, or its files cannot be read.
  """
  case_dir = pathlib.Path(case_dir)
  _check_case_dir(case_dir)
  case = case_dir.name
  options = original_options.read_opt_txt(case_dir / 'opt.txt')
  meta = json.loads((case_dir / 'meta.json').read_text())
  with np.load(case_dir / 'arrays.npz') as data:
    arrays = dict(data)
  mode = options.get('dataset_mode')
  if mode not in ('face', 'pose'):
    raise ValueError(f'{case_dir / "opt.txt"}: dataset_mode {mode!r}, expected face or pose')
  train = bool(options.get('isTrain', True))
  config = _config(case_dir, options, meta)
  plan = pipeline.plan_from_config(
      config, 'train' if train else 'test', None, 0, 0, 1)
  domain = plan.domain
  seq = _sequence(plan, meta['A_path'])
  rows = []
  items = [('', meta)] + [('_' + key, meta[key]) for key in sorted(meta) if key.startswith('item')]
  params = None
  for suffix, item_meta in items:
    video_params = item_meta['video_params']
    if train:
      rng = LoggedDraws(item_meta['rng_calls'])
      params = domain.clip_params(seq, (video_params['start_idx'],), rng)
    else:  # test: the first frame's box and params for the whole video, no randomness
      rng = None
      params = params or domain.clip_params(seq, (0,), None)
    try:
      ours = _item(domain, seq, video_params, params, rng)
      note = f'{rng.left} logged draws not replayed' if rng is not None and rng.left else ''
      rows.append(Row(case, 'draws' + suffix, float(bool(note)), 0.0, True, note))
    except DrawMismatch as e:
      rows.append(Row(case, 'draws' + suffix, float('nan'), float('nan'), True, str(e)))
      continue
    if not suffix:
      rows.append(_compare(case, 'geometry', *map(np.array, _geometry(domain, params, meta)),
                           exact=True))
    for name in ('A', 'B', 'inst'):
      key = name + suffix
      if key in arrays:
        # pose A is NEAREST-resampled: ids and rendered colours, no new values
        exact = name == 'inst' or (isinstance(domain, pose.PoseDomain) and name == 'A')
        rows.append(_compare(case, key, ours.get(name, np.zeros(0)), arrays[key], exact))
  if 'openpose_full' in arrays and arrays['openpose_full'].size:
    renderings = _openpose_full(domain, seq, meta['video_params'],
                                meta['rng_calls'] if train else None)
    rows.append(_compare(case, 'openpose_full', renderings, arrays['openpose_full'], exact=True))
  return rows


def find_cases(root: pathlib.Path) -> list[pathlib.Path]:
  """Case folders (those holding an opt.txt) under ``root``, sorted by name."""
  return sorted(p.parent for p in pathlib.Path(root).glob('*/opt.txt'))


def format_table(rows: Sequence[Row]) -> str:
  """One line per row: case, array, max abs error, mean abs error, tolerance, PASS/FAIL."""
  lines = [f'{"case":<34} {"array":<14} {"max abs err":>12} {"mean abs err":>12}  '
           f'{"tolerance":<22} result']
  for r in rows:
    tolerance = 'exact' if r.exact else f'max<=1/255 mean<={MAX_MEAN_ERROR:g}'
    lines.append(f'{r.case:<34} {r.array:<14} {r.max_error:>12.3g} {r.mean_error:>12.3g}  '
                 f'{tolerance:<22} {"pass" if r.passed else "FAIL"}'
                 + (f'  ({r.note})' if r.note else ''))
  return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m input_pipeline.conditioning_parity',
      description='Compare our face/pose conditioning with the original loaders\' recorded output.')
  parser.add_argument('dir', type=pathlib.Path,
                      help='folder of case folders (opt.txt, meta.json, arrays.npz, raw/)')
  parser.add_argument('--case', action='append', default=[],
                      help='only this case (repeatable; default: every case folder)')
  args = parser.parse_args(argv)
  if not args.dir.is_dir():
    print(f'{args.dir}: no such folder (expected a folder of case folders, each with '
          f'{", ".join(CASE_FILES)})', file=sys.stderr)
    return 2
  cases = find_cases(args.dir)
  if args.case:
    cases = [c for c in cases if c.name in args.case]
  if not cases:
    which = f' named {", ".join(args.case)}' if args.case else ''
    print(f'{args.dir}: no case folders{which} (expected subfolders with '
          f'{", ".join(CASE_FILES)})', file=sys.stderr)
    return 2
  rows = []
  for case_dir in cases:
    try:
      rows += compare_case(case_dir)
    except (FileNotFoundError, ValueError) as e:
      print(e, file=sys.stderr)
      return 2
  print(format_table(rows))
  failed = [r for r in rows if not r.passed]
  print(f'{len(rows) - len(failed)}/{len(rows)} rows pass over {len(cases)} case(s)')
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
