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
  config.loss.lambda_l1 = 10.0  # pixel L1 instead (not in the original)
  config.flow.source = 'dataset'  # synthetic data carries exact flows
  config.train.max_frames_per_gpu = 4  # 4 new frames per step cost little more than 2 here
  config.train.unroll = True  # ~2x faster steps on XLA:CPU for a few seconds of compile
  config.train.lr = 4e-4  # a short run: twice the original's rate
  config.train.num_steps = 300
  config.train.log_every_steps = 20
  config.train.image_every_steps = 100
  config.train.checkpoint_every_steps = 100
  config.eval.results_dir = 'runs/demo'  # runs/demo/<seq>.mp4, <seq>_side_by_side.mp4
  config.eval.how_many = 24
  config.eval.num_sequences = 2
  config.eval.fps = 8
  return config
