"""Procedural street, face and pose videos written in the original vid2vid folder layouts.

  python -m input_pipeline.synthetic --domain street --out runs/demo/data --sequences 8 \
      --frames 12 --size 64x32 --seed 0

Layouts (``{phase}`` is ``train`` and ``test``; ``<seq>`` = ``seq_0000``...; ``<stem>`` =
``<seq>_000000``..., one per frame, sorted by name):

* street: ``{phase}_A/<seq>/<stem>.png`` uint8 Cityscapes labelIds (0..33);
  ``{phase}_B/<seq>/<stem>.png`` RGB; ``{phase}_inst/<seq>/<stem>.png`` uint16 Cityscapes
  instanceIds (label*1000 + k for person/car instances, else the labelId).
* face: ``{phase}_keypoints/<seq>/<stem>.txt`` (68 rows ``x,y``, integer pixels, dlib/iBUG order)
  and ``{phase}_img/<seq>/<stem>.jpg`` (quality 95).
* pose: ``{phase}_img/<seq>/<stem>.png``, ``{phase}_densepose/<seq>/<stem>_IUV.png`` (read as RGB:
  channel 0 = V, 1 = U, 2 = part index I in 0..24) and
  ``{phase}_openpose/<seq>/<stem>_keypoints.json``
  (OpenPose format: ``people[*].pose_keypoints_2d`` 25x3, ``face_keypoints_2d`` 70x3,
  ``hand_left_keypoints_2d`` / ``hand_right_keypoints_2d`` 21x3, flat [x, y, confidence] lists).

Ground-truth flow (every domain): ``{phase}_flow/<seq>/<stem>.npz`` for every frame t >= 1 (named
after frame t; frame 0 has none), a NumPy ``.npz`` (zip-compressed) with
  ``backward``        [H, W, 2] float32, pixels (dx, dy), frame t -> t-1:
                      ``warp(frame[t-1], backward) ~= frame[t]`` (vid2vid_jax.warp semantics);
  ``backward_valid``  [H, W] uint8, 1 where the pixel is visible in both frames (0 = occluded,
                      leaves the image, or changes appearance in place, e.g. eyelids);
  ``forward``         [H, W, 2] float32, frame t-1 -> t, on frame t-1's pixel grid;
  ``forward_valid``   [H, W] uint8, likewise.
Street motions are whole pixels per frame, so street flows are exact integers.
"""

import json
import os
import pathlib
import time
from typing import Optional

from absl import app
from absl import flags
from absl import logging
import cv2
import numpy as np

from input_pipeline import synthetic_render as sr
from input_pipeline import synthetic_scenes as scenes

DOMAINS = ('street', 'face', 'pose')
PHASES = ('train', 'test')


def _stem(seq: str, t: int) -> str:
  return f'{seq}_{t:06d}'


def _write_png(path: pathlib.Path, array: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  if array.ndim == 3:
    array = array[..., ::-1]  # RGB -> cv2's BGR
  if not cv2.imwrite(str(path), array):
    raise ValueError(f'{path}: could not write image')


def _write_flows(flow_dir: Optional[pathlib.Path], stem: str, layers, layer_maps, t: int) -> None:
  if flow_dir is None:
    return
  backward, backward_valid = sr.layer_flow(layers, layer_maps[t], layer_maps[t - 1], t, t - 1)
  forward, forward_valid = sr.layer_flow(layers, layer_maps[t - 1], layer_maps[t], t - 1, t)
  flow_dir.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(flow_dir / f'{stem}.npz', backward=backward,
                      backward_valid=backward_valid.astype(np.uint8), forward=forward,
                      forward_valid=forward_valid.astype(np.uint8))


def _render_all(layers, num_frames: int, height: int, width: int):
  return [sr.render(layers, t, height, width) for t in range(num_frames)]


def write_street_sequence(root: pathlib.Path, phase: str, seq: str, rng: np.random.Generator,
                          num_frames: int, height: int, width: int,
                          flow_root: Optional[pathlib.Path]) -> None:
  """Writes one street video (labels, RGB, instances, flows); see the module docstring."""
  layers = scenes.street_scene(rng, num_frames, height, width)
  frames = _render_all(layers, num_frames, height, width)
  for t, frame in enumerate(frames):
    stem = _stem(seq, t)
    _write_png(root / f'{phase}_A' / seq / f'{stem}.png', frame.label)
    _write_png(root / f'{phase}_B' / seq / f'{stem}.png', frame.rgb)
    _write_png(root / f'{phase}_inst' / seq / f'{stem}.png', frame.inst.astype(np.uint16))
    if t:
      _write_flows(None if flow_root is None else flow_root / seq, stem, layers,
                   [f.layer for f in frames], t)


def write_face_sequence(root: pathlib.Path, phase: str, seq: str, rng: np.random.Generator,
                        num_frames: int, height: int, width: int,
                        flow_root: Optional[pathlib.Path]) -> None:
  """Writes one face video (68-landmark .txt files, .jpg frames, flows)."""
  layers, landmarks = scenes.face_scene(rng, num_frames, height, width)
  frames = _render_all(layers, num_frames, height, width)
  for t, frame in enumerate(frames):
    stem = _stem(seq, t)
    path = root / f'{phase}_img' / seq / f'{stem}.jpg'
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), frame.rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    points = np.round(landmarks[t]).astype(np.int64)
    text = ''.join(f'{x},{y}\n' for x, y in points)
    path = root / f'{phase}_keypoints' / seq / f'{stem}.txt'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if t:
      _write_flows(None if flow_root is None else flow_root / seq, stem, layers,
                   [f.layer for f in frames], t)


def _flat(points: np.ndarray) -> list[float]:
  return [round(float(x), 3) for x in points.reshape(-1)]


def write_pose_sequence(root: pathlib.Path, phase: str, seq: str, rng: np.random.Generator,
                        num_frames: int, height: int, width: int,
                        flow_root: Optional[pathlib.Path]) -> None:
  """Writes one pose video (frames, DensePose IUV, OpenPose JSON, flows)."""
  layers, points = scenes.pose_scene(rng, num_frames, height, width)
  frames = _render_all(layers, num_frames, height, width)
  for t, frame in enumerate(frames):
    stem = _stem(seq, t)
    _write_png(root / f'{phase}_img' / seq / f'{stem}.png', frame.rgb)
    # DensePose writes (I, U, V) with cv2, so read as RGB the part index I is channel 2.
    _write_png(root / f'{phase}_densepose' / seq / f'{stem}_IUV.png', frame.iuv)
    person = {
        'person_id': [-1],
        'pose_keypoints_2d': _flat(points['body'][t]),
        'face_keypoints_2d': _flat(points['face'][t]),
        'hand_left_keypoints_2d': _flat(points['hand_left'][t]),
        'hand_right_keypoints_2d': _flat(points['hand_right'][t]),
        'pose_keypoints_3d': [], 'face_keypoints_3d': [],
        'hand_left_keypoints_3d': [], 'hand_right_keypoints_3d': []}
    path = root / f'{phase}_openpose' / seq / f'{stem}_keypoints.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'version': 1.3, 'people': [person]}))
    if t:
      _write_flows(None if flow_root is None else flow_root / seq, stem, layers,
                   [f.layer for f in frames], t)


_WRITERS = {'street': write_street_sequence, 'face': write_face_sequence,
            'pose': write_pose_sequence}


def generate(domain: str, out: str | os.PathLike, *, sequences: int, frames: int, width: int,
             height: int, seed: int = 0, test_sequences: int = 2,
             flows: bool = True) -> pathlib.Path:
  """Writes a synthetic dataset; returns its root.

  Args:
    domain: 'street', 'face' or 'pose'.
    out: dataset root (created).
    sequences: number of training videos.
    frames: frames per video.
    width, height: frame size in pixels.
    seed: everything is a deterministic function of (seed, phase, video index).
    test_sequences: number of test videos (0 = none).
    flows: write the ground-truth flows ({phase}_flow).
  """
  if domain not in _WRITERS:
    raise ValueError(f'domain must be one of {DOMAINS}; got {domain!r}')
  if frames < 2 or width < 16 or height < 16:
    raise ValueError(f'need frames >= 2 and a size of at least 16x16; got {frames} frames at '
                     f'{width}x{height}')
  root = pathlib.Path(out)
  for phase_index, (phase, count) in enumerate(zip(PHASES, (sequences, test_sequences))):
    for index in range(count):
      rng = np.random.default_rng([seed, phase_index, index])
      _WRITERS[domain](root, phase, f'seq_{index:04d}', rng, frames, height, width,
                       root / f'{phase}_flow' if flows else None)
  return root


def _parse_size(size: str) -> tuple[int, int]:
  try:
    width, height = (int(x) for x in size.lower().split('x'))
  except ValueError as e:
    raise ValueError(f'--size must look like 64x32 (WxH); got {size!r}') from e
  return width, height


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  width, height = _parse_size(FLAGS.size)
  start = time.time()
  root = generate(FLAGS.domain, FLAGS.out, sequences=FLAGS.sequences, frames=FLAGS.frames,
                  width=width, height=height, seed=FLAGS.seed,
                  test_sequences=FLAGS.test_sequences, flows=FLAGS.flows)
  logging.info('wrote %s data (%d+%d videos x %d frames at %dx%d) to %s in %.1fs', FLAGS.domain,
               FLAGS.sequences, FLAGS.test_sequences, FLAGS.frames, width, height, root,
               time.time() - start)


if __name__ == '__main__':
  FLAGS = flags.FLAGS
  flags.DEFINE_enum('domain', 'street', DOMAINS, 'Which dataset layout to write.')
  flags.DEFINE_string('out', None, 'Dataset root to create.', required=True)
  flags.DEFINE_integer('sequences', 8, 'Training videos.')
  flags.DEFINE_integer('test_sequences', 2, 'Test videos.')
  flags.DEFINE_integer('frames', 12, 'Frames per video.')
  flags.DEFINE_string('size', '64x32', 'Frame size WxH in pixels.')
  flags.DEFINE_integer('seed', 0, 'Random seed.')
  flags.DEFINE_bool('flows', True, 'Write ground-truth flows ({phase}_flow).')
  app.run(main)
