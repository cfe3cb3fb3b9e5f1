"""Training: train_and_evaluate(config, workdir), the loop over epochs, clips and chunks.

The loop is host code around the jitted steps of `steps`: it builds the networks and states
(`train_state`), reads clips from the input pipeline, cuts them into chunks (`schedule.chunks_of`),
writes logs, images, evaluations and checkpoints, and resumes a stopped run exactly where it
stopped (the data position is saved with every checkpoint).
"""

from collections.abc import Callable, Mapping
import functools
import json
import pathlib
import time
from typing import Any

from absl import logging
import flax
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import checkpoint
from vid2vid_jax import config_lib
from vid2vid_jax import losses as losses_lib
from vid2vid_jax import schedule as schedule_lib
from vid2vid_jax import sharding as sharding_lib
from vid2vid_jax import steps as steps_lib
from vid2vid_jax import train_state as train_state_lib
from vid2vid_jax import video_io
from vid2vid_jax import writers

Array = jax.Array
TrainState = train_state_lib.TrainState


def summary_image(images: Mapping[str, Array], label_nc: int) -> np.ndarray:
  """[1, H, k*W, 3] uint8 panel of the first sample's newest frame: cond | fake | real | raw
  | flow | weight | reference flow (those present)."""
  pick = lambda k: np.asarray(images[k][0, -1], np.float32)
  panels = [video_io.colorize_cond(pick('cond'), label_nc), video_io.to_uint8(pick('fake')),
            video_io.to_uint8(pick('real')), video_io.to_uint8(pick('raw'))]
  if 'flow' in images:
    magnitude = max(float(np.abs(pick('flow_ref')).max()), float(np.abs(pick('flow')).max()), 1)
    panels.append(video_io.flow_to_rgb(pick('flow'), magnitude))
    panels.append(np.repeat(np.clip(pick('weight') * 255, 0, 255).astype(np.uint8), 3, axis=-1))
    panels.append(video_io.flow_to_rgb(pick('flow_ref'), magnitude))
  return video_io.side_by_side(panels)[None]


def load_frozen(config: Any) -> dict[str, Any]:
  """The frozen networks the step needs: VGG19 (if the VGG loss is on) and FlowNet2 (if used)."""
  frozen = {'vgg': None, 'flownet': None, 'first_frame': None}
  if config.loss.use_vgg:
    from vid2vid_jax import vgg  # pylint: disable=g-import-not-at-top
    frozen['vgg'] = jax.tree_util.tree_map(jnp.asarray,
                                           vgg.load_vgg19_weights(config.loss.vgg_weights))
  if config.flow.source == 'flownet2':
    if not config.flow.checkpoint:
      raise ValueError('flow.source is "flownet2" but flow.checkpoint is empty: convert the '
                       'official FlowNet2_checkpoint.pth.tar with `python -m '
                       'flow.convert_flownet2` and set config.flow.checkpoint, or use '
                       'flow.source="dataset"')
    from flow import checkpoint as flow_checkpoint  # pylint: disable=g-import-not-at-top
    frozen['flownet'] = flow_checkpoint.load_flownet2(config.flow.checkpoint)
  return frozen


def device_memory_gib() -> dict[str, float]:
  """{'memory/peak_gib', 'memory/in_use_gib'} of this process's first device where the backend
  reports them (GPU, TPU); {} on CPU."""
  stats = jax.local_devices()[0].memory_stats() or {}
  names = {'peak_bytes_in_use': 'memory/peak_gib', 'bytes_in_use': 'memory/in_use_gib'}
  return {name: stats[key] / 2**30 for key, name in names.items() if key in stats}


def init_from(params: dict[str, Any], path: str) -> dict[str, Any]:
  """Copies every parameter of a checkpoint (ours or imported) whose path and shape match.

  Grows a model coarse-to-fine: the coarser scales of a lower-resolution model keep their
  weights, new scales and mismatched tensors keep their random init (as the original's partial
  loading). Accepts a training workdir or a checkpoint written by ``convert_checkpoint``.
  """
  other, _ = checkpoint.load_params(path, 'train', option='train.init_from')
  flat_other = flax.traverse_util.flatten_dict(other, sep='/')
  flat = flax.traverse_util.flatten_dict(params, sep='/')
  copied = 0
  for key, value in flat.items():
    if key in flat_other and np.shape(flat_other[key]) == np.shape(value):
      flat[key] = jnp.asarray(flat_other[key], value.dtype)
      copied += 1
  if copied == 0:
    raise ValueError(f'train.init_from={path}: no parameter matches this model')
  logging.info('init_from %s: copied %d of %d parameter arrays', path, copied, len(flat))
  return flax.traverse_util.unflatten_dict(flat, sep='/')


def train_and_evaluate(config: Any, workdir: str) -> TrainState:
  """Trains from config in workdir (resuming automatically); returns the final state.

  Runs on the ('data', 'spatial') mesh of config.sharding over all devices of all processes
  (multi-host: call `sharding.initialize_distributed` first, as train.py does); every process
  runs this with the same config and reads its own share of each batch.
  """
  config_lib.validate_config(config, num_devices=jax.device_count())
  mesh = sharding_lib.create_mesh(config)
  logging.info('Training on %s', sharding_lib.describe(mesh))
  with jax.set_mesh(mesh):
    return _train(config, pathlib.Path(workdir), mesh)


class _Logs:
  """Scalars averaged over log steps, summary images, progress; non-finite steps are found here,
  at log steps (the step skips their updates on device, so checking every step would only add a
  host sync per step)."""

  def __init__(self, config: Any, writer: Any, label_nc: int, total_steps: int,
               describe_checkpoint: Callable[[], str], is_main: bool):
    self._config = config
    self._writer = writer
    self._label_nc = label_nc
    self._last = total_steps
    self._describe_checkpoint = describe_checkpoint
    self._pending: list[tuple[int, str, Mapping[str, Array]]] = []
    self.progress = writers.ProgressLogger(total_steps, writer if is_main else None,
                                           every_secs=30.0)

  def __call__(self, step: int, where: str, scalars: Mapping[str, Array],
               images: Mapping[str, Array], extra: Mapping[str, float]) -> None:
    train = self._config.train
    self._pending.append((step, where, scalars))
    if step % train.log_every_steps == 0 or step >= self._last:
      self.flush(extra)
    if step % train.image_every_steps == 0 or step >= self._last:
      images = sharding_lib.to_host(images)  # every process joins the gather
      self._writer.write_images(step, {'train/cond_fake_real_raw_flow_weight_flowref':
                                       summary_image(images, self._label_nc)})
    self.progress(step)

  def flush(self, extra: Mapping[str, float] | None = None) -> None:
    """Writes the mean of the pending scalars; raises if any of their steps was not finite."""
    if not self._pending:
      return
    pending, self._pending = self._pending, []
    for step, where, scalars in pending:
      if float(scalars['finite']) == 0.0:
        raise RuntimeError(f'non-finite loss or gradient at step {step} ({where}); the update '
                           f'was skipped. Last good checkpoint: {self._describe_checkpoint()}')
    mean = {k: float(np.mean([float(s[k]) for _, _, s in pending]))
            for k in pending[0][2] if k != 'finite'}
    mean.update(extra or {})
    mean.update(device_memory_gib())
    self._writer.write_scalars(pending[-1][0], mean)


def _train(config: Any, workdir: pathlib.Path, mesh: jax.sharding.Mesh) -> TrainState:
  """train_and_evaluate's loop, with ``mesh`` in context."""
  import input_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow: only when training)

  workdir.mkdir(parents=True, exist_ok=True)
  is_main = jax.process_index() == 0
  writer = writers.create_writer(workdir, just_logging=not is_main)
  models = train_state_lib.build_models(config)
  weights = losses_lib.loss_weights_from_config(config)
  schedule = schedule_lib.schedule_from_config(config)
  video = models.generator is not None
  frozen = load_frozen(config)
  if video and models.first_frame is not None:
    frozen['first_frame'], _ = checkpoint.load_params(
        train_state_lib.first_frame_checkpoint(config), 'first_frame_generator',
        option='first_frame.checkpoint')
  frozen = jax.device_put(jax.tree_util.tree_map(np.asarray, frozen),
                          sharding_lib.replicated(mesh))
  # The step draws no random numbers (no dropout or noise in vid2vid): the key only initialises.
  init_key = jax.random.split(jax.random.PRNGKey(config.seed))[0]

  datasets: dict[int, Any] = {}  # one input pipeline per clip length, reused across epochs

  def dataset_for(n_total: int):
    if n_total not in datasets:
      datasets[n_total] = input_pipeline.create_dataset(config, split='train',
                                                        n_frames_total=n_total)
    return datasets[n_total]

  # ------------------------------------------------------------ states, before the first batch
  first_data = dataset_for(schedule.n_frames_total_at(0))
  batch_size = first_data.global_batch
  height, width = first_data.frame_size
  ema = config.train.ema_decay > 0
  layouts = train_state_lib.state_layouts(models, schedule, batch_size, height, width, mesh,
                                          ema=ema, fsdp=config.sharding.fsdp,
                                          fsdp_min_size=config.sharding.fsdp_min_size)
  new_sequence_state = train_state_lib.sequence_state_factory(models, layouts, batch_size,
                                                              height, width)
  manager = checkpoint.create_manager(workdir, config.train.keep_checkpoints)
  latest = manager.latest_step()
  position = {'epoch': 0, 'clip': 0, 'chunk': 0}
  seq = None
  if latest is not None:
    position = checkpoint.restore_meta(manager, latest)['position']
    state, seq = checkpoint.restore_train(manager, latest, layouts.abstract_state,
                                          layouts.abstract_sequence)
    logging.info('Resuming from %s at step %d (epoch %d, clip %d, chunk %d)',
                 manager.directory, latest, position['epoch'], position['clip'],
                 position['chunk'])
  else:
    state = train_state_lib.create_sharded_state(models, schedule, init_key, layouts, batch_size,
                                                 height, width, ema=ema)
    if config.train.init_from:
      params = init_from(state.params, config.train.init_from)
      state = jax.device_put(state.replace(
          params=params, ema_g=train_state_lib.copy_tree(params['g']) if ema else None),
                             layouts.state)

  warmup_steps = config.train.flow_warmup_steps if video else 0
  total_steps = warmup_steps + schedule_lib.planned_steps(
      schedule, dataset_for, 'video' if video else 'first_frame')
  num_steps = config.train.num_steps if config.train.num_steps >= 0 else None
  if num_steps is not None:
    total_steps = min(total_steps, num_steps)
  if latest is not None and latest >= total_steps:
    logging.warning('Training in %s already finished at step %d of %d: nothing to do (raise '
                    'train.num_steps, or niter / niter_decay, to continue it)', workdir, latest,
                    total_steps)
    return state

  last_saved = latest
  describe = lambda: ('none' if last_saved is None
                      else f'step {last_saved} in {manager.directory}')
  logs = _Logs(config, writer, config.data.label_nc, total_steps, describe, is_main)

  def save(step, epoch, clip, chunk, seq_to_save):
    nonlocal last_saved
    logs.flush()  # never save past a non-finite step unnoticed
    meta = {'position': {'epoch': epoch, 'clip': clip, 'chunk': chunk},
            'config': json.loads(config.to_json())}
    logging.info('Saving checkpoint at step %d', step)  # benchmarks/faults.py aims its kills here
    checkpoint.save_train(manager, step, state, seq_to_save, meta)
    last_saved = step
    logging.info('Saved checkpoint at step %d', step)

  evaluator = None
  if config.train.eval_every_steps > 0 and video:
    from vid2vid_jax import inference  # pylint: disable=g-import-not-at-top
    evaluator = inference.build_evaluator(config)  # fails on a bad eval setup before training

  def evaluate(step):
    """Scores the generator into workdir/eval_train/step_<step> and TensorBoard 'eval/'."""
    g_params = sharding_lib.to_host(state.ema_g if state.ema_g is not None else state.params['g'])
    if not is_main:
      return
    out_dir = workdir / 'eval_train' / f'step_{step:08d}'
    report = evaluator(g_params, out_dir, config.train.eval_sequences, write_png=False)
    inference.write_report_summaries(writer, step, report, out_dir, 'eval')

  step = latest or 0
  next_position = (position['epoch'], position['clip'], position['chunk'])
  t_start = time.monotonic()
  if step < warmup_steps:  # a fresh run: warm-ups are not checkpointed, an interrupted one reruns
    state, step = _flow_warmup(config, models, weights, schedule, state, layouts, frozen,
                               first_data, mesh, warmup_steps, num_steps, logs)
  jit_steps: dict[steps_lib.StepOptions, Callable] = {}
  done = num_steps is not None and step >= num_steps
  for epoch in range(position['epoch'], schedule.num_epochs):
    if done:
      break
    n_total = schedule.n_frames_total_at(epoch)
    dataset = dataset_for(n_total)
    plan = dataset.clip_plan
    options = steps_lib.step_options(config, schedule, epoch, plan.frames_per_step)
    rates = {k: np.float32(v) for k, v in schedule.learning_rates(epoch).items()}
    # Clips depend only on (seed, position): epoch e reads positions [e * spe, (e + 1) * spe),
    # so a resumed run sees exactly the clips an uninterrupted one would.
    steps_per_epoch = dataset.steps_per_epoch
    start_clip = position['clip'] if epoch == position['epoch'] else 0
    dataset.set_state({'step': epoch * steps_per_epoch + start_clip})
    for clip in range(start_clip, steps_per_epoch):
      batch = next(dataset)  # this process's share of the global batch
      if video:
        chunks = schedule_lib.chunks_of(batch, plan)
      else:  # every frame is a sample: one step per batch
        chunks = [{'cond': batch['cond'], 'image': batch['image']}]
      first_chunk = 0
      if (latest is not None and epoch == position['epoch'] and clip == position['clip']
          and position['chunk'] > 0):
        first_chunk = position['chunk']  # resume inside this clip with the restored seq
      else:
        seq = new_sequence_state()
      for c in range(first_chunk, len(chunks)):
        chunk = sharding_lib.to_global(chunks[c], mesh)  # this process's share -> global arrays
        if options not in jit_steps:
          txs = train_state_lib.make_optimizers(schedule, state.params)
          step_fn = steps_lib.train_step if video else steps_lib.first_frame_step
          jit_steps[options] = steps_lib.jit_step(
              functools.partial(step_fn, models, weights, options, txs), mesh, layouts.state,
              layouts.sequence if video else None, chunk)
        if video:
          state, seq, out = jit_steps[options](state, seq, chunk, rates, frozen)
        else:
          state, out = jit_steps[options](state, chunk, rates, frozen)
        step += 1
        logs(step, f'epoch {epoch}, clip {clip}, chunk {c}', out['scalars'], out['images'],
             {'epoch': epoch, 'n_frames_total': n_total})
        next_position = (epoch, clip, c + 1) if c + 1 < len(chunks) else (epoch, clip + 1, 0)
        if evaluator is not None and step % config.train.eval_every_steps == 0:
          evaluate(step)
        if step % config.train.checkpoint_every_steps == 0:
          save(step, *next_position, seq)
        if num_steps is not None and step >= num_steps:
          done = True
          break
      if done:
        break
  logs.flush()
  if last_saved != step:
    save(step, *next_position, seq if seq is not None else new_sequence_state())
  writer.flush()
  logging.info('Training finished at step %d in %.1f s', step, time.monotonic() - t_start)
  return state


def _flow_warmup(config: Any, models: train_state_lib.Models, weights: losses_lib.LossWeights,
                 schedule: schedule_lib.Schedule, state: TrainState,
                 layouts: train_state_lib.Layouts, frozen: Mapping[str, Any], dataset: Any,
                 mesh: jax.sharding.Mesh, warmup_steps: int, num_steps: int | None,
                 logs: _Logs) -> tuple[TrainState, int]:
  """The flow warm-up (train.flow_warmup_steps) on whole clips of the first epoch's length."""
  dataset.set_state({'step': 0})
  options = steps_lib.step_options(config, schedule, 0, dataset.clip_plan.frames_per_step)
  rates = {k: np.float32(v) for k, v in schedule.learning_rates(0).items()}
  logging.info('Flow warm-up: %d steps on clips of %d frames', warmup_steps,
               dataset.clip_plan.length)
  warmup = None
  step = 0
  stop = warmup_steps if num_steps is None else min(warmup_steps, num_steps)
  while step < stop:
    batch = next(dataset)
    chunk = sharding_lib.to_global(
        {k: batch[k] for k in schedule_lib.CHUNK_KEYS if k in batch}, mesh)
    if warmup is None:
      warmup = steps_lib.jit_step(
          functools.partial(steps_lib.flow_warmup_step, models, weights, options,
                            train_state_lib.make_optimizers(schedule, state.params)),
          mesh, layouts.state, None, chunk)
    state, out = warmup(state, chunk, rates, frozen)
    step += 1
    logs(step, 'flow warm-up', out['scalars'], out['images'],
         {'epoch': 0, 'n_frames_total': schedule.n_frames_total_at(0)})
  return state, step
