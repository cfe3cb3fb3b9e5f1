"""The single-image first-frame generator for Cityscapes at 512x256 (pix2pixHD 'global' G with
ngf 64 and 3 downsamplings, as the original's checkpoints/label2city_single).

Run: python train.py --config configs/street_first_frame_512.py --workdir runs/street_single_512
Then use it for the first frames of a video model:
  --config.eval.first_frame_mode=single_g --config.first_frame.checkpoint=runs/street_single_512
"""

from configs import street_512


def get_config():
  config = street_512.get_config()
  config.train.target = 'first_frame'
  config.first_frame.net = 'global'
  config.first_frame.ngf = 64
  config.first_frame.n_downsample = 3
  config.first_frame.n_blocks = 9
  config.data.n_frames_total = 4  # frames per clip; every frame is a training sample
  return config
