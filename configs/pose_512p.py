"""Pose at 512p, two scales grown from pose_256p, with a face D (orig: scripts/pose/train_512p.sh).

Run: python train.py --config configs/pose_512p.py --workdir runs/pose_512p
"""

from configs import pose_256p


def get_config():
  config = pose_256p.get_config()
  config.data.load_size = 768
  config.data.fine_size = 512
  config.model.generator.n_scales_spatial = 2
  config.model.discriminator.num_D = 3
  config.model.discriminator.add_face_disc = True
  config.train.max_frames_per_gpu = 1
  config.train.niter_fix_global = 3
  config.train.lr = 1e-4
  config.train.init_from = 'runs/pose_256p'  # (orig: --load_pretrain checkpoints/pose2body_256p)
  return config
