"""A hash of a checkpoint's parameters, to compare runs.

  python -m vid2vid_jax.tools.digest WORKDIR [--step N] [--part train|generator]

Prints ``<sha256> step <N>``: SHA-256 over every parameter array of the step (default: the
latest) in a fixed order (sorted '/'-joined paths, each with its dtype, shape and bytes). Two
runs with equal digests have bit-identical parameters. WORKDIR is a training workdir or a
converted checkpoint (step '-').
"""

import argparse
import hashlib
import sys
from typing import Any

import flax
import numpy as np


def params_digest(tree: Any) -> str:
  """SHA-256 (hex) of a params tree: paths, dtypes, shapes and bytes, in sorted path order."""
  digest = hashlib.sha256()
  for path, value in sorted(flax.traverse_util.flatten_dict(tree, sep='/').items()):
    array = np.ascontiguousarray(value)
    digest.update(f'{path}:{array.dtype.str}:{array.shape};'.encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m vid2vid_jax.tools.digest', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir')
  parser.add_argument('--step', type=int, default=None, help='default: the latest')
  parser.add_argument('--part', default='train', choices=('train', 'generator'),
                      help="'train': every network's params; 'generator': G (EMA when kept)")
  args = parser.parse_args(argv)
  from vid2vid_jax import checkpoint  # pylint: disable=g-import-not-at-top
  try:
    tree, step = checkpoint.load_params(args.workdir, args.part, step=args.step,
                                        option='workdir')
  except (ValueError, OSError) as e:
    print(f'digest: error: {e}', file=sys.stderr)
    return 2
  print(f'{params_digest(tree)} step {"-" if step is None else step}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
