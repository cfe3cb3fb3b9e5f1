"""Face at 256 on one GPU (orig: scripts/face/train_g1_256.sh).

Run: python train.py --config configs/face_g1_256.py --workdir runs/face_g1_256
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.layout = 'face'
  config.data.root = 'datasets/face/'
  config.data.input_nc = 15
  config.data.load_size = 256
  config.data.n_frames_total = 12
  config.model.generator.ngf = 64
  config.train.max_frames_per_gpu = 6
  config.train.niter = 20
  config.train.niter_decay = 20
  return config
