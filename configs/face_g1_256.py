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
  # The original's face test scripts (--use_single_G) start every video with its face
  # first-frame model, edge2face_single: after importing that folder (python -m
  # vid2vid_jax.tools.convert_checkpoint --ckpt_dir checkpoints/edge2face_single ...), run
  # eval with --config.eval.first_frame_mode=single_g --config.first_frame.checkpoint=<out>.
  first = config.first_frame
  first.net = 'global_with_features'
  first.ngf, first.n_downsample, first.n_blocks, first.norm = 64, 3, 9, 'instance'
  first.feat_num, first.nef, first.n_downsample_E = 16, 16, 4
  return config
