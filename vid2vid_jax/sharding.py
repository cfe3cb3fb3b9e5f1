"""Device mesh, partitioning rules, and host-local batches -> global arrays.

One `Mesh` with axes ('data', 'spatial') spans every device of every host:

* batch dimensions are split over 'data' (data parallelism);
* image height is split over 'spatial', so one high-resolution frame spans several devices. This
  is our answer to the original's ``--n_gpus_gen`` split of the generator and discriminators onto
  different GPUs: instead of placing whole networks, every
  conv runs on a horizontal band of the frame and XLA's SPMD partitioner exchanges the halo rows.
  `constrain` (called by every conv of G and D, `models.layers`) pins activations to that layout;
* parameters and optimizer states are replicated, or with ``sharding.fsdp`` split over 'data'
  along one dimension each (FSDP-style: gathered for use, gradients reduce-scattered by XLA).

Everything here is a no-op without a mesh in context (``jax.set_mesh``), so models and steps run
unchanged on one device. Multi-host: `initialize_distributed` first, then every host builds the
same mesh, feeds its own slice of the batch (`to_global`), and all hosts call the jitted step.
"""

from collections.abc import Mapping, Sequence
import math
from typing import Any

from absl import logging
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = 'data'
SPATIAL = 'spatial'


# ----------------------------------------------------------------------------- setup


def initialize_distributed(config: Any) -> None:
  """Calls ``jax.distributed.initialize`` when ``config.sharding.distributed`` is set.

  Fields left at their defaults ('' / -1) are taken from the environment (SLURM, Open MPI, TPU
  pods, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID). Must run before any
  other JAX call that touches devices.
  """
  sh = config.sharding
  if not sh.distributed:
    return
  kwargs = {}
  if sh.coordinator_address:
    kwargs['coordinator_address'] = sh.coordinator_address
  if sh.num_processes > 0:
    kwargs['num_processes'] = sh.num_processes
  if sh.process_id >= 0:
    kwargs['process_id'] = sh.process_id
  jax.distributed.initialize(**kwargs)
  logging.info('jax.distributed: process %d of %d, %d local / %d global devices',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


def mesh_shape(data: int, spatial: int, num_devices: int) -> tuple[int, int]:
  """(data, spatial) axis sizes from the config fields (data -1 = num_devices // spatial)."""
  if spatial < 1 or num_devices % spatial:
    raise ValueError(f'sharding.spatial={spatial} must be >= 1 and divide the {num_devices} '
                     'devices')
  if data == -1:
    data = num_devices // spatial
  if data < 1 or data * spatial != num_devices:
    raise ValueError(f'sharding.data={data} x sharding.spatial={spatial} must equal the '
                     f'{num_devices} devices')
  return data, spatial


def create_mesh(config: Any, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """The ('data', 'spatial') mesh over ``devices`` (default: all devices of all hosts).

  'spatial' is the minor axis, so a frame's bands sit on devices of one host (fast links); it
  must divide the devices of each host, as every host feeds whole frames of its own clips.
  """
  devices = list(devices if devices is not None else jax.devices())
  data, spatial = mesh_shape(config.sharding.data, config.sharding.spatial, len(devices))
  local = sum(d.process_index == jax.process_index() for d in devices)
  if jax.process_count() > 1 and local % spatial:
    raise ValueError(f'sharding.spatial={spatial} must divide the {local} devices of each host')
  return jax.make_mesh((data, spatial), (DATA, SPATIAL), axis_types=(AxisType.Auto,) * 2,
                       devices=devices)


# ----------------------------------------------------------------------------- layouts


def activation_spec(shape: Sequence[int], data: int, spatial: int,
                    height_axis: int | None = None) -> P:
  """PartitionSpec of an image-like array: dim 0 on 'data', the height dim on 'spatial'.

  Args:
    shape: [B, H, W, C] or [B, T, H, W, C] (height is dim ndim - 3 unless ``height_axis``);
      arrays of rank < 4 only get the batch split.
    data, spatial: mesh axis sizes.

  A dimension that the axis does not divide stays unsplit (small discriminator maps, odd
  sizes): always correct, XLA moves data as needed.
  """
  spec = [None] * len(shape)
  if len(shape) >= 1 and data > 1 and shape[0] % data == 0:
    spec[0] = DATA
  if height_axis is None and len(shape) >= 4:
    height_axis = len(shape) - 3
  if height_axis is not None and spatial > 1 and shape[height_axis] % spatial == 0:
    spec[height_axis] = SPATIAL
  return P(*spec)


def param_spec(shape: Sequence[int], data: int, fsdp: bool, min_size: int = 2**14) -> P:
  """PartitionSpec of a parameter or optimizer-state leaf: replicated, or with ``fsdp`` split
  over 'data' along its largest dimension that 'data' divides (the later one on ties: the
  output channels of HWIO kernels). Leaves under ``min_size`` elements stay replicated (biases,
  norm scales: gathering them costs more than the memory saved)."""
  if not fsdp or data <= 1 or math.prod(shape) < min_size:
    return P()
  candidates = [(size, axis) for axis, size in enumerate(shape) if size % data == 0]
  if not candidates:
    return P()
  _, axis = max(candidates)
  spec = [None] * len(shape)
  spec[axis] = DATA
  return P(*spec)


def constrain(x: jax.Array, height_axis: int | None = None) -> jax.Array:
  """Pins an activation ([B, H, W, C] or [B, T, H, W, C]) to the batch-on-'data',
  height-on-'spatial' layout of the mesh in context; identity without one."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or DATA not in mesh.axis_names:
    return x
  spec = activation_spec(x.shape, mesh.shape[DATA], mesh.shape.get(SPATIAL, 1), height_axis)
  if all(s is None for s in spec):
    return x
  return jax.lax.with_sharding_constraint(x, spec)


def _axis_sizes(mesh: Mesh) -> tuple[int, int]:
  return mesh.shape[DATA], mesh.shape[SPATIAL]


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def activation_shardings(mesh: Mesh, tree: Any) -> Any:
  """NamedShardings for a tree of batch / sequence-state arrays (or ShapeDtypeStructs)."""
  data, spatial = _axis_sizes(mesh)
  return jax.tree_util.tree_map(
      lambda x: NamedSharding(mesh, activation_spec(np.shape(x), data, spatial)), tree)


def state_shardings(mesh: Mesh, tree: Any, fsdp: bool, min_size: int = 2**14) -> Any:
  """NamedShardings for a tree of parameters / optimizer states (see `param_spec`)."""
  data, _ = _axis_sizes(mesh)
  return jax.tree_util.tree_map(
      lambda x: NamedSharding(mesh, param_spec(np.shape(x), data, fsdp, min_size)), tree)


# ----------------------------------------------------------------------------- host data


def to_global(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This host's slice of a batch ([B / process_count, ...] NumPy arrays) -> global jax.Arrays
  [B, ...] laid out by `activation_spec` (every host calls this with its own slice)."""
  out = {}
  for key, local in batch.items():
    local = np.asarray(local)
    global_shape = (local.shape[0] * jax.process_count(),) + local.shape[1:]
    data, spatial = _axis_sizes(mesh)
    spec = activation_spec(global_shape, data, spatial)
    out[key] = jax.make_array_from_process_local_data(NamedSharding(mesh, spec), local,
                                                      global_shape)
  return out


def to_host(tree: Any) -> Any:
  """Global arrays -> NumPy on every host (a collective: every host must call it)."""
  if jax.process_count() == 1:
    return jax.tree_util.tree_map(np.asarray, tree)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return multihost_utils.process_allgather(tree, tiled=True)


def describe(mesh: Mesh) -> str:
  data, spatial = _axis_sizes(mesh)
  return (f'mesh data={data} x spatial={spatial} over {mesh.devices.size} '
          f'{mesh.devices.flat[0].platform} devices, {jax.process_count()} process(es)')
