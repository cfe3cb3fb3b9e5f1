"""The label-colour baseline tool scores the frames eval.py scores, through vid2vid_jax.baselines."""

import numpy as np

from configs import demo
import input_pipeline
from input_pipeline import synthetic
from vid2vid_jax.tools import label_baseline


def test_baseline_psnr_matches_a_direct_computation(tmp_path):
  synthetic.generate('street', tmp_path, sequences=1, frames=5, width=32, height=32, seed=0,
                     test_sequences=2)
  config = demo.get_config()
  config.data.root, config.data.flow_dir = str(tmp_path), ''
  config.data.load_size = config.data.fine_size = 32
  config.eval.how_many, config.eval.num_sequences = 5, -1  # 3 frames of seq 1, 2 of seq 2
  train = [f for _, f in input_pipeline.iterate_test_sequences(config, split='train')]
  colours = label_baseline.baselines.label_mean_colours(train, config.data.label_nc)
  got = label_baseline.baseline_psnr(config, colours)
  context = config.model.generator.n_frames_G - 1
  counts = []
  remaining = config.eval.how_many
  for name, frames in input_pipeline.iterate_test_sequences(config, split='test'):
    scored = list(frames)[context:context + remaining]
    remaining -= len(scored)
    counts.append(len(scored))
    mse = [np.mean(((colours[f['label']] - f['image']) / 2) ** 2) for f in scored]
    np.testing.assert_allclose(got[name], np.mean(10 * np.log10(1 / np.array(mse))), rtol=1e-4)
  assert counts == [3, 2]  # eval.how_many counts over the run, as the original's --how_many
