"""Cityscapes at 512x256 on one GPU, two scales grown from street_g1_256 (orig: street/train_g1_512.sh).

Run: python train.py --config configs/street_g1_512.py --workdir runs/street_g1_512
(The original script loads checkpoints/label2city_256_g1, which its 256 script never writes;
see docs/quirks.md#script-names.)
"""

from configs import street_g1_256


def get_config():
  config = street_g1_256.get_config()
  config.data.load_size = 512
  config.data.n_frames_total = 4
  config.model.generator.n_scales_spatial = 2
  config.model.discriminator.num_D = 2
  config.train.max_frames_per_gpu = 2
  config.train.niter_step = 2
  config.train.niter_fix_global = 8
  config.train.niter_decay = 5
  config.train.init_from = 'runs/street_g1_256'  # (orig: --load_pretrain checkpoints/label2city_256_g1)
  return config
