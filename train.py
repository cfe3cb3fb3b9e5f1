"""Trains vid2vid: `python train.py --config configs/demo.py --workdir runs/demo`.

Config fields can be overridden on the command line, e.g. `--config.train.num_steps=100`.
A rerun with the same workdir resumes from its latest checkpoint.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from vid2vid_jax import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, summaries and samples.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from vid2vid_jax import writers  # pylint: disable=g-import-not-at-top
  writers.quiet_library_logs()
  try:  # keep TensorFlow (input pipeline only) off the accelerators
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.set_visible_devices([], 'GPU')
  except ImportError:
    pass
  from vid2vid_jax import sharding  # pylint: disable=g-import-not-at-top
  sharding.initialize_distributed(FLAGS.config)  # multi-host: before any other JAX call
  cache = cli.enable_compilation_cache(FLAGS.config.compilation_cache_dir)
  logging.info('Compilation cache: %s', cache or 'off')
  logging.info('JAX process %d / %d, local devices %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  from vid2vid_jax import train_lib  # pylint: disable=g-import-not-at-top
  train_lib.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(cli.exit_2_on_user_errors(main))
