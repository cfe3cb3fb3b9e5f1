"""Orbax checkpoints of vid2vid-jax.

``save_variables`` / ``load_variables`` store a tree of network variables (e.g. what
``import_torch`` returns: {'generator': {'params': ...}, ...}) together with the config as JSON,
in one orbax checkpoint directory with two items, ``variables`` and ``config``. Orbax writes into
a temporary directory and renames it when complete, so a crash never leaves a half-written
checkpoint at ``path``.
"""

import json
import os
import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

PathLike = str | os.PathLike


def _checkpointer() -> ocp.Checkpointer:
  return ocp.Checkpointer(ocp.CompositeCheckpointHandler())


def save_variables(path: PathLike, tree: Any, config: ml_collections.ConfigDict | None = None,
                   force: bool = False) -> pathlib.Path:
  """Writes ``tree`` (a pytree of arrays) and ``config`` to the new directory ``path``.

  Args:
    path: checkpoint directory to create (must not exist unless ``force``).
    tree: pytree of NumPy / JAX arrays.
    config: stored as JSON next to the arrays (optional).
    force: overwrite an existing checkpoint at ``path``.

  Returns:
    The absolute checkpoint path.
  """
  path = pathlib.Path(path).absolute()
  config_json = json.loads(config.to_json()) if config is not None else {}
  args = ocp.args.Composite(variables=ocp.args.StandardSave(tree),
                            config=ocp.args.JsonSave(config_json))
  with _checkpointer() as checkpointer:
    checkpointer.save(path, args=args, force=force)
  return path


def load_variables(path: PathLike, as_numpy: bool = True
                   ) -> tuple[Any, ml_collections.ConfigDict | None]:
  """Reads a checkpoint written by ``save_variables``.

  Args:
    path: the checkpoint directory.
    as_numpy: return NumPy arrays (default) instead of jax.Arrays on the default device.

  Returns:
    (tree, config): the arrays in the saved structure, and the config (None if none was saved).
  """
  path = pathlib.Path(path).absolute()
  if not path.is_dir():
    raise ValueError(f'no checkpoint directory at {path}')
  with _checkpointer() as checkpointer:
    restored = checkpointer.restore(path, args=ocp.args.Composite(
        variables=ocp.args.StandardRestore(), config=ocp.args.JsonRestore()))
  tree = restored['variables']
  if as_numpy:
    tree = jax.tree_util.tree_map(np.asarray, tree)
  config_dict = restored['config']
  config = ml_collections.ConfigDict(config_dict) if config_dict else None
  return tree, config


# ----------------------------------------------------------------------------- training runs
# A training workdir holds one orbax CheckpointManager under {workdir}/checkpoints: per saved step
# the train state, the clip's sequence state (so a run stopped mid-clip resumes exactly) and a JSON
# 'meta' item with the data position (epoch, clip and chunk index) and the config. Restore order
# (train_lib): this workdir's latest step, then config.train.init_from (params only), then scratch.


def create_manager(workdir: PathLike, max_to_keep: int = 3) -> ocp.CheckpointManager:
  """The CheckpointManager of a training workdir (``{workdir}/checkpoints``)."""
  directory = pathlib.Path(workdir).absolute() / 'checkpoints'
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(directory, options=options,
                               item_names=('state', 'sequence', 'meta'))


def _to_tree(x: Any) -> Any:
  """Flax struct / optax states -> nested dicts of arrays (None leaves dropped by flax)."""
  from flax import serialization  # pylint: disable=g-import-not-at-top
  return serialization.to_state_dict(x)


def _from_tree(target: Any, tree: Any) -> Any:
  from flax import serialization  # pylint: disable=g-import-not-at-top
  return serialization.from_state_dict(target, tree)


def save_train(manager: ocp.CheckpointManager, step: int, state: Any, sequence: Any,
               meta: dict[str, Any]) -> None:
  """Saves one training step (blocking; orbax renames a finished temp dir into place)."""
  args = ocp.args.Composite(state=ocp.args.StandardSave(_to_tree(state)),
                            sequence=ocp.args.StandardSave(_to_tree(sequence)),
                            meta=ocp.args.JsonSave(meta))
  manager.save(step, args=args, force=True)
  manager.wait_until_finished()


def restore_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
  """The JSON meta item of ``step``."""
  return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']


def restore_train(manager: ocp.CheckpointManager, step: int, state_target: Any,
                  sequence_target: Any) -> tuple[Any, Any]:
  """Restores (state, sequence) of ``step`` into the structures of the given targets.

  Args:
    manager: from create_manager.
    step: a saved step.
    state_target, sequence_target: concrete or abstract (jax.eval_shape) states whose structure,
      shapes, dtypes and shardings (of jax.Array leaves, or given to ShapeDtypeStructs) the
      restored arrays take: a sharded target restores sharded, on every host its own shards.
  """
  def abstract(tree):
    def leaf(x):
      if isinstance(x, jax.ShapeDtypeStruct):
        return x
      if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
      return jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
    return jax.tree_util.tree_map(leaf, tree)
  args = ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract(_to_tree(state_target))),
      sequence=ocp.args.StandardRestore(abstract(_to_tree(sequence_target))))
  restored = manager.restore(step, args=args)
  return (_from_tree(state_target, restored['state']),
          _from_tree(sequence_target, restored['sequence']))
