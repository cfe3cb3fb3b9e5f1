"""Face-landmark edges -> talking face at 512 (orig: scripts/face/train_512.sh).

Run: python train.py --config configs/face_512.py --workdir runs/face_512
Inputs: 15 channels (landmark edges + Canny edges, then 14 distance maps); see input_pipeline.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.layout = 'face'
  config.data.root = 'datasets/face/'
  config.data.input_nc = 15
  config.data.load_size = 512
  config.data.n_frames_total = 12
  config.model.discriminator.num_D = 3
  config.train.niter = 20
  config.train.niter_decay = 20
  return config
