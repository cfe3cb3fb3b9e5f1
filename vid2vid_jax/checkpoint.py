"""Orbax checkpoints of vid2vid-jax.

``save_variables`` / ``load_variables`` store a tree of network variables (e.g. what
`original_checkpoint` returns: {'generator': {'params': ...}, ...}) together with the config as JSON,
in one orbax checkpoint directory with two items, ``variables`` and ``config``. Orbax writes into
a temporary directory and renames it when complete, so a crash never leaves a half-written
checkpoint at ``path``.
"""

import json
import os
import pathlib
import shutil
import time
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
  # A save interrupted by a kill leaves '<step>.orbax-checkpoint-tmp'; the next manager removes it.
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=True)
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
  """Saves one training step (blocking; orbax renames a finished temp dir into place).

  A failed write (full disk, unwritable directory) removes its partial directory and raises
  OSError naming the step, the cause and the checkpoint still in force.
  """
  args = ocp.args.Composite(state=ocp.args.StandardSave(_to_tree(state)),
                            sequence=ocp.args.StandardSave(_to_tree(sequence)),
                            meta=ocp.args.JsonSave(meta))
  try:
    manager.save(step, args=args, force=True)
    manager.wait_until_finished()
  except OSError as e:
    directory = pathlib.Path(manager.directory)
    _remove_partial(directory, step)
    kept = manager.latest_step()
    raise OSError(e.errno, f'saving the checkpoint of step {step} in {directory} failed '
                  f'({e.strerror or e}); the checkpoint in force is '
                  f'{"none" if kept is None else f"step {kept}"}') from e


def _remove_partial(directory: pathlib.Path, step: int, tries: int = 20) -> None:
  """Removes the temporary directory of a failed save of ``step``. The other items' writers
  may still be finishing in the background and recreate files: remove until it stays gone."""
  for _ in range(tries):
    partial = list(directory.glob(f'{step}.orbax-checkpoint-tmp*'))
    if not partial:
      time.sleep(0.1)
      if not list(directory.glob(f'{step}.orbax-checkpoint-tmp*')):
        return
    for path in partial:
      shutil.rmtree(path, ignore_errors=True)
    time.sleep(0.1)


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


# ----------------------------------------------------------------------------- loading params
# Every restore of parameters outside resuming a run goes through `load_params`: eval's
# generator, train.init_from, the first-frame generator of mode 'single_g' and its encoder.

PARTS = ('generator', 'first_frame_generator', 'first_frame_encoder', 'first_frame_features',
         'train')
_IMPORTED_TRAIN_KEYS = {'generator': ('g',), 'discriminator': ('d', 'image'),
                        'face_discriminator': ('d', 'face')}


def is_training_workdir(path: PathLike) -> bool:
  return (pathlib.Path(path) / 'checkpoints').is_dir()


def load_params(path: PathLike, part: str, *, step: int | None = None,
                option: str = 'checkpoint') -> tuple[Any, int | None]:
  """Parameters of one part of a model, from a training workdir or an imported checkpoint.

  Args:
    path: a training workdir (``{path}/checkpoints``) or a directory written by
      `save_variables` (e.g. by vid2vid_jax.tools.convert_checkpoint).
    part: 'generator' (a workdir's EMA params where training kept them), 'first_frame_generator'
      (a workdir trained with train.target 'first_frame'), 'first_frame_encoder' and
      'first_frame_features' (imported face models: encoder params, and {instance id: [N,
      feat_num + 1]} stored features), or 'train' (every network in the train state's params
      layout {'g', 'd': {'image'[, 'face']}, 'd_t': {'0', ...}}).
    step: the workdir's step to read (None: the latest).
    option: the config option that named ``path``, for error messages.

  Returns:
    (NumPy tree, the workdir step read or None for an imported checkpoint).
  """
  if part not in PARTS:
    raise ValueError(f'unknown part {part!r}; expected one of {PARTS}')
  source = pathlib.Path(path)
  if is_training_workdir(source):
    manager = create_manager(source)
    if step is None:
      step = manager.latest_step()
    if step is None or step not in manager.all_steps():
      raise ValueError(f'{option}={path}: no training checkpoint'
                       f'{"" if step is None else f" at step {step}"} in {manager.directory}')
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    state = state['state']
    if part == 'generator':
      tree = state.get('ema_g') or state['params']['g']
    elif part in ('first_frame_generator', 'train'):
      tree = state['params']['g'] if part != 'train' else state['params']
    else:
      raise ValueError(f'{option}={path} is a training workdir; {part} comes from an imported '
                       'checkpoint (vid2vid_jax.tools.convert_checkpoint)')
    return jax.tree_util.tree_map(np.asarray, tree), step
  tree, _ = load_variables(source)
  if part == 'train':
    return train_params_from_imported(tree), None
  if part not in tree:
    raise ValueError(f'{option}={path} holds no {part} (found {sorted(tree)})')
  value = tree[part]
  if part == 'first_frame_features':
    return {int(k): np.asarray(v, np.float32) for k, v in value.items()}, None
  return value['params'], None


def train_params_from_imported(tree: Any) -> dict[str, Any]:
  """An imported checkpoint ({'generator': {'params': ...}, 'discriminator': ...,
  'face_discriminator': ..., 'temporal_discriminator_{s}': ...}) in the train state's layout."""
  params: dict[str, Any] = {'d': {}, 'd_t': {}}
  for key, value in tree.items():
    inner = value['params'] if isinstance(value, dict) and 'params' in value else value
    if key.startswith('temporal_discriminator_'):
      params['d_t'][key[len('temporal_discriminator_'):]] = inner
    elif key in _IMPORTED_TRAIN_KEYS:
      where = _IMPORTED_TRAIN_KEYS[key]
      if len(where) == 1:
        params[where[0]] = inner
      else:
        params[where[0]][where[1]] = inner
  return params
