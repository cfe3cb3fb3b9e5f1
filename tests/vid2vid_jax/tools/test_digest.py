"""The params digest: stable, sensitive to one bit, same for a converted checkpoint's reload."""

import numpy as np

from vid2vid_jax import checkpoint
from vid2vid_jax.tools import digest


def _tree():
  rng = np.random.default_rng(0)
  return {'g': {'conv': {'kernel': rng.normal(size=(3, 3, 2, 4)).astype(np.float32),
                         'bias': np.zeros(4, np.float32)}}}


def test_digest_is_stable_and_sees_one_bit():
  tree = _tree()
  assert digest.params_digest(tree) == digest.params_digest(_tree())
  flipped = _tree()
  flipped['g']['conv']['kernel'].view(np.uint32)[0, 0, 0, 0] ^= 1  # the lowest mantissa bit
  assert digest.params_digest(flipped) != digest.params_digest(tree)
  renamed = {'g': {'conv2': _tree()['g']['conv']}}
  assert digest.params_digest(renamed) != digest.params_digest(tree)


def test_cli_on_a_checkpoint_and_on_a_missing_path(tmp_path, capsys):
  checkpoint.save_variables(tmp_path / 'ckpt', {'generator': {'params': _tree()['g']}})
  assert digest.main([str(tmp_path / 'ckpt'), '--part', 'generator']) == 0
  line = capsys.readouterr().out.strip()
  assert line == f'{digest.params_digest(_tree()["g"])} step -'
  assert digest.main([str(tmp_path / 'missing')]) == 2
  assert 'missing' in capsys.readouterr().err
