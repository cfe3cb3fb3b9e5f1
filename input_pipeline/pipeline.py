"""tf.data pipelines for street, video (image-conditioned), face and pose videos, and the streaming test-sequence reader.

``plan_from_config`` is the only function here that reads the config; everything else takes
explicit values. Clips are decoded by NumPy/cv2 (``layouts`` readers, per-domain builders) inside
``tf.numpy_function`` with ``num_parallel_calls`` workers and deterministic ordering, batched, then
finished in TensorFlow (one-hot labels, scaling to [-1, 1]) and prefetched.

Batches (host-local NumPy dicts, NHWC; T = the clip length ``ClipIterator.clip_length``):
  cond      [B, T, H, W, C] float32: street label_nc one-hot (+1 instance-edge channel);
            video input_nc channels in [-1, 1] (+1 instance-edge channel);
            face 15 (or 1) channels in [0, 1]; pose 6 (or 3) channels in [-1, 1].
  image     [B, T, H, W, 3] float32 in [-1, 1] (absent for test splits without frames).
  label     [B, T, H, W] int32 label ids (street with label_nc > 0).
  inst      [B, T, H, W] int32 instance ids (street with use_instance) or face part labels 0..6.
  flow_gt   [B, T, H, W, 2] float32 pixels (dx, dy), backward: warp(image[:, t-1], flow_gt[:, t])
            ~= image[:, t]; flow_gt[:, 0] = 0.     (only with data.flow_dir)
  conf_gt   [B, T, H, W, 1] float32 in {0, 1}; conf_gt[:, 0] = 0.   (only with data.flow_dir)
  meta      {'seq_index': [B] int32, 'frame_index': [B, T] int32}.
"""

import dataclasses
import os
import re
from typing import Any, Iterator, Optional, Union

from absl import logging
import numpy as np
import tensorflow as tf

from input_pipeline import face
from input_pipeline import layouts
from input_pipeline import pose
from input_pipeline import sampling
from input_pipeline import street
from input_pipeline import transforms

Domain = Union[street.StreetDomain, face.FaceDomain, pose.PoseDomain]
_MAX_LISTED_PROBLEMS = 20


@dataclasses.dataclass(frozen=True)
class Plan:
  """Everything a pipeline needs, derived once from the config."""
  domain: Domain
  sequences: tuple[layouts.Sequence, ...]
  sampler: sampling.Sampler
  clip_plan: sampling.ClipPlan
  global_batch: int
  process_index: int
  process_count: int
  num_parallel_calls: int
  prefetch: int
  has_flow: bool
  train: bool

  @property
  def local_batch(self) -> int:
    return self.global_batch // self.process_count


def _size_stream(domain: Domain) -> str:
  return 'label' if isinstance(domain, street.StreetDomain) else 'image'


def _source_hw(domain: Domain, seq: layouts.Sequence, t: int) -> tuple[int, int]:
  width, height = layouts.image_size(seq.files[_size_stream(domain)][t])
  return height, width


def clip_flows(seq: layouts.Sequence, frame_ids: tuple[int, ...],
               params: transforms.SpatialParams,
               source_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Backward flows between consecutive clip frames (composed over strides > 1).

  Returns:
    flow [T, H, W, 2] float32 pixels at the output size and conf [T, H, W, 1] float32; frame 0
    has zero flow and zero confidence.
  """
  out_w, out_h = params.out_size
  flows = [np.zeros((out_h, out_w, 2), np.float32)]
  confs = [np.zeros((out_h, out_w), np.float32)]

  def read(t):
    path = seq.flows[t] if seq.flows else None
    if path is None:
      raise ValueError(f'{seq.name}: no flow file for frame {t} (flow_dir is set)')
    flow, valid = layouts.read_flow(path)
    if flow.shape[:2] != tuple(source_hw):
      raise ValueError(f'{path}: flow is {flow.shape[1]}x{flow.shape[0]}, expected the frame size '
                       f'{source_hw[1]}x{source_hw[0]}')
    return flow, valid

  for prev, cur in zip(frame_ids[:-1], frame_ids[1:]):
    flow, valid = read(cur)
    for t in range(cur - 1, prev, -1):
      flow, valid = transforms.compose_backward(flow, valid, *read(t))
    flow, valid = transforms.apply_flow(flow, valid, params)
    flows.append(flow)
    confs.append(valid)
  return np.stack(flows), np.stack(confs)[..., None]


def load_clip(plan: Plan, position: int) -> dict[str, np.ndarray]:
  """Decodes the clip at stream ``position``: uint8/int32 maps [T, H, W, ...] before finalize."""
  ref = plan.sampler.clip(position)
  seq = plan.sequences[ref.seq_index]
  domain = plan.domain
  params = domain.clip_params(seq, ref.frame_ids, ref.rng(0) if plan.train else None)
  frame_rng = ref.rng(1) if plan.train else None
  source_hw = _source_hw(domain, seq, ref.frame_ids[0])
  frames = [domain.load_frame(seq, t, params, frame_rng, source_hw) for t in ref.frame_ids]
  out = {key: np.stack([f[key] for f in frames]) for key in frames[0]}
  if plan.has_flow:
    out['flow'], out['conf'] = clip_flows(seq, ref.frame_ids, params, source_hw)
  out['seq_index'] = np.int32(ref.seq_index)
  out['frame_index'] = np.asarray(ref.frame_ids, np.int32)
  return out


def finalize(domain: Domain, features: dict[str, tf.Tensor]) -> dict[str, Any]:
  features = domain.finalize(features)
  out = {'cond': features['cond']}
  if 'image' in features:
    out['image'] = tf.cast(features['image'], tf.float32) / 127.5 - 1.0
  for key in ('label', 'inst'):
    if key in features:
      out[key] = tf.cast(features[key], tf.int32)
  if 'flow' in features:
    out['flow_gt'] = features['flow']
    out['conf_gt'] = features['conf']
  out['meta'] = {'seq_index': features['seq_index'], 'frame_index': features['frame_index']}
  return out


_TF_ERROR = re.compile(r'ValueError: (.*?)(?:\n\s*\[\[|\n\n|$)', re.S)


def _as_value_error(error: tf.errors.OpError) -> Exception:
  """The ValueError raised inside a numpy_function, without TF's wrapping."""
  found = _TF_ERROR.findall(error.message or '')
  if found:
    return ValueError(found[-1].strip())
  return error


class ClipIterator:
  """Iterator over host-local batches (see the module docstring), resumable by step.

  ``get_state()`` -> {'step': n}: the number of batches this iterator has produced; a fresh
  iterator built from the same config and seed and given ``set_state`` continues with exactly the
  batches the original would have produced next (clips depend only on (seed, position)).
  """

  def __init__(self, plan: Plan, start_step: int = 0):
    self._plan = plan
    self._step = start_step
    self._iterator = None
    probe = load_clip(plan, self._position(0, 0))
    self._keys = tuple(sorted(probe))
    self._dtypes = tuple(tf.as_dtype(probe[k].dtype) for k in self._keys)
    self._shapes = tuple(probe[k].shape for k in self._keys)

  @property
  def plan(self) -> Plan:
    return self._plan

  @property
  def clip_length(self) -> int:
    """T of every batch (frames read per clip)."""
    return self._plan.sampler.clip_len

  @property
  def frame_size(self) -> tuple[int, int]:
    """(H, W) of every frame of every batch."""
    shape = next(self._shapes[self._keys.index(k)] for k in ('image', 'cond', 'label')
                 if k in self._keys)
    return tuple(shape[1:3])

  @property
  def global_batch(self) -> int:
    """Clips per step over all processes."""
    return self._plan.global_batch

  @property
  def clip_plan(self) -> sampling.ClipPlan:
    """How each clip is cut into optimizer steps (training)."""
    return self._plan.clip_plan

  @property
  def steps_per_epoch(self) -> int:
    """Batches per pass over the dataset's items (at least 1)."""
    return max(1, len(self._plan.sampler) // self._plan.global_batch)

  @property
  def cond_channels(self) -> int:
    return self._plan.domain.cond_channels

  def _position(self, step: int, k: int) -> int:
    return sampling.shard_position(step, k, global_batch=self._plan.global_batch,
                                   process_index=self._plan.process_index,
                                   process_count=self._plan.process_count)

  def _load_flat(self, element: np.ndarray):
    step, k = divmod(int(element), self._plan.local_batch)
    clip = load_clip(self._plan, self._position(step, k))
    return tuple(clip[key] for key in self._keys)

  def _dataset(self, start_step: int) -> tf.data.Dataset:
    plan = self._plan
    b = plan.local_batch
    if plan.train:
      elements = tf.data.Dataset.range(start_step * b, np.iinfo(np.int64).max)
    else:  # one clip per item, then stop
      count = len(plan.sampler)
      local = [s * b + k for s in range(-(-count // plan.global_batch)) for k in range(b)
               if self._position(s, k) < count]
      elements = tf.data.Dataset.from_tensor_slices(np.asarray(local[start_step * b:], np.int64))

    def load(element):
      values = tf.numpy_function(self._load_flat, [element], self._dtypes, stateful=False)
      return {key: tf.ensure_shape(v, shape)
              for key, v, shape in zip(self._keys, values, self._shapes)}

    ds = elements.map(load, num_parallel_calls=plan.num_parallel_calls, deterministic=True)
    ds = ds.batch(b, drop_remainder=plan.train)
    ds = ds.map(lambda f: finalize(plan.domain, f), num_parallel_calls=plan.num_parallel_calls,
                deterministic=True)
    # Parallelism and prefetch are fixed, so autotuning has nothing to tune; its model thread
    # also blocks the iterator's destruction (up to ~1 min at process exit after a long run).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(plan.prefetch).with_options(options)

  def __iter__(self) -> 'ClipIterator':
    return self

  def __next__(self) -> dict[str, Any]:
    if self._iterator is None:
      self._iterator = iter(self._dataset(self._step))
    try:
      batch = next(self._iterator)
    except tf.errors.OpError as e:
      raise _as_value_error(e) from None
    self._step += 1
    return tf.nest.map_structure(lambda x: x.numpy(), batch)

  def get_state(self) -> dict[str, int]:
    return {'step': self._step}

  def set_state(self, state: dict[str, int]) -> None:
    self._step = int(state['step'])
    self._iterator = None


# ---------------------------------------------------------------- config -> plan (the one place)


def _flow_dir_for_phase(flow_dir: str, train_phase: str, phase: str) -> str:
  """Flows of another phase: ``.../train_flow`` -> ``.../test_flow`` when that exists."""
  if not flow_dir or phase == train_phase:
    return flow_dir
  head, base = os.path.split(os.path.normpath(flow_dir))
  if base.startswith(train_phase + '_'):
    candidate = os.path.join(head, phase + base[len(train_phase):])
    if os.path.isdir(candidate):
      return candidate
  logging.info('no %s flows next to data.flow_dir=%s: reading the %s split without flows',
               phase, flow_dir, phase)
  return ''


def plan_from_config(config, split: str, n_frames_total: Optional[int], seed: Optional[int],
                      process_index: Optional[int], process_count: Optional[int],
                      random: Optional[bool] = None) -> Plan:
  """Maps ``config`` to a Plan: the only function of input_pipeline that reads the config.

  ``random`` (default: split == 'train') enables shuffling, random clips, crops, flips, drops.
  """
  if split not in ('train', 'test'):
    raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
  data = config.data
  train = split == 'train' if random is None else random
  phase = data.phase if split == 'train' else config.eval.phase
  layout = data.layout
  spatial = dict(resize_or_crop=data.resize_or_crop, load_size=data.load_size,
                 fine_size=data.fine_size)
  flip = bool(data.flip and train)
  if layout in ('street', 'video'):  # 'video': A holds images (validate_config: label_nc 0)
    domain = street.StreetDomain(label_nc=data.label_nc, input_nc=data.input_nc,
                                 use_instance=data.use_instance, flip=flip, **spatial)
  elif layout == 'face':
    domain = face.FaceDomain(no_canny_edge=data.face.no_canny_edge,
                             no_dist_map=data.face.no_dist_map, flip=flip, **spatial)
  elif layout == 'pose':
    domain = pose.PoseDomain(densepose_only=data.pose.densepose_only,
                             openpose_only=data.pose.openpose_only,
                             remove_face_labels=data.pose.remove_face_labels,
                             random_drop_prob=data.pose.random_drop_prob if train else 0.0,
                             basic_point_only=data.pose.basic_point_only,
                             jitter_missing_points=config.compat.pose_jitter_missing_points,
                             **spatial)
  else:
    raise ValueError(f"data.layout must be 'street', 'video', 'face' or 'pose'; got {layout!r}")
  image_dir = layouts.stream_dir(data.root, layout, phase, 'image')
  with_image = split == 'train' or os.path.isdir(image_dir)
  flow_dir = _flow_dir_for_phase(data.flow_dir, data.phase, phase)
  sequences, problems = layouts.list_sequences(data.root, layout, phase,
                                               domain.streams(with_image), flow_dir)
  if problems:
    listed = '\n'.join(f'  {p}' for p in problems[:_MAX_LISTED_PROBLEMS])
    more = len(problems) - _MAX_LISTED_PROBLEMS
    raise ValueError(f'{len(problems)} problem(s) with the {layout} dataset at {data.root} '
                     f'({phase}):\n{listed}' + (f'\n  ... and {more} more' if more > 0 else '') +
                     f'\n(python -m input_pipeline.validate --layout {layout} {data.root} '
                     'checks everything)')
  if data.max_dataset_size > 0:
    sequences = sequences[:data.max_dataset_size]
  if not sequences:
    raise ValueError(f'no videos under {data.root} for phase {phase!r}')
  lengths = tuple(len(s) for s in sequences)
  n_frames_G = config.model.generator.n_frames_G
  clip_plan = sampling.clip_plan(
      n_frames_total if n_frames_total is not None else data.n_frames_total, n_frames_G,
      config.train.max_frames_per_gpu, min(lengths))
  clip_len = clip_plan.length
  if min(lengths) < max(lengths):
    logging.info('videos have %d..%d frames: clips of %d frames (batches need one length)',
                 min(lengths), max(lengths), clip_len)
  sampler = sampling.Sampler(
      seq_lengths=lengths, clip_len=clip_len, max_t_step=data.max_t_step if train else 1,
      per_frame_items=layout == 'pose', n_frames_G=n_frames_G, shuffle=bool(data.shuffle and train),
      seed=config.seed if seed is None else seed, train=train)
  process_index = process_index if process_index is not None else _jax_process()[0]
  process_count = process_count if process_count is not None else _jax_process()[1]
  if data.batch_size % process_count:
    raise ValueError(f'data.batch_size={data.batch_size} must divide evenly over '
                     f'{process_count} processes')
  return Plan(domain=domain, sequences=tuple(sequences), sampler=sampler, clip_plan=clip_plan,
              global_batch=data.batch_size, process_index=process_index,
              process_count=process_count, num_parallel_calls=data.num_parallel_calls,
              prefetch=data.prefetch, has_flow=bool(flow_dir), train=train)


def _jax_process() -> tuple[int, int]:
  import jax  # pylint: disable=g-import-not-at-top  (only when the caller leaves it to us)
  return jax.process_index(), jax.process_count()


# ---------------------------------------------------------------- public API


def create_dataset(config, *, split: str = 'train', n_frames_total: Optional[int] = None,
                   seed: Optional[int] = None, process_index: Optional[int] = None,
                   process_count: Optional[int] = None) -> ClipIterator:
  """Host-local batches of clips (see the module docstring).

  Args:
    config: the experiment config (``config.data`` and a few model/train fields).
    split: 'train' (endless, shuffled, random clips; phase data.phase) or 'test' (one clip from
      frame 0 of every video, no randomness, then stops; phase eval.phase).
    n_frames_total: curriculum clip length to generate (default data.n_frames_total).
    seed: data seed (default config.seed).
    process_index, process_count: this host's shard (default jax.process_index/count).

  Returns:
    A ``ClipIterator`` (``get_state``/``set_state`` for checkpoints).

  Raises:
    ValueError: dataset problems (listing each file and what was expected), bad options.
  """
  plan = plan_from_config(config, split, n_frames_total, seed, process_index, process_count)
  logging.info('%s %s pipeline: %d videos, clips of %d frames, %d clips per host batch',
               plan.domain.name, split, len(plan.sequences), plan.sampler.clip_len,
               plan.local_batch)
  return ClipIterator(plan)


def _stream_frames(plan: Plan, seq: layouts.Sequence) -> Iterator[dict[str, Any]]:
  domain = plan.domain
  params = domain.clip_params(seq, (0,), None)
  source_hw = _source_hw(domain, seq, 0)
  for t in range(len(seq)):
    frame = domain.load_frame(seq, t, params, None, source_hw)
    frame = {k: v[None] for k, v in frame.items()}
    if plan.has_flow:
      ids = (t - 1, t) if t else (0,)
      flow, conf = clip_flows(seq, ids, params, source_hw)
      frame['flow'], frame['conf'] = flow[-1:], conf[-1:]
    frame['seq_index'] = np.zeros((1,), np.int32)
    frame['frame_index'] = np.full((1,), t, np.int32)
    frame = {k: tf.convert_to_tensor(v) for k, v in frame.items()}
    out = tf.nest.map_structure(lambda x: x.numpy()[0], finalize(domain, frame))
    out.pop('meta')
    out['frame_index'] = t
    out['path'] = seq.files[_size_stream(domain)][t]
    yield out


def iterate_test_sequences(config, split: str = 'test'
                           ) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
  """Streams whole videos frame by frame with memory independent of their length.

  Args:
    config: the experiment config.
    split: 'test' (phase eval.phase) or 'train' (phase data.phase); no randomness either way.

  Yields:
    (video name, iterator of frames). A frame is {'cond': [H, W, C] float32, 'image': [H, W, 3]
    in [-1, 1] if the split has frames, 'label'/'inst': [H, W] int32 where present, 'flow_gt'
    [H, W, 2] and 'conf_gt' [H, W, 1] with a flow_dir (zero for frame 0), 'frame_index': int,
    'path': the frame's source file}.
  """
  plan = plan_from_config(config, split, 10 ** 9, None, 0, 1, random=False)
  for seq in plan.sequences:
    yield seq.name, _stream_frames(plan, seq)
