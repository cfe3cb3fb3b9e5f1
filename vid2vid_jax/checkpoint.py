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
