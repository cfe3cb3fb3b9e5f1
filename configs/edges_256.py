"""Edge maps -> video at 256 px wide on one GPU: train on your own footage.

Prepare the footage first (Canny edges in train_A, frames in train_B, DIS flows in train_flow):
  python -m input_pipeline.prepare --input my_videos/ --conditioning edges \
      --out datasets/my_edges --size 256x256
Run:
  python train.py --config configs/edges_256.py --workdir runs/my_edges \
      --config.data.root=datasets/my_edges
  python eval.py --config configs/edges_256.py --workdir runs/my_edges \
      --config.data.root=datasets/my_edges

The original has no edges recipe; this is its temporal model with image inputs (label_nc 0,
the original's default) at the face recipe's width. The generator's flow learns from the flows
prepare wrote (flow.source 'dataset'; data.flow_dir follows data.root); with a FlowNet2
checkpoint from ``python -m flow.convert_flownet2`` set flow.source='flownet2' and flow.checkpoint
instead. VGG needs the torchvision weights (loss.vgg_weights); without them set
loss.use_vgg=False.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.layout = 'video'
  config.data.root = 'datasets/my_edges/'
  config.data.flow_dir = config.data.get_ref('root') + '/train_flow'  # prepare's flows
  config.data.label_nc = 0
  config.data.input_nc = 1  # prepare writes grey edge maps (0 / 255)
  config.data.load_size = 256
  config.data.fine_size = 256
  config.data.resize_or_crop = 'scaleWidth'
  config.data.n_frames_total = 12
  config.model.generator.ngf = 64
  config.model.generator.n_downsample_G = 2
  config.model.discriminator.num_D = 2
  config.flow.source = 'dataset'
  config.train.max_frames_per_gpu = 6
  config.train.niter = 20
  config.train.niter_decay = 20
  return config
