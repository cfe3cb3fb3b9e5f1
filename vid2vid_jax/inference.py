"""Inference: stream arbitrarily long sequences through the generator, chunk by chunk.

Memory does not depend on the sequence length: frames are read one at a time, generated in chunks
of ``chunk_frames`` new frames with `rollout.generate` (one compiled function per chunk length),
and written out (PNG, mp4, side-by-side mp4) as they are produced. As in the original test script
the first ``n_frames_G - 1`` frames of every sequence are context only; each spatial scale keeps
its own history of generated frames (docs/original_behaviour.md#inference).
"""

import collections
from collections.abc import Callable, Iterable, Iterator, Mapping
import dataclasses
import functools
import itertools
import json
import os
import pathlib
from typing import Any

from absl import logging
import cv2
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import baselines as baselines_lib
from vid2vid_jax import fvd as fvd_lib
from vid2vid_jax import metrics as metrics_lib
from vid2vid_jax import plots
from vid2vid_jax import rollout
from vid2vid_jax import video_io
from vid2vid_jax.models import layers

Frame = Mapping[str, np.ndarray]  # 'cond' [H, W, C], optional 'image' [H, W, 3] in [-1, 1],
#                                   'inst' [H, W] int, 'flow_gt' [H, W, 2] (t -> t-1),
#                                   'conf_gt' [H, W, 1]
_MIN_PANEL_HEIGHT = 128  # side-by-side panels are upscaled (nearest) to at least this height


@dataclasses.dataclass(frozen=True)
class SequenceGenerator:
  """Generates the frames of one sequence from its conditioning frames.

  Attributes:
    video: the sequential generator (`train_state.video_generator_from_config`).
    first_frame_mode: 'real' (needs images), 'generate' (zeros, raw output for the first
      window) or 'single_g' (first frames from ``first_frame_fn``).
    chunk_frames: new frames per compiled call.
  """
  video: Any
  first_frame_mode: str
  chunk_frames: int = 8

  @property
  def n_frames_G(self) -> int:
    return self.video.n_frames

  @property
  def n_scales(self) -> int:
    return self.video.n_scales

  def _frame_fn(self, g_params, use_raw_only, windows, prevs, t):
    del t
    outs = self.video.net.apply({'params': g_params}, list(windows), list(prevs),
                                self.video.fg_masks(windows), use_raw_only=use_raw_only)
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
    raw_only = self.first_frame_mode == 'generate'  # only the first window, as the original
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


METRICS = ('psnr', 'ssim', 'warp_error', 'fvd')


def check_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
  """Validates config.eval.metrics: a subset of METRICS (raises ValueError naming the option)."""
  metrics = tuple(metrics)
  unknown = sorted(set(metrics) - set(METRICS))
  if unknown:
    raise ValueError(f'config.eval.metrics: unknown metric(s) {unknown}; choose from '
                     f'{", ".join(METRICS)}')
  return metrics


def _reference_flow(frame: Frame, flow_fn: Callable | None
                    ) -> tuple[np.ndarray, np.ndarray | None] | None:
  """(flow [1, H, W, 2] t -> t-1, conf [1, H, W, 1] or None) of the real video at this frame:
  the dataset's flow, else flow_fn on the real frames, else None."""
  if 'flow_gt' in frame:
    conf = frame.get('conf_gt')
    return frame['flow_gt'][None], None if conf is None else conf[None]
  if flow_fn is not None and 'image' in frame and 'prev_image' in frame:
    flow, conf = flow_fn(frame['image'][None], frame['prev_image'][None])
    return np.asarray(flow), np.asarray(conf)
  return None


def _frame_metrics(fake: np.ndarray, frame: Frame, prev_fake: np.ndarray | None,
                   flow: tuple[np.ndarray, np.ndarray | None] | None,
                   metrics: Iterable[str]) -> dict[str, float]:
  """The requested per-frame scores of one predicted frame [H, W, 3] in [-1, 1]."""
  out = {}
  if 'image' in frame:
    real = frame['image'][None]
    if 'psnr' in metrics:
      out['psnr'] = float(metrics_lib.psnr(fake[None], real)[0])
    if 'ssim' in metrics and min(fake.shape[:2]) >= 11:
      out['ssim'] = float(metrics_lib.ssim(fake[None], real)[0])
  if 'warp_error' in metrics and prev_fake is not None and flow is not None:
    out['warp_error'] = float(metrics_lib.warping_error(fake[None], prev_fake[None], *flow)[0])
  return out


class _ClipCutter:
  """Cuts a stream of frames into clips of ``length`` frames starting every ``stride`` frames."""

  def __init__(self, length: int, stride: int):
    self.length, self.stride = length, stride
    self._frames: collections.deque = collections.deque(maxlen=length)
    self._count = 0

  def push(self, frame: np.ndarray) -> np.ndarray | None:
    """Adds one frame; returns [length, H, W, C] when a clip ends at this frame."""
    self._frames.append(frame)
    self._count += 1
    start = self._count - self.length
    if start >= 0 and start % self.stride == 0:
      return np.stack(self._frames)
    return None


def _means(per_frame: list[dict[str, float]]) -> dict[str, float]:
  keys = sorted({k for f in per_frame for k in f if k != 'index'})
  return {k: float(np.mean([f[k] for f in per_frame if k in f])) for k in keys}


def summary_table(report: Mapping[str, Any]) -> str:
  """A text table of the mean scores (and FVD) of the model, the baselines and the real video."""
  rows = {'model': dict(report.get('mean', {}))}
  for name, baseline in report.get('baselines', {}).items():
    rows[name] = dict(baseline['mean'])
  if report.get('ground_truth'):
    rows['ground truth'] = dict(report['ground_truth']['mean'])
  for name, value in (report.get('fvd') or {}).get('scores', {}).items():
    if name in rows:
      rows[name]['fvd'] = value
  columns = [m for m in METRICS if any(m in r for r in rows.values())]
  lines = [f'{"method":<14}' + ''.join(f'{c:>12}' for c in columns)]
  for name, row in rows.items():
    cells = ''.join(f'{row[c]:>12.4g}' if row.get(c) is not None else f'{"-":>12}'
                    for c in columns)
    lines.append(f'{name:<14}{cells}')
  return '\n'.join(lines)


def evaluate_sequences(sequence_generator: SequenceGenerator, g_params: Any,
                       sequences: Iterable[tuple[str, Iterable[Frame]]], out_dir: str | os.PathLike,
                       *, label_nc: int, fps: float, max_frames: int | None = None,
                       first_frame_fn: Callable | None = None, flow_fn: Callable | None = None,
                       write_png: bool = True,
                       metrics: Iterable[str] = ('psnr', 'ssim', 'warp_error'),
                       label_colours: np.ndarray | None = None, use_baselines: bool = True,
                       fvd_extractor: Callable[[np.ndarray], np.ndarray] | None = None,
                       fvd_clip_stride: int = fvd_lib.CLIP_FRAMES) -> dict[str, Any]:
  """Generates, writes and scores every sequence, next to the baselines.

  Writes under ``out_dir``: ``<seq>/frames/<index>.png``, ``<seq>.mp4`` (result),
  ``<seq>_side_by_side.mp4`` (captioned conditioning | ours | ground truth when present),
  ``metrics.json`` and ``metrics.png`` (`plots.plot_metrics`).

  metrics.json holds, for the model, per-frame and mean scores of ``metrics`` ('psnr' and
  'ssim' against the ground truth, 'warp_error' along the dataset's flows or FlowNet2's), under
  'sequences' and 'mean'; the same for every applicable baseline (`baselines.applicable`; the
  label-mean and oracle baselines need ``label_colours``) under 'baselines'; the real video's
  warp error under 'ground_truth'; and with 'fvd', FVD against the real clips of the model and
  of every baseline under 'fvd'. FVD clips are 16 consecutive scored frames, one every
  ``fvd_clip_stride`` frames, taken from the 8-bit frames as written; sequences with fewer
  than 16 scored frames give no clip and are listed in 'fvd'/'short_sequences', and FVD is
  None while fewer than 2 clips exist.

  Args:
    max_frames: generated frames of the whole run, over the sequences in order (the original's
      --how_many counts this way); None = every frame of every sequence.
    fvd_extractor: clips [N, 16, H, W, 3] in [-1, 1] -> I3D features [N, D]; default
      `fvd.FeatureExtractor` (needs the optional extra 'fvd').

  Returns:
    The metrics dict written to metrics.json.
  """
  metrics = check_metrics(metrics)
  use_fvd = 'fvd' in metrics
  if use_fvd and fvd_extractor is None:
    fvd_extractor = fvd_lib.FeatureExtractor()
  context = sequence_generator.n_frames_G - 1
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  report: dict[str, Any] = {'metrics': list(metrics), 'sequences': {}, 'baselines': {},
                            'ground_truth': {'sequences': {}}}
  features: dict[str, list[np.ndarray]] = {}
  short_sequences = []
  remaining = max_frames  # the whole run's budget, as the original's --how_many counts
  for name, frames in sequences:
    if remaining is not None and remaining <= 0:
      break
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
      continue
    methods = baselines_lib.applicable(first, context, label_colours) if use_baselines else {}
    streams = itertools.tee(itertools.chain([first], iterator), 1 + len(methods))
    predictors = {k: fn(s) for (k, fn), s in zip(methods.items(), streams[1:])}
    scores: dict[str, list[dict[str, float]]] = {k: [] for k in ('model', *methods, 'real')}
    previous: dict[str, np.ndarray | None] = {k: None for k in scores}
    with_real = 'image' in first
    cutter = _ClipCutter(fvd_lib.CLIP_FRAMES, fvd_clip_stride) if use_fvd and with_real else None
    with video_io.VideoWriter(out_dir / f'{name}.mp4', fps) as result_video, \
        video_io.VideoWriter(out_dir / f'{name}_side_by_side.mp4', fps) as panel_video:
      for index, (frame, fake) in enumerate(sequence_generator.run(
          g_params, streams[0], first_frame_fn=first_frame_fn, max_frames=remaining)):
        if previous['real'] is not None:
          frame = {**frame, 'prev_image': previous['real']}
        flow = _reference_flow(frame, flow_fn) if 'warp_error' in metrics else None
        predictions = {'model': fake, **{k: next(p) for k, p in predictors.items()}}
        if with_real:
          predictions['real'] = frame['image']
        for method, prediction in predictions.items():
          wanted = ('warp_error',) if method == 'real' else metrics
          scores[method].append({'index': index, **_frame_metrics(
              prediction, frame, previous[method], flow, wanted)})
          previous[method] = prediction
        fake_u8 = video_io.to_uint8(fake)
        panels = [video_io.colorize_cond(frame['cond'], label_nc), fake_u8]
        captions = ['conditioning', 'ours']
        if with_real:
          panels.append(video_io.to_uint8(frame['image']))
          captions.append('ground truth')
        result_video.append(fake_u8)
        panel_video.append(video_io.side_by_side(
            [video_io.upscale(p, _MIN_PANEL_HEIGHT) for p in panels], captions))
        if write_png:
          video_io.write_png(out_dir / name / 'frames' / f'{index:05d}.png', fake_u8)
        if cutter is not None:
          clip = cutter.push(np.stack([video_io.to_uint8(p) for p in predictions.values()]))
          if clip is not None:  # [16, methods, H, W, 3] -> one batch of clips, one per method
            batch = np.swapaxes(clip, 0, 1).astype(np.float32) / 127.5 - 1.0
            for method, feature in zip(predictions, np.asarray(fvd_extractor(batch))):
              features.setdefault(method, []).append(feature)
    if remaining is not None:
      remaining -= len(scores['model'])
    if use_fvd and len(scores['model']) < fvd_lib.CLIP_FRAMES:
      short_sequences.append(name)
    model = scores.pop('model')
    report['sequences'][name] = {'frames': model, 'mean': _means(model),
                                 'num_frames': len(model)}
    real = scores.pop('real')
    if with_real and 'warp_error' in metrics:
      report['ground_truth']['sequences'][name] = {'frames': real, 'mean': _means(real)}
    for method, per_frame in scores.items():
      report['baselines'].setdefault(method, {'sequences': {}})['sequences'][name] = {
          'frames': per_frame, 'mean': _means(per_frame)}
    logging.info('%s: %d frames, %s', name, len(model), report['sequences'][name]['mean'])
  report['mean'] = _means([f for s in report['sequences'].values() for f in s['frames']])
  for entry in (*report['baselines'].values(), report['ground_truth']):
    entry['mean'] = _means([f for s in entry['sequences'].values() for f in s['frames']])
  if not report['ground_truth']['sequences']:
    report['ground_truth'] = {}
  if use_fvd:
    report['fvd'] = _fvd_report(features, fvd_clip_stride, short_sequences)
  tmp = out_dir / '.metrics.json.tmp'
  tmp.write_text(json.dumps(report, indent=1))
  os.replace(tmp, out_dir / 'metrics.json')
  plots.plot_metrics(report, out_dir / 'metrics.png')
  for line in summary_table(report).splitlines():
    logging.info('%s', line)
  return report


def write_report_summaries(writer: Any, step: int, report: Mapping[str, Any],
                           out_dir: str | os.PathLike, prefix: str) -> None:
  """Writes `report_scalars` of a report under ``prefix`` and its out_dir/metrics.png as the
  image '{prefix}/metrics' to a `writers.create_writer` writer."""
  writer.write_scalars(step, report_scalars(report, prefix))
  picture = cv2.imread(str(pathlib.Path(out_dir) / 'metrics.png'), cv2.IMREAD_COLOR)
  if picture is not None:
    writer.write_images(step, {f'{prefix}/metrics': picture[None, ..., ::-1]})
  writer.flush()


def report_scalars(report: Mapping[str, Any], prefix: str = 'eval') -> dict[str, float]:
  """Flat TensorBoard scalars of a metrics report: '{prefix}/{metric}' for the model (FVD
  included), '{prefix}/{method}/{metric}' for every baseline and the real video's warp error."""
  out = {f'{prefix}/{k}': float(v) for k, v in report.get('mean', {}).items()}
  for name, entry in report.get('baselines', {}).items():
    out.update({f'{prefix}/{name}/{k}': float(v) for k, v in entry.get('mean', {}).items()})
  for k, v in (report.get('ground_truth') or {}).get('mean', {}).items():
    out[f'{prefix}/ground_truth/{k}'] = float(v)
  for name, value in (report.get('fvd') or {}).get('scores', {}).items():
    if value is not None:
      out[f'{prefix}/fvd' if name == 'model' else f'{prefix}/{name}/fvd'] = float(value)
  return out


def _fvd_report(features: Mapping[str, list[np.ndarray]], stride: int,
                short_sequences: list[str]) -> dict[str, Any]:
  """FVD of every method against the real clips (None with fewer than 2 clips)."""
  real = np.asarray(features.get('real', []))
  num_clips = len(real)
  scores = {}
  for method, feats in features.items():
    if method != 'real':
      scores[method] = (fvd_lib.fvd_from_features(real, np.asarray(feats))
                        if num_clips >= 2 else None)
  if short_sequences:
    logging.warning('FVD: %d sequence(s) have fewer than %d scored frames and give no clip: %s',
                    len(short_sequences), fvd_lib.CLIP_FRAMES, short_sequences)
  if num_clips < 2:
    logging.warning('FVD needs at least 2 clips of %d frames; got %d', fvd_lib.CLIP_FRAMES,
                    num_clips)
  return {'features': 'i3d_kinetics400_logits', 'resolution': fvd_lib.RESOLUTION,
          'clip_frames': fvd_lib.CLIP_FRAMES, 'clip_stride': stride, 'num_clips': num_clips,
          'short_sequences': short_sequences, 'scores': scores}


def load_generator_params(config: Any, workdir: str | os.PathLike) -> tuple[Any, int | None]:
  """(generator params, training step or None) for eval: config.eval.checkpoint (a checkpoint
  written by tools.convert_checkpoint, or another training workdir) if set, else the workdir's
  training checkpoint (config.eval.checkpoint_step, -1 = latest; the EMA params when training
  kept them)."""
  from vid2vid_jax import checkpoint  # pylint: disable=g-import-not-at-top
  step = None if config.eval.checkpoint_step < 0 else config.eval.checkpoint_step
  if config.eval.checkpoint:
    params, step = checkpoint.load_params(config.eval.checkpoint, 'generator', step=step,
                                          option='eval.checkpoint')
  else:
    if not checkpoint.is_training_workdir(workdir):
      raise ValueError(f'no training checkpoint in {workdir}; train first or set '
                       'config.eval.checkpoint')
    params, step = checkpoint.load_params(workdir, 'generator', step=step, option='workdir')
    logging.info('Evaluating the generator of step %d from %s', step, workdir)
  return jax.tree_util.tree_map(jnp.asarray, params), step


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """What scoring a generator on config.data.root's test split needs besides its params, built
  once by `build_evaluator` (training evaluates every train.eval_every_steps with one)."""
  config: Any
  sequence_generator: SequenceGenerator
  metrics: tuple[str, ...]
  first_frame_fn: Callable | None = None
  flow_fn: Callable | None = None
  fvd_extractor: Callable | None = None
  label_colours: np.ndarray | None = None

  def __call__(self, g_params: Any, out_dir: str | os.PathLike,
               num_sequences: int | None = None, write_png: bool = True) -> dict[str, Any]:
    """Generates and scores the first ``num_sequences`` test sequences (default
    config.eval.num_sequences; <= 0 = all) into out_dir; see `evaluate_sequences`."""
    import input_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow: only here)
    config = self.config
    if num_sequences is None:
      num_sequences = config.eval.num_sequences
    sequences = input_pipeline.iterate_test_sequences(config, split=config.eval.phase)
    if num_sequences > 0:
      sequences = (s for i, s in zip(range(num_sequences), sequences))
    sequences = _from_start_frame(sequences, config.eval.start_frame)
    return evaluate_sequences(self.sequence_generator, g_params, sequences, out_dir,
                              label_nc=config.data.label_nc, fps=config.eval.fps,
                              max_frames=config.eval.how_many,
                              first_frame_fn=self.first_frame_fn, flow_fn=self.flow_fn,
                              write_png=write_png, metrics=self.metrics,
                              label_colours=self.label_colours,
                              use_baselines=config.eval.baselines,
                              fvd_extractor=self.fvd_extractor,
                              fvd_clip_stride=config.eval.fvd_clip_stride)


def _from_start_frame(sequences: Iterable[tuple[str, Iterable[Frame]]], start_frame: int
                      ) -> Iterator[tuple[str, Iterable[Frame]]]:
  """The first sequence begins at frame ``start_frame`` (its context included), the others at 0
  (the original's --start_frame)."""
  for index, (name, frames) in enumerate(sequences):
    yield name, (itertools.islice(frames, start_frame, None) if index == 0 and start_frame
                 else frames)


def build_evaluator(config: Any) -> Evaluator:
  """The `Evaluator` of a validated config: the generator module, first-frame generator,
  FlowNet2 for the warp error, the FVD network and the label-mean colours, as configured."""
  from vid2vid_jax import train_state  # pylint: disable=g-import-not-at-top
  mode = config.eval.first_frame_mode or config.first_frame.mode
  sequence_generator = SequenceGenerator(
      video=train_state.video_generator_from_config(config), first_frame_mode=mode,
      chunk_frames=config.eval.chunk_frames)
  first_frame_fn = _first_frame_fn(config) if mode == 'single_g' else None
  flow_fn = None
  if config.flow.source == 'flownet2' and config.flow.checkpoint:
    from flow import api as flow_api  # pylint: disable=g-import-not-at-top
    from flow import checkpoint as flow_checkpoint  # pylint: disable=g-import-not-at-top
    flow_fn = jax.jit(functools.partial(flow_api.compute_flow_and_conf,
                                        flow_checkpoint.load_flownet2(config.flow.checkpoint),
                                        rgb_max=float(config.flow.rgb_max),
                                        div_flow=float(config.flow.div_flow)))
  metrics = check_metrics(config.eval.metrics)
  fvd_extractor = None
  if 'fvd' in metrics:  # built first, so a missing extra fails before any generation
    # Every call embeds one clip per method: the model, the baselines and the real video.
    try:
      fvd_extractor = fvd_lib.FeatureExtractor(batch_size=len(baselines_lib.NAMES) + 2)
    except ImportError as e:
      raise ImportError(f"config.eval.metrics includes 'fvd': {e}; or drop 'fvd' from "
                        'config.eval.metrics') from e
  colours = None
  if config.eval.baselines and config.data.label_nc > 0:
    colours = _label_mean_colours(config)
  return Evaluator(config, sequence_generator, metrics, first_frame_fn, flow_fn, fvd_extractor,
                   colours)


def evaluate(config: Any, workdir: str | os.PathLike) -> dict[str, Any]:
  """eval.py's library call: generate the test sequences of config.data.root and score them."""
  from vid2vid_jax import config_lib  # pylint: disable=g-import-not-at-top
  config_lib.validate_config(config)
  g_params, step = load_generator_params(config, workdir)
  out_dir = pathlib.Path(config.eval.results_dir or pathlib.Path(workdir) / 'eval')
  report = build_evaluator(config)(g_params, out_dir)
  if jax.process_index() == 0:  # TensorBoard: '<eval.phase>/...' at the checkpoint's step
    from vid2vid_jax import writers  # pylint: disable=g-import-not-at-top
    writer = writers.create_writer(out_dir, just_logging=False)
    write_report_summaries(writer, step or 0, report, out_dir, config.eval.phase)
    writer.close()
  return report


def _label_mean_colours(config: Any) -> np.ndarray:
  """[label_nc, 3] mean colour of every label over the training split (data.phase)."""
  import input_pipeline  # pylint: disable=g-import-not-at-top
  try:
    train = [frames for _, frames in input_pipeline.iterate_test_sequences(config, split='train')]
    return baselines_lib.label_mean_colours(train, config.data.label_nc)
  except ValueError as e:
    raise ValueError(f'the label-mean baselines take their colours from the training split '
                     f'({e}); set config.eval.baselines=False to skip the baselines') from e


def _first_frame_fn(config: Any) -> Callable[[list[Frame]], np.ndarray]:
  """The single-image generator of config.first_frame.checkpoint as context frames -> images.

  The feature-conditioned nets (the original's face model) also need each frame's real image
  and instance map: the feature encoder encodes them, and `first_frame.nearest_features` swaps
  the result for the stored features of the nearest training image
  (docs/quirks.md#face-features)."""
  from vid2vid_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from vid2vid_jax import train_state  # pylint: disable=g-import-not-at-top
  from vid2vid_jax.models import builders  # pylint: disable=g-import-not-at-top
  from vid2vid_jax.models import first_frame as first_frame_lib  # pylint: disable=g-import-not-at-top
  load = functools.partial(checkpoint.load_params, train_state.first_frame_checkpoint(config),
                           option='first_frame.checkpoint')
  params = jax.tree_util.tree_map(jnp.asarray, load('first_frame_generator')[0])
  model = builders.first_frame_generator_from_config(config)
  channels = first_frame_lib.input_channels(model, params)
  if not config.first_frame.net.endswith('_with_features'):
    apply = jax.jit(lambda p, x: model.apply({'params': p}, x[..., :channels]))
    return lambda context: np.asarray(apply(params, jnp.asarray(
        np.stack([f['cond'] for f in context]))))

  encoder_params = jax.tree_util.tree_map(jnp.asarray, load('first_frame_encoder')[0])
  bank = load('first_frame_features')[0]
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
