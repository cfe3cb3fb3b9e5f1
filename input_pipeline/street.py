"""Street (Cityscapes-style) and video conditioning: one-hot labels or images + instance edges.

The original's temporal dataset (docs/original_behaviour.md#label-encoding): data.layout 'street'
(label ids in A) and 'video' (images in A, label_nc 0) share this domain.

``load_frame`` reads one frame's label ids (uint8), instance ids and RGB image at the clip's
spatial params; ``finalize`` (TensorFlow, any leading dims) turns label ids into ``label_nc``
one-hot channels and appends the instance-edge channel: 1 where the instance id differs from a
4-neighbour (both pixels of a differing pair), else 0. With ``label_nc == 0`` the A frames are
images and the conditioning is A in [-1, 1].
"""

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from input_pipeline import layouts
from input_pipeline import transforms


@dataclasses.dataclass(frozen=True)
class StreetDomain:
  """Street layout options.

  Attributes:
    label_nc: label classes (35 for Cityscapes labelIds); 0 = A holds images.
    input_nc: channels of A when label_nc == 0 (1 or 3).
    use_instance: read {phase}_inst and append the instance-edge channel.
    resize_or_crop, load_size, fine_size, flip: spatial options (``transforms``).
  """
  label_nc: int
  input_nc: int
  use_instance: bool
  resize_or_crop: str
  load_size: int
  fine_size: int
  flip: bool
  @property
  def name(self) -> str:
    return 'street' if self.label_nc else 'video'

  @property
  def cond_channels(self) -> int:
    return (self.label_nc or self.input_nc) + int(self.use_instance)

  def streams(self, with_image: bool) -> tuple[str, ...]:
    return (('label',) + (('image',) if with_image else ()) +
            (('inst',) if self.use_instance else ()))

  def clip_params(self, seq: layouts.Sequence, frame_ids, rng: Optional[np.random.Generator]):
    width, height = layouts.image_size(seq.files['label'][frame_ids[0]])
    return transforms.get_params(rng, self.resize_or_crop, self.load_size, self.fine_size,
                                 width, height, flip=self.flip)

  def load_frame(self, seq: layouts.Sequence, t: int, params: transforms.SpatialParams,
                 rng: Optional[np.random.Generator],
                 source_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Frame ``t``: label [H, W] uint8 (or cond_raw [H, W, input_nc] uint8), inst [H, W] int32,
    image [H, W, 3] uint8, at ``params.out_size``; ``source_hw`` = the clip's first frame size."""
    del rng
    out = {}
    path = seq.files['label'][t]
    if self.label_nc:
      label = layouts.read_map(path)
      if label.max() >= self.label_nc:
        raise ValueError(f'{path}: {layouts.label_value_problem(np.unique(label), self.label_nc)}')
      _check_size(path, label.shape[:2], source_hw, 'the first frame of the clip')
      out['label'] = transforms.apply(label.astype(np.uint8), params, 'nearest')
      source_shape = label.shape[:2]
    else:
      a = layouts.read_image(path)
      source_shape = a.shape[:2]
      _check_size(path, source_shape, source_hw, 'the first frame of the clip')
      a = a[..., :1] if self.input_nc == 1 else a
      out['cond_raw'] = transforms.apply(a, params, 'cubic').reshape(
          params.out_size[::-1] + (self.input_nc,))
    if 'image' in seq.files:
      image = layouts.read_image(seq.files['image'][t])
      _check_size(seq.files['image'][t], image.shape[:2], source_shape, path)
      out['image'] = transforms.apply(image, params, 'cubic')
    if self.use_instance:
      inst_path = seq.files['inst'][t]
      inst = layouts.read_map(inst_path).astype(np.int32)
      _check_size(inst_path, inst.shape[:2], source_shape, path)
      out['inst'] = transforms.apply(inst, params, 'nearest')
    return out

  def finalize(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Builds ``cond`` [..., H, W, cond_channels] float32 from label/inst (see module docstring)."""
    features = dict(features)
    if self.label_nc:
      label = tf.cast(features['label'], tf.int32)
      parts = [tf.one_hot(label, self.label_nc, dtype=tf.float32)]
      features['label'] = label
    else:
      parts = [tf.cast(features.pop('cond_raw'), tf.float32) / 127.5 - 1.0]
    if self.use_instance:
      parts.append(instance_edges(features['inst'])[..., None])
    features['cond'] = tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]
    return features


def _check_size(path: str, shape, expected, reference: str) -> None:
  if tuple(shape) != tuple(expected):
    raise ValueError(f'{path}: size {shape[1]}x{shape[0]} differs from {reference} '
                     f'({expected[1]}x{expected[0]}); every stream of a frame must match')


def instance_edges(inst: tf.Tensor) -> tf.Tensor:
  """[..., H, W] float32 in {0, 1}: 1 where an instance id differs from a 4-neighbour.

  Args:
    inst: [..., H, W] integer instance ids.
  """
  inst = tf.convert_to_tensor(inst)
  dx = tf.not_equal(inst[..., :, 1:], inst[..., :, :-1])
  dy = tf.not_equal(inst[..., 1:, :], inst[..., :-1, :])
  rank = len(inst.shape)
  pad_x_left = [[0, 0]] * (rank - 1) + [[1, 0]]
  pad_x_right = [[0, 0]] * (rank - 1) + [[0, 1]]
  pad_y_top = [[0, 0]] * (rank - 2) + [[1, 0], [0, 0]]
  pad_y_bottom = [[0, 0]] * (rank - 2) + [[0, 1], [0, 0]]
  edge = (tf.pad(dx, pad_x_left) | tf.pad(dx, pad_x_right) | tf.pad(dy, pad_y_top) |
          tf.pad(dy, pad_y_bottom))
  return tf.cast(edge, tf.float32)
