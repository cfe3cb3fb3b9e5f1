"""Summary writers and progress reporting, with a TensorFlow-free fallback.

clu 0.0.12's ``metric_writers`` and ``periodic_actions`` import TensorFlow, which GPU images may
not have. `create_writer` uses clu's TensorBoard writer when it imports and otherwise falls back to
`LoggingWriter` (absl logs + metrics.jsonl + PNG image dumps); both also append every scalar to
``{workdir}/metrics.jsonl`` so runs are inspectable without TensorBoard.
"""

from collections.abc import Mapping
import json
import logging as std_logging
import os
import pathlib
import time
from typing import Any

from absl import logging
import numpy as np

from vid2vid_jax import video_io


class JsonlWriter:
  """Appends ``{"step": s, key: value, ...}`` lines to a metrics.jsonl file."""

  def __init__(self, path: str | os.PathLike):
    self._path = pathlib.Path(path)
    self._path.parent.mkdir(parents=True, exist_ok=True)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    record = {'step': int(step), **{k: float(v) for k, v in scalars.items()}}
    with open(self._path, 'a') as f:
      f.write(json.dumps(record) + '\n')

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    del step, images

  def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
    del step, texts

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    del hparams

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


class LoggingWriter(JsonlWriter):
  """Fallback writer: scalars to the absl log and metrics.jsonl, images as PNG files."""

  def __init__(self, workdir: str | os.PathLike | None):
    self._workdir = pathlib.Path(workdir) if workdir else None
    if self._workdir is not None:
      super().__init__(self._workdir / 'metrics.jsonl')

  def write_scalars(self, step, scalars):
    logging.info('[%d] %s', step,
                 ', '.join(f'{k}={float(v):.5g}' for k, v in sorted(scalars.items())))
    if self._workdir is not None:
      super().write_scalars(step, scalars)

  def write_images(self, step, images):
    if self._workdir is None:
      return
    for key, batch in images.items():
      batch = np.asarray(batch)
      for i, image in enumerate(batch if batch.ndim == 4 else batch[None]):
        name = key.replace('/', '_')
        video_io.write_png(self._workdir / 'images' / f'{name}_{step:08d}_{i}.png',
                           _as_uint8(image))

  def write_texts(self, step, texts):
    for key, text in texts.items():
      logging.info('[%d] %s: %s', step, key, text)

  def write_hparams(self, hparams):
    logging.info('hparams: %s', dict(hparams))


def _as_uint8(image: np.ndarray) -> np.ndarray:
  if image.dtype == np.uint8:
    return image
  return np.clip(np.round(np.asarray(image, np.float32) * 255), 0, 255).astype(np.uint8)


class _MultiWriter:
  def __init__(self, writers):
    self._writers = writers

  def __getattr__(self, name):
    def call(*args, **kwargs):
      for writer in self._writers:
        getattr(writer, name)(*args, **kwargs)
    return call


def create_writer(workdir: str | os.PathLike, *, just_logging: bool) -> Any:
  """A metric writer: TensorBoard (clu) + metrics.jsonl, or logging only.

  Args:
    workdir: where event files, metrics.jsonl and fallback images go.
    just_logging: True on processes other than 0: log, write nothing.

  Returns:
    An object with clu's MetricWriter methods (write_scalars, write_images with [N, H, W, C]
    images in [0, 1] or uint8, write_texts, write_hparams, flush, close).
  """
  if just_logging:
    return LoggingWriter(None)
  try:
    from clu import metric_writers  # pylint: disable=g-import-not-at-top  (imports TensorFlow)
  except ImportError as e:
    logging.warning('clu metric_writers unavailable (%s); writing logs, metrics.jsonl and PNGs',
                    e)
    return LoggingWriter(workdir)
  tensorboard = metric_writers.create_default_writer(os.fspath(workdir), asynchronous=False)
  return _MultiWriter([tensorboard, JsonlWriter(pathlib.Path(workdir) / 'metrics.jsonl')])


class ProgressLogger:
  """Logs a progress bar, steps/s and the ETA every ``every_secs`` (clu's ReportProgress without
  TensorFlow). ``num_train_steps`` is the run's planned total (`schedule.planned_steps`)."""

  def __init__(self, num_train_steps: int, writer: Any = None, every_secs: float = 30.0,
               bar_width: int = 20):
    self._num_steps = num_train_steps
    self._writer = writer
    self._every = every_secs
    self._bar_width = bar_width
    self._last_time = None
    self._last_step = None

  def line(self, step: int, rate: float) -> str:
    """'step 300/840 [#######.............] 36%, 2.3 steps/s, ETA 3.9 min'."""
    total = max(self._num_steps, step, 1)
    done = int(self._bar_width * step / total)
    bar = '#' * done + '.' * (self._bar_width - done)
    eta = (total - step) / rate if rate > 0 else float('inf')
    return (f'step {step}/{total} [{bar}] {100 * step / total:.0f}%, {rate:.3g} steps/s, '
            f'ETA {eta / 60:.1f} min')

  def __call__(self, step: int, t: float | None = None) -> None:
    now = time.monotonic() if t is None else t
    if self._last_time is None:
      self._last_time, self._last_step = now, step
      return
    if now - self._last_time < self._every and step != self._num_steps:
      return
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    logging.info('%s', self.line(step, rate))
    if self._writer is not None:
      self._writer.write_scalars(step, {'steps_per_sec': rate})
    self._last_time, self._last_step = now, step


class _DropChattyInfo(std_logging.Filter):
  """Drops INFO/DEBUG records of chatty libraries (orbax logs every file it writes)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or not any(
        part in record.pathname for part in ('/orbax/', '/tensorflow/'))


def quiet_library_logs() -> None:
  """Keeps the absl log readable: only warnings and errors from orbax and TensorFlow."""
  logging.get_absl_handler().addFilter(_DropChattyInfo())
