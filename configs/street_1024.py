"""Cityscapes at 1024x512, two spatial scales, grown from street_512 (orig: street/train_1024.sh).

Run: python train.py --config configs/street_1024.py --workdir runs/street_1024
"""

from configs import street_512


def get_config():
  config = street_512.get_config()
  config.data.load_size = 1024
  config.data.n_frames_total = 4
  config.model.generator.n_scales_spatial = 2
  config.model.discriminator.num_D = 3
  config.train.max_frames_per_gpu = 1
  config.train.niter_step = 2
  config.train.niter_fix_global = 10
  config.train.init_from = 'runs/street_512'  # (orig: --load_pretrain checkpoints/label2city_512)
  config.train.lr = 1e-4
  return config
