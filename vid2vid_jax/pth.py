"""A torch-free, safe reader of PyTorch ``.pth`` files (``torch.save`` output).

``torch.save`` writes one of two layouts, and :func:`load_pth` reads both:

* **zip** (PyTorch >= 1.6, the default since): an uncompressed zip archive with one top folder
  (any name, usually the file's stem) holding ``data.pkl`` (the pickled object), ``data/<key>``
  (the raw bytes of each storage), and ``byteorder`` (``little`` or ``big``; absent means
  little). Tensors are pickled as calls to ``torch._utils._rebuild_tensor_v2`` (or ``_v3``, which
  carries the dtype, for an untyped storage) whose storage argument is a persistent id
  ``('storage', storage_type, key, location, numel)``.
* **legacy** (PyTorch < 1.6, or ``_use_new_zipfile_serialization=False``): pickles one after the
  other in a single file: the magic number ``0x1950a86a20f9469cfc6c``, the protocol version 1001,
  a ``sys_info`` dict (byte order, type sizes), the object, whose persistent ids are
  ``('storage', storage_type, key, location, numel, view_metadata)``, then the list of storage
  keys, and finally, for every key in that order, an 8-byte count followed by the storage's bytes.
  The official FlowNet2 checkpoint (``FlowNet2_checkpoint.pth.tar``, a dict ``{'epoch',
  'state_dict', 'best_EPE'}``) is in this layout despite its name; PyTorch before 0.4 pickles its
  tensors with ``torch._utils._rebuild_tensor``, and storages saved from a GPU name
  ``torch.cuda.FloatStorage`` and the like: both are read.

The even older tar layout (PyTorch <= 0.1.10) is refused with a clear error.

Safety: nothing pickled is ever imported or run. The unpickler resolves globals from a fixed
table of our own numpy stand-ins (tensor rebuilders, storage types, dtypes, ``OrderedDict``,
``torch.Size`` as ``tuple``, ``_codecs.encode`` for pickled bytes, numpy scalars) and raises
:class:`UnsafePickleError` (a ``pickle.UnpicklingError``) for any other global. Tensor
geometry (offset, size, stride) is checked against the storage before any strided view is made.

Tensors come back as C-contiguous numpy arrays that own their memory (two tensors sharing one
storage come back as independent arrays). ``bfloat16``, which numpy lacks, is widened exactly to
``float32`` by shifting its 16 bits into the high half of a ``uint32``. Dtypes without a numpy
equivalent (``float8_*``, ``complex32``, quantized and sub-byte types) raise ``ValueError``.
Python 2 ``str`` objects are decoded as latin-1 (as numpy's own pickles need).
"""

import collections
import dataclasses
import io
import math
import os
import pickle
import struct
import tarfile
import zipfile
from typing import Any, BinaryIO, Callable

import numpy as np

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001
_ZIP_MAGIC = b'PK\x03\x04'


class UnsafePickleError(pickle.UnpicklingError):
  """A pickle referenced a global outside the whitelist of a tensor checkpoint."""


class PthFormatError(ValueError):
  """A missing-feature, truncated or corrupt ``.pth`` file; the message names the path."""


# Errors the C unpickler (or our stand-ins fed wrong arguments) raises on truncated or corrupt
# bytes. They are turned into one PthFormatError naming the file.
_CORRUPT_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
                          KeyError, AttributeError, OverflowError, struct.error)


@dataclasses.dataclass(frozen=True)
class TorchDtype:
  """A pickled ``torch.<dtype>`` global, e.g. ``torch.float32``.

  Attributes:
    name: the torch name, e.g. ``'float32'`` or ``'bfloat16'``.
    raw: the numpy dtype that holds its bytes (``uint16`` for ``bfloat16``).
  """
  name: str
  raw: np.dtype

  def __repr__(self) -> str:
    return f'torch.{self.name}'


_DTYPES = {name: TorchDtype(name, np.dtype(raw)) for name, raw in [
    ('float32', np.float32), ('float64', np.float64), ('float16', np.float16),
    ('bfloat16', np.uint16), ('int64', np.int64), ('int32', np.int32), ('int16', np.int16),
    ('int8', np.int8), ('uint8', np.uint8), ('uint16', np.uint16), ('uint32', np.uint32),
    ('uint64', np.uint64), ('bool', np.bool_), ('complex64', np.complex64),
    ('complex128', np.complex128)]}
_DTYPE_ALIASES = {'float': 'float32', 'double': 'float64', 'half': 'float16', 'long': 'int64',
                  'int': 'int32', 'short': 'int16', 'cfloat': 'complex64',
                  'cdouble': 'complex128'}
# torch dtypes (and their storages) that numpy cannot hold: a clear error, not "unsafe".
_UNSUPPORTED_DTYPES = frozenset([
    'float8_e4m3fn', 'float8_e5m2', 'float8_e4m3fnuz', 'float8_e5m2fnuz', 'float8_e8m0fnu',
    'float4_e2m1fn_x2', 'complex32', 'chalf', 'quint8', 'qint8', 'qint32', 'quint4x2',
    'quint2x4', 'bits1x8', 'bits2x4', 'bits4x2', 'bits8', 'bits16'] +
    [f'uint{i}' for i in range(1, 8)] + [f'int{i}' for i in range(1, 8)])
_UNSUPPORTED_STORAGES = frozenset(['ComplexHalfStorage', 'QUInt8Storage', 'QInt8Storage',
                                   'QInt32Storage', 'QUInt4x2Storage', 'QUInt2x4Storage'])


@dataclasses.dataclass(frozen=True)
class _StorageType:
  """A pickled storage class; ``dtype`` is None for ``UntypedStorage`` (plain bytes)."""
  name: str
  dtype: TorchDtype | None

  @property
  def itemsize(self) -> int:
    return 1 if self.dtype is None else self.dtype.raw.itemsize


_STORAGE_TYPES = {f'{prefix}Storage': _StorageType(f'{prefix}Storage', _DTYPES[dtype])
                  for prefix, dtype in [
                      ('Float', 'float32'), ('Double', 'float64'), ('Half', 'float16'),
                      ('BFloat16', 'bfloat16'), ('Long', 'int64'), ('Int', 'int32'),
                      ('Short', 'int16'), ('Char', 'int8'), ('Byte', 'uint8'), ('Bool', 'bool'),
                      ('ComplexFloat', 'complex64'), ('ComplexDouble', 'complex128')]}
_UNTYPED = _StorageType('UntypedStorage', None)


@dataclasses.dataclass(eq=False)
class _RootStorage:
  """One storage record of the file. ``numel`` counts items of ``stype`` (bytes if untyped)."""
  key: str
  stype: _StorageType
  numel: int
  byteorder: str  # '<' or '>'
  data: np.ndarray | None = None  # 1-D, filled when the bytes are read


@dataclasses.dataclass(eq=False)
class _StorageRef:
  """What a persistent id resolves to: ``numel`` items of ``root`` from ``offset`` on."""
  root: _RootStorage
  offset: int
  numel: int


@dataclasses.dataclass(eq=False)
class _PendingTensor:
  """A tensor whose storage bytes come later in the file (legacy layout)."""
  storage: _StorageRef
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]
  dtype: TorchDtype | None


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _materialize(tensor: _PendingTensor, path: str) -> np.ndarray:
  """Builds the numpy array of a tensor from its (already read) storage bytes."""
  ref, root = tensor.storage, tensor.storage.root
  if root.data is None:
    raise PthFormatError(f'{path}: storage {root.key!r} is used by a tensor but its bytes are '
                         'not in the file')
  if ref.offset < 0 or ref.numel < 0 or ref.offset + ref.numel > root.numel:
    raise PthFormatError(f'{path}: storage view [{ref.offset}, {ref.offset + ref.numel}) lies '
                         f'outside storage {root.key!r} of {root.numel} items')
  data = root.data[ref.offset:ref.offset + ref.numel]
  dtype = tensor.dtype
  if root.stype.dtype is None:
    if dtype is None:
      raise PthFormatError(f'{path}: a tensor on untyped storage {root.key!r} has no dtype')
    if data.size % dtype.raw.itemsize:
      raise PthFormatError(f'{path}: untyped storage {root.key!r} of {data.size} bytes is not a '
                           f'whole number of {dtype!r} items')
    data = data.view(dtype.raw.newbyteorder(root.byteorder))
  elif dtype is not None and dtype != root.stype.dtype:
    raise PthFormatError(f'{path}: tensor dtype {dtype!r} differs from its storage type '
                         f'{root.stype.name} (key {root.key!r})')
  else:
    dtype = root.stype.dtype

  size, stride, offset = tensor.size, tensor.stride, tensor.offset
  if (len(size) != len(stride) or not all(_is_int(v) for v in (offset, *size, *stride)) or
      offset < 0 or any(v < 0 for v in size) or any(v < 0 for v in stride)):
    raise PthFormatError(f'{path}: invalid tensor geometry: offset {offset!r}, size {size!r}, '
                         f'stride {stride!r}')
  native = dtype.raw.newbyteorder('=')
  if math.prod(size) == 0:
    out = np.zeros(size, native)
  else:
    # Bounds check before as_strided: a strided view past the buffer would read foreign memory.
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= data.size:
      raise PthFormatError(
          f'{path}: tensor (offset {offset}, size {size}, stride {stride}) reaches item {last} '
          f'of storage {root.key!r}, which holds {data.size} items')
    view = np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=[s * data.itemsize for s in stride], writeable=False)
    out = np.array(view, dtype=native, order='C', copy=True)
  if dtype.name == 'bfloat16':
    # bfloat16 is the high half of a float32: widening it is exact.
    widened = np.empty(out.shape, np.float32)
    np.left_shift(out, 16, out=widened.view(np.uint32), dtype=np.uint32)
    out = widened
  return out


def _codecs_encode(text: Any, encoding: str = 'utf-8', errors: str = 'strict') -> bytes:
  """Stand-in for ``_codecs.encode``, which protocol-2 pickles use to carry ``bytes``."""
  if not isinstance(text, str) or encoding not in ('latin1', 'latin-1', 'utf-8', 'utf8'):
    raise ValueError(f'_codecs.encode is only accepted for str with latin-1 or utf-8, not '
                     f'{type(text).__name__} with {encoding!r}')
  return text.encode(encoding, errors)


def _numeric_numpy_dtype(dtype: Any) -> bool:
  return isinstance(dtype, np.dtype) and not dtype.hasobject and dtype.kind in 'biufc'


def _numpy_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
  """Stand-in for ``numpy.dtype``: only plain numeric dtypes (no objects, no records)."""
  del copy  # Always a copy: the pickle's BUILD then sets state on it, never on a shared dtype.
  if not isinstance(spec, str):
    raise ValueError(f'numpy.dtype({spec!r}) is not a plain numeric dtype')
  dtype = np.dtype(spec, bool(align), True)
  if not _numeric_numpy_dtype(dtype):
    raise ValueError(f'numpy.dtype({spec!r}) is not a plain numeric dtype')
  return dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> np.generic:
  """Stand-in for ``numpy.core.multiarray.scalar`` (e.g. a ``numpy.float64`` loss value)."""
  if not _numeric_numpy_dtype(dtype):
    raise ValueError(f'numpy scalar of dtype {dtype!r} is not supported')
  if isinstance(data, str):  # A Python 2 pickle (decoded as latin-1).
    data = data.encode('latin-1')
  if not isinstance(data, bytes) or len(data) != dtype.itemsize:
    raise ValueError(f'numpy scalar of dtype {dtype} needs {dtype.itemsize} bytes')
  return np.frombuffer(data, dtype=dtype)[0]


def _torch_size(dims: Any = ()) -> tuple[int, ...]:
  """Stand-in for ``torch.Size``: a plain tuple."""
  return tuple(dims)


class _Unpickler(pickle.Unpickler):
  """An unpickler that resolves globals only from a whitelist of numpy stand-ins.

  Storages come from ``storage_fn`` (a persistent id -> ``_StorageRef``). With ``eager`` the
  storage bytes are known while unpickling and tensors are built at once; otherwise tensors stay
  ``_PendingTensor`` until :func:`_resolve_pending`.
  """

  def __init__(self, file: BinaryIO, path: str,
               storage_fn: Callable[[Any], _StorageRef] | None = None, eager: bool = True):
    # latin-1: Python 2 str (e.g. numpy scalar bytes) must map byte for byte.
    super().__init__(file, encoding='latin1')
    self._path = path
    self._storage_fn = storage_fn
    self._eager = eager

  def find_class(self, module: str, name: str) -> Any:
    allowed = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('torch._utils', '_rebuild_tensor'): self._rebuild_tensor,
        ('torch._utils', '_rebuild_tensor_v2'): self._rebuild_tensor_v2,
        ('torch._utils', '_rebuild_tensor_v3'): self._rebuild_tensor_v3,
        ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
        ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
        ('torch', 'Size'): _torch_size,
        ('torch', 'UntypedStorage'): _UNTYPED,
        ('torch.storage', 'UntypedStorage'): _UNTYPED,
        ('_codecs', 'encode'): _codecs_encode,
        ('numpy', 'dtype'): _numpy_dtype,
        ('numpy.core.multiarray', 'scalar'): _numpy_scalar,
        ('numpy._core.multiarray', 'scalar'): _numpy_scalar,
    }
    if (module, name) in allowed:
      return allowed[(module, name)]
    if module in ('torch', 'torch.cuda') and name in _STORAGE_TYPES:
      return _STORAGE_TYPES[name]
    if module == 'torch' and _DTYPE_ALIASES.get(name, name) in _DTYPES:
      return _DTYPES[_DTYPE_ALIASES.get(name, name)]
    if module in ('torch', 'torch.cuda') and (name in _UNSUPPORTED_DTYPES or
                                              name in _UNSUPPORTED_STORAGES):
      raise PthFormatError(f'{self._path}: torch.{name} has no numpy equivalent; this reader '
                           'does not support it')
    raise UnsafePickleError(
        f'{self._path}: refusing to load global {module}.{name}: a tensor checkpoint only '
        'references tensor-rebuild functions, storage types, dtypes and OrderedDict, and this '
        'reader never imports or runs anything else')

  def persistent_load(self, pid: Any) -> _StorageRef:
    if self._storage_fn is None:
      raise PthFormatError(f'{self._path}: unexpected persistent id {pid!r} outside the object '
                           'pickle')
    return self._storage_fn(pid)

  def _tensor(self, storage: Any, offset: Any, size: Any, stride: Any,
              dtype: TorchDtype | None) -> np.ndarray | _PendingTensor:
    if not isinstance(storage, _StorageRef):
      raise PthFormatError(f'{self._path}: a tensor is rebuilt from {type(storage).__name__}, '
                           'not from a storage')
    if dtype is not None and not isinstance(dtype, TorchDtype):
      raise PthFormatError(f'{self._path}: tensor dtype {dtype!r} is not a torch dtype')
    try:
      size, stride = tuple(size), tuple(stride)
    except TypeError as e:
      raise PthFormatError(f'{self._path}: tensor size {size!r} / stride {stride!r} are not '
                           'sequences') from e
    tensor = _PendingTensor(storage, offset, size, stride, dtype)
    return _materialize(tensor, self._path) if self._eager else tensor

  def _rebuild_tensor(self, storage, storage_offset, size, stride):
    """``torch._utils._rebuild_tensor`` (PyTorch < 0.4)."""
    return self._tensor(storage, storage_offset, size, stride, None)

  def _rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad=False,
                         backward_hooks=None, metadata=None):
    del requires_grad, backward_hooks, metadata
    return self._tensor(storage, storage_offset, size, stride, None)

  def _rebuild_tensor_v3(self, storage, storage_offset, size, stride, requires_grad, backward_hooks,
                         dtype, metadata=None):
    """Used for an ``UntypedStorage`` (dtypes without a typed storage class, e.g. uint16)."""
    del requires_grad, backward_hooks, metadata
    return self._tensor(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       state: Any = None) -> Any:
  """``nn.Parameter``: the tensor itself (gradient flags and hooks are dropped)."""
  del requires_grad, backward_hooks, state
  return data


def _load_pickle(unpickler: _Unpickler, path: str, what: str) -> Any:
  """Runs one (safe) unpickle, turning low-level decoding errors into a ValueError."""
  try:
    return unpickler.load()
  except (UnsafePickleError, PthFormatError):
    raise
  except _CORRUPT_PICKLE_ERRORS as e:
    raise PthFormatError(f'{path}: truncated or corrupt {what}: {type(e).__name__}: {e}') from e


def _storage_pid(pid: Any, path: str, length: int) -> tuple[_StorageType, str, int, Any]:
  """Checks a storage persistent id; returns (storage type, key, numel, the rest)."""
  if isinstance(pid, tuple) and pid and pid[0] == 'module':
    raise PthFormatError(f'{path}: the file pickles a whole nn.Module (with its source code); '
                         'only tensors, state dicts and plain containers are supported')
  if not (isinstance(pid, tuple) and len(pid) == length and pid[0] == 'storage'):
    raise PthFormatError(f'{path}: unexpected persistent id {pid!r} (expected a {length}-tuple '
                         "starting with 'storage')")
  stype, key, numel = pid[1], pid[2], pid[4]
  if not isinstance(stype, _StorageType):
    raise PthFormatError(f'{path}: persistent id {pid!r} does not name a storage type')
  if not isinstance(key, str) or not _is_int(numel) or numel < 0:
    raise PthFormatError(f'{path}: bad storage key or size in persistent id {pid!r}')
  return stype, key, numel, pid[5:]


def _load_zip(path: str) -> Any:
  try:
    archive = zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
    raise PthFormatError(f'{path}: starts like a zip-format .pth file but is not a readable zip '
                         f'archive (truncated?): {e}') from e
  with archive:
    names = archive.namelist()
    pickles = [n for n in names if n.count('/') == 1 and n.endswith('/data.pkl')]
    if len(pickles) != 1:
      raise PthFormatError(f'{path}: a zip-format .pth file holds exactly one <folder>/data.pkl; '
                           f'found {pickles or "none"} among {names[:10]}')
    prefix = pickles[0][:-len('data.pkl')]
    byteorder = '<'
    if prefix + 'byteorder' in names:
      order = archive.read(prefix + 'byteorder').strip()
      if order not in (b'little', b'big'):
        raise PthFormatError(f'{path}: unknown byteorder {order!r} (expected little or big)')
      byteorder = '<' if order == b'little' else '>'
    roots: dict[str, _RootStorage] = {}

    def storage_fn(pid: Any) -> _StorageRef:
      stype, key, numel, _ = _storage_pid(pid, path, 5)
      root = roots.get(key)
      if root is None:
        name = f'{prefix}data/{key}'
        nbytes = numel * stype.itemsize
        try:
          with archive.open(name) as f:
            raw = f.read(nbytes)
        except KeyError as e:
          raise PthFormatError(f'{path}: storage record {name} is missing from the archive') from e
        except (zipfile.BadZipFile, OSError, EOFError) as e:
          raise PthFormatError(f'{path}: cannot read storage record {name}: {e}') from e
        if len(raw) < nbytes:
          raise PthFormatError(f'{path}: storage record {name} holds {len(raw)} bytes; expected '
                               f'{nbytes} ({numel} x {stype.name})')
        raw_dtype = (np.dtype(np.uint8) if stype.dtype is None else
                     stype.dtype.raw.newbyteorder(byteorder))
        root = _RootStorage(key, stype, numel, byteorder, np.frombuffer(raw, raw_dtype))
        roots[key] = root
      elif root.stype != stype or root.numel != numel:
        raise PthFormatError(f'{path}: storage {key!r} is referenced with two different types or '
                             'sizes')
      return _StorageRef(root, 0, numel)

    try:
      data = archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError, EOFError) as e:
      raise PthFormatError(f'{path}: cannot read {pickles[0]}: {e}') from e
    return _load_pickle(_Unpickler(io.BytesIO(data), path, storage_fn), path, pickles[0])


def _resolve_pending(obj: Any, path: str, memo: dict[int, tuple[Any, Any]]) -> Any:
  """Replaces every ``_PendingTensor`` in a container tree by its array (dicts, lists in place).

  ``memo`` maps ``id(original) -> (original, result)``: a tensor or container reached twice
  resolves once (and keeping the original alive keeps its id from being reused).
  """
  if id(obj) in memo:
    return memo[id(obj)][1]
  if isinstance(obj, _PendingTensor):
    memo[id(obj)] = (obj, _materialize(obj, path))
  elif isinstance(obj, dict):
    memo[id(obj)] = (obj, obj)
    for key, value in list(obj.items()):
      obj[key] = _resolve_pending(value, path, memo)
  elif isinstance(obj, list):
    memo[id(obj)] = (obj, obj)
    for i, value in enumerate(obj):
      obj[i] = _resolve_pending(value, path, memo)
  elif isinstance(obj, tuple):
    memo[id(obj)] = (obj, obj)  # Only a tuple that contains itself would see this.
    memo[id(obj)] = (obj, tuple(_resolve_pending(value, path, memo) for value in obj))
  else:
    return obj
  return memo[id(obj)][1]


def _load_legacy(f: BinaryIO, path: str) -> Any:
  """Reads the legacy layout; ``f`` is positioned after the magic number."""
  version = _load_pickle(_Unpickler(f, path), path, 'legacy protocol version')
  if version != _LEGACY_PROTOCOL:
    raise PthFormatError(f'{path}: legacy .pth protocol version {version!r}; expected '
                         f'{_LEGACY_PROTOCOL}')
  sys_info = _load_pickle(_Unpickler(f, path), path, 'legacy sys_info')
  if not isinstance(sys_info, dict):
    raise PthFormatError(f'{path}: legacy sys_info is {type(sys_info).__name__}, expected a dict')
  byteorder = '<' if sys_info.get('little_endian', True) else '>'
  roots: dict[str, _RootStorage] = {}
  views: dict[str, _StorageRef] = {}

  def storage_fn(pid: Any) -> _StorageRef:
    stype, key, numel, (view_metadata,) = _storage_pid(pid, path, 6)
    root = roots.setdefault(key, _RootStorage(key, stype, numel, byteorder))
    if root.stype != stype or root.numel != numel:
      raise PthFormatError(f'{path}: storage {key!r} is referenced with two different types or '
                           'sizes')
    if view_metadata is None:
      return _StorageRef(root, 0, numel)
    # Before PyTorch 0.4 a storage could be a view (view_key, offset, size) of a root storage.
    if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3 and
            all(_is_int(v) for v in view_metadata[1:])):
      raise PthFormatError(f'{path}: bad storage view metadata {view_metadata!r}')
    view_key, offset, size = view_metadata
    return views.setdefault(view_key, _StorageRef(root, offset, size))

  obj = _load_pickle(_Unpickler(f, path, storage_fn, eager=False), path, 'legacy object pickle')
  keys = _load_pickle(_Unpickler(f, path), path, 'legacy storage-key list')
  if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
    raise PthFormatError(f'{path}: the legacy storage-key list is {keys!r:.80}, expected a list '
                         'of str')
  for key in keys:
    root = roots.get(key)
    if root is None:
      raise PthFormatError(f'{path}: storage {key!r} has data but no tensor refers to it')
    header = f.read(8)
    if len(header) < 8:
      raise PthFormatError(f'{path}: truncated legacy .pth file: the record of storage {key!r} '
                           'is missing')
    (count,) = struct.unpack(byteorder + 'q', header)
    if count != root.numel:
      raise PthFormatError(f'{path}: storage {key!r} record holds {count} items; the pickle says '
                           f'{root.numel}')
    nbytes = count * root.stype.itemsize
    raw = f.read(nbytes)
    if len(raw) < nbytes:
      raise PthFormatError(f'{path}: truncated legacy .pth file: storage {key!r} has {len(raw)} '
                           f'of its {nbytes} bytes')
    raw_dtype = (np.dtype(np.uint8) if root.stype.dtype is None else
                 root.stype.dtype.raw.newbyteorder(byteorder))
    root.data = np.frombuffer(raw, raw_dtype)
  return _resolve_pending(obj, path, {})


def load_pth(path: str | os.PathLike) -> Any:
  """Reads a torch.save file without torch and without running pickled code.

  Args:
    path: a ``.pth`` / ``.pth.tar`` / ``.pt`` file written by ``torch.save`` in the zip
      (PyTorch >= 1.6) or the legacy layout.

  Returns:
    The saved object. Tensors (and ``nn.Parameter``) come back as C-contiguous numpy arrays with
    their dtype and shape (offset and strides applied, each its own copy; ``bfloat16`` widened to
    ``float32``); ``OrderedDict``, dict, list, tuple, int, float, str, bytes and None as Python
    objects; ``torch.Size`` as a tuple; a pickled ``torch.<dtype>`` as a :class:`TorchDtype`;
    numpy scalars as numpy scalars.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: (a :class:`PthFormatError`) not a torch file, an unsupported layout (tar) or
      dtype, or a truncated or corrupt file; the message names the path and what was expected.
    UnsafePickleError: (a ``pickle.UnpicklingError``) the pickle references a global that a
      tensor checkpoint never needs (e.g. ``os.system``); nothing is run.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'no such .pth file: {path}')
  if not os.path.isfile(path):
    raise PthFormatError(f'{path}: not a regular file (expected a .pth file)')
  with open(path, 'rb') as f:
    head = f.read(4)
  if head == _ZIP_MAGIC:
    return _load_zip(path)
  with open(path, 'rb') as f:
    # Legacy files start with the pickled magic number (PROTO opcode, or a protocol-0/1 LONG).
    if head[:1] in (b'\x80', b'L'):
      try:
        magic = _load_pickle(_Unpickler(f, path), path, 'legacy magic number')
      except PthFormatError:
        magic = None
      if _is_int(magic) and magic == _LEGACY_MAGIC:
        return _load_legacy(f, path)
  if tarfile.is_tarfile(path):
    raise PthFormatError(f'{path}: the legacy tar .pth format (PyTorch <= 0.1.10) is not '
                         'supported; re-save the checkpoint with a newer PyTorch')
  raise PthFormatError(f'{path}: not a PyTorch .pth file: expected a zip archive (PyTorch >= 1.6) '
                       f'or a pickle of the legacy magic number {_LEGACY_MAGIC:#x}; the file '
                       f'starts with {head!r}')


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a state dict (of numpy arrays) from a ``.pth`` file.

  A dict with a ``'state_dict'`` entry (a training checkpoint such as FlowNet2's ``{'epoch',
  'state_dict', 'best_EPE'}``) is unwrapped to that entry, and a leading ``'module.'`` (from
  ``nn.DataParallel``) is stripped from every key that has one.

  Args:
    path: a file accepted by :func:`load_pth`.

  Returns:
    ``{parameter or buffer name: array}`` in the file's order.

  Raises:
    FileNotFoundError, ValueError, UnsafePickleError: as :func:`load_pth`; ValueError also when
    the object is not a dict of tensors (naming the file and the offending key).
  """
  obj = load_pth(path)
  if isinstance(obj, dict) and 'state_dict' in obj:
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise ValueError(f'{os.fspath(path)}: expected a state dict (a dict of tensors, or a dict with '
                     f"a 'state_dict' entry); got {type(obj).__name__}")
  state: dict[str, np.ndarray] = {}
  for key, value in obj.items():
    if not isinstance(key, str):
      raise ValueError(f'{os.fspath(path)}: state dict key {key!r} is not a str')
    if not isinstance(value, np.ndarray):
      raise ValueError(f'{os.fspath(path)}: state dict entry {key!r} is a '
                       f'{type(value).__name__}, not a tensor')
    name = key[len('module.'):] if key.startswith('module.') else key
    if name in state:
      raise ValueError(f"{os.fspath(path)}: key {key!r} collides with {name!r} once 'module.' "
                       'is stripped')
    state[name] = value
  return state
