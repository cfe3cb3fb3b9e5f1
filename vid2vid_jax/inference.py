"""Inference: stream arbitrarily long sequences through the generator, chunk by chunk.

Memory does not depend on the sequence length: frames are read one at a time, generated in chunks
of ``chunk_frames`` new frames with `rollout.generate` (one compiled function per chunk length),
and written out (PNG, mp4, side-by-side mp4) as they are produced. As in the original test script
(reference/vid2vid_spec.md 7.2) the first ``n_frames_G - 1`` frames of every sequence are context
only; each spatial scale keeps its own history of generated frames.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
import dataclasses
import functools
import json
import os
import pathlib
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import metrics as metrics_lib
from vid2vid_jax import rollout
from vid2vid_jax import video_io
from vid2vid_jax.models import generator as generator_lib
from vid2vid_jax.models import layers

Frame = Mapping[str, np.ndarray]  # 'cond' [H, W, C], optional 'image' [H, W, 3] in [-1, 1],
#                                   'inst' [H, W] int, 'flow_gt' [H, W, 2] (t -> t-1),
#                                   'conf_gt' [H, W, 1]


@dataclasses.dataclass(frozen=True)
class SequenceGenerator:
  """Generates the frames of one sequence from its conditioning frames.

  Attributes:
    generator: the MultiScaleGenerator module.
    n_frames_G: conditioning window.
    n_scales: spatial scales.
    label_nc: leading label channels of cond (for fg masks); fg_labels: () without fg branch.
    first_frame_mode: 'real' (needs images), 'generate' (zeros, raw output for the first
      window) or 'single_g' (first frames from ``first_frame_fn``).
    chunk_frames: new frames per compiled call.
  """
  generator: Any
  n_frames_G: int
  n_scales: int
  label_nc: int
  fg_labels: tuple[int, ...]
  first_frame_mode: str
  chunk_frames: int = 8

  def _frame_fn(self, g_params, use_raw_only, windows, prevs, t):
    del t
    masks = None
    if self.fg_labels:
      masks = [generator_lib.fg_mask_from_labels(w[:, -1, ..., :self.label_nc], self.fg_labels)
               for w in windows]
    outs = self.generator.apply({'params': g_params}, list(windows), list(prevs), masks,
                                use_raw_only=use_raw_only)
    return tuple(o['fake'] for o in outs), outs[-1]['fake'].astype(jnp.float32)

  @functools.partial(jax.jit, static_argnums=(0,))
  def initial_carry(self, cond_context: jax.Array, prev_context: jax.Array) -> rollout.Carry:
    """cond_context [1, tG-1, H, W, C], prev_context [1, tG-1, H, W, 3] -> the scan carry."""
    return rollout.Carry(tuple(layers.pyramid(cond_context, self.n_scales)),
                         tuple(layers.pyramid(prev_context, self.n_scales)))

  @functools.partial(jax.jit, static_argnums=(0,))
  def generate_chunk(self, g_params: Any, carry: rollout.Carry, cond: jax.Array,
                     use_raw_only: jax.Array) -> tuple[rollout.Carry, jax.Array]:
    """cond [1, K, H, W, C] -> (carry, frames [1, K, H, W, 3] in [-1, 1])."""
    cond_pyr = tuple(layers.pyramid(cond, self.n_scales))
    frame_fn = functools.partial(self._frame_fn, g_params, use_raw_only)
    return rollout.generate(frame_fn, carry, cond_pyr)

  def run(self, g_params: Any, frames: Iterable[Frame],
          first_frame_fn: Callable[[list[Frame]], np.ndarray] | None = None,
          max_frames: int | None = None) -> Iterator[tuple[Frame, np.ndarray]]:
    """Yields (input frame, generated [H, W, 3] in [-1, 1]) for every frame after the context.

    Args:
      g_params: generator params.
      frames: the sequence, one Frame at a time (read lazily).
      first_frame_fn: for 'single_g': the N context frames -> images [N, H, W, 3].
      max_frames: stop after this many generated frames (None = the whole sequence).
    """
    tg = self.n_frames_G
    iterator = iter(frames)
    context = []
    for frame in iterator:
      context.append(frame)
      if len(context) == tg - 1:
        break
    if len(context) < tg - 1:
      return
    cond_context = np.stack([f['cond'] for f in context])[None]
    if self.first_frame_mode == 'real':
      if any('image' not in f for f in context):
        raise ValueError("first_frame mode 'real' needs the sequence's real frames (the test "
                         'split has no images): use single_g or generate')
      prev_context = np.stack([f['image'] for f in context])[None]
    elif self.first_frame_mode == 'single_g':
      if first_frame_fn is None:
        raise ValueError("first_frame mode 'single_g' needs a first-frame generator "
                         '(config.first_frame.checkpoint)')
      prev_context = np.asarray(first_frame_fn(context))[None]
    else:
      prev_context = np.zeros(cond_context.shape[:-1] + (3,), np.float32)
    carry = self.initial_carry(jnp.asarray(cond_context), jnp.asarray(prev_context, jnp.float32))
    raw_only = self.first_frame_mode == 'generate'  # only the first window (spec 7.2)
    produced = 0
    pending: list[Frame] = []

    def flush(pending, carry, raw_only):
      k = len(pending)
      cond = np.stack([f['cond'] for f in pending])
      if k < self.chunk_frames:  # pad the last chunk; padded outputs are discarded
        cond = np.concatenate([cond, np.repeat(cond[-1:], self.chunk_frames - k, 0)])
      if raw_only:  # the first frame alone, raw-only; the rest of the chunk normally
        carry, first = self.generate_chunk(g_params, carry, jnp.asarray(cond[None, :1]),
                                           jnp.bool_(True))
        carry, rest = self.generate_chunk(g_params, carry, jnp.asarray(cond[None, 1:]),
                                          jnp.bool_(False)) if k > 1 else (carry, first[:, :0])
        out = jnp.concatenate([first, rest], axis=1)
      else:
        carry, out = self.generate_chunk(g_params, carry, jnp.asarray(cond[None]),
                                         jnp.bool_(False))
      return carry, np.asarray(out[0, :k])

    for frame in iterator:
      if max_frames is not None and produced + len(pending) >= max_frames:
        break
      pending.append(frame)
      if len(pending) == self.chunk_frames:
        carry, out = flush(pending, carry, raw_only)
        raw_only = False
        for f, o in zip(pending, out):
          yield f, o
        produced += len(pending)
        pending = []
    if pending:
      carry, out = flush(pending, carry, raw_only)
      for f, o in zip(pending, out):
        yield f, o


def _frame_metrics(fake: np.ndarray, frame: Frame, prev_fake: np.ndarray | None,
                   flow_fn: Callable | None) -> dict[str, float]:
  out = {}
  if 'image' in frame:
    real = frame['image'][None]
    out['psnr'] = float(metrics_lib.psnr(fake[None], real)[0])
    if min(fake.shape[:2]) >= 11:
      out['ssim'] = float(metrics_lib.ssim(fake[None], real)[0])
  if prev_fake is not None:
    if 'flow_gt' in frame:
      flow, conf = frame['flow_gt'][None], frame.get('conf_gt', None)
      conf = None if conf is None else conf[None]
    elif flow_fn is not None and 'image' in frame and 'prev_image' in frame:
      flow, conf = flow_fn(frame['image'][None], frame['prev_image'][None])
    else:
      flow = None
    if flow is not None:
      out['warp_error'] = float(metrics_lib.warping_error(fake[None], prev_fake[None], flow,
                                                          conf)[0])
  return out


def evaluate_sequences(sequence_generator: SequenceGenerator, g_params: Any,
                       sequences: Iterable[tuple[str, Iterable[Frame]]], out_dir: str | os.PathLike,
                       *, label_nc: int, fps: float, max_frames: int | None = None,
                       first_frame_fn: Callable | None = None, flow_fn: Callable | None = None,
                       write_png: bool = True) -> dict[str, Any]:
  """Generates, writes and scores every sequence.

  Writes under ``out_dir``: ``<seq>/frames/<index>.png``, ``<seq>.mp4`` (result),
  ``<seq>_side_by_side.mp4`` (conditioning | result | ground truth when present) and
  ``metrics.json`` (per-frame PSNR / SSIM against the ground truth and temporal warping error
  along the dataset's flows or FlowNet2's, with per-sequence and overall means).

  Returns:
    The metrics dict written to metrics.json.
  """
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  report: dict[str, Any] = {'sequences': {}}
  for name, frames in sequences:
    per_frame = []
    prev_fake = None
    prev_image = None
    with video_io.VideoWriter(out_dir / f'{name}.mp4', fps) as result_video, \
        video_io.VideoWriter(out_dir / f'{name}_side_by_side.mp4', fps) as panel_video:
      for index, (frame, fake) in enumerate(sequence_generator.run(
          g_params, frames, first_frame_fn=first_frame_fn, max_frames=max_frames)):
        if prev_image is not None and 'image' in frame:
          frame = {**frame, 'prev_image': prev_image}
        scores = _frame_metrics(fake, frame, prev_fake, flow_fn)
        per_frame.append({'index': index, **scores})
        fake_u8 = video_io.to_uint8(fake)
        panels = [video_io.colorize_cond(frame['cond'], label_nc), fake_u8]
        if 'image' in frame:
          panels.append(video_io.to_uint8(frame['image']))
        result_video.append(fake_u8)
        panel_video.append(video_io.side_by_side(panels))
        if write_png:
          video_io.write_png(out_dir / name / 'frames' / f'{index:05d}.png', fake_u8)
        prev_fake, prev_image = fake, frame.get('image')
    keys = sorted({k for f in per_frame for k in f if k != 'index'})
    mean = {k: float(np.mean([f[k] for f in per_frame if k in f])) for k in keys}
    report['sequences'][name] = {'frames': per_frame, 'mean': mean,
                                 'num_frames': len(per_frame)}
    logging.info('%s: %d frames, %s', name, len(per_frame), mean)
  all_frames = [f for s in report['sequences'].values() for f in s['frames']]
  keys = sorted({k for f in all_frames for k in f if k != 'index'})
  report['mean'] = {k: float(np.mean([f[k] for f in all_frames if k in f])) for k in keys}
  tmp = out_dir / '.metrics.json.tmp'
  tmp.write_text(json.dumps(report, indent=1))
  os.replace(tmp, out_dir / 'metrics.json')
  return report


def load_generator_params(config: Any, workdir: str | os.PathLike) -> Any:
  """Generator params for eval: config.eval.checkpoint (an import_torch checkpoint) if set,
  else the workdir's training checkpoint (config.eval.checkpoint_step, -1 = latest; the EMA
  params when training kept them)."""
  from vid2vid_jax import checkpoint  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  if config.eval.checkpoint:
    tree, _ = checkpoint.load_variables(config.eval.checkpoint)
    if 'generator' not in tree:
      raise ValueError(f'eval.checkpoint={config.eval.checkpoint} has no generator '
                       f'(found {sorted(tree)})')
    return jax.tree_util.tree_map(jnp.asarray, tree['generator']['params'])
  manager = checkpoint.create_manager(workdir)
  step = manager.latest_step() if config.eval.checkpoint_step < 0 else config.eval.checkpoint_step
  if step is None or step not in manager.all_steps():
    raise ValueError(f'no training checkpoint (step {config.eval.checkpoint_step}) in '
                     f'{manager.directory}; train first or set config.eval.checkpoint')
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
  params = state.get('ema_g') or state['params']['g']
  logging.info('Evaluating the generator of step %d from %s%s', step, manager.directory,
               ' (EMA)' if state.get('ema_g') else '')
  return jax.tree_util.tree_map(jnp.asarray, params)


def evaluate(config: Any, workdir: str | os.PathLike) -> dict[str, Any]:
  """eval.py's library call: generate the test sequences of config.data.root and score them."""
  import input_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow: only here)
  from vid2vid_jax import config_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax.models import builders  # pylint: disable=g-import-not-at-top
  config_lib.validate_config(config)
  mode = config.eval.first_frame_mode or config.first_frame.mode
  g = config.model.generator
  sequence_generator = SequenceGenerator(
      generator=builders.generator_from_config(config), n_frames_G=g.n_frames_G,
      n_scales=g.n_scales_spatial, label_nc=config.data.label_nc,
      fg_labels=tuple(g.fg_labels) if g.fg else (), first_frame_mode=mode,
      chunk_frames=config.eval.chunk_frames)
  g_params = load_generator_params(config, workdir)
  first_frame_fn = None
  if mode == 'single_g':
    first_frame_fn = _first_frame_fn(config)
  flow_fn = None
  if config.flow.source == 'flownet2' and config.flow.checkpoint:
    from flow import api as flow_api  # pylint: disable=g-import-not-at-top
    from flow import checkpoint as flow_checkpoint  # pylint: disable=g-import-not-at-top
    flow_fn = jax.jit(functools.partial(flow_api.compute_flow_and_conf,
                                        flow_checkpoint.load_flownet2(config.flow.checkpoint)))
  sequences = input_pipeline.iterate_test_sequences(config, split=config.eval.phase)
  if config.eval.num_sequences > 0:
    sequences = (s for i, s in zip(range(config.eval.num_sequences), sequences))
  out_dir = config.eval.results_dir or pathlib.Path(workdir) / 'eval'
  return evaluate_sequences(sequence_generator, g_params, sequences, out_dir,
                            label_nc=config.data.label_nc, fps=config.eval.fps,
                            max_frames=config.eval.how_many, first_frame_fn=first_frame_fn,
                            flow_fn=flow_fn)


def _first_frame_fn(config: Any) -> Callable[[list[Frame]], np.ndarray]:
  """The single-image generator of config.first_frame.checkpoint as context frames -> images.

  The feature-conditioned nets (the original's face model) also need each frame's real image
  and instance map: the feature encoder encodes them, and `first_frame.nearest_features` swaps
  the result for the stored features of the nearest training image (spec 1.6)."""
  from vid2vid_jax import train_lib  # pylint: disable=g-import-not-at-top
  from vid2vid_jax.models import builders  # pylint: disable=g-import-not-at-top
  from vid2vid_jax.models import first_frame as first_frame_lib  # pylint: disable=g-import-not-at-top
  params = train_lib.load_first_frame_params(config)
  model = builders.first_frame_generator_from_config(config)
  channels = first_frame_lib.input_channels(model, params)
  if not config.first_frame.net.endswith('_with_features'):
    apply = jax.jit(lambda p, x: model.apply({'params': p}, x[..., :channels]))
    return lambda context: np.asarray(apply(params, jnp.asarray(
        np.stack([f['cond'] for f in context]))))

  encoder_params, bank = train_lib.load_first_frame_encoder(config)
  encoder = builders.feature_encoder_from_config(config)
  encode = jax.jit(lambda p, image, inst: encoder.apply({'params': p}, image, inst))
  apply = jax.jit(lambda p, x, feat: model.apply({'params': p}, x[..., :channels], feat))

  def generate(context: list[Frame]) -> np.ndarray:
    missing = [k for k in ('image', 'inst') if any(k not in f for f in context)]
    if missing:
      raise ValueError(f'first_frame.net={config.first_frame.net!r} needs the context frames\' '
                       f'{" and ".join(missing)} (real images and instance maps, as the '
                       "original's face test set has)")
    insts = np.stack([np.asarray(f['inst'], np.int32) for f in context])
    num_ids = config.first_frame.num_instance_ids
    if insts.min() < 0 or insts.max() >= num_ids:
      raise ValueError(f'instance ids {insts.min()}..{insts.max()} outside [0, '
                       f'first_frame.num_instance_ids={num_ids})')
    encoded = np.asarray(encode(encoder_params, jnp.asarray(
        np.stack([f['image'] for f in context]), jnp.float32), jnp.asarray(insts)))
    feats = np.stack([first_frame_lib.nearest_features(e, i, bank)
                      for e, i in zip(encoded, insts)])
    cond = np.stack([f['cond'] for f in context])
    return np.asarray(apply(params, jnp.asarray(cond), jnp.asarray(feats)))

  return generate
