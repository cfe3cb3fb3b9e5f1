"""Reference predictors scored next to the model: what a trivial or an ideal method reaches.

Every baseline reads a sequence of frames (the dicts of `input_pipeline.iterate_test_sequences`:
'image' [H, W, 3] in [-1, 1], 'label' [H, W] int, 'flow_gt' [H, W, 2] backward flow t -> t-1 in
pixels, 'conf_gt' [H, W, 1] = 1 where frame t's pixel is visible in frame t-1) lazily and yields
one prediction [H, W, 3] float32 in [-1, 1] for every scored frame, i.e. every frame after the
first ``context`` (= n_frames_G - 1) frames, in order. None of them looks at the image of the
frame it predicts.

  label_mean     every pixel painted the mean training colour of its label.
  freeze_first   the last real context frame, held.
  copy_previous  the previous real frame.
  flow_oracle    the previous prediction (real context frames first) warped along the exact
                 flow; pixels that become visible take their label's mean colour.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
import itertools

import jax
import numpy as np

from vid2vid_jax import warp as warp_lib

Frame = Mapping[str, np.ndarray]
Baseline = Callable[[Iterable[Frame]], Iterator[np.ndarray]]
NAMES = ('label_mean', 'freeze_first', 'copy_previous', 'flow_oracle')

_warp = jax.jit(warp_lib.warp)


def label_mean_colours(frames_per_sequence: Iterable[Iterable[Frame]],
                       label_nc: int) -> np.ndarray:
  """[label_nc, 3] float32 mean colour in [-1, 1] of every label id over the given frames
  (frames need 'label' [H, W] int in [0, label_nc) and 'image'); unseen labels get 0 (grey)."""
  sums = np.zeros((label_nc, 3), np.float64)
  counts = np.zeros((label_nc,), np.float64)
  for frames in frames_per_sequence:
    for frame in frames:
      labels = np.asarray(frame['label']).reshape(-1)
      np.add.at(sums, labels, np.asarray(frame['image']).reshape(-1, 3))
      np.add.at(counts, labels, 1)
  return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def _split(frames: Iterable[Frame], context: int) -> tuple[list[Frame], Iterator[Frame]]:
  if context < 1:
    raise ValueError(f'baselines need at least one context frame; got context={context}')
  iterator = iter(frames)
  return list(itertools.islice(iterator, context)), iterator


def label_mean(frames: Iterable[Frame], context: int, colours: np.ndarray) -> Iterator[np.ndarray]:
  """Yields colours[label] for every scored frame; colours: [label_nc, 3] in [-1, 1]."""
  _, rest = _split(frames, context)
  for frame in rest:
    yield colours[frame['label']]


def freeze_first(frames: Iterable[Frame], context: int) -> Iterator[np.ndarray]:
  """Yields the last real context frame for every scored frame."""
  head, rest = _split(frames, context)
  held = np.asarray(head[-1]['image'], np.float32)
  for _ in rest:
    yield held


def copy_previous(frames: Iterable[Frame], context: int) -> Iterator[np.ndarray]:
  """Yields frame t-1's real image for every scored frame t."""
  head, rest = _split(frames, context)
  previous = head[-1]['image']
  for frame in rest:
    yield np.asarray(previous, np.float32)
    previous = frame['image']


def newly_visible(flow: np.ndarray, conf: np.ndarray | None = None) -> np.ndarray:
  """[H, W] bool: pixels of frame t with no source in frame t-1.

  Args:
    flow: [H, W, 2] backward flow t -> t-1 in pixels (dx, dy).
    conf: optional [H, W, 1] in [0, 1], 0 where frame t's pixel is occluded in frame t-1.

  Returns:
    True where conf < 0.5 or the sampling point p + flow falls outside the frame.
  """
  h, w = flow.shape[:2]
  x = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
  y = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
  outside = (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
  if conf is None:
    return outside
  return outside | (np.asarray(conf)[..., 0] < 0.5)


def flow_oracle(frames: Iterable[Frame], context: int,
                colours: np.ndarray) -> Iterator[np.ndarray]:
  """Warps the previous estimate along the dataset's exact flow (`warp.warp`, flow t -> t-1),
  starting from the last real context frame; newly visible pixels (see `newly_visible`) take
  colours[label]. Frames need 'flow_gt' and 'label'; 'conf_gt' is used when present."""
  head, rest = _split(frames, context)
  estimate = np.asarray(head[-1]['image'], np.float32)
  for frame in rest:
    flow = np.asarray(frame['flow_gt'], np.float32)
    warped = np.asarray(_warp(estimate[None], flow[None])[0])
    hole = newly_visible(flow, frame.get('conf_gt'))
    estimate = np.where(hole[..., None], colours[frame['label']], warped).astype(np.float32)
    yield estimate


def applicable(frame: Frame, context: int, colours: np.ndarray | None) -> dict[str, Baseline]:
  """The baselines that a sequence whose frames carry ``frame``'s keys supports, by name
  (in NAMES order): none without real images; label_mean needs 'label' and colours;
  flow_oracle needs those and 'flow_gt'."""
  if 'image' not in frame or context < 1:
    return {}
  out: dict[str, Baseline] = {}
  has_labels = colours is not None and 'label' in frame
  if has_labels:
    out['label_mean'] = lambda frames: label_mean(frames, context, colours)
  out['freeze_first'] = lambda frames: freeze_first(frames, context)
  out['copy_previous'] = lambda frames: copy_previous(frames, context)
  if has_labels and 'flow_gt' in frame:
    out['flow_oracle'] = lambda frames: flow_oracle(frames, context, colours)
  return out
