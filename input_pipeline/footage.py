"""The user's footage: video files or folders of frames, resampled in time and fitted to a size.

A source is one video file (decoded with imageio-ffmpeg) or one folder of image files (its frames,
sorted by name). ``find_sources`` lists them; ``read_frames`` yields their RGB frames, optionally
resampled to a lower frame rate; ``fit`` scales a frame to cover the output size (aspect kept) and
crops its centre. Errors are ValueErrors naming the file and what was expected.
"""

import dataclasses
import os
import re
from typing import Iterator, Optional

import cv2
import numpy as np

from input_pipeline import layouts

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv',
                    '.flv', '.gif')
FRAME_EXTENSIONS = tuple(e for e in layouts.IMAGE_EXTENSIONS if e != '.npy')


@dataclasses.dataclass(frozen=True)
class Source:
  """One video. ``frames`` is empty for a video file, else the sorted frame paths of a folder."""
  name: str
  path: str
  frames: tuple[str, ...] = ()


def _safe_name(stem: str) -> str:
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', stem).strip('._') or 'video'


def _frame_files(folder: str) -> tuple[str, ...]:
  return tuple(sorted(os.path.join(folder, f) for f in os.listdir(folder)
                      if f.lower().endswith(FRAME_EXTENSIONS)))


def find_sources(path: str) -> list[Source]:
  """Videos under ``path``: a video file, a folder of video files and/or of frame folders, or one
  folder of frames. Sorted by name; names are file or folder stems made filesystem-safe."""
  if os.path.isfile(path):
    if not path.lower().endswith(VIDEO_EXTENSIONS):
      raise ValueError(f'{path}: not a video file (expected one of {" ".join(VIDEO_EXTENSIONS)})')
    return [Source(_safe_name(os.path.splitext(os.path.basename(path))[0]), path)]
  if not os.path.isdir(path):
    raise ValueError(f'{path}: no such file or folder')
  sources = []
  for entry in sorted(os.listdir(path)):
    full = os.path.join(path, entry)
    if os.path.isfile(full) and entry.lower().endswith(VIDEO_EXTENSIONS):
      sources.append(Source(_safe_name(os.path.splitext(entry)[0]), full))
    elif os.path.isdir(full):
      frames = _frame_files(full)
      if frames:
        sources.append(Source(_safe_name(entry), full, frames))
  if not sources:
    frames = _frame_files(path)
    if frames:
      sources.append(Source(_safe_name(os.path.basename(os.path.normpath(path))), path, frames))
  if not sources:
    raise ValueError(f'{path}: no videos ({" ".join(VIDEO_EXTENSIONS)}) and no folders of frames '
                     f'({" ".join(FRAME_EXTENSIONS)})')
  seen = {}
  for source in sources:
    if source.name in seen:
      raise ValueError(f'{source.path}: same video name {source.name!r} as {seen[source.name]}; '
                       'rename one of them')
    seen[source.name] = source.path
  return sources


def fit_geometry(width: int, height: int, size: tuple[int, int]) -> tuple[float, tuple[int, int],
                                                                          tuple[int, int]]:
  """How a ``width`` x ``height`` frame is fitted to ``size`` (W, H): returns (scale, scaled
  (W, H), crop offset (x, y)). Scaled to cover the size, aspect kept, then centre-cropped."""
  out_w, out_h = size
  scale = max(out_w / width, out_h / height)
  scaled = (max(out_w, round(width * scale)), max(out_h, round(height * scale)))
  return scale, scaled, ((scaled[0] - out_w) // 2, (scaled[1] - out_h) // 2)


def fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """[h, w, 3] uint8 -> [H, W, 3] uint8 for ``size`` = (W, H) (see ``fit_geometry``)."""
  height, width = frame.shape[:2]
  _, (sw, sh), (x0, y0) = fit_geometry(width, height, size)
  shrink = sw < width
  scaled = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
  return np.ascontiguousarray(scaled[y0:y0 + size[1], x0:x0 + size[0]])


def _as_rgb(frame: np.ndarray, path: str) -> np.ndarray:
  frame = np.asarray(frame)
  if frame.ndim == 2:
    frame = np.repeat(frame[..., None], 3, axis=-1)
  if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
    raise ValueError(f'{path}: frames of shape {frame.shape}, expected [H, W, 3] RGB')
  if frame.dtype != np.uint8:
    raise ValueError(f'{path}: frames of type {frame.dtype}, expected 8-bit')
  return frame[..., :3]


def _open_video(path: str):
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top  (ffmpeg only when needed)
  try:
    reader = imageio.get_reader(path, format='FFMPEG')
    meta = reader.get_meta_data()
  except Exception as e:  # pylint: disable=broad-except  (ffmpeg reports many kinds of failure)
    raise ValueError(f'{path}: cannot decode this video ({type(e).__name__}: '
                     f'{str(e).strip().splitlines()[-1] if str(e).strip() else e!r})') from None
  fps = meta.get('fps')
  fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
  return reader, fps, meta


def _kept(index: int, src_fps: Optional[float], fps: Optional[float], next_time: list[float]
          ) -> bool:
  """Whether source frame ``index`` is kept when resampling ``src_fps`` to ``fps``."""
  if not fps or not src_fps or fps >= src_fps:
    return True
  time = index / src_fps
  if time + 0.5 / src_fps >= next_time[0]:
    next_time[0] += 1.0 / fps
    return True
  return False


def estimated_frames(source: Source, fps: Optional[float] = None) -> Optional[int]:
  """About how many frames ``read_frames`` yields (for progress bars); None when unknown."""
  if source.frames:
    return len(source.frames)
  reader, src_fps, meta = _open_video(source.path)
  reader.close()
  duration = meta.get('duration')
  if not src_fps or not duration or not np.isfinite(duration):
    return None
  total = duration * src_fps
  if fps and fps < src_fps:
    total = duration * fps
  return max(1, int(round(total)))


def read_frames(source: Source, fps: Optional[float] = None) -> Iterator[tuple[int, np.ndarray]]:
  """Yields (source frame index, [h, w, 3] uint8 RGB frame as stored; ``fit`` sizes it).

  With ``fps`` below the video's rate, frames are kept at that rate (the source frame nearest to
  each output time); frame folders and slower videos keep every frame.
  """
  if source.frames:
    for index, path in enumerate(source.frames):
      yield index, _as_rgb(layouts.read_image(path), path)
    return
  reader, src_fps, _ = _open_video(source.path)
  next_time = [0.0]
  index = -1
  try:
    for index, frame in enumerate(reader):
      if _kept(index, src_fps, fps, next_time):
        yield index, _as_rgb(frame, source.path)
  except ValueError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'{source.path}: decoding failed after frame {index} '
                     f'({type(e).__name__}: {e})') from None
  finally:
    reader.close()
  if index < 0:
    raise ValueError(f'{source.path}: no frames could be decoded')
