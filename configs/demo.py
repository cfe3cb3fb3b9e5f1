"""The demo: a tiny street model on built-in synthetic data, minutes on 2 CPU cores.

Run: make demo   (generates runs/demo/data, trains, writes runs/demo/*.mp4)
Also the base of the tests' tiny configs and of the colab.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.layout = 'street'
  config.data.root = 'runs/demo/data'
  config.data.label_nc = 35
  config.data.use_instance = True
  config.data.load_size = 64  # frames are 64x32
  config.data.fine_size = 64
  config.data.batch_size = 2
  config.data.n_frames_total = 8
  # The synthetic camera pans one way or stands still and the two lanes drive opposite ways;
  # test clips are never mirrored. With flips the short run cannot learn the motion direction
  # (its flows were worse than zero flow) and the warped frames drift.
  config.data.flip = False
  config.data.flow_dir = 'runs/demo/data/train_flow'
  config.data.num_parallel_calls = 2
  g = config.model.generator
  g.ngf = 16
  g.n_blocks = 2
  g.n_downsample_G = 2
  g.norm = 'instance'
  d = config.model.discriminator
  d.ndf = 16
  d.n_layers_D = 2
  d.num_D = 1
  d.n_scales_temporal = 1
  config.loss.use_vgg = False  # no pretrained VGG offline: disabled explicitly
  # Pixel squared error (not in the original) instead: where a colour is uncertain (cars,
  # buildings) it learns the mean colour that PSNR rewards, L1 the median (1.6 dB worse here).
  config.loss.lambda_l2 = 300.0
  config.loss.lambda_feat = 2.0  # lighter D feature matching: less texture noise in 840 steps
  config.loss.lambda_F = 50.0  # the dataset's exact flows: the warp path needs accurate flow
  config.loss.lambda_mask = 10.0  # use the warped frame where the flow is reliable
  config.flow.source = 'dataset'  # synthetic data carries exact flows
  config.train.max_frames_per_gpu = 4  # 4 new frames per step cost little more than 2 here
  config.train.unroll = True  # ~15% faster steps on XLA:CPU for ~10 s more compile
  config.train.lr = 4e-4  # a short run: twice the original's rate
  # 25 epochs of 8 batches (840 steps): clips of 10, 18, then 24 frames (2, 4, then 5 steps
  # each; niter_step 5) and a linear decay over the last 15 epochs.
  config.train.num_steps = -1
  config.train.niter = 10
  config.train.niter_decay = 15
  config.train.ema_decay = 0.99  # eval uses the EMA generator
  config.train.log_every_steps = 20
  config.train.image_every_steps = 100
  config.train.checkpoint_every_steps = 100
  config.train.eval_every_steps = 420  # held-out scores, FVD and metrics.png at mid-run and end
  config.eval.results_dir = 'runs/demo'  # runs/demo/<seq>.mp4, <seq>_side_by_side.mp4
  config.eval.num_sequences = 2
  config.eval.fps = 8
  return config
