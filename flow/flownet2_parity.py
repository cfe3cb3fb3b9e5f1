"""Stage-by-stage parity of our FlowNet2 with the original, on a folder of reference fixtures.

  python -m flow.flownet2_parity ../shared/fixtures/flownet2_reference [--only case_1,correlation]
  python -m flow.flownet2_parity DIR --float64     # semantics check against the float64 references

The folder has the layout of ``fixtures/flownet2_reference`` (see its README): the weights are
rebuilt from ``param_shapes.json`` + ``weights_recipe.md`` (any seed), every ``case_*_io.npz``
is replayed through FlowNet2 (any batch size and size that is a multiple of 64) and each stored
stage is compared; ``correlation_io.npz``, ``resample2d_io.npz``, ``channelnorm_io.npz`` and
``vid2vid_wrapper_io.npz`` check the layers and vid2vid's wrapper. Fixtures are NCHW; they are
transposed to NHWC at this boundary.

Pass criteria, float32 (errors are max |ours - ref|, "rel" divides by std(ref)):
* network / wrapper stages: rel <= 1e-3 (the fixture README's bound; float32 noise is ~1e-5);
* final flows (``flow``, wrapper ``*_flow``): additionally max abs err <= 1e-3 px;
* single layers: rel <= 1e-4 (a few ulps are ~1e-6);
* confidence masks: max abs err <= 1e-5 (rounding of the resize), unless the binary mask
  flips, which is accepted only at pixels whose reference squared error is within 1e-4 of the
  0.02 threshold.
With ``--float64`` stages that have a float64 reference (``<key>__f64``, ``*_float64``) must
match to rel <= 1e-8; the others are held to the float32 criteria.

Exit status 0 when every stage passes, 1 otherwise.
"""

import argparse
import dataclasses
import functools
import glob
import os
import sys
from typing import Any, Iterable, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from flow import api
from flow import correlation as correlation_lib
from flow import convert_flownet2
from flow import layers
from flow import networks
from flow import weights as weights_lib

NET_REL_TOL = 1e-3
FLOW_ABS_TOL_PX = 1e-3
LAYER_REL_TOL = 1e-4
F64_REL_TOL = 1e-8
CONF_BORDERLINE = 1e-4
CONF_ABS_TOL = 1e-5  # the soft (resized) mask: rounding of the bilinear resize only.
# Keys of case_*_io.npz that are inputs or metadata, not stages.
_CASE_META = ('images', 'gt_motion_flow', 'weights_seed', 'image_seed')


@dataclasses.dataclass
class Row:
  """One line of the parity table."""
  stage: str
  max_abs: float
  rel: float
  tolerance: str
  passed: bool
  note: str = ''


def _nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
  return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def _nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
  return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


def _errors(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
  ours = np.asarray(ours, np.float64)
  ref = np.asarray(ref, np.float64)
  if ours.shape != ref.shape:
    return float('inf'), float('inf')
  max_abs = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
  scale = float(np.std(ref))
  if scale == 0.0:
    scale = max(float(np.max(np.abs(ref))), 1e-30)
  return max_abs, max_abs / scale


def _compare(stage: str, ours: np.ndarray, ref: np.ndarray, rel_tol: float,
             abs_tol: float | None = None, note: str = '') -> Row:
  max_abs, rel = _errors(ours, ref)
  passed = rel <= rel_tol and (abs_tol is None or max_abs <= abs_tol)
  tol = f'rel<={rel_tol:g}' + (f', abs<={abs_tol:g}' if abs_tol is not None else '')
  if np.shape(ours) != np.shape(ref):
    note = f'shape {np.shape(ours)} != ref {np.shape(ref)}'
  return Row(stage, max_abs, rel, tol, passed, note)


def _pick_ref(data: Any, key: str, float64: bool, f64_key: str) -> tuple[np.ndarray, bool]:
  """The reference for ``key``: its float64 version in float64 mode when stored."""
  if float64 and f64_key in data.files:
    return data[f64_key], True
  return data[key], False


def _compare_ref(stage: str, ours: np.ndarray, data: Any, key: str, f64_key: str,
                 float64: bool, rel_tol: float, abs_tol: float | None = None) -> Row:
  ref, is_f64 = _pick_ref(data, key, float64, f64_key)
  if is_f64:
    return _compare(stage, ours, ref, F64_REL_TOL, note='vs float64 ref')
  return _compare(stage, ours, ref, rel_tol, abs_tol)


# ------------------------------------------------------------------------------ layers


def check_correlation(path: str, float64: bool = False) -> list[Row]:
  """correlation_io.npz: the layer with the stored parameters, before and after LeakyReLU."""
  data = np.load(path)
  dtype = np.float64 if float64 else np.float32
  params = {k: int(data[k]) for k in ('pad_size', 'kernel_size', 'max_displacement', 'stride1',
                                      'stride2')}
  f1 = _nchw_to_nhwc(data['input1']).astype(dtype)
  f2 = _nchw_to_nhwc(data['input2']).astype(dtype)
  out = np.asarray(jax.jit(functools.partial(correlation_lib.correlation, **params))(f1, f2))
  rows = [_compare_ref('correlation/output', _nhwc_to_nchw(out), data, 'output',
                       'output_float64', float64, LAYER_REL_TOL)]
  if 'output_leaky_relu' in data.files:
    leaky = np.where(out >= 0, out, out * layers.LEAKY_SLOPE)
    rows.append(_compare('correlation/output_leaky_relu', _nhwc_to_nchw(leaky),
                         data['output_leaky_relu'], LAYER_REL_TOL))
  return rows


def check_resample2d(path: str, float64: bool = False) -> list[Row]:
  """resample2d_io.npz: bilinear (FlowNet2's mode) and nearest."""
  data = np.load(path)
  dtype = np.float64 if float64 else np.float32
  image = _nchw_to_nhwc(data['input1']).astype(dtype)
  flow = _nchw_to_nhwc(data['input2']).astype(dtype)
  out = np.asarray(jax.jit(layers.resample2d)(image, flow))
  rows = [_compare_ref('resample2d/output', _nhwc_to_nchw(out), data, 'output', 'output_float64',
                       float64, LAYER_REL_TOL)]
  if 'output_nearest' in data.files:
    nearest = np.asarray(jax.jit(functools.partial(layers.resample2d, bilinear=False))(
        image, flow))
    rows.append(_compare('resample2d/output_nearest', _nhwc_to_nchw(nearest),
                         data['output_nearest'], LAYER_REL_TOL))
  return rows


def check_channelnorm(path: str, float64: bool = False) -> list[Row]:
  """channelnorm_io.npz: every ``input_<s>`` / ``output_<s>`` pair."""
  data = np.load(path)
  dtype = np.float64 if float64 else np.float32
  rows = []
  for key in sorted(k for k in data.files if k.startswith('input_')):
    suffix = key[len('input_'):]
    out = np.asarray(jax.jit(layers.channel_norm)(_nchw_to_nhwc(data[key]).astype(dtype)))
    rows.append(_compare_ref(f'channelnorm/output_{suffix}', _nhwc_to_nchw(out), data,
                             f'output_{suffix}', f'output_{suffix}_float64', float64,
                             LAYER_REL_TOL))
  return rows


# ------------------------------------------------------------------------------ networks


@functools.partial(jax.jit, static_argnames=('rgb_max', 'dtype', 'precision'))
def _jit_flownet2_stages(variables, img0, img1, *, rgb_max: float, dtype: str, precision: str):
  model = networks.FlowNet2(rgb_max=rgb_max, dtype=jnp.dtype(dtype), precision=precision)
  flow, state = model.apply(variables, img0, img1, mutable=['intermediates'])
  stages = {}
  for name, value in state['intermediates'].items():
    if isinstance(value, tuple):
      stages[name] = value[0]
    else:  # a submodule's sown values (FlowNetC's conv3a, corr, ...)
      stages.update({k: v[0] for k, v in value.items()})
  stages['flow'] = flow
  return stages


_jit_wrapper_stages = jax.jit(
    api.flow_and_conf_stages,
    static_argnames=('rgb_max', 'div_flow', 'dtype', 'precision', 'conf_threshold'))


def _infer_rgb_max(data: Any) -> float:
  """rgb_max of a case from ``x_normalized = (images - rgb_mean) / rgb_max`` (255 officially)."""
  images = data['images'].astype(np.float64)  # (B, 3, 2, H, W)
  centred = images - data['rgb_mean'].astype(np.float64)[:, :, None, None, None]
  x = data['x_normalized'].astype(np.float64)  # (B, 6, H, W)
  x = np.stack([x[:, 0:3], x[:, 3:6]], axis=2)
  ratio = float(np.sum(np.abs(centred)) / max(np.sum(np.abs(x)), 1e-30))
  rounded = float(np.round(ratio))
  return rounded if abs(ratio - rounded) <= 1e-3 * ratio else ratio


def check_case(path: str, variables: dict[str, Any], seed: int, float64: bool = False,
               precision: str = 'highest') -> list[Row]:
  """A ``case_*_io.npz``: replays ``images`` and compares every stored stage."""
  data = np.load(path)
  name = os.path.basename(path)[:-len('_io.npz')]
  rows = []
  if 'weights_seed' in data.files and int(data['weights_seed']) != seed:
    return [Row(f'{name}/weights_seed', float('nan'), float('nan'), f'== {seed}', False,
                f'case made with seed {int(data["weights_seed"])}, folder seed {seed}')]
  dtype = 'float64' if float64 else 'float32'
  images = data['images'].astype(dtype)  # (B, 3, 2, H, W)
  img0 = images[:, :, 0].transpose(0, 2, 3, 1)
  img1 = images[:, :, 1].transpose(0, 2, 3, 1)
  rgb_max = _infer_rgb_max(data) if 'x_normalized' in data.files else 255.0
  stages = _jit_flownet2_stages(variables, img0, img1, rgb_max=rgb_max, dtype=dtype,
                                precision=precision)
  stages = jax.tree_util.tree_map(np.asarray, stages)
  for key in data.files:
    if key in _CASE_META or key.endswith('__f64'):
      continue
    stage = f'{name}/{key}'
    if key not in stages:
      rows.append(Row(stage, float('nan'), float('nan'), '-', True, 'not produced; skipped'))
      continue
    ours = stages[key]
    if ours.ndim == 4:
      ours = _nhwc_to_nchw(ours)
    abs_tol = FLOW_ABS_TOL_PX if key == 'flow' else None
    rows.append(_compare_ref(stage, ours, data, key, key + '__f64', float64, NET_REL_TOL, abs_tol))
  return rows


def _check_conf(stage: str, ours: np.ndarray, ref: np.ndarray, ours_sq: np.ndarray,
                ref_sq: np.ndarray, threshold: float) -> Row:
  """Confidence: exact, except flips at pixels whose squared error is at the threshold."""
  max_abs, rel = _errors(ours, ref)
  flips = (ours_sq < threshold) != (ref_sq < threshold)
  borderline = np.abs(ref_sq.astype(np.float64) - threshold) <= CONF_BORDERLINE
  explained = bool(np.all(borderline[flips]))
  n_flips = int(flips.sum())
  if np.shape(ours) != np.shape(ref):
    passed, note = False, f'shape {np.shape(ours)} != ref {np.shape(ref)}'
  elif n_flips:
    passed = explained
    note = f'{n_flips} threshold flips' + (' (all borderline)' if explained else '')
  else:
    passed, note = max_abs <= CONF_ABS_TOL, ''
  return Row(stage, max_abs, rel, f'abs<={CONF_ABS_TOL:g} | borderline', passed, note)


def check_wrapper(path: str, variables: dict[str, Any], float64: bool = False,
                  precision: str = 'highest') -> list[Row]:
  """vid2vid_wrapper_io.npz: ``compute_flow_and_conf`` for every ``<prefix>_frame_cur``."""
  data = np.load(path)
  dtype = np.float64 if float64 else np.float32
  rows = []
  prefixes = sorted(k[:-len('_frame_cur')] for k in data.files if k.endswith('_frame_cur'))
  for prefix in prefixes:
    cur = _nchw_to_nhwc(data[f'{prefix}_frame_cur']).astype(dtype)
    prev = _nchw_to_nhwc(data[f'{prefix}_frame_prev']).astype(dtype)
    stages = _jit_wrapper_stages(variables, cur, prev, rgb_max=1.0, div_flow=20.0,
                                 dtype=jnp.dtype(dtype), precision=precision,
                                 conf_threshold=api.CONF_THRESHOLD)
    stages = {k: _nhwc_to_nchw(np.asarray(v)) for k, v in stages.items()}
    for key in ('flownet_input_cur', 'flownet_input_prev', 'flownet2_flow', 'warped_prev',
                'sq_error', 'flow'):
      ref_key = f'{prefix}_{key}'
      if ref_key in data.files:
        abs_tol = FLOW_ABS_TOL_PX if key in ('flow', 'flownet2_flow') else None
        rows.append(_compare(f'wrapper/{ref_key}', stages[key], data[ref_key], NET_REL_TOL,
                             abs_tol))
    if f'{prefix}_conf' in data.files:
      ref_sq = data.get(f'{prefix}_sq_error', stages['sq_error'])
      rows.append(_check_conf(f'wrapper/{prefix}_conf', stages['conf'], data[f'{prefix}_conf'],
                              stages['sq_error'], ref_sq, api.CONF_THRESHOLD))
  return rows


# ------------------------------------------------------------------------------ driver


GROUPS = ('weights', 'correlation', 'resample2d', 'channelnorm', 'cases', 'vid2vid_wrapper')


def run_parity(fixture_dir: str, only: Iterable[str] | None = None, float64: bool = False,
               precision: str = 'highest') -> tuple[list[Row], bool]:
  """Checks every stage in ``fixture_dir``.

  Args:
    fixture_dir: a folder in the flownet2_reference format.
    only: names to restrict to: groups (``weights``, ``correlation``, ``resample2d``,
      ``channelnorm``, ``cases``, ``vid2vid_wrapper``) or case names (``case_0``).
    float64: compare against the float64 references (needs ``jax_enable_x64``).
    precision: conv precision (``highest``: no TF32 on GPUs).

  Returns:
    (rows, all_passed).

  Raises:
    ValueError: the folder is missing, or float64 without x64 enabled.
  """
  if not os.path.isdir(fixture_dir):
    raise ValueError(f'{fixture_dir}: not a directory')
  if float64 and not jax.config.jax_enable_x64:
    raise ValueError('float64 parity needs jax_enable_x64 (the CLI flag --float64 sets it)')
  only = set(only) if only else None
  cases = sorted(glob.glob(os.path.join(fixture_dir, 'case_*_io.npz')))

  def wanted(*names: str) -> bool:
    return only is None or bool(only & set(names))

  rows = []
  for group, fn in (('correlation', check_correlation), ('resample2d', check_resample2d),
                    ('channelnorm', check_channelnorm)):
    path = os.path.join(fixture_dir, f'{group}_io.npz')
    if wanted(group) and os.path.exists(path):
      rows += fn(path, float64=float64)

  wrapper_path = os.path.join(fixture_dir, 'vid2vid_wrapper_io.npz')
  case_names = [os.path.basename(c)[:-len('_io.npz')] for c in cases]
  need_net = [c for c, n in zip(cases, case_names) if wanted('cases', n)]
  need_wrapper = wanted('vid2vid_wrapper') and os.path.exists(wrapper_path)
  if wanted('weights') or need_net or need_wrapper:
    try:
      seed = weights_lib.read_seed(fixture_dir)
      state_dict = weights_lib.fixture_state_dict(fixture_dir, verify=True)
      rows.append(Row('weights/recipe_checks', 0.0, 0.0, 'bit-exact', True,
                      f'seed {seed}, {len(state_dict)} tensors'))
    except ValueError as e:
      rows.append(Row('weights/recipe_checks', float('nan'), float('nan'), 'bit-exact', False,
                      str(e)))
      return rows, False
    variables = convert_flownet2.state_dict_to_variables(state_dict)
    del state_dict
    dtype = jnp.float64 if float64 else jnp.float32
    variables = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), variables)
    for path in need_net:
      logging.info('parity: %s', path)
      rows += check_case(path, variables, seed, float64=float64, precision=precision)
    if need_wrapper:
      logging.info('parity: %s', wrapper_path)
      rows += check_wrapper(wrapper_path, variables, float64=float64, precision=precision)
  if not rows:
    rows.append(Row('(nothing checked)', float('nan'), float('nan'), '-', False,
                    f'no fixture files matched in {fixture_dir}'))
  return rows, all(r.passed for r in rows)


def format_table(rows: Sequence[Row]) -> str:
  """The rows as a fixed-width text table with a summary line."""
  width = max([len(r.stage) for r in rows] + [5])
  lines = [f'{"stage":<{width}}  {"max abs err":>11}  {"rel err":>9}  {"tolerance":<24}  result',
           '-' * (width + 62)]
  for r in rows:
    result = 'PASS' if r.passed else 'FAIL'
    lines.append(f'{r.stage:<{width}}  {r.max_abs:>11.3e}  {r.rel:>9.2e}  {r.tolerance:<24}  '
                 f'{result}{"  " + r.note if r.note else ""}')
  failed = [r for r in rows if not r.passed]
  lines.append('-' * (width + 62))
  lines.append(f'{"FAIL" if failed else "PASS"}: {len(rows) - len(failed)}/{len(rows)} stages '
               'pass' + (f' (failed: {", ".join(r.stage for r in failed)})' if failed else ''))
  return '\n'.join(lines) + '\n'


def main(argv: Sequence[str] | None = None) -> int:
  """CLI entry point; returns the exit status."""
  parser = argparse.ArgumentParser(prog='python -m flow.flownet2_parity', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('fixture_dir', help='folder in the flownet2_reference format')
  parser.add_argument('--only', default='',
                      help=f'comma-separated groups ({", ".join(GROUPS)}) or case names')
  parser.add_argument('--float64', action='store_true',
                      help='enable jax_enable_x64 and compare with the float64 references')
  parser.add_argument('--precision', default='highest', choices=('default', 'high', 'highest'),
                      help='conv precision (default allows TF32 on GPUs)')
  args = parser.parse_args(argv)
  if args.float64:
    jax.config.update('jax_enable_x64', True)
  logging.set_verbosity(logging.INFO)
  only = [s.strip() for s in args.only.split(',') if s.strip()]
  try:
    rows, ok = run_parity(args.fixture_dir, only=only, float64=args.float64,
                          precision=args.precision)
  except ValueError as e:
    sys.stderr.write(f'parity: {e}\n')
    return 1
  sys.stdout.write(f'FlowNet2 parity: {os.path.abspath(args.fixture_dir)} '
                   f'({"float64" if args.float64 else "float32"}, device '
                   f'{jax.devices()[0].platform}, precision {args.precision})\n')
  sys.stdout.write(format_table(rows))
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
