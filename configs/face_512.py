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
  # The original's face test scripts (--use_single_G) start every video with its face
  # first-frame model, edge2face_single: after importing that folder (python -m
  # vid2vid_jax.tools.convert_checkpoint --ckpt_dir checkpoints/edge2face_single ...), run
  # eval with --config.eval.first_frame_mode=single_g --config.first_frame.checkpoint=<out>.
  first = config.first_frame
  first.net = 'global_with_features'
  first.ngf, first.n_downsample, first.n_blocks, first.norm = 64, 3, 9, 'instance'
  first.feat_num, first.nef, first.n_downsample_E = 16, 16, 4
  return config
