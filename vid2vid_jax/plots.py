"""Plots of an eval report (the dict `inference.evaluate_sequences` writes to metrics.json)."""

from collections.abc import Mapping
import os
import pathlib
import tempfile
from typing import Any

from matplotlib.backends import backend_agg
from matplotlib import figure as figure_lib
import numpy as np

_METRICS = (('psnr', 'PSNR (dB, higher is better)'), ('ssim', 'SSIM (higher is better)'),
            ('warp_error', 'warp error (lower is better)'))


def methods(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
  """{method: {sequence: {'frames': [{'index', metric: value}]}}}: 'model', every baseline,
  then 'ground truth' (warp error of the real frames) when the report has them."""
  out = {'model': report.get('sequences', {})}
  for name, baseline in report.get('baselines', {}).items():
    out[name] = baseline['sequences']
  if report.get('ground_truth'):
    out['ground truth'] = report['ground_truth']['sequences']
  return out


def per_index_mean(sequences: Mapping[str, Any], metric: str) -> tuple[np.ndarray, np.ndarray]:
  """(frame indices, metric averaged over the sequences that have that frame and metric)."""
  values: dict[int, list[float]] = {}
  for seq in sequences.values():
    for frame in seq['frames']:
      if metric in frame:
        values.setdefault(frame['index'], []).append(frame[metric])
  index = np.array(sorted(values), np.int64)
  return index, np.array([np.mean(values[i]) for i in index], np.float64)


def fvd_title(report: Mapping[str, Any]) -> str:
  """'FVD (N clips of 16 frames): model 12.3, label_mean 45.6, ...' or '' without FVD."""
  fvd = report.get('fvd') or {}
  scores = {k: v for k, v in fvd.get('scores', {}).items() if v is not None}
  if not scores:
    return ''
  parts = ', '.join(f'{k} {v:.1f}' for k, v in scores.items())
  return f"FVD ({fvd.get('num_clips', '?')} clips of {fvd.get('clip_frames', '?')} frames): {parts}"


def plot_metrics(report: Mapping[str, Any], path: str | os.PathLike) -> pathlib.Path:
  """Writes a PNG with one subplot per per-frame metric in ``report`` (PSNR, SSIM, warp error)
  against frame index (0 = the first scored frame), one line per method, averaged over the
  sequences; the FVD scores go in the title. Written atomically; returns the path."""
  path = pathlib.Path(path)
  by_method = methods(report)
  present = [(m, label) for m, label in _METRICS
             if any(m in f for seqs in by_method.values() for s in seqs.values()
                    for f in s['frames'])]
  fig = figure_lib.Figure(figsize=(5.0 * max(1, len(present)), 4.2), layout='constrained')
  backend_agg.FigureCanvasAgg(fig)
  axes = fig.subplots(1, max(1, len(present)), squeeze=False)[0]
  for ax, (metric, label) in zip(axes, present):
    for name, sequences in by_method.items():
      index, mean = per_index_mean(sequences, metric)
      if index.size:
        style = dict(color='black', linewidth=2.0) if name == 'model' else {}
        if name == 'ground truth':
          style = dict(color='grey', linestyle='--')
        ax.plot(index, mean, marker='.', label=name, **style)
    ax.set_xlabel('frame (after the context frames)')
    ax.set_title(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize='small')
  title = fvd_title(report)
  num = len(report.get('sequences', {}))
  fig.suptitle(f'{num} sequence(s), mean per frame' + (f'\n{title}' if title else ''),
               fontsize='medium')
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix='.png', dir=path.parent)
  os.close(fd)
  try:
    fig.savefig(tmp, format='png', dpi=100)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path
