"""Cityscapes at 2048x1024, three spatial scales, grown from street_1024 (orig: street/train_2048.sh).

Run: python train.py --config configs/street_2048.py --workdir runs/street_2048
The original's test script (street/test_2048.sh) starts each video with a single-image generator:
--config.eval.first_frame_mode=single_g --config.first_frame.checkpoint=...
"""

from configs import street_1024


def get_config():
  config = street_1024.get_config()
  config.data.load_size = 2048
  config.model.generator.n_scales_spatial = 3
  config.model.discriminator.num_D = 4
  config.train.niter_step = 1
  config.train.niter = 5
  config.train.niter_decay = 5
  config.train.niter_fix_global = 5
  config.train.init_from = 'runs/street_1024'  # (orig: --load_pretrain checkpoints/label2city_1024)
  config.train.lr = 5e-5
  return config
