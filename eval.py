"""Generates and scores test videos: `python eval.py --config configs/demo.py --workdir runs/demo`.

Writes {workdir}/eval (or config.eval.results_dir): per sequence PNG frames, an mp4, a
side-by-side mp4 (conditioning | result | ground truth), metrics.json, metrics.png, and the
scores as TensorBoard scalars '<eval.phase>/...' at the checkpoint's step (with metrics.jsonl).
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from vid2vid_jax import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Training workdir (checkpoints are read from it).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from vid2vid_jax import writers  # pylint: disable=g-import-not-at-top
  writers.quiet_library_logs()
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.set_visible_devices([], 'GPU')
  except ImportError:
    pass
  cli.enable_compilation_cache(FLAGS.config.compilation_cache_dir)
  logging.info('JAX devices: %s', jax.devices())
  from vid2vid_jax import inference  # pylint: disable=g-import-not-at-top
  report = inference.evaluate(FLAGS.config, FLAGS.workdir)
  logging.info('Mean metrics: %s', report['mean'])


if __name__ == '__main__':
  app.run(cli.exit_2_on_user_errors(main))
