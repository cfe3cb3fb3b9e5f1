"""Cityscapes at 896 wide on one GPU, three scales grown from street_g1_512 (orig: street/train_g1_1024.sh).

Run: python train.py --config configs/street_g1_1024.py --workdir runs/street_g1_1024
"""

from configs import street_g1_512


def get_config():
  config = street_g1_512.get_config()
  config.data.load_size = 896
  config.model.generator.n_scales_spatial = 3
  config.model.discriminator.n_frames_D = 2
  config.model.discriminator.num_D = 3
  config.train.max_frames_per_gpu = 1
  config.train.init_from = 'runs/street_g1_512'  # (orig: --load_pretrain checkpoints/label2city_512_g1)
  config.train.lr = 1e-4
  return config
