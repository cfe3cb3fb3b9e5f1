"""Converts an original vid2vid checkpoint folder into an orbax checkpoint.

Usage: python -m vid2vid_jax.tools.convert_checkpoint --ckpt_dir checkpoints/label2city_512 \
         --out /tmp/label2city_512_jax [--which_epoch latest]

Reads ``opt.txt`` and every ``{which_epoch}_net_*.pth`` of --ckpt_dir (G0.., or G for a
first-frame model, with E and ``features.npy`` for the face first-frame model, and D, D_f,
D_T{s} when present), maps them strictly onto our modules
(vid2vid_jax/original_checkpoint.py) and writes the variables plus our config with
vid2vid_jax.checkpoint.save_variables, which eval.py and ``train.init_from`` load.

The original's face first-frame folder (checkpoints/edge2face_single) has no opt.txt; give it
one with the options its loader hard-codes: ``netG: global_with_features``,
``input_nc: 15``, ``label_nc: 0``, ``ngf: 64``, ``n_downsample_G: 3``, ``norm: instance``,
``feat_num: 16``, ``nef: 16``, ``n_downsample_E: 4`` (one ``name: value`` per line), and name
its files ``latest_net_G.pth`` / ``latest_net_E.pth``.
"""

from collections.abc import Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from vid2vid_jax import checkpoint
from vid2vid_jax import cli
from vid2vid_jax import original_checkpoint

_CKPT_DIR = flags.DEFINE_string('ckpt_dir', None, 'Original checkpoint folder (opt.txt + .pth).')
_OUT = flags.DEFINE_string('out', None, 'Orbax checkpoint directory to write.')
_WHICH_EPOCH = flags.DEFINE_string('which_epoch', 'latest', 'Epoch tag of the .pth files.')
_FORCE = flags.DEFINE_bool('force', False, 'Overwrite --out if it exists.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  config, variables = original_checkpoint.import_checkpoint_dir(_CKPT_DIR.value, _WHICH_EPOCH.value)
  path = checkpoint.save_variables(_OUT.value, variables, config, force=_FORCE.value)
  for name, tree in variables.items():
    count = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))
    logging.info('%s: %.3f M parameters', name, count / 1e6)
    print(f'{name}: {count / 1e6:.3f} M parameters')
  print(f'wrote {path}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['ckpt_dir', 'out'])
  app.run(cli.exit_2_on_user_errors(main))
