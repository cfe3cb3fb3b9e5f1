"""Cityscapes at 256x128 on one GPU (orig: scripts/street/train_g1_256.sh).

Run: python train.py --config configs/street_g1_256.py --workdir runs/street_g1_256
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.layout = 'street'
  config.data.label_nc = 35
  config.data.load_size = 256
  config.data.use_instance = True
  config.data.n_frames_total = 6
  config.model.generator.fg = True
  config.model.generator.n_downsample_G = 2
  config.model.discriminator.num_D = 1
  config.train.max_frames_per_gpu = 6
  return config
