"""Frames/s of the street input pipeline at 512x256 and 1024x512 (PNG vs packed raw frames).

  taskset -c 0,1 python benchmarks/input_pipeline.py [--data /tmp/v2v_bench_street]

Source frames are 2048x1024 synthetic street frames (Cityscapes' size) in the original layout:
uint8 label ids, uint16 instance ids, RGB frames re-encoded with mild noise (sigma 4) so that the
PNGs are about the size of real Cityscapes frames (synthetic flat colours compress ~10x better,
which would flatter decoding). Config: the street_512 settings (label_nc 35, use_instance,
scaleWidth, n_frames_total 6, 2 frames per step -> clips of 8 frames), batch 1, 2 parallel
calls, no flows. 'packed' reads the same clips from ``input_pipeline.pack`` .npy frames,
pre-resized to the load size. Prints a Markdown table.
"""

import os
import pathlib
import sys
import time

# This file shares its name with the package it measures: drop its own folder from the path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
  sys.path.pop(0)

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
import cv2
import numpy as np

from configs import street_512
import input_pipeline
from input_pipeline import layouts
from input_pipeline import pack
from input_pipeline import synthetic

FLAGS = flags.FLAGS
flags.DEFINE_string('data', '/tmp/v2v_bench_street', 'Where to cache the generated data.')
flags.DEFINE_integer('sequences', 2, 'Videos to generate.')
flags.DEFINE_integer('frames', 12, 'Frames per video.')
flags.DEFINE_integer('batches', 8, 'Timed batches per configuration (after 2 warm-up).')


def _make_data(root: pathlib.Path) -> None:
  if (root / 'train_A').is_dir():
    return
  synthetic.generate('street', root, sequences=FLAGS.sequences, frames=FLAGS.frames, width=2048,
                     height=1024, seed=0, test_sequences=0, flows=False)
  rng = np.random.default_rng(0)
  for path in sorted((root / 'train_B').rglob('*.png')):
    image = cv2.imread(str(path)).astype(np.float32)
    image += rng.normal(0, 4, image.shape)
    cv2.imwrite(str(path), np.clip(image, 0, 255).astype(np.uint8))


def _frames_per_second(root: str, load_size: int) -> float:
  config = street_512.get_config()
  config.data.root = root
  config.data.load_size = config.data.fine_size = load_size
  config.data.batch_size = 1
  config.data.num_parallel_calls = 2
  ds = input_pipeline.create_dataset(config, process_index=0, process_count=1)
  for _ in range(2):
    next(ds)
  start = time.perf_counter()
  frames = 0
  for _ in range(FLAGS.batches):
    batch = next(ds)
    frames += batch['image'].shape[0] * batch['image'].shape[1]
  return frames / (time.perf_counter() - start)


def _decode_ms(root: str) -> dict[str, float]:
  seq = layouts.list_sequences(root, 'street', 'train', ('label', 'image', 'inst'))[0][0]
  times = {}
  for stream, reader in (('label', layouts.read_map), ('image', layouts.read_image),
                         ('inst', layouts.read_map)):
    start = time.perf_counter()
    for path in seq.files[stream]:
      reader(path)
    times[stream] = 1000 * (time.perf_counter() - start) / len(seq)
  return times


def main(argv):
  del argv
  root = pathlib.Path(FLAGS.data)
  _make_data(root)
  mib = sum(f.stat().st_size for f in (root / 'train_B').rglob('*.png')) / 2 ** 20
  n = len(list((root / 'train_B').rglob('*.png')))
  decode = _decode_ms(str(root))
  print(f'source: {n} frames at 2048x1024, RGB PNG {mib / n:.1f} MiB/frame; decode per frame '
        f'(1 thread): ' + ', '.join(f'{k} {v:.0f} ms' for k, v in decode.items()))
  print(f'cores available: {len(os.sched_getaffinity(0))}')
  print('| output | PNG frames/s | packed .npy frames/s | speed-up |')
  print('| --- | --- | --- | --- |')
  for load_size in (512, 1024):
    packed = root.parent / f'{root.name}_packed_{load_size}'
    if not (packed / 'train_A').is_dir():
      pack.pack_street(str(root), str(packed), load_size)
    png = _frames_per_second(str(root), load_size)
    raw = _frames_per_second(str(packed), load_size)
    print(f'| {load_size}x{load_size // 2} | {png:.1f} | {raw:.1f} | {raw / png:.1f}x |')


if __name__ == '__main__':
  app.run(main)
