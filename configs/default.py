"""Default config: every option of the original vid2vid, with the original's defaults.

Where our field name differs, the original option name follows in a comment as
``(orig: --name)``. Options that the original parses
but never uses (pool_size, ntest, display_* ...) have no field; the few that became command-line
flags or automatic behaviour are noted at the bottom of this docstring.

  --name / --checkpoints_dir  -> the ``--workdir`` flag of train.py / eval.py
  --continue_train            -> automatic: a rerun with the same workdir resumes
  --gpu_ids / --n_gpus_gen    -> ``sharding`` (a device mesh instead of a G/D GPU split)
  --phase                     -> ``data.phase`` for training, ``eval.phase`` for eval.py
  --isTrain, --model, --debug, --no_html, --display_id, --display_winsize, --tf_log,
  --pool_size, --ntest, --local_rank, --aspect_ratio: no equivalent (unused or display-only).

Run: python train.py --config configs/default.py --workdir /tmp/v2v \
       --config.data.root=datasets/Cityscapes
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default config (the original's option defaults)."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # root PRNG seed for init, training loop and data order.
  # JAX's persistent compilation cache: a rerun or resume reuses compiled steps ('' = off;
  # JAX_COMPILATION_CACHE_DIR wins). benchmarks/compile_time.py measures what it saves.
  config.compilation_cache_dir = '~/.cache/vid2vid_jax/xla'

  # ---------------------------------------------------------------- data
  data = config.data = ml_collections.ConfigDict()
  data.layout = 'video'  # street | video | face | pose (orig: --dataset_mode). street and video
  #   are the original's 'temporal' mode: A holds label ids (street, label_nc > 0) or images
  #   (video, label_nc == 0, the original default).
  data.root = 'datasets/Cityscapes/'  # (orig: --dataroot)
  data.phase = 'train'  # folder prefix: {phase}_A, {phase}_B ... (orig: --phase)
  data.batch_size = 1  # global batch of clips per step, all hosts (orig: --batchSize).
  data.load_size = 512  # resize target in pixels (orig: --loadSize).
  data.fine_size = 512  # crop size in pixels (orig: --fineSize).
  data.resize_or_crop = 'scaleWidth'  # a size part (scaleWidth | scaleHeight | resize |
  #   randomScaleWidth | randomScaleHeight) and/or a crop part (crop | scaledCrop), e.g.
  #   scaleWidth_and_crop, randomScaleHeight_and_scaledCrop; or none (input_pipeline.transforms.MODES).
  data.flip = True  # random horizontal flips in training; never for pose (orig: not --no_flip).
  data.label_nc = 0  # label classes; 0 = A is a continuous image (orig: --label_nc).
  data.input_nc = 3  # channels of A when label_nc == 0 (orig: --input_nc).
  data.output_nc = 3  # channels of the generated image (orig: --output_nc).
  data.use_instance = False  # append the instance-boundary channel (orig: --use_instance).
  data.n_frames_total = 30  # frames generated per clip at curriculum start (orig: --n_frames_total).
  data.max_t_step = 1  # max temporal stride when sampling a clip (orig: --max_t_step).
  data.max_dataset_size = -1  # -1 = all videos (orig: --max_dataset_size inf).
  data.shuffle = True  # shuffle clips (orig: not --serial_batches).
  data.num_parallel_calls = 2  # tf.data decode parallelism (orig: --nThreads).
  data.prefetch = 2  # batches prefetched to host memory.
  data.flow_dir = ''  # '' = none; else a folder of ground-truth flows (synthetic data has them).
  # Face (orig: face_dataset.py options).
  data.face = ml_collections.ConfigDict()
  data.face.no_canny_edge = False  # no Canny background edges in channel 0 (orig: --no_canny_edge).
  data.face.no_dist_map = False  # no 14 distance-transform channels (orig: --no_dist_map).
  data.face.random_scale_points = False  # test-time face reshaping: not supported, must be False
  #   (orig: --random_scale_points).
  # Pose (orig: pose_dataset.py options).
  data.pose = ml_collections.ConfigDict()
  data.pose.densepose_only = False  # A = DensePose IUV only (orig: --densepose_only).
  data.pose.openpose_only = False  # A = OpenPose rendering only; needs no_flow (orig: --openpose_only).
  data.pose.remove_face_labels = False  # zero DensePose parts 23, 24 (orig: --remove_face_labels).
  data.pose.random_drop_prob = 0.05  # drop prob. of parts/limbs in training (orig: --random_drop_prob).
  data.pose.basic_point_only = False  # OpenPose body only, no hands/face (orig: --basic_point_only).

  # ---------------------------------------------------------------- model
  model = config.model = ml_collections.ConfigDict()
  model.dtype = 'float32'  # activation dtype: float32 | bfloat16; params stay float32 (orig: --fp16).
  model.conv_impl = 'tuned'  # tuned | plain: conv formulations, same values (vid2vid_jax.kernels).
  g = model.generator = ml_collections.ConfigDict()
  g.net = 'composite'  # sequential generator kind; only 'composite' exists (orig: --netG).
  g.ngf = 128  # width of the coarsest generator; scale s uses ngf // 2**s (orig: --ngf).
  g.n_blocks = 9  # residual blocks of the coarsest generator (orig: --n_blocks).
  g.n_blocks_local = 3  # residual blocks of each finer-scale generator (orig: --n_blocks_local).
  g.n_downsample_G = 3  # stride-2 convs in the coarsest generator (orig: --n_downsample_G).
  g.norm = 'batch'  # batch | instance, for G and every D (orig: --norm).
  g.n_frames_G = 3  # conditioning window: current + previous frames (orig: --n_frames_G).
  g.n_scales_spatial = 1  # coarse-to-fine generator scales, 1..3 (orig: --n_scales_spatial).
  g.fg = False  # separate foreground branch (orig: --fg).
  g.fg_labels = (26,)  # label ids of the foreground; 26 = Cityscapes car (orig: --fg_labels).
  g.no_flow = False  # no flow/mask heads: output is the hallucinated image (orig: --no_flow).
  d = model.discriminator = ml_collections.ConfigDict()
  d.ndf = 64  # width of the first D layer (orig: --ndf).
  d.n_layers_D = 3  # conv layers per D scale (orig: --n_layers_D).
  d.num_D = 2  # spatial scales of every multi-scale D (orig: --num_D).
  d.n_frames_D = 3  # frames per temporal-D window (orig: --n_frames_D).
  d.n_scales_temporal = 2  # temporal Ds with strides n_frames_D**s (orig: --n_scales_temporal).
  d.sparse_D = False  # D_T windows on frames aligned to multiples of tD**s (orig: --sparse_D).
  d.add_face_disc = False  # extra D on a face crop, pose only (orig: --add_face_disc).

  # ---------------------------------------------------------------- losses
  loss = config.loss = ml_collections.ConfigDict()
  loss.gan_mode = 'ls'  # ls | original | hinge; honoured unless compat.lsgan_always (orig: --gan_mode).
  loss.lambda_feat = 10.0  # VGG and feature-matching weight (orig: --lambda_feat).
  loss.lambda_T = 10.0  # warp-loss weight (orig: --lambda_T).
  loss.lambda_F = 10.0  # flow-loss weight, divided by 2**(n_scales_spatial-1) (orig: --lambda_F).
  loss.face_weight = 2.0  # weight of the face-D generator terms (hard-coded 2 in the original).
  loss.use_vgg = True  # VGG perceptual loss (orig: not --no_vgg).
  loss.use_gan_feat = True  # D feature matching (orig: not --no_ganFeat).
  loss.lambda_l1 = 0.0  # pixel L1 on final + raw images; not in the original (0 = off).
  loss.lambda_l2 = 0.0  # pixel squared error on final + raw images; not in the original (0 = off).
  loss.lambda_mask = 0.0  # weight of the W term pushing the blend weight to the warped frame
  #   where the flow is reliable; 0 = the original's rule (on, weight 1, only for first_frame.mode
  #   'generate').
  loss.lambda_occlusion = 0.0  # weight of a term pushing the blend weight to the hallucinated
  #   image where the reference flow is unreliable (newly visible pixels); not in the original.
  loss.warp_flow_grad = True  # image losses train the flow through the warp (the original);
  #   False: only the flow (F_Flow) and warp (F_Warp) terms train it.
  loss.vgg_weights = ''  # torchvision vgg19 .pth or our converted .npz; required when use_vgg.

  # ---------------------------------------------------------------- training
  train = config.train = ml_collections.ConfigDict()
  train.target = 'video'  # video | first_frame (the single-image generator, pix2pixHD style).
  train.lr = 2e-4  # Adam learning rate (orig: --lr).
  train.beta1 = 0.5  # Adam beta1 (orig: --beta1); beta2 is 0.999.
  train.ttur = False  # G lr/2, D lr*2, betas (0, 0.9) (orig: --TTUR).
  train.niter = 10  # epochs at constant lr (orig: --niter).
  train.niter_decay = 10  # epochs of linear lr decay to 0 (orig: --niter_decay).
  train.niter_step = 5  # epochs between doublings of the clip length (orig: --niter_step).
  train.niter_fix_global = 0  # epochs training only the finest scale (orig: --niter_fix_global).
  train.num_steps = -1  # -1 = (niter + niter_decay) epochs; else an explicit number of steps.
  train.flow_head_init = 'normal'  # normal (the original's N(0, 0.02)) | zeros: every scale's
  #   flow head starts at zero, i.e. the warp starts as the identity (random heads start with
  #   flows of several pixels).
  train.flow_head_lr_scale = 1.0  # multiplies the flow heads' Adam updates (1 = original; the
  #   heads' outputs are scaled by 20 * 2**s px, so 1/20 gives them an unscaled head's step).
  train.flow_warmup_steps = 0  # ours, 0 = off: first train G on the flow terms alone (F_Flow,
  #   F_Warp, W, occlusion) for this many steps, one clip per step, each frame from its real
  #   previous frames; the steps count in train.num_steps and are not checkpointed.
  train.max_frames_per_gpu = 1  # frames generated per optimizer step (orig: --max_frames_per_gpu).
  train.max_frames_backpropagate = 1  # frames gradients flow back through (orig: same name).
  train.init_from = ''  # checkpoint dir to initialise from, e.g. a coarser model (orig: --load_pretrain).
  train.ema_decay = 0.0  # 0 = off; else keep an EMA of G params (beyond the original).
  train.remat = False  # rematerialise each generated frame in the backward pass.
  train.unroll = False  # unroll the frames of a step (no while loop): faster steps on CPU,
  #   compile time grows with max_frames_per_gpu.
  train.log_every_steps = 100  # scalar summaries (orig: --print_freq).
  train.image_every_steps = 100  # image grids (orig: --display_freq).
  train.checkpoint_every_steps = 1000  # periodic checkpoints (orig: --save_latest_freq).
  train.keep_checkpoints = 3  # checkpoints kept in the workdir (the original keeps every epoch).
  train.eval_every_steps = 0  # 0 = off; else score the generator (EMA when kept) on the first
  #   train.eval_sequences test sequences with eval.* settings (metrics, FVD, baselines) into
  #   {workdir}/eval_train/step_<step> (metrics.json, metrics.png, mp4s) and TensorBoard 'eval/'.
  train.eval_sequences = 2  # held-out sequences per training eval (FVD needs >= 2 clips of 16).

  # Original behaviour kept on request (docs/quirks.md); False = fixed.
  compat = config.compat = ml_collections.ConfigDict()
  compat.lsgan_always = False  # True: ignore gan_mode, always LSGAN (docs/quirks.md#gan-mode).
  compat.decay_only_g_and_d = False  # True: temporal-D lr never decays (docs/quirks.md#lr-decay).
  compat.frozen_global_after_fix = False  # True: coarse scales never update
  #   (docs/quirks.md#niter-fix-global).
  compat.pose_jitter_missing_points = False  # True: remove_face_labels' jitter (with random drops)
  #   also moves undetected OpenPose points, which then draw spurious lines (docs/conditioning.md).

  # ---------------------------------------------------------------- flow
  flow = config.flow = ml_collections.ConfigDict()
  flow.source = 'flownet2'  # flownet2 (on device) | dataset (data.flow_dir) | none.
  flow.checkpoint = ''  # our FlowNet2 checkpoint (from ``python -m flow.convert_flownet2``).
  flow.rgb_max = 1.0  # FlowNet2 input scaling, as vid2vid calls it (images in [-1, 1]).
  flow.div_flow = 20.0  # FlowNet2 output division.

  # ---------------------------------------------------------------- first frame
  first = config.first_frame = ml_collections.ConfigDict()
  first.mode = 'real'  # real (orig default / --use_real_img) | single_g (--use_single_G) |
  #   generate (--no_first_img).
  first.checkpoint = ''  # single-image generator checkpoint for mode 'single_g'.
  first.net = 'global'  # global | local | global_with_features | local_with_features
  #   (pix2pixHD single-image G; the *_with_features nets also take a feature map from the
  #   instance-wise encoder, the original's face model: global_with_features, feat_num 16,
  #   nef 16, n_downsample_E 4).
  first.ngf = 64  # its width (the original's label2city_single uses 64; local uses 32).
  first.n_downsample = 3  # its stride-2 convs (orig: --n_downsample_G of that model).
  first.n_blocks = 9  # its residual blocks.
  first.norm = 'instance'  # its norm layers and its feature encoder's: the original builds every
  #   single-image G with instance norm (load_single_G), whatever the video G uses.
  first.n_local_enhancers = 1  # local enhancers of the 'local' net (orig: --n_local_enhancers).
  first.n_blocks_local = 3  # residual blocks per local enhancer (orig: --n_blocks_local).
  first.label_feat = False  # pix2pixHD feature clustering: not supported, must be False (orig:
  #   --label_feat).
  first.feat_num = 3  # feature channels of the *_with_features nets (orig: --feat_num).
  first.nef = 32  # the feature encoder's width (orig: --nef).
  first.load_features = False  # not supported, must be False (orig: --load_features)
  first.netE = 'simple'  # the feature encoder; 'simple' is the only one (orig: --netE)
  first.n_downsample_E = 3  # the feature encoder's stride-2 convs (orig: --n_downsample_E).
  first.num_instance_ids = 7  # instance ids the feature encoder pools over: [0, this) (face
  #   part labels 0..6).

  # ---------------------------------------------------------------- sharding
  sharding = config.sharding = ml_collections.ConfigDict()
  sharding.data = -1  # devices on the 'data' mesh axis; -1 = all devices / spatial.
  sharding.spatial = 1  # devices on the 'spatial' mesh axis (image height split).
  sharding.fsdp = False  # shard params/optimizer over 'data' instead of replicating.
  sharding.fsdp_min_size = 2**14  # with fsdp, smaller leaves (biases, norms) stay replicated.
  sharding.distributed = False  # call jax.distributed.initialize (multi-host).
  sharding.coordinator_address = ''  # host:port; '' = from the environment.
  sharding.num_processes = -1  # -1 = from the environment.
  sharding.process_id = -1  # -1 = from the environment.

  # ---------------------------------------------------------------- eval / inference
  ev = config.eval = ml_collections.ConfigDict()
  ev.phase = 'test'  # folder prefix of the evaluated split (orig: --phase test).
  ev.checkpoint = ''  # '' = the workdir's training checkpoints; else a converted checkpoint.
  ev.checkpoint_step = -1  # -1 = latest (orig: --which_epoch latest).
  ev.chunk_frames = 8  # frames generated per compiled call (memory is independent of length).
  ev.first_frame_mode = ''  # '' = first_frame.mode; test scripts use single_g (orig: --use_single_G).
  ev.how_many = 300  # generated frames per run, over all sequences in order (orig: --how_many).
  ev.start_frame = 0  # first frame of the first sequence (orig: --start_frame).
  ev.num_sequences = -1  # -1 = all test sequences.
  ev.results_dir = ''  # '' = {workdir}/eval (orig: --results_dir).
  ev.fps = 15  # frames per second of the written mp4s.
  ev.metrics = ('psnr', 'ssim', 'warp_error', 'fvd')  # any of psnr | ssim | warp_error (per
  #   frame) | fvd (16-frame clips, Kinetics-400 I3D; needs the optional extra 'fvd').
  ev.baselines = True  # also score label-mean (colours from the training split), freeze-first,
  #   copy-previous and exact-flow oracle predictions where the data allows (metrics.json).
  ev.fvd_clip_stride = 16  # frames between FVD clip starts (16 = non-overlapping clips).
  return config
