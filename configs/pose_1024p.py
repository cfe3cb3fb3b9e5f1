"""Pose at 1024p, three scales grown from pose_512p (orig: scripts/pose/train_1024p.sh).

Run: python train.py --config configs/pose_1024p.py --workdir runs/pose_1024p
"""

from configs import pose_512p


def get_config():
  config = pose_512p.get_config()
  config.data.load_size = 1536
  config.data.fine_size = 1024
  config.data.batch_size = 1
  config.model.generator.n_scales_spatial = 3
  config.model.discriminator.num_D = 4
  config.train.lr = 5e-5
  config.train.init_from = 'runs/pose_512p'  # (orig: --load_pretrain checkpoints/pose2body_512p)
  return config
