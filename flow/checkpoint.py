"""Saving and loading our FlowNet2 variables (an orbax checkpoint directory).

``python -m flow.convert_flownet2`` writes one; ``load_flownet2`` reads it back
(``config.flow.checkpoint``). Orbax writes to a temporary directory and renames it when
complete, so a crash never leaves a half-written checkpoint at the final path.
"""

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def save_flownet2(variables: dict[str, Any], path: str, overwrite: bool = False) -> None:
  """Writes ``{'params': ...}`` to the directory ``path`` (atomically).

  Raises:
    ValueError: ``path`` exists and ``overwrite`` is False.
  """
  path = os.path.abspath(path)
  if os.path.exists(path) and not overwrite:
    raise ValueError(f'{path} exists (pass overwrite=True / --overwrite to replace it)')
  variables = jax.tree_util.tree_map(np.asarray, {'params': variables['params']})
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, variables, force=overwrite)
    ckptr.wait_until_finished()


def load_flownet2(path: str) -> dict[str, Any]:
  """Loads FlowNet2 variables written by ``save_flownet2`` / ``python -m flow.convert_flownet2``.

  Args:
    path: the checkpoint directory.

  Returns:
    ``{'params': ...}`` with float32 ``jax.Array`` leaves on the default device, ready for
    ``FlowNet2().apply`` and ``flow.compute_flow_and_conf``.

  Raises:
    ValueError: no checkpoint at ``path``, or its tree/shapes differ from FlowNet2's (naming the
      parameter).
  """
  from flow import convert_flownet2  # pylint: disable=g-import-not-at-top  (import cycle)

  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise ValueError(f'{path}: no FlowNet2 checkpoint directory (write one with '
                     '`python -m flow.convert_flownet2 --pth ... --out ...`)')
  abstract = convert_flownet2.abstract_variables()
  with ocp.StandardCheckpointer() as ckptr:
    stored = ckptr.metadata(path)
    stored = getattr(stored, 'item_metadata', stored)
    want = {jax.tree_util.keystr(k): v.shape
            for k, v in jax.tree_util.tree_flatten_with_path(abstract)[0]}
    have = {jax.tree_util.keystr(k): tuple(v.shape)
            for k, v in jax.tree_util.tree_flatten_with_path(stored)[0]}
    for key in sorted(set(want) | set(have)):
      if key not in have:
        raise ValueError(f'{path}: parameter {key} missing from the checkpoint')
      if key not in want:
        raise ValueError(f'{path}: unexpected parameter {key} in the checkpoint')
      if tuple(want[key]) != have[key]:
        raise ValueError(f'{path}: parameter {key} has shape {have[key]}, expected '
                         f'{tuple(want[key])}')
    restored = ckptr.restore(path, abstract)
  return jax.device_put(restored)
