"""Parity of our networks with the original's stored outputs.

Usage: python -m vid2vid_jax.tools.network_parity DIR [--rtol 1e-4]

DIR holds a ``manifest.json`` in the format of shared/fixtures/vid2vid_reference (see its
README). Every case is built through the importer exactly as a real checkpoint would be
(generator cases from their folder's opt.txt and ``.pth`` files, discriminator cases from the
manifest's fields and their ``.pth``), run on the stored inputs in float32, and compared output
by output: max abs error and relative error ||ours - ref|| / ||ref||. Prints a table; exits
with status 1 if any output fails (relative error > rtol) or a case cannot be run.
Single-image cases with netG global_with_features / local_with_features (the face first-frame
model) take their feature map z from io ``feat`` [B, feat_num, H, W] next to ``input``.
"""

from collections.abc import Callable, Sequence
import dataclasses
import json
import pathlib
import sys
from typing import Any

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from vid2vid_jax import original_checkpoint
from vid2vid_jax import original_options
from vid2vid_jax import warp as warp_lib
from vid2vid_jax.models import builders
from vid2vid_jax.models import generator as generator_lib
from vid2vid_jax.models import layers

DEFAULT_RTOL = 1e-4


@dataclasses.dataclass
class Row:
  """One compared output."""
  case: str
  output: str
  max_abs: float
  rel: float
  passed: bool
  note: str = ''


def _nhwc(x: np.ndarray) -> np.ndarray:
  """NCHW (or [B, T, C, H, W]) -> channels last."""
  return np.moveaxis(np.asarray(x, np.float32), -3, -1)


def _compare(case: str, name: str, ours: Any, ref: np.ndarray, rtol: float) -> Row:
  ours = np.asarray(ours, np.float64)
  ref = np.asarray(ref, np.float64)
  if ours.shape != ref.shape:
    return Row(case, name, float('nan'), float('nan'), False,
               f'shape {ours.shape} != reference {ref.shape}')
  diff = ours - ref
  max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
  ref_norm = float(np.linalg.norm(ref))
  diff_norm = float(np.linalg.norm(diff))
  rel = diff_norm / ref_norm if ref_norm > 0 else (0.0 if diff_norm == 0 else float('inf'))
  return Row(case, name, max_abs, rel, bool(rel <= rtol))


def _sequential_generator(case: dict, case_dir: pathlib.Path, io: dict) -> dict[str, Any]:
  config, variables = original_checkpoint.import_checkpoint_dir(case_dir, case.get('which_epoch',
                                                                            'latest'))
  g = config.model.generator
  model = builders.generator_from_config(config)
  n = g.n_scales_spatial
  conds = layers.pyramid(jnp.asarray(_nhwc(io['real_A'])), n)
  prevs = layers.pyramid(jnp.asarray(_nhwc(io['fake_B_prev'])), n)
  masks = None
  if g.fg:
    masks = [generator_lib.fg_mask_from_labels(c[:, -1], g.fg_labels) for c in conds]
  outputs = model.apply(variables['generator'], conds, prevs, masks,
                        bool(case.get('use_raw_only', False)))
  ours = {}
  names = dict(fake_B='fake', fake_B_raw='raw', flow='flow', weight='weight')
  for s, out in enumerate(outputs):
    for ref_name, key in names.items():
      if out[key] is not None:
        ours[f'scale{s}_{ref_name}'] = out[key]
    if masks is not None:
      ours[f'fg_mask_scale{s}'] = masks[s]
  return ours


def _single_image_generator(case: dict, case_dir: pathlib.Path, io: dict) -> dict[str, Any]:
  options = original_options.read_opt_txt(case_dir / 'opt.txt')
  if 'netG' in case:
    options['netG'] = case['netG']
  files = case.get('checkpoint_files') or ['latest_net_G.pth']
  config, variables = original_checkpoint.import_state_dicts(
      {'G': original_checkpoint.read_state_dict(case_dir / files[0])}, options)
  model = builders.first_frame_generator_from_config(config)
  inputs = [jnp.asarray(_nhwc(io['input']))]
  if config.first_frame.net.endswith('_with_features'):  # Global_with_z / Local_with_z: (x, z)
    if 'feat' not in io:
      raise ValueError(f"netG {config.first_frame.net!r} needs the feature map z as io 'feat' "
                       '[B, feat_num, H, W]')
    inputs.append(jnp.asarray(_nhwc(io['feat'])))
  return {'output': model.apply(variables['first_frame_generator'], *inputs)}


def _multiscale_discriminator(case: dict, case_dir: pathlib.Path, io: dict) -> dict[str, Any]:
  from vid2vid_jax.models import discriminator as disc_lib  # pylint: disable=g-import-not-at-top
  files = case.get('checkpoint_files') or ['latest_net_D.pth']
  num_d, n_layers = int(case['num_D']), int(case['n_layers_D'])
  interm = bool(case.get('getIntermFeat', True))
  variables = original_checkpoint.discriminator_variables(
      original_checkpoint.read_state_dict(case_dir / files[0]), input_nc=int(case['input_nc']),
      ndf=int(case['ndf']), n_layers=n_layers, num_D=num_d, norm=case['norm'],
      intermediate_features=interm)
  model = disc_lib.MultiscaleDiscriminator(int(case['ndf']), n_layers, num_d, case['norm'])
  feats = {k: model.apply(variables, jnp.asarray(_nhwc(io[k]))) for k in ('real', 'fake')}
  ours = {}
  for kind, per_scale in feats.items():
    for i, layer_feats in enumerate(per_scale):
      for j, f in enumerate(layer_feats):
        ours[f'pred_{kind}_D{i}_layer{j}'] = f
      if not interm:
        ours[f'pred_{kind}_D{i}'] = layer_feats[-1]
  # LSGAN always, summed over scales (docs/quirks.md#gan-mode, docs/quirks.md#gan-scale-sum).
  mse = lambda preds, target: sum(jnp.mean((p[-1] - target) ** 2) for p in preds)
  ours['loss_D_real'] = mse(feats['real'], 1.0)
  ours['loss_D_fake'] = mse(feats['fake'], 0.0)
  ours['loss_G_gan'] = mse(feats['fake'], 1.0)
  weight = (1.0 / num_d) * (4.0 / (n_layers + 1))
  ours['loss_G_feat_unweighted_by_lambda'] = sum(
      weight * jnp.mean(jnp.abs(f - r))
      for fs, rs in zip(feats['fake'], feats['real']) for f, r in zip(fs[:-1], rs[:-1]))
  return ours


def _warp(case: dict, case_dir: pathlib.Path, io: dict) -> dict[str, Any]:
  del case, case_dir
  return {'warped': warp_lib.warp(jnp.asarray(_nhwc(io['image'])), jnp.asarray(_nhwc(io['flow'])))}


_RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    'generator_sequential': _sequential_generator,
    'generator_single_image': _single_image_generator,
    'discriminator_multiscale': _multiscale_discriminator,
    'warp': _warp,
}
_INPUTS = {
    'generator_sequential': ('real_A', 'fake_B_prev'),
    'generator_single_image': ('input', 'feat'),
    'discriminator_multiscale': ('real', 'fake'),
    'warp': ('image', 'flow'),
}


def run_case(case: dict, fixture_dir: pathlib.Path, rtol: float = DEFAULT_RTOL) -> list[Row]:
  """Runs one manifest case; returns one Row per stored output (a failing Row on error)."""
  name = case.get('name', '?')
  kind = case.get('kind')
  if kind not in _RUNNERS:
    return [Row(name, '-', float('nan'), float('nan'), False, f'unsupported kind {kind!r}')]
  case_dir = fixture_dir / case.get('dir', name)
  try:
    with np.load(case_dir / 'io.npz') as npz:
      io = {k: npz[k] for k in npz.files}
    with jax.default_matmul_precision('highest'):
      ours = _RUNNERS[kind](case, case_dir, io)
      ours = jax.device_get(ours)
  except Exception as e:  # pylint: disable=broad-except
    return [Row(name, '<error>', float('nan'), float('nan'), False,
                f'{type(e).__name__}: {e}'.splitlines()[0][:200])]
  rows = []
  for key in sorted(k for k in io if k not in _INPUTS[kind]):
    ref = io[key]
    if key not in ours:
      rows.append(Row(name, key, float('nan'), float('nan'), False, 'not produced'))
      continue
    out = np.asarray(ours[key])
    if ref.ndim == 4 and out.ndim == 4:
      ref = _nhwc(ref)
    rows.append(_compare(name, key, out, ref, rtol))
  if not rows:
    rows.append(Row(name, '-', float('nan'), float('nan'), False, 'no outputs stored'))
  return rows


def run_parity(fixture_dir: str | pathlib.Path, rtol: float = DEFAULT_RTOL,
               cases: Sequence[str] | None = None) -> list[Row]:
  """Runs every case of ``fixture_dir/manifest.json`` (or only ``cases``); returns the rows."""
  fixture_dir = pathlib.Path(fixture_dir)
  manifest = json.loads((fixture_dir / 'manifest.json').read_text())
  rows = []
  for case in manifest['cases']:
    if cases is None or case.get('name') in cases:
      rows.extend(run_case(case, fixture_dir, rtol))
  return rows


def format_table(rows: Sequence[Row], rtol: float) -> str:
  """The rows as a fixed-width text table plus a summary line."""
  width_case = max([len('case')] + [len(r.case) for r in rows])
  width_out = max([len('output')] + [len(r.output) for r in rows])
  lines = [f'{"case":<{width_case}}  {"output":<{width_out}}  {"max abs err":>11}  '
           f'{"rel err":>9}  result']
  for r in rows:
    line = (f'{r.case:<{width_case}}  {r.output:<{width_out}}  {r.max_abs:>11.3e}  '
            f'{r.rel:>9.2e}  {"pass" if r.passed else "FAIL"}')
    lines.append(line + (f'  ({r.note})' if r.note else ''))
  n_fail = sum(not r.passed for r in rows)
  lines.append(f'{len(rows) - n_fail}/{len(rows)} outputs pass (relative error <= {rtol:g})')
  return '\n'.join(lines)


def _define_flags() -> None:
  """The CLI's flags (defined only when run as a program: tools share flag names)."""
  flags.DEFINE_float('rtol', DEFAULT_RTOL, 'Pass if ||ours - ref|| / ||ref|| <= rtol.')
  flags.DEFINE_list('cases', None, 'Only these case names (default: all).')


def main(argv: Sequence[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError('usage: python -m vid2vid_jax.tools.network_parity DIR')
  rows = run_parity(argv[1], flags.FLAGS.rtol, flags.FLAGS.cases)
  print(format_table(rows, flags.FLAGS.rtol))
  sys.exit(0 if rows and all(r.passed for r in rows) else 1)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
