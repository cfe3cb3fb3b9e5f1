"""Tests of the torch-free .pth reader against files written by torch.save (torch: tests only)."""

import ast
import collections
import io
import os
import pathlib
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import pytest

from vid2vid_jax import pth

torch = pytest.importorskip('torch')

FORMATS = ('zip', 'legacy')


def _save(obj, path: pathlib.Path, fmt: str) -> pathlib.Path:
  torch.save(obj, path, _use_new_zipfile_serialization=(fmt == 'zip'))
  return path


def _assert_same(array: np.ndarray, tensor) -> None:
  tensor = tensor.detach()
  expected = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
  assert isinstance(array, np.ndarray)
  assert array.dtype == expected.dtype
  assert array.shape == expected.shape
  assert array.flags.c_contiguous and array.flags.owndata
  np.testing.assert_array_equal(array, expected)


# --- Reference fixtures ----------------------------------------------------------------------


def test_fixtures_match_their_npz(vid2vid_fixtures):
  files = sorted(vid2vid_fixtures.glob('*/latest_net_*.pth'))
  assert files, f'no latest_net_*.pth under {vid2vid_fixtures}'
  for path in files:
    expected = np.load(path.with_name(path.stem + '_weights.npz'))
    state = pth.load_state_dict(path)
    assert list(state) == list(expected.keys()), path
    for key, value in state.items():
      want = expected[key]
      assert value.dtype == want.dtype and value.shape == want.shape, (path, key)
      np.testing.assert_array_equal(value, want, err_msg=f'{path}: {key}')


# --- Round trips through torch.save ------------------------------------------------------------


@pytest.mark.parametrize('fmt', FORMATS)
def test_round_trip_dtypes(tmp_path, fmt):
  values = [1.5, -2.25, 0.0, 3.3e38, 1e-40, -7.0]
  tensors = {
      'float32': torch.tensor(values, dtype=torch.float32).reshape(2, 3),
      'float64': torch.tensor(values, dtype=torch.float64),
      'float16': torch.tensor([1.5, -2.25, 65504.0, 6e-8], dtype=torch.float16),
      'bfloat16': torch.tensor(values, dtype=torch.bfloat16).reshape(3, 2),
      'int64': torch.tensor([-(2**62), 0, 2**62 + 7]),
      'int32': torch.tensor([-5, 2**31 - 1], dtype=torch.int32),
      'int16': torch.tensor([-5, 300], dtype=torch.int16),
      'int8': torch.tensor([-128, 127], dtype=torch.int8),
      'uint8': torch.tensor([0, 7, 255], dtype=torch.uint8),
      'uint16': torch.tensor([0, 65535], dtype=torch.int32).to(torch.uint16),  # _rebuild_tensor_v3
      'bool': torch.tensor([True, False, True]),
      'complex64': torch.tensor([1 + 2j, -3j], dtype=torch.complex64),
      'scalar': torch.tensor(42),  # 0-d, like num_batches_tracked
      'empty': torch.zeros(0, 3),
  }
  loaded = pth.load_pth(_save(tensors, tmp_path / 'dtypes.pth', fmt))
  assert list(loaded) == list(tensors)
  for key, tensor in tensors.items():
    if key == 'uint16':
      want = np.array([0, 65535], np.uint16)
      assert loaded[key].dtype == want.dtype
      np.testing.assert_array_equal(loaded[key], want)
    else:
      _assert_same(loaded[key], tensor)
  assert loaded['bfloat16'].dtype == np.float32


@pytest.mark.parametrize('fmt', FORMATS)
def test_round_trip_views_of_one_storage(tmp_path, fmt):
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  tensors = {
      'base': base,
      'transposed': base.t(),
      'slice': base[1:3, 2:5],  # storage offset 8, strides (6, 1)
      'column': base[:, 4],
      'expanded': base[2:3].expand(3, 6),  # stride 0
      'everything_else': torch.ones(2, 3).t(),  # a second storage
  }
  assert tensors['slice'].storage_offset() == 8
  loaded = pth.load_pth(_save(tensors, tmp_path / 'views.pth', fmt))
  for key, tensor in tensors.items():
    _assert_same(loaded[key], tensor)
  # One storage, but independent arrays.
  loaded['base'][0, 0] = -1
  assert loaded['transposed'][0, 0] == 0


@pytest.mark.parametrize('fmt', FORMATS)
def test_round_trip_parameter_and_containers(tmp_path, fmt):
  param = torch.nn.Parameter(torch.randn(3, 2))
  obj = {
      'param': param,
      'list': [1, 'two', None, torch.ones(2, dtype=torch.float64)],
      'tuple': (2.5, True, b'raw bytes'),
      'size': torch.Size([2, 3]),
      'dtype': torch.float32,
      'nested': {'deeper': [torch.arange(3)]},
  }
  loaded = pth.load_pth(_save(obj, tmp_path / 'containers.pth', fmt))
  _assert_same(loaded['param'], param)
  assert loaded['list'][:3] == [1, 'two', None]
  _assert_same(loaded['list'][3], obj['list'][3])
  assert loaded['tuple'] == (2.5, True, b'raw bytes')
  assert loaded['size'] == (2, 3) and type(loaded['size']) is tuple
  assert loaded['dtype'] == pth.TorchDtype('float32', np.dtype(np.float32))
  _assert_same(loaded['nested']['deeper'][0], obj['nested']['deeper'][0])


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('best_epe', [1.5, np.float64(1.5)], ids=['float', 'numpy_float64'])
def test_flownet2_style_checkpoint(tmp_path, fmt, best_epe):
  net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.LeakyReLU(0.1),
                            torch.nn.ConvTranspose2d(3, 2, 4, 2, 1))
  state_dict = net.state_dict()
  path = _save({'epoch': 3, 'state_dict': state_dict, 'best_EPE': best_epe},
               tmp_path / 'FlowNet2_checkpoint.pth.tar', fmt)
  loaded = pth.load_pth(path)
  assert loaded['epoch'] == 3 and loaded['best_EPE'] == 1.5
  assert type(loaded['best_EPE']) is type(best_epe)
  assert isinstance(loaded['state_dict'], collections.OrderedDict)
  state = pth.load_state_dict(path)
  assert list(state) == list(state_dict)
  for key, tensor in state_dict.items():
    _assert_same(state[key], tensor)


@pytest.mark.parametrize('fmt', FORMATS)
def test_load_state_dict_strips_module_prefix(tmp_path, fmt):
  net = torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)))
  state_dict = net.state_dict()
  assert all(key.startswith('module.') for key in state_dict)
  state = pth.load_state_dict(_save(state_dict, tmp_path / 'dp.pth', fmt))
  assert list(state) == [key[len('module.'):] for key in state_dict]
  _assert_same(state['1.num_batches_tracked'], state_dict['module.1.num_batches_tracked'])


def test_load_state_dict_rejects_non_tensors(tmp_path):
  path = _save({'weight': torch.ones(2), 'step': 7}, tmp_path / 'mixed.pth', 'zip')
  with pytest.raises(ValueError, match=r"mixed\.pth.*'step'.*not a tensor"):
    pth.load_state_dict(path)
  path = _save([torch.ones(2)], tmp_path / 'list.pth', 'zip')
  with pytest.raises(ValueError, match=r'list\.pth.*got list'):
    pth.load_state_dict(path)


def test_zip_prefix_is_any_folder_name(tmp_path):
  path = _save({'w': torch.arange(4)}, tmp_path / 'first_name.pth', 'zip')
  renamed = path.rename(tmp_path / 'other.pth')
  with zipfile.ZipFile(renamed) as archive:
    assert archive.namelist()[0].startswith('first_name/')
  np.testing.assert_array_equal(pth.load_pth(renamed)['w'], np.arange(4))


# --- Hand-written archives: byte order, bad geometry, unsupported dtypes -----------------------


class _Global:
  """Pickled as the global ``module.name`` (which need not be importable here)."""

  def __init__(self, module: str, name: str):
    self.module, self.name = module, name

  def __call__(self, *args):
    raise AssertionError('a stub global is never called')


class _Call:
  """Pickled as ``function(*args)``."""

  def __init__(self, function, *args):
    self.function, self.args = function, args

  def __reduce__(self):
    return (self.function, self.args)


class _Storage:
  """Pickled as the persistent id ``pid``."""

  def __init__(self, *pid):
    self.pid = pid


class _StubPickler(pickle._Pickler):  # The pure-Python pickler: its dispatch table is open.
  dispatch = dict(pickle._Pickler.dispatch)

  def _save_global_stub(self, obj):
    self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())

  dispatch[_Global] = _save_global_stub

  def persistent_id(self, obj):
    return obj.pid if isinstance(obj, _Storage) else None


FLOAT_STORAGE = _Global('torch', 'FloatStorage')
REBUILD_V2 = _Global('torch._utils', '_rebuild_tensor_v2')


def _tensor_v2(storage, offset, size, stride):
  return _Call(REBUILD_V2, storage, offset, size, stride, False,
               _Call(_Global('collections', 'OrderedDict')))


def _stub_pickle(obj) -> bytes:
  buffer = io.BytesIO()
  _StubPickler(buffer, protocol=2).dump(obj)
  return buffer.getvalue()


def _write_zip(path: pathlib.Path, obj, records: dict[str, bytes], byteorder: bytes = b'little',
               prefix: str = 'archive') -> pathlib.Path:
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
    archive.writestr(f'{prefix}/data.pkl', _stub_pickle(obj))
    archive.writestr(f'{prefix}/byteorder', byteorder)
    for key, data in records.items():
      archive.writestr(f'{prefix}/data/{key}', data)
  return path


def _legacy_header() -> bytes:
  sys_info = {'protocol_version': 1001, 'little_endian': True,
              'type_sizes': {'short': 2, 'int': 4, 'long': 4}}
  return b''.join(pickle.dumps(x, protocol=2) for x in (0x1950a86a20f9469cfc6c, 1001, sys_info))


def _write_legacy(path: pathlib.Path, obj, records: dict[str, np.ndarray]) -> pathlib.Path:
  parts = [_legacy_header(), _stub_pickle(obj), pickle.dumps(list(records), protocol=2)]
  for data in records.values():
    parts += [struct.pack('<q', data.size), data.tobytes()]
  path.write_bytes(b''.join(parts))
  return path


def test_legacy_pre_0_4_gpu_checkpoint(tmp_path):
  # Like FlowNet2_checkpoint.pth.tar (PyTorch 0.2): _rebuild_tensor(storage, offset, size, stride),
  # torch.cuda storage types, and a storage view (view_key, offset, size) into a root storage.
  root = np.arange(10, dtype=np.float32)
  cuda_float = _Global('torch.cuda', 'FloatStorage')
  rebuild = _Global('torch._utils', '_rebuild_tensor')
  view = _Storage('storage', cuda_float, 'root', 'cuda:0', 10, ('view', 2, 6))
  whole = _Storage('storage', cuda_float, 'root', 'cuda:0', 10, None)
  state_dict = _Call(_Global('collections', 'OrderedDict'), [
      ('conv.weight', _Call(rebuild, view, 1, (2, 2), (1, 2))),
      ('conv.bias', _Call(rebuild, whole, 8, (2,), (1,))),
  ])
  path = _write_legacy(tmp_path / 'FlowNet2_checkpoint.pth.tar',
                       {'epoch': 1, 'state_dict': state_dict, 'best_EPE': 2.5}, {'root': root})
  loaded = pth.load_pth(path)
  assert (loaded['epoch'], loaded['best_EPE']) == (1, 2.5)
  state = pth.load_state_dict(path)
  np.testing.assert_array_equal(state['conv.weight'], [[3, 5], [4, 6]])
  np.testing.assert_array_equal(state['conv.bias'], [8, 9])
  assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in state.values())


def test_zip_big_endian(tmp_path):
  values = np.arange(6, dtype=np.float32) - 2.5
  storage = _Storage('storage', FLOAT_STORAGE, '0', 'cpu', 6)
  path = _write_zip(tmp_path / 'big.pth', {'w': _tensor_v2(storage, 0, (2, 3), (1, 2))},
                    {'0': values.astype('>f4').tobytes()}, byteorder=b'big', prefix='any name')
  loaded = pth.load_pth(path)['w']
  assert loaded.dtype == np.float32 and loaded.dtype.isnative
  np.testing.assert_array_equal(loaded, values.reshape(3, 2).T)


@pytest.mark.parametrize('offset, size, stride', [
    (0, (5,), (1,)),  # one past the end
    (3, (2,), (1,)),  # offset pushes it out
    (0, (2, 2), (1, 3)),  # strides reach item 4
    (-1, (2,), (1,)),
    (0, (2,), (-1,)),
    (0, (2, 2), (1,)),
])
def test_zip_rejects_tensor_outside_its_storage(tmp_path, offset, size, stride):
  storage = _Storage('storage', FLOAT_STORAGE, '0', 'cpu', 4)
  path = _write_zip(tmp_path / 'bad.pth', {'w': _tensor_v2(storage, offset, size, stride)},
                    {'0': np.zeros(4, np.float32).tobytes()})
  with pytest.raises(ValueError, match=r'bad\.pth: (invalid tensor geometry|tensor \(offset)'):
    pth.load_pth(path)


def test_zip_rejects_short_storage_record(tmp_path):
  storage = _Storage('storage', FLOAT_STORAGE, '0', 'cpu', 4)
  path = _write_zip(tmp_path / 'short.pth', {'w': _tensor_v2(storage, 0, (4,), (1,))},
                    {'0': b'\0' * 12})
  with pytest.raises(ValueError, match=r'short\.pth.*12 bytes; expected 16'):
    pth.load_pth(path)


def test_unsupported_dtype_is_a_clear_error(tmp_path):
  path = _save({'w': torch.zeros(2, dtype=torch.float8_e4m3fn)}, tmp_path / 'f8.pth', 'zip')
  with pytest.raises(ValueError, match=r'f8\.pth.*float8_e4m3fn has no numpy equivalent'):
    pth.load_pth(path)


# --- Safety ------------------------------------------------------------------------------------


class _Evil:
  """Unpickling it with the real pickle module would run ``function(argument)``."""

  def __init__(self, function, argument):
    self.function, self.argument = function, argument

  def __reduce__(self):
    return (self.function, (self.argument,))


def _evil_payloads(marker: pathlib.Path):
  return {
      'os.system': _Evil(os.system, f'touch {marker}'),
      'builtins.eval': _Evil(eval, f'open({str(marker)!r}, "w").close()'),
  }


@pytest.mark.parametrize('layout', ['zip', 'legacy', 'plain_pickle'])
@pytest.mark.parametrize('payload', ['os.system', 'builtins.eval'])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, layout, payload):
  marker = tmp_path / 'pwned'
  evil = {'weight': _evil_payloads(marker)[payload]}
  path = tmp_path / 'evil.pth'
  if layout == 'zip':
    _write_zip(path, evil, {})
  else:
    header = _legacy_header() if layout == 'legacy' else b''
    path.write_bytes(header + pickle.dumps(evil, protocol=2) + pickle.dumps([], protocol=2))
  name = r'(posix|os)\.system' if payload == 'os.system' else r'(__builtin__|builtins)\.eval'
  with pytest.raises(pickle.UnpicklingError, match=rf'evil\.pth.*refusing.*{name}'):
    pth.load_pth(path)
  with pytest.raises(pth.UnsafePickleError, match=name):
    pth.load_state_dict(path)
  assert not marker.exists()


def test_reader_never_imports_torch_or_tensorflow():
  tree = ast.parse(pathlib.Path(pth.__file__).read_text())
  imported = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported.update(alias.name.split('.')[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      imported.add((node.module or '').split('.')[0])
  assert not imported & {'torch', 'tensorflow', 'importlib'}, imported


# --- Bad files ----------------------------------------------------------------------------------


def test_missing_file():
  with pytest.raises(FileNotFoundError, match='no_such.pth'):
    pth.load_pth('/nonexistent/dir/no_such.pth')


def test_truncated_legacy_file(tmp_path):
  full = _save({'epoch': 3, 'state_dict': collections.OrderedDict(w=torch.ones(5, 4))},
               tmp_path / 'full.pth', 'legacy').read_bytes()
  header_end = len(_legacy_header())
  cuts = [len(full) - 1, len(full) - 80, len(full) - 83, header_end + 40, header_end, 30, 10]
  for cut in cuts:
    path = tmp_path / f'cut_{cut}.pth'
    path.write_bytes(full[:cut])
    with pytest.raises(ValueError, match=rf'cut_{cut}\.pth'):
      pth.load_pth(path)


def test_truncated_zip_file(tmp_path):
  full = _save({'w': torch.ones(100)}, tmp_path / 'full.pth', 'zip').read_bytes()
  path = tmp_path / 'cut.pth'
  path.write_bytes(full[:len(full) // 2])
  with pytest.raises(ValueError, match=r'cut\.pth.*zip'):
    pth.load_pth(path)


@pytest.mark.parametrize('content', [
    np.random.default_rng(0).bytes(1000),
    b'\x80\x02' + np.random.default_rng(1).bytes(200),
    b'',
    pickle.dumps({'not': 'a torch file'}, protocol=2),
], ids=['random', 'random_after_proto', 'empty', 'plain_pickle'])
def test_not_a_torch_file(tmp_path, content):
  path = tmp_path / 'junk.pth'
  path.write_bytes(content)
  with pytest.raises(ValueError, match=r'junk\.pth.*not a PyTorch \.pth file'):
    pth.load_pth(path)


def test_tar_format_is_refused(tmp_path):
  path = tmp_path / 'old.pth.tar'
  with tarfile.open(path, 'w') as archive:
    info = tarfile.TarInfo('pickle')
    info.size = 4
    archive.addfile(info, io.BytesIO(b'abcd'))
  with pytest.raises(ValueError, match=r'old\.pth\.tar.*tar .pth format.*not supported'):
    pth.load_pth(path)


def test_legacy_storage_count_mismatch(tmp_path):
  data = bytearray(_save({'w': torch.ones(3)}, tmp_path / 'ok.pth', 'legacy').read_bytes())
  count_at = len(data) - 12 - 8
  assert struct.unpack('<q', data[count_at:count_at + 8]) == (3,)
  data[count_at:count_at + 8] = struct.pack('<q', 4)
  path = tmp_path / 'mismatch.pth'
  path.write_bytes(bytes(data))
  with pytest.raises(ValueError, match=r'mismatch\.pth.*holds 4 items'):
    pth.load_pth(path)
