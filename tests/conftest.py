"""Shared pytest fixtures: where the reference fixtures live, and the repo root."""

import os
import pathlib

import jax
import pytest

# The suite is compile-bound: XLA:CPU's LLVM optimisation only speeds up the compiled code (the
# values are the same), so tests compile without it, about 3x faster. Subprocesses inherit it.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_backend_optimization_level=0').strip()

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# ../shared/fixtures next to the checkout; V2V_FIXTURES overrides (e.g. another fixture set).
FIXTURES_ROOT = pathlib.Path(
    os.environ.get('V2V_FIXTURES', REPO_ROOT.parent / 'shared' / 'fixtures'))


def _fixture_dir(name: str) -> pathlib.Path:
  path = FIXTURES_ROOT / name
  if not path.is_dir():
    message = (f'reference fixtures not found at {path} (set V2V_FIXTURES or check out '
               '../shared next to the repository)')
    if os.environ.get('V2V_REQUIRE_FIXTURES') == '1':  # CI has them: a missing set is a failure
      pytest.fail(message)
    pytest.skip(message)
  return path


@pytest.fixture(scope='session')
def vid2vid_fixtures() -> pathlib.Path:
  """../shared/fixtures/vid2vid_reference (skips with the reason only if it is absent)."""
  return _fixture_dir('vid2vid_reference')


@pytest.fixture(scope='session')
def flownet2_fixtures() -> pathlib.Path:
  """../shared/fixtures/flownet2_reference (skips with the reason only if it is absent)."""
  return _fixture_dir('flownet2_reference')


@pytest.fixture(scope='session')
def training_fixtures() -> pathlib.Path:
  """../shared/fixtures/vid2vid_training_reference (skips with the reason only if it is absent)."""
  return _fixture_dir('vid2vid_training_reference')


@pytest.fixture(scope='session')
def conditioning_fixtures() -> pathlib.Path:
  """../shared/fixtures/conditioning_reference: the original face / pose loaders' outputs."""
  return _fixture_dir('conditioning_reference')


@pytest.fixture(scope='session')
def repo_root() -> pathlib.Path:
  return REPO_ROOT


@pytest.fixture(scope='module')
def compilation_cache(tmp_path_factory):
  """The tests of one module that compile the same steps share them through a disk cache
  (request it with ``pytestmark = pytest.mark.usefixtures('compilation_cache')``)."""
  before = (jax.config.jax_compilation_cache_dir,
            jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update('jax_compilation_cache_dir', str(tmp_path_factory.mktemp('jax_cache')))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  yield
  jax.config.update('jax_compilation_cache_dir', before[0])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', before[1])
