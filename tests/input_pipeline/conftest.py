"""Small synthetic datasets shared by the input-pipeline tests (generated once per session)."""

import pathlib

import pytest

from configs import demo
from input_pipeline import synthetic

SIZES = {'street': (64, 32), 'face': (96, 96), 'pose': (64, 64)}


@pytest.fixture(scope='session')
def datasets(tmp_path_factory) -> dict[str, pathlib.Path]:
  """{domain: root} with 2 train + 1 test videos of 6 frames each."""
  base = tmp_path_factory.mktemp('synthetic')
  roots = {}
  for domain, (width, height) in SIZES.items():
    roots[domain] = synthetic.generate(domain, base / domain, sequences=2, frames=6, width=width,
                                       height=height, seed=0, test_sequences=1)
  return roots


def _make_config(layout: str, root: pathlib.Path, **data):
  """The demo config pointed at a synthetic ``layout`` dataset (flows on)."""
  config = demo.get_config()
  config.data.layout = layout
  config.data.root = str(root)
  config.data.flow_dir = str(root / 'train_flow')
  config.data.n_frames_total = 6  # the test videos have 6 frames
  if layout == 'face':
    config.data.label_nc, config.data.input_nc, config.data.use_instance = 0, 15, False
  if layout == 'pose':
    config.data.label_nc, config.data.input_nc, config.data.use_instance = 0, 6, False
    config.data.resize_or_crop = 'randomScaleHeight_and_scaledCrop'
    config.data.load_size, config.data.fine_size, config.data.flip = 72, 64, False
  for key, value in data.items():
    target = config.data
    *parents, leaf = key.split('.')
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


@pytest.fixture(scope='session')
def make_config():
  """make_config(layout, root, **data_overrides) -> the demo config on a synthetic dataset."""
  return _make_config
