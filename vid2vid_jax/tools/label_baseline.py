"""Compares a street model's PSNR with a trivial baseline: every pixel painted its label's mean
training colour.

  python -m vid2vid_jax.tools.label_baseline --config configs/demo.py --workdir runs/demo

Reads {results}/metrics.json written by eval.py, scores the baseline on the same test frames
(those after the n_frames_G - 1 context frames, eval.how_many over the run), prints a
table and writes {results}/baseline.json. eval.py itself now scores this baseline and the others
(vid2vid_jax/baselines.py) into metrics.json; this tool stays for the one-line comparison.
"""

import itertools
import json
import os
import pathlib

from absl import app
from absl import flags
import numpy as np
from ml_collections import config_flags

from vid2vid_jax import baselines
from vid2vid_jax import cli

FLAGS = flags.FLAGS


def baseline_psnr(config, colours: np.ndarray) -> dict[str, float]:
  """Mean PSNR of the label-colour baseline on the frames eval.py scores, per sequence."""
  import input_pipeline  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import metrics  # pylint: disable=g-import-not-at-top
  context = config.model.generator.n_frames_G - 1
  out = {}
  sequences = input_pipeline.iterate_test_sequences(config, split=config.eval.phase)
  remaining = config.eval.how_many  # over the whole run, as eval.py counts
  for i, (name, frames) in enumerate(sequences):
    if 0 < config.eval.num_sequences <= i or remaining <= 0:
      break
    frames, targets = itertools.tee(frames)
    targets = itertools.islice(targets, context, None)
    scores = []
    for prediction, frame in zip(baselines.label_mean(frames, context, colours), targets):
      if len(scores) >= remaining:
        break
      scores.append(float(metrics.psnr(prediction[None], frame['image'][None])[0]))
    remaining -= len(scores)
    out[name] = float(np.mean(scores))
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  import input_pipeline  # pylint: disable=g-import-not-at-top
  config = FLAGS.config
  if config.data.label_nc <= 0:
    raise app.UsageError('the label-colour baseline needs a street (label map) config')
  results = pathlib.Path(config.eval.results_dir or pathlib.Path(FLAGS.workdir) / 'eval')
  report = json.loads((results / 'metrics.json').read_text())
  train = (frames for _, frames in input_pipeline.iterate_test_sequences(config, split='train'))
  colours = baselines.label_mean_colours(train, config.data.label_nc)
  baseline = baseline_psnr(config, colours)
  rows = [(name, seq['mean'].get('psnr', float('nan')), baseline.get(name, float('nan')))
          for name, seq in report['sequences'].items()]
  model_mean = float(np.mean([r[1] for r in rows]))
  baseline_mean = float(np.mean([r[2] for r in rows]))
  print(f'{"sequence":<16} {"model PSNR":>11} {"label-mean PSNR":>16}')
  for name, model, base in rows:
    print(f'{name:<16} {model:>11.2f} {base:>16.2f}')
  print(f'{"mean":<16} {model_mean:>11.2f} {baseline_mean:>16.2f}')
  tmp = results / '.baseline.json.tmp'
  tmp.write_text(json.dumps({'model_psnr': model_mean, 'label_mean_psnr': baseline_mean,
                             'per_sequence': {n: {'model': m, 'baseline': b}
                                              for n, m, b in rows}}, indent=1))
  os.replace(tmp, results / 'baseline.json')


if __name__ == '__main__':
  config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'The training workdir.')
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(cli.exit_2_on_user_errors(main))
