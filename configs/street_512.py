"""Cityscapes label->street video at 512x256, one spatial scale (orig: scripts/street/train_512.sh).

Run: python train.py --config configs/street_512.py --workdir runs/street_512
The original splits 8 GPUs into 6 for G and 2 for D (--n_gpus_gen 6); we shard over a mesh.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.layout = 'street'
  config.data.label_nc = 35
  config.data.load_size = 512
  config.data.use_instance = True
  config.data.n_frames_total = 6
  config.model.generator.fg = True
  config.train.max_frames_per_gpu = 2
  return config
