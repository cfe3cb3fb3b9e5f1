"""The command-line programs' shared pieces: the persistent compilation cache."""

import subprocess
import sys

import jax
import pytest

from vid2vid_jax import cli


@pytest.fixture
def no_cache():
  before = jax.config.jax_compilation_cache_dir
  jax.config.update('jax_compilation_cache_dir', None)
  yield
  jax.config.update('jax_compilation_cache_dir', before)


def test_enable_compilation_cache(no_cache, tmp_path):
  assert cli.enable_compilation_cache('') is None
  assert not jax.config.jax_compilation_cache_dir
  path = tmp_path / 'cache' / 'xla'
  assert cli.enable_compilation_cache(str(path)) == str(path)
  assert path.is_dir() and jax.config.jax_compilation_cache_dir == str(path)
  # One already set (JAX_COMPILATION_CACHE_DIR, or an earlier call) wins.
  assert cli.enable_compilation_cache(str(tmp_path / 'other')) == str(path)


def test_unwritable_cache_dir_warns_and_runs_without(no_cache, tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('')
  assert cli.enable_compilation_cache(str(blocker / 'cache')) is None
  assert not jax.config.jax_compilation_cache_dir


def test_a_second_process_reads_the_cache(tmp_path):
  """What a restarted run gains: the second process finds the first one's executable."""
  code = f'''
import jax, jax.numpy as jnp
from vid2vid_jax import cli
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
cli.enable_compilation_cache({str(tmp_path / "xla")!r})
jax.jit(lambda x: jnp.sin(x) * 2.0 + x).lower(jnp.ones((7, 3))).compile()
print(sum('cache_hits' in e for e in events))
'''
  hits = [subprocess.run([sys.executable, '-c', code], check=True, timeout=120, text=True,
                         capture_output=True, env={'JAX_PLATFORMS': 'cpu', 'PATH': '/usr/bin:/bin'}
                         ).stdout.split()[-1] for _ in range(2)]
  assert int(hits[0]) == 0 and int(hits[1]) > 0
