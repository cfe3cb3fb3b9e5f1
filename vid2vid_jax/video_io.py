"""Writing results: PNG frames, mp4 videos and side-by-side panels, each written atomically.

Every writer renders into a temporary file next to the destination and renames it into place, so
an interrupted run never leaves a half-written frame or video behind.
"""

import os
import pathlib
import tempfile
from collections.abc import Iterable, Sequence

import cv2
import imageio.v2 as imageio
import numpy as np

# Cityscapes colours by labelId 0..33 (cityscapesScripts' labels table); id 34 is the licence
# plate (-1 there), drawn like a car.
CITYSCAPES_PALETTE = np.array([
    (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (111, 74, 0), (81, 0, 81),
    (128, 64, 128), (244, 35, 232), (250, 170, 160), (230, 150, 140), (70, 70, 70),
    (102, 102, 156), (190, 153, 153), (180, 165, 180), (150, 100, 100), (150, 120, 90),
    (153, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35),
    (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 0, 90), (0, 0, 110), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    (0, 0, 142)], dtype=np.uint8)


def label_palette(label_nc: int) -> np.ndarray:
  """[label_nc, 3] uint8 colours: Cityscapes colours for 35 classes, else a spread of hues."""
  if label_nc == len(CITYSCAPES_PALETTE):
    return CITYSCAPES_PALETTE
  hues = (np.arange(label_nc) * 0.618033988749895) % 1.0  # golden-ratio hue steps
  value = 0.55 + 0.45 * ((np.arange(label_nc) % 3) / 2)
  rgb = np.stack([np.abs(((hues * 6 + k) % 6) - 3) - 1 for k in (0, 4, 2)], axis=-1)
  rgb = np.clip(rgb, 0, 1) * value[:, None]
  palette = (rgb * 255).astype(np.uint8)
  palette[0] = 0
  return palette


def to_uint8(image: np.ndarray) -> np.ndarray:
  """[..., 3] float in [-1, 1] -> uint8 in [0, 255] (the original's tensor2im)."""
  image = np.asarray(image, dtype=np.float32)
  return np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8)


def colorize_cond(cond: np.ndarray, label_nc: int) -> np.ndarray:
  """Renders a conditioning frame for display.

  Args:
    cond: [H, W, C] float. With label_nc > 0 the first label_nc channels are one-hot (or soft)
      labels, drawn in the label palette, and a following instance-edge channel is drawn white.
      Otherwise the first three channels (one channel repeated) are drawn: ranges in [0, 1]
      (face edge maps) and [-1, 1] (pose renderings) are both recognised.
    label_nc: number of label channels.

  Returns:
    [H, W, 3] uint8.
  """
  cond = np.asarray(cond, dtype=np.float32)
  if cond.ndim != 3:
    raise ValueError(f'colorize_cond expects [H, W, C], got {cond.shape}')
  if label_nc > 0:
    rgb = label_palette(label_nc)[np.argmax(cond[..., :label_nc], axis=-1)]
    if cond.shape[-1] > label_nc:
      rgb = np.where(cond[..., label_nc:label_nc + 1] > 0.5, np.uint8(255), rgb)
    return rgb
  channels = cond[..., :3] if cond.shape[-1] >= 3 else np.repeat(cond[..., :1], 3, axis=-1)
  if channels.min() >= 0.0:
    return np.clip(np.round(channels * 255.0), 0, 255).astype(np.uint8)
  return to_uint8(channels)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
  """[H, W, 2] flow in pixels -> [H, W, 3] uint8 (hue = direction, saturation = magnitude)."""
  flow = np.asarray(flow, dtype=np.float32)
  magnitude = np.hypot(flow[..., 0], flow[..., 1])
  scale = max_magnitude or max(float(magnitude.max()), 1e-6)
  hue = (np.arctan2(-flow[..., 1], -flow[..., 0]) / (2 * np.pi)) % 1.0
  sat = np.clip(magnitude / scale, 0, 1)
  rgb = np.stack([np.abs(((hue * 6 + k) % 6) - 3) - 1 for k in (0, 4, 2)], axis=-1)
  rgb = 1 - sat[..., None] * (1 - np.clip(rgb, 0, 1))
  return (rgb * 255).astype(np.uint8)


def _caption_strip(text: str, width: int) -> np.ndarray:
  """[h, width, 3] uint8: ``text`` in white on black, shrunk to fit, h ~ width / 12 (>= 10)."""
  height = max(10, min(32, width // 12))
  font = cv2.FONT_HERSHEY_SIMPLEX
  scale = 1.0
  while scale > 0.2:
    (text_w, text_h), _ = cv2.getTextSize(text, font, scale, 1)
    if text_w <= width - 4 and text_h <= height - 4:
      break
    scale *= 0.9
  strip = np.zeros((height, width, 3), np.uint8)
  (text_w, text_h), _ = cv2.getTextSize(text, font, scale, 1)
  origin = (max(2, (width - text_w) // 2), (height + text_h) // 2)
  cv2.putText(strip, text, origin, font, scale, (255, 255, 255), 1, cv2.LINE_AA)
  return strip


def side_by_side(panels: Sequence[np.ndarray],
                 captions: Sequence[str] | None = None) -> np.ndarray:
  """Concatenates [H, W_i, 3] uint8 panels along the width.

  With ``captions`` (one per panel) a caption strip is drawn above every panel, and the result
  is [H + h, sum W_i, 3] with h the tallest strip (~W / 12 pixels, at least 10).
  """
  heights = {p.shape[0] for p in panels}
  if len(heights) != 1:
    raise ValueError(f'side_by_side needs panels of one height, got {sorted(heights)}')
  if captions is None:
    return np.concatenate(list(panels), axis=1)
  if len(captions) != len(panels):
    raise ValueError(f'side_by_side: {len(captions)} captions for {len(panels)} panels')
  strips = [_caption_strip(c, p.shape[1]) for c, p in zip(captions, panels)]
  top = max(s.shape[0] for s in strips)
  strips = [np.pad(s, ((top - s.shape[0], 0), (0, 0), (0, 0))) for s in strips]
  return np.concatenate([np.concatenate([s, np.asarray(p, np.uint8)])
                         for s, p in zip(strips, panels)], axis=1)


def upscale(image: np.ndarray, min_height: int) -> np.ndarray:
  """Nearest-neighbour upscaling of [H, W, C] by the smallest integer factor reaching
  ``min_height`` rows (unchanged when H >= min_height)."""
  factor = -(-min_height // image.shape[0])
  if factor <= 1:
    return image
  return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _atomic_target(path: pathlib.Path) -> tuple[int, str]:
  path.parent.mkdir(parents=True, exist_ok=True)
  return tempfile.mkstemp(prefix=f'.{path.stem}.', suffix=path.suffix, dir=path.parent)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
  """Writes an [H, W, 3] uint8 image atomically."""
  path = pathlib.Path(path)
  fd, tmp = _atomic_target(path)
  os.close(fd)
  try:
    imageio.imwrite(tmp, np.asarray(image, dtype=np.uint8), format='png')
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _even(frame: np.ndarray) -> np.ndarray:
  """Pads to even height/width (yuv420p needs it) by repeating the last row/column."""
  pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
  if pad_h or pad_w:
    frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode='edge')
  return frame


class VideoWriter:
  """Streams [H, W, 3] uint8 frames into an H.264 mp4 that appears at ``path`` only when closed
  without error (a context manager; memory does not grow with the number of frames)."""

  def __init__(self, path: str | os.PathLike, fps: float):
    self.path = pathlib.Path(path)
    fd, self._tmp = _atomic_target(self.path)
    os.close(fd)
    self._writer = imageio.get_writer(self._tmp, format='FFMPEG', mode='I', fps=fps,
                                      codec='libx264', pixelformat='yuv420p',
                                      macro_block_size=1, ffmpeg_log_level='error')
    self.count = 0

  def append(self, frame: np.ndarray) -> None:
    self._writer.append_data(_even(np.asarray(frame, dtype=np.uint8)))
    self.count += 1

  def close(self, success: bool = True) -> None:
    try:
      self._writer.close()  # waits for ffmpeg, so nothing is written after the cleanup below
      if success:
        if self.count == 0:
          raise ValueError(f'VideoWriter: no frames for {self.path}')
        os.replace(self._tmp, self.path)
    finally:
      if os.path.exists(self._tmp):
        os.remove(self._tmp)

  def __enter__(self) -> 'VideoWriter':
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    self.close(success=exc_type is None)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> int:
  """Streams [H, W, 3] uint8 frames into an H.264 mp4, atomically; returns the frame count."""
  with VideoWriter(path, fps) as writer:
    for frame in frames:
      writer.append(frame)
  return writer.count


def read_video(path: str | os.PathLike) -> np.ndarray:
  """Reads an mp4 back as [T, H, W, 3] uint8 (for tests and notebooks)."""
  with imageio.get_reader(path, format='FFMPEG') as reader:
    return np.stack([np.asarray(f) for f in reader])
