"""VGG19 perceptual loss: import of a torchvision-layout .pth, parity with a PyTorch reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vid2vid_jax import vgg

torch = pytest.importorskip('torch')
tnn = torch.nn

# torchvision's vgg19 ``features`` (config 'E'): widths, 'M' = MaxPool2d(2, 2).
_CFG_E = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
          512, 512, 512, 512, 'M')
_TORCH_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))


def _torch_features():
  layers, cin = [], 3
  for v in _CFG_E:
    if v == 'M':
      layers.append(tnn.MaxPool2d(kernel_size=2, stride=2))
    else:
      layers += [tnn.Conv2d(cin, v, kernel_size=3, padding=1), tnn.ReLU(inplace=False)]
      cin = v
  return tnn.Sequential(*layers)


class _TorchVGG19(tnn.Module):
  """Same state_dict keys as torchvision.models.vgg19 (features.* and a stub classifier.*)."""

  def __init__(self):
    super().__init__()
    self.features = _torch_features()
    self.classifier = tnn.Sequential(tnn.Linear(8, 4))  # ignored by the importer

  def taps(self, x):
    out = []
    for start, stop in _TORCH_SLICES:
      x = self.features[start:stop](x)
      out.append(x)
    return out


@pytest.fixture(scope='module')
def torch_vgg():
  torch.manual_seed(0)
  net = _TorchVGG19()
  with torch.no_grad():
    for m in net.features:
      if isinstance(m, tnn.Conv2d):
        # He init keeps activations O(1) through 13 layers, so relative errors are meaningful.
        tnn.init.kaiming_normal_(m.weight, nonlinearity='relu')
        tnn.init.uniform_(m.bias, -0.1, 0.1)
  return net


@pytest.fixture(scope='module')
def pth_path(torch_vgg, tmp_path_factory):
  path = tmp_path_factory.mktemp('vgg') / 'vgg19-test.pth'
  torch.save(torch_vgg.state_dict(), path)  # zip format, as torchvision's current files
  return str(path)


def _torch_read(path):
  sd = torch.load(path, map_location='cpu', weights_only=True)
  return {k: v.numpy() for k, v in sd.items()}


def _inputs(shape=(2, 3, 32, 32), seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(-1, 1, size=shape).astype(np.float32)


def _rel(a, b):
  return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


def _nhwc(x):
  return jnp.asarray(x.transpose(0, 2, 3, 1))


def test_features_match_torch(torch_vgg, pth_path):
  params = vgg.load_vgg19_weights(pth_path)
  assert list(params) == [name for name, *_ in vgg.VGG19_CONVS]
  x = _inputs()
  with torch.no_grad():
    ref = [t.numpy().transpose(0, 2, 3, 1) for t in torch_vgg.taps(torch.from_numpy(x))]
  ours = vgg.VGG19Features().apply({'params': params}, _nhwc(x))
  for name, a, b in zip(vgg.LAYER_NAMES, ours, ref):
    assert a.shape == b.shape, name
    assert _rel(a, b) <= 1e-5, (name, _rel(a, b))


def _torch_vgg_loss(net, x, y, max_width):
  x, y = torch.from_numpy(x), torch.from_numpy(y)
  while x.shape[3] > max_width:
    x, y = tnn.functional.avg_pool2d(x, 2, 2), tnn.functional.avg_pool2d(y, 2, 2)
  with torch.no_grad():
    fx, fy = net.taps(x), net.taps(y)
  return sum(w * (a - b).abs().mean().item() for w, a, b in zip(vgg.LAYER_WEIGHTS, fx, fy))


@pytest.mark.parametrize('shape,max_width', [((2, 3, 32, 32), 1024), ((1, 3, 32, 64), 32)])
def test_loss_matches_torch_incl_downsampling(torch_vgg, pth_path, shape, max_width):
  # max_width=32 on a 64-wide image takes the original's width > 1024 pooling path.
  x, y = _inputs(shape, 1), _inputs(shape, 2)
  ref = _torch_vgg_loss(torch_vgg, x, y, max_width)
  fn = vgg.vgg_loss_fn_from_path(pth_path, max_width=max_width)
  ours = float(fn(_nhwc(x), _nhwc(y)))
  assert abs(ours - ref) / ref <= 1e-5, (ours, ref)


def test_downsample_halves_while_wider_than_1024():
  x = jnp.ones((1, 8, 2050, 1))
  a, b = vgg.downsample_for_vgg(x, 2 * x)  # 2050 -> 1025 -> 512 (floor, as AvgPool2d(2))
  assert a.shape == b.shape == (1, 2, 512, 1)
  np.testing.assert_allclose(b, 2.0)
  a, _ = vgg.downsample_for_vgg(jnp.ones((1, 4, 2048, 1)), jnp.ones((1, 4, 2048, 1)))
  assert a.shape == (1, 2, 1024, 1)
  a, _ = vgg.downsample_for_vgg(jnp.ones((1, 4, 1024, 1)), jnp.ones((1, 4, 1024, 1)))
  assert a.shape == (1, 4, 1024, 1)


def test_gradients_flow_into_x_only(pth_path):
  params = vgg.load_vgg19_weights(pth_path)
  x, y = _nhwc(_inputs((1, 3, 16, 16), 3)), _nhwc(_inputs((1, 3, 16, 16), 4))
  gx, gy = jax.jit(jax.grad(vgg.vgg_loss, argnums=(1, 2)))(params, x, y)
  assert float(jnp.abs(gx).max()) > 0.0 and float(jnp.abs(gy).max()) == 0.0


def test_legacy_pth_format(torch_vgg, pth_path, tmp_path):
  # torchvision's vgg19-dcbb9e9d.pth predates PyTorch 1.6: the legacy (non-zip) layout.
  legacy = tmp_path / 'vgg19-legacy.pth'
  torch.save(torch_vgg.state_dict(), legacy, _use_new_zipfile_serialization=False)
  a, b = vgg.load_vgg19_weights(str(legacy)), vgg.load_vgg19_weights(pth_path)
  for name in a:
    np.testing.assert_array_equal(a[name]['kernel'], b[name]['kernel'])
    np.testing.assert_array_equal(a[name]['bias'], b[name]['bias'])


def test_npz_roundtrip_and_cli(pth_path, tmp_path):
  params = vgg.load_vgg19_weights(pth_path)
  out = tmp_path / 'vgg19.npz'
  vgg.main(['--pth', pth_path, '--out', str(out)])
  again = vgg.load_vgg19_weights(str(out))
  for name in params:
    for kind in ('kernel', 'bias'):
      np.testing.assert_array_equal(again[name][kind], params[name][kind])
  # An .npz of torchvision keys loads too.
  torch_npz = tmp_path / 'torch_layout.npz'
  np.savez(torch_npz, **_torch_read(pth_path))
  np.testing.assert_array_equal(vgg.load_vgg19_weights(str(torch_npz))['conv5_1']['kernel'],
                                params['conv5_1']['kernel'])


def test_no_weights_is_a_loud_error():
  for fn in (vgg.load_vgg19_weights, vgg.vgg_loss_fn_from_path):
    with pytest.raises(ValueError, match='VGG weights required') as info:
      fn('')
    assert 'config.loss.use_vgg=False' in str(info.value)
  with pytest.raises(FileNotFoundError, match='nope.pth'):
    vgg.load_vgg19_weights('/nonexistent/nope.pth')


def test_missing_and_misshaped_keys_are_named(pth_path):
  sd = _torch_read(pth_path)
  missing = {k: v for k, v in sd.items() if k != 'features.28.weight'}
  with pytest.raises(ValueError, match=r"'features\.28\.weight'"):
    vgg.params_from_torch_state_dict(missing)
  bad = dict(sd, **{'features.5.bias': np.zeros((64,), np.float32)})
  with pytest.raises(ValueError, match=r"'features\.5\.bias'.*\(64,\).*\(128,\)"):
    vgg.params_from_torch_state_dict(bad)
