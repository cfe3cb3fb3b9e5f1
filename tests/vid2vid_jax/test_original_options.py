"""The original's opt.txt as our config: parsing and the strict option mapping."""

import pytest

from vid2vid_jax import original_options
from vid2vid_jax.models import builders


def test_opt_txt_and_config_mapping(vid2vid_fixtures):
  options = original_options.read_opt_txt(vid2vid_fixtures / 'gen_fg' / 'opt.txt')
  assert options['fg'] is True and options['fg_labels'] == [5, 6]
  assert options['max_dataset_size'] == float('inf') and options['load_pretrain'] == ''
  config = original_options.config_from_options(options)
  g = config.model.generator
  assert (g.ngf, g.n_blocks, g.n_downsample_G, g.norm, g.fg) == (8, 4, 3, 'instance', True)
  assert tuple(g.fg_labels) == (5, 6)
  assert config.data.label_nc == 8 and config.data.use_instance
  assert config.data.max_dataset_size == -1 and config.data.layout == 'street'
  assert builders.cond_channels(config) == 9


@pytest.mark.parametrize('options,match', [
    ({'netG': 'resnet_9blocks'}, 'netG'),
    ({'norm': 'spectral'}, 'norm'),
    ({'label_nc': 8, 'fg': True, 'fg_labels': '3,9'}, 'fg_labels'),
    ({'label_nc': 0, 'fg': True}, 'fg'),
    ({'n_frames_G': 'three'}, 'n_frames_G'),
    ({'dataset_mode': 'unaligned'}, 'dataset_mode'),
])
def test_unsupported_options_name_the_option(options, match):
  with pytest.raises(ValueError, match=match):
    original_options.config_from_options(options)
