"""Your own footage on a CPU in minutes (ours): the demo's tiny model on prepare's output.

  python -m input_pipeline.prepare --input my_videos/ --conditioning edges \
      --out datasets/my_edges --size 128x128
  python train.py --config configs/footage_demo.py:edges --workdir runs/my_edges \
      --config.data.root=datasets/my_edges
  python eval.py --config configs/footage_demo.py:edges --workdir runs/my_edges \
      --config.data.root=datasets/my_edges

The argument after ':' names the conditioning prepare wrote: edges (default), face or pose.
data.flow_dir follows data.root (prepare's {root}/train_flow; pose uses none: prepare it with
--flow none); training frames are 64 px wide.
A sketch to see the whole chain work, not a recipe for quality: for that use edges_256 /
face_g1_256 / pose_256p on a GPU.
"""

from configs import demo


def get_config(conditioning: str = 'edges'):
  config = demo.get_config()
  data = config.data
  data.root = f'datasets/my_{conditioning}'
  data.flow_dir = data.get_ref('root') + '/train_flow'
  data.label_nc, data.use_instance = 0, False
  data.flip = True
  data.batch_size = 1
  data.n_frames_total = 8
  config.train.eval_every_steps = 0
  if conditioning == 'edges':
    data.layout, data.input_nc = 'video', 1
    data.load_size = data.fine_size = 64
  elif conditioning == 'face':
    data.layout, data.input_nc = 'face', 15  # face edges + 14 distance maps of the 64 px crop
    data.load_size = data.fine_size = 64
  elif conditioning == 'pose':
    # OpenPose renderings only (no DensePose model ships offline): the original then drops the
    # flow (no_flow), so the generator paints every frame.
    data.layout, data.input_nc = 'pose', 3
    data.pose.openpose_only = True
    data.flip = False
    data.resize_or_crop = 'randomScaleHeight_and_scaledCrop'
    data.load_size, data.fine_size = 72, 64
    config.model.generator.no_flow = True
    config.flow.source = 'none'
    data.flow_dir = ''  # prepare --flow none
    config.loss.lambda_mask = 0.0
  else:
    raise ValueError(f"configs/footage_demo.py:<conditioning> takes edges, face or pose; got "
                     f"{conditioning!r}")
  # A constant learning rate for a fixed number of steps, whatever the number of videos (an epoch
  # is one clip per video, so epoch-based schedules depend on the data).
  config.train.num_steps = 600
  config.train.niter, config.train.niter_decay, config.train.niter_step = 10 ** 6, 0, 10 ** 6
  config.train.checkpoint_every_steps = 200
  config.eval.results_dir = ''
  config.eval.how_many = 300
  config.eval.num_sequences = -1
  return config
