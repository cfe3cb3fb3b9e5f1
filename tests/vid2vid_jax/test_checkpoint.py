"""Training checkpoints under faults: a failed write leaves the previous checkpoint in force and
nothing half-written; a killed write's leftovers are removed by the next run."""

import errno
import time

import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest

from vid2vid_jax import checkpoint


def _save(manager, step):
  checkpoint.save_train(manager, step, {'w': jnp.full(3, float(step))}, {'h': jnp.zeros(2)},
                        {'position': {'epoch': 0, 'clip': step, 'chunk': 0}})


def test_full_disk_during_a_save(tmp_path, monkeypatch):
  manager = checkpoint.create_manager(tmp_path)
  _save(manager, 1)

  def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(ocp.JsonCheckpointHandler, '_save_fn', no_space)
  with pytest.raises(OSError, match=r'step 2 .*No space left on device.*in force is step 1'):
    _save(manager, 2)
  assert sorted(p.name for p in (tmp_path / 'checkpoints').iterdir()) == ['1']
  monkeypatch.undo()
  manager = checkpoint.create_manager(tmp_path)
  assert manager.latest_step() == 1
  assert checkpoint.restore_meta(manager, 1)['position']['clip'] == 1


def test_leftovers_of_a_killed_save_are_removed(tmp_path):
  manager = checkpoint.create_manager(tmp_path)
  _save(manager, 1)
  leftover = tmp_path / 'checkpoints' / '2.orbax-checkpoint-tmp'
  (leftover / 'state.orbax-checkpoint-tmp').mkdir(parents=True)
  manager = checkpoint.create_manager(tmp_path)  # removes it in the background
  for _ in range(50):
    if not leftover.exists():
      break
    time.sleep(0.05)
  assert manager.latest_step() == 1 and not leftover.exists()
