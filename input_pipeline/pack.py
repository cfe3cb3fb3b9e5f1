"""Packs a street dataset into pre-resized raw frames: no PNG decoding, no resize at train time.

  python -m input_pipeline.pack --load_size 1024 datasets/Cityscapes datasets/Cityscapes_1024

Writes the same layout ({phase}_A/B/inst/<video>/<stem>.npy, plus {phase}_flow rescaled) with
every frame resized to width ``load_size`` (the deterministic part of 'scaleWidth*' modes:
labels/instances NEAREST, images as the pipeline resizes them). Point ``data.root`` (and
``data.flow_dir``) at the packed copy and keep the same config: random crops and flips still
happen at load time, and the pipeline's resize becomes a no-op. Raw frames take more disk
(1024x512: 0.5 MB labels + 1 MB uint16 instances + 1.5 MB RGB per frame) and are read through
the page cache; see benchmarks/RESULTS.md for the gain.
"""

import os
import pathlib

from absl import app
from absl import flags
from absl import logging
import numpy as np

from input_pipeline import layouts
from input_pipeline import transforms


def pack_street(src: str, dst: str, load_size: int, phases=('train', 'test')) -> int:
  """Writes the packed copy of the street dataset ``src`` to ``dst``; returns frames written."""
  count = 0
  for phase in phases:
    streams = tuple(s for s in ('label', 'image', 'inst')
                    if os.path.isdir(layouts.stream_dir(src, 'street', phase, s)))
    if 'label' not in streams:
      continue
    flow_dir = os.path.join(src, f'{phase}_flow')
    sequences, problems = layouts.list_sequences(
        src, 'street', phase, streams, flow_dir if os.path.isdir(flow_dir) else '')
    if problems:
      raise ValueError('cannot pack a dataset with problems:\n' +
                       '\n'.join(str(p) for p in problems))
    for seq in sequences:
      for t in range(len(seq)):
        width, height = layouts.image_size(seq.files['label'][t])
        params = transforms.SpatialParams(resize=(load_size, load_size * height // width))
        for stream, paths in seq.files.items():
          src_path = pathlib.Path(paths[t])
          reader = layouts.read_image if stream == 'image' else layouts.read_map
          frame = transforms.apply(reader(str(src_path)), params,
                                   'cubic' if stream == 'image' else 'nearest')
          out = pathlib.Path(dst, os.path.relpath(src_path.parent, src), src_path.stem + '.npy')
          out.parent.mkdir(parents=True, exist_ok=True)
          np.save(out, frame)
        if seq.flows and seq.flows[t]:
          flow, valid = layouts.read_flow(seq.flows[t])
          flow, valid = transforms.apply_flow(flow, valid, params)
          out = pathlib.Path(dst, os.path.relpath(seq.flows[t], src))
          out.parent.mkdir(parents=True, exist_ok=True)
          np.savez(out, backward=flow, backward_valid=valid.astype(np.uint8))
        count += 1
  return count


def main(argv):
  if len(argv) != 3:
    raise app.UsageError('usage: python -m input_pipeline.pack --load_size N SRC DST')
  count = pack_street(argv[1], argv[2], FLAGS.load_size)
  logging.info('packed %d frames of %s into %s', count, argv[1], argv[2])


if __name__ == '__main__':
  FLAGS = flags.FLAGS
  flags.DEFINE_integer('load_size', 1024, 'Frame width of the packed copy (pixels).')
  app.run(main)
