"""Shared pytest fixtures: where the reference fixtures live, and the repo root."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# ../shared/fixtures next to the checkout; V2V_FIXTURES overrides (e.g. another fixture set).
FIXTURES_ROOT = pathlib.Path(
    os.environ.get('V2V_FIXTURES', REPO_ROOT.parent / 'shared' / 'fixtures'))


def _fixture_dir(name: str) -> pathlib.Path:
  path = FIXTURES_ROOT / name
  if not path.is_dir():
    pytest.skip(f'reference fixtures not found at {path} (set V2V_FIXTURES or check out '
                '../shared next to the repository)')
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
def repo_root() -> pathlib.Path:
  return REPO_ROOT
