"""What train.py and eval.py share as command-line programs: user errors end in one message.

A ValueError (bad config field, dataset problems, missing or corrupt checkpoint) or an OSError
(unreadable or unwritable path) is the user's to fix: it is printed as ``<program>: error:
<message>`` without a traceback, and the program exits with status 2. ``--debug`` (or
V2V_DEBUG=1) shows the traceback instead.
"""

import os
import sys
from typing import Any, Callable

from absl import flags

_DEBUG = flags.DEFINE_bool('debug', False, 'Show the traceback of user errors (also V2V_DEBUG=1).')


def exit_2_on_user_errors(main: Callable[[Any], None]) -> Callable[[Any], None]:
  """Wraps an absl ``main(argv)`` (see the module docstring)."""

  def wrapped(argv):
    try:
      return main(argv)
    except (ValueError, OSError) as e:
      if _DEBUG.value or os.environ.get('V2V_DEBUG') == '1':
        raise
      program = os.path.basename(sys.argv[0]) if sys.argv else 'vid2vid'
      print(f'{program}: error: {e}', file=sys.stderr)
      sys.exit(2)

  return wrapped


def enable_compilation_cache(cache_dir: str) -> str | None:
  """Turns on JAX's persistent compilation cache in ``cache_dir`` (config.compilation_cache_dir;
  '' leaves it off), so a restarted or resumed run reuses the compiled steps of an earlier one.

  JAX_COMPILATION_CACHE_DIR, when set, wins. Returns the directory in use, or None.
  """
  import jax  # pylint: disable=g-import-not-at-top
  current = jax.config.jax_compilation_cache_dir
  if current or not cache_dir:
    return current or None
  path = os.path.expanduser(cache_dir)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:  # a cache is an optimisation: run without one
    print(f'warning: no compilation cache ({path}: {e.strerror})', file=sys.stderr)
    return None
  jax.config.update('jax_compilation_cache_dir', path)
  return path
