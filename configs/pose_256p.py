"""DensePose + OpenPose -> dancing person at 256p (orig: scripts/pose/train_256p.sh).

Run: python train.py --config configs/pose_256p.py --workdir runs/pose_256p
Pose never flips and always generates its first frames (orig: --no_first_img).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.layout = 'pose'
  config.data.root = 'datasets/pose/'
  config.data.input_nc = 6
  config.data.resize_or_crop = 'randomScaleHeight_and_scaledCrop'
  config.data.load_size = 384
  config.data.fine_size = 256
  config.data.batch_size = 8
  config.data.n_frames_total = 12
  config.data.max_t_step = 4
  config.data.flip = False
  config.model.discriminator.num_D = 2
  config.first_frame.mode = 'generate'  # (orig: --no_first_img)
  config.train.max_frames_per_gpu = 3
  config.train.niter = 5
  config.train.niter_decay = 5
  return config
