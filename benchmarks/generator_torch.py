"""Same-machine reference: the original's sequential generator architecture in PyTorch.

Written from a description (docs/original_behaviour.md#generator), not from the original code, to
time the original architecture on this machine: one forward + backward of CompositeGenerator
(batch 1, train-mode norms, loss = mean(final image) + mean(|flow|)), with
torch.set_num_threads(--threads).

Usage: python benchmarks/generator_torch.py --height 128 --width 256 --ngf 64 --label_nc 35 \
         --n_frames_G 3 [--n_blocks 9 --n_downsample_G 3 --norm batch --threads 2
         --device cpu|cuda --dtype float32|bfloat16]
Needs torch (a test-only dependency). Last line:
``torch generator fwd+bwd WxH ngf=N: median X ms, params P M``.
"""

import argparse
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F


def _norm(kind, c):
  return nn.BatchNorm2d(c) if kind == 'batch' else nn.InstanceNorm2d(c)


class _Res(nn.Module):

  def __init__(self, c, norm):
    super().__init__()
    self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(norm, c), nn.ReLU(),
                              nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(norm, c))

  def forward(self, x):
    return x + self.body(x)


def _encoder(cin, ngf, nd, nres, norm):
  layers = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7), _norm(norm, ngf), nn.ReLU()]
  for i in range(nd):
    c = ngf * 2**i
    layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), _norm(norm, 2 * c), nn.ReLU()]
  layers += [_Res(ngf * 2**nd, norm) for _ in range(nres)]
  return nn.Sequential(*layers)


def _decoder(ngf, nd, nres, norm):
  layers = [_Res(ngf * 2**nd, norm) for _ in range(nres)]
  for i in range(nd):
    c = ngf * 2**(nd - i)
    layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), _norm(norm, c // 2),
               nn.ReLU()]
  return nn.Sequential(*layers)


def _head(ngf, cout):
  return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7))


class Composite(nn.Module):
  """Label branch + previous-frame branch, image / flow / weight heads, warp composition."""

  def __init__(self, cin, cprev, ngf, nd, nb, norm):
    super().__init__()
    n_enc, n_dec = nb - nb // 2, nb // 2
    self.seg = _encoder(cin, ngf, nd, n_enc, norm)
    self.img = _encoder(cprev, ngf, nd, n_enc, norm)
    self.dec_img = _decoder(ngf, nd, n_dec, norm)
    self.dec_flow = _decoder(ngf, nd, n_dec, norm)
    self.head_img, self.head_flow, self.head_w = _head(ngf, 3), _head(ngf, 2), _head(ngf, 1)

  def forward(self, label, prev):
    down = self.seg(label) + self.img(prev)
    raw = torch.tanh(self.head_img(self.dec_img(down)))
    flow_feat = self.dec_flow(down)
    flow = self.head_flow(flow_feat) * 20
    w = torch.sigmoid(self.head_w(flow_feat))
    b, _, h, wd = flow.shape
    gx = torch.linspace(-1, 1, wd, device=flow.device).view(1, 1, wd).expand(b, h, wd)
    gy = torch.linspace(-1, 1, h, device=flow.device).view(1, h, 1).expand(b, h, wd)
    grid = torch.stack([gx + flow[:, 0] / ((wd - 1) / 2), gy + flow[:, 1] / ((h - 1) / 2)], -1)
    warped = F.grid_sample(prev[:, -3:], grid, padding_mode='border', align_corners=True)
    return w * raw + (1 - w) * warped, flow


def main():
  p = argparse.ArgumentParser()
  for name, default in (('height', 128), ('width', 256), ('ngf', 64), ('label_nc', 35),
                        ('n_frames_G', 3), ('n_blocks', 9), ('n_downsample_G', 3),
                        ('threads', 2), ('runs', 5), ('warmup', 1)):
    p.add_argument(f'--{name}', type=int, default=default)
  p.add_argument('--norm', default='batch')
  p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
  p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'),
                 help='bfloat16: autocast (the mixed precision PyTorch offers)')
  args = p.parse_args()
  torch.set_num_threads(args.threads)
  device = torch.device(args.device)
  torch.backends.cudnn.benchmark = True  # as the original's train.py
  t, h, w = args.n_frames_G, args.height, args.width
  model = Composite((args.label_nc + 1) * t, 3 * (t - 1), args.ngf, args.n_downsample_G,
                    args.n_blocks, args.norm)
  model.train().to(device)
  labels = torch.randint(0, args.label_nc, (1, t, h, w))
  cond = torch.cat([F.one_hot(labels, args.label_nc).permute(0, 1, 4, 2, 3).float(),
                    (torch.rand(1, t, 1, h, w) < 0.05).float()], 2).view(1, -1, h, w)
  prev = torch.rand(1, 3 * (t - 1), h, w) * 2 - 1
  cond, prev = cond.to(device), prev.to(device)
  sync = torch.cuda.synchronize if device.type == 'cuda' else lambda: None
  n_params = sum(x.numel() for x in model.parameters())

  def step():
    model.zero_grad(set_to_none=True)
    with torch.autocast(device.type, torch.bfloat16, enabled=args.dtype == 'bfloat16'):
      fake, flow = model(cond, prev)
      loss = fake.float().mean() + flow.float().abs().mean()
    loss.backward()
    sync()

  for _ in range(args.warmup):
    step()
  times = []
  for _ in range(args.runs):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  print(f'runs (ms): {" ".join(f"{1e3 * x:.0f}" for x in times)}')
  print(f'torch generator fwd+bwd {w}x{h} ngf={args.ngf}: median '
        f'{1e3 * statistics.median(times):.0f} ms, params {n_params / 1e6:.2f} M')


if __name__ == '__main__':
  main()
