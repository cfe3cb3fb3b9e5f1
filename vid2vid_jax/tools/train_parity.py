"""Training parity: our `steps.train_step` against one recorded iteration of the original.

Usage: python -m vid2vid_jax.tools.train_parity DIR [--rtol 1e-4] [--update_rtol 1e-3]
         [--diverged_rtol 5e-2] [--cases a,b] [--only_failures]

DIR holds case folders in the format of shared/fixtures/vid2vid_training_reference (see its
README): opt.txt, the initial ``latest_net_*.pth``, ``vgg19.pth``, inputs.npz, outputs.npz and
losses.json. For every case the tool

  * builds the config from opt.txt and the networks from the ``.pth`` files through our importer
    (`original_checkpoint`, `vgg.load_vgg19_weights`), and sets the ``config.compat`` options that
    give the original's training behaviour (`parity_config`, docs/training_parity.md);
  * feeds every recorded inner pass ``step{k}`` as one chunk to our own jitted `train_step`
    (no re-implementation), carrying our `SequenceState` from pass to pass as training does.
    Label maps are encoded by our input pipeline's street domain (one-hot + instance edges).
    The recorded reference flows stand in for FlowNet2 as in the original run: the consecutive
    ones (``flow_ref_skip1``) as the dataset flow source (chunk 'flow_gt' / 'conf_gt'), and
    every flow the step asks for between the skipped frames of temporal scale >= 1
    (``flow_ref_skip3`` ...) through a look-up ``flow_fn`` that, like the original's stand-in,
    recognises the two frames by exact equality with the clip;
  * compares the generator outputs, the conditioning and previous frames G received, the
    reference flows, every loss term under the original's name (G_VGG, G_GAN, ..., D_T_fake1)
    and the totals loss_G, loss_D, loss_D_T{s} at relative tolerance ``--rtol``; then, after the
    optimizer steps, every recorded per-tensor update norm ||after - before|| and every
    recorded updated tensor at ``--update_rtol``.

Relative error: ||ours - theirs|| / ||theirs|| (absolute error where theirs is 0). Loss terms
of ours that the original did not record (e.g. a temporal scale without a window) must be 0.

Adam and eps. The fixtures were made with modern PyTorch Adam: the update is
lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), eps added after bias correction. That is what
optax.adam (eps=1e-8, eps_root=0), and so our training, computes; no compat option is involved.
PyTorch 0.4, which the original targeted, added eps before bias correction (an effective eps of
~3e-7 at step 1); that only changes elements whose |grad| is below ~1e-6.

Near-zero gradients (sign steps). In a net's first Adam step every element moves by about
lr * g / (|g| + eps), i.e. by lr in the direction of its gradient's sign, however small g is. So
elements whose gradient is at rounding level move in a direction that two correct float32
programs do not agree on:
  * a conv bias that feeds a batch or instance norm has an exactly zero gradient in exact
    arithmetic; these tensors (`_pre_norm_biases`, note 'pre-norm bias') are checked for what is
    determined, |after - before| <= lr in a first step ('bound' rows); their update norms are
    printed but not judged (they affect no output);
  * other elements with small gradients: PyTorch's float32 conv gradients on CPU are off by up
    to ~1% of a tensor's largest element (measured against float64, docs/training_parity.md),
    ours by ~1e-7. In a net's first step an element where both moved by ~lr in opposite
    directions and our |grad| <= SIGN_STEP_GRAD * max|grad| is left out of the updated-value
    comparison (counted in the note). Update norms are insensitive to these signs.
After the first update (with or without such elements: tiny gradients also change Adam's
first step in magnitude) the two runs' parameters differ and the runs drift apart: our own two
float32 conv implementations (config `model.conv_impl`: 'tuned' | 'plain') differ from each other
as much as ours from the original (street_2scale_temporal2 fake_B: 3.1e-2 in step1, 2.1e-1 in
step2, 3.6e-1 in step3, against 3.2e-2, 2.1e-1, 3.6e-1 from the original). So rows that depend
on parameters updated since are judged at ``--diverged_rtol`` in the next pass only (update
norms and values only for a net's first Adam step) and printed, not judged, after that; rows
that depend on no updated parameter (inputs, step1's previous frames, D_T_real of a temporal D
not yet stepped) keep the strict tolerances.

Exit status: 0 when every row passes, 1 when any fails or a case cannot be run, 2 (with one
line on stderr) when DIR is not a folder of cases.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import pathlib
import re
import sys
from typing import Any

from absl import app
from absl import flags
import jax
import numpy as np

from vid2vid_jax import original_checkpoint
from vid2vid_jax import schedule as schedule_lib
from vid2vid_jax import train_state
from vid2vid_jax.tools import train_replay

DEFAULT_RTOL = 1e-4
DEFAULT_UPDATE_RTOL = 1e-3
# After a pass with sign-step differences the two runs' parameters differ (module docstring).
DEFAULT_DIVERGED_RTOL = 5e-2
# Largest |grad| / max|grad| of a tensor at which a first Adam step may differ in sign.
SIGN_STEP_GRAD = 2e-2

# Our metric key -> the original's loss name ({s}: temporal scale).
LOSS_NAMES = {
    'g/vgg': 'G_VGG', 'g/gan': 'G_GAN', 'g/gan_feat': 'G_GAN_Feat', 'g/fake_warp': 'G_Warp',
    'g/flow': 'F_Flow', 'g/warp': 'F_Warp', 'g/mask': 'W', 'd/real': 'D_real',
    'd/fake': 'D_fake', 'g/face_gan': 'G_f_GAN', 'g/face_gan_feat': 'G_f_GAN_Feat',
    'd_face/real': 'D_f_real', 'd_face/fake': 'D_f_fake', 'g/total': 'loss_G',
    'd/total': 'loss_D', 'g/t_gan_{s}': 'G_T_GAN{s}', 'g/t_gan_feat_{s}': 'G_T_GAN_Feat{s}',
    'd_t{s}/real': 'D_T_real{s}', 'd_t{s}/fake': 'D_T_fake{s}', 'd_t{s}/total': 'loss_D_T{s}',
}
# Terms the original records that are always 0 and we do not compute.
ZERO_TERMS = ('G_T_Warp{s}',)
# Recorded generator outputs -> our step's summary images.
OUTPUT_NAMES = {'fake_B': 'fake', 'fake_B_raw': 'raw', 'flow': 'flow', 'weight': 'weight'}


@dataclasses.dataclass
class Row:
  """One compared quantity of one inner pass."""
  case: str
  step: str
  quantity: str
  ours: float
  theirs: float
  rel: float
  passed: bool
  note: str = ''
  counted: bool = True  # False: printed for information, not part of the verdict

  @property
  def kind(self) -> str:
    """'output', 'input', 'loss', 'update_norm', 'after', 'bound' or 'error'."""
    return self.quantity.split('/', 1)[0]


def _rel(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float, float]:
  """(||ours||, ||theirs||, relative error; absolute where theirs is 0), in float64."""
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  n_ours, n_theirs = float(np.linalg.norm(ours)), float(np.linalg.norm(theirs))
  diff = float(np.linalg.norm(ours - theirs))
  return n_ours, n_theirs, diff / n_theirs if n_theirs > 0 else diff


def _compare(case: str, step: str, quantity: str, ours: Any, theirs: Any, rtol: float,
             note: str = '', counted: bool = True) -> Row:
  ours, theirs = np.asarray(ours), np.asarray(theirs)
  if ours.shape != theirs.shape:
    return Row(case, step, quantity, float('nan'), float('nan'), float('nan'), False,
               f'shape {ours.shape} != reference {theirs.shape}')
  n_ours, n_theirs, rel = _rel(ours, theirs)
  if ours.ndim == 0:
    n_ours, n_theirs = float(ours), float(theirs)
  return Row(case, step, quantity, n_ours, n_theirs, rel, bool(rel <= rtol), note, counted)


# ----------------------------------------------------------------------------- the case


def _network(params: Mapping[str, Any], tag: str) -> Any:
  """The params of one original network tag (G0.., D, D_f, D_T{s}) inside train params."""
  if tag.startswith('G'):
    return params['g']
  if tag == 'D':
    return params['d']['image']
  if tag == 'D_f':
    return params['d']['face']
  return params['d_t'][tag[3:]]


def _pre_norm_biases(case_dir: pathlib.Path, tags: Sequence[str]) -> set[tuple[str, str]]:
  """(tag, original key) of every conv bias that feeds a norm layer, whose gradient is 0 up to
  rounding: in the original's Sequentials, bias 'P.n.bias' when module 'P.{n+1}' has running
  statistics (batch norm, and instance norm with track_running_stats, as the original builds)."""
  out = set()
  for tag in tags:
    keys = original_checkpoint.read_state_dict(case_dir / f'latest_net_{tag}.pth')
    for key in keys:
      m = re.fullmatch(r'(.*)\.(\d+)\.bias', key)
      if m and f'{m.group(1)}.{int(m.group(2)) + 1}.running_mean' in keys:
        out.add((tag, key))
  return out


def _loss_rows(case: str, step: str, scalars: Mapping[str, Any], recorded: Mapping[str, Any],
               n_scales_temporal: int, rtol: float) -> list[Row]:
  names = {}
  for ours, theirs in LOSS_NAMES.items():
    for s in range(n_scales_temporal) if '{s}' in ours else (None,):
      names[ours.format(s=s)] = theirs.format(s=s)
  zero = {z.format(s=s) for z in ZERO_TERMS for s in range(n_scales_temporal)}
  rows = []
  for ours, theirs in names.items():
    key = f'{step}/loss/{theirs}'
    value = float(scalars[ours]) if ours in scalars else 0.0
    if key in recorded:
      rows.append(_compare(case, step, f'loss/{theirs}', value, recorded[key], rtol))
    elif value != 0.0:
      rows.append(Row(case, step, f'loss/{theirs}', value, float('nan'), float('inf'), False,
                      f'ours {ours} is not 0 but the original has no such term here'))
  for theirs in sorted(zero):
    key = f'{step}/loss/{theirs}'
    if key in recorded:
      rows.append(_compare(case, step, f'loss/{theirs}', 0.0, recorded[key], rtol,
                           'always 0 in the original; not computed by us'))
  return rows


def _tag_group(tag: str) -> str:
  """The optimizer group of an original network tag."""
  if tag.startswith('G'):
    return 'g'
  return 'd' if tag in ('D', 'D_f') else f'd_t{tag[3:]}'


def _tag_in_group(tree: Any, tag: str) -> Any:
  """A net's part of its optimizer group's tree (D and D_f share the group 'd')."""
  if tag == 'D':
    return tree['image']
  if tag == 'D_f':
    return tree['face']
  return tree


def run_case(case_dir: pathlib.Path, rtol: float = DEFAULT_RTOL,
             update_rtol: float = DEFAULT_UPDATE_RTOL,
             diverged_rtol: float = DEFAULT_DIVERGED_RTOL) -> list[Row]:
  """Runs every recorded inner pass of one case through `train_step`; returns the rows."""
  name = case_dir.name
  try:
    case = train_replay.load_case(case_dir)
    with jax.default_matmul_precision('highest'):
      passes = train_replay.simulate(case)
    return compare(case, passes, rtol, update_rtol, diverged_rtol)
  except Exception as e:  # pylint: disable=broad-except
    return [Row(name, '-', 'error', float('nan'), float('nan'), float('nan'), False,
                f'{type(e).__name__}: {e}'.splitlines()[0][:300])]


def compare(case: train_replay.Case, passes: Sequence[train_replay.PassResult],
            rtol: float = DEFAULT_RTOL,
            update_rtol: float = DEFAULT_UPDATE_RTOL,
            diverged_rtol: float = DEFAULT_DIVERGED_RTOL) -> list[Row]:
  """The rows of every pass: ours (``passes``, from `train_replay.simulate`) against the
  recorded values.

  Before the first pass that updates parameters (module docstring) every row is checked at
  ``rtol`` / ``update_rtol``. In the pass after it, rows that depend on parameters updated
  since are checked at ``diverged_rtol``; in later passes such rows are printed but not judged.
  Rows that depend on no updated parameter (the inputs, the previous frames made before any
  update, D_T_real of a temporal D not stepped yet) keep the strict tolerance throughout.
  """
  out = case.outputs
  config = case.config
  names = original_checkpoint.parameter_names(config)
  pre_norm = _pre_norm_biases(case.path, sorted(names))
  n_temporal = config.model.discriminator.n_scales_temporal
  rates = schedule_lib.schedule_from_config(config).learning_rates(0)
  rows = []
  diverged = None  # the first pass whose updates held sign-step differences
  stepped = set()  # optimizer groups updated before the current pass
  for k, res in enumerate(passes):
    step = f'step{k}'
    loose = diverged is not None
    judged = loose and k == int(diverged[4:]) + 1  # the one pass the loose tolerance covers

    def add(row, depends=True, loose=loose, judged=judged):
      if depends and loose:
        if judged:
          row = _recheck(row, diverged_rtol, f'diverged since {diverged}')
        else:
          row = dataclasses.replace(
              row, counted=False, note=f'diverged since {diverged}, not judged'
              + (f'; {row.note}' if row.note else ''))
      rows.append(row)

    for s, prev in enumerate(res.prev_frames):
      key = f'{step}/fake_B_prev_last_pyr{s}'
      if key in case.inputs:  # made by pass k-1 with the parameters after pass k-2
        add(_compare(case.name, step, f'input/fake_B_prev_pyr{s}', prev,
                     train_replay.nhwc(case.inputs[key]), rtol), depends=k >= 2)
    add(_compare(case.name, step, 'input/real_A', res.cond,
                 train_replay.nhwc(out[f'{step}/real_A']), rtol), depends=False)
    if float(res.scalars['finite']) != 1.0:
      add(Row(case.name, step, 'finite', 0.0, 1.0, float('inf'), False,
              'non-finite loss or gradient: the update was skipped'), depends=False)
    add(_compare(case.name, step, 'input/flow_ref', res.images['flow_ref'],
                 train_replay.nhwc(out[f'{step}/flow_ref']), rtol), depends=False)
    for theirs, ours in OUTPUT_NAMES.items():
      if f'{step}/{theirs}' not in out:
        continue
      if ours not in res.images:
        add(Row(case.name, step, f'output/{theirs}', float('nan'), float('nan'), float('nan'),
                False, 'not produced'), depends=False)
        continue
      add(_compare(case.name, step, f'output/{theirs}', res.images[ours],
                   train_replay.nhwc(out[f'{step}/{theirs}']), rtol))
    for row in _loss_rows(case.name, step, res.scalars, out, n_temporal, rtol):
      scale = row.quantity[len('loss/D_T_real'):] if row.quantity.startswith('loss/D_T_real') \
          else None
      add(row, depends=scale is None or f'd_t{scale}' in stepped)
    update_rows, sign_steps = _update_rows(case, step, names, pre_norm, res, rates,
                                           update_rtol)
    for row, group in update_rows:
      if row.kind == 'bound':
        add(row, depends=False)
      elif loose and not res.first_step[group]:
        # A later Adam step divides by the root of accumulated squared gradients of both
        # passes: sign-step differences change it by up to ~10% per tensor (module docstring).
        rows.append(dataclasses.replace(
            row, counted=False, note=f'diverged since {diverged}: later Adam step, not judged'
            + (f'; {row.note}' if row.note else '')))
      else:
        add(row)
    updated_now = {g for g in res.first_step if _updated(res, g)}
    if diverged is None and (sign_steps or updated_now):
      diverged = step  # float32 runs drift apart after any update (module docstring)
    stepped |= updated_now
  return rows


def _updated(res: train_replay.PassResult, group: str) -> bool:
  before = jax.tree_util.tree_leaves(train_state.group_params(res.before, group))
  after = jax.tree_util.tree_leaves(train_state.group_params(res.after, group))
  return any(not np.array_equal(a, b) for a, b in zip(before, after))


def _recheck(row: Row, rtol: float, note: str) -> Row:
  """The row judged at a looser tolerance, with the reason in its note."""
  note = f'{note}: rtol {rtol:g}' + (f'; {row.note}' if row.note else '')
  passed = row.passed if not row.counted else bool(row.rel <= rtol)
  return dataclasses.replace(row, passed=passed, note=note)


def _leaf(tree: Any, path: tuple[str, ...]) -> np.ndarray:
  for p in path:
    tree = tree[p]
  return np.asarray(tree)


def _update_rows(case: train_replay.Case, step: str, names, pre_norm,
                 res: train_replay.PassResult, rates, rtol: float
                 ) -> tuple[list[tuple[Row, str]], int]:
  """(row, optimizer group) of every update norm, updated value and pre-norm-bias bound of one
  pass, and the number of sign-step differences found (see `_after_row`)."""
  rows = []
  n_sign = 0
  out = case.outputs
  for tag, keys in names.items():
    group = _tag_group(tag)
    rate = float(rates['d_t' if group.startswith('d_t') else group])
    grads = res.grads.get(group)
    for key, (path, layout) in sorted(keys.items()):
      noise = (tag, key) in pre_norm
      note = 'pre-norm bias' if noise else ''
      before = _leaf(_network(res.before, tag), path).astype(np.float64)
      after = _leaf(_network(res.after, tag), path).astype(np.float64)
      norm_key = f'{step}/update_norm/{tag}/{key}'
      if norm_key not in out:
        rows.append((Row(case.name, step, f'update_norm/{tag}/{key}', float('nan'),
                         float('nan'), float('nan'), False, 'no recorded update norm'), group))
      else:
        rows.append((_compare(case.name, step, f'update_norm/{tag}/{key}',
                              np.linalg.norm(after - before), out[norm_key], rtol, note,
                              counted=not noise), group))
      after_key = f'{step}/after/{tag}/{key}'
      if after_key in out and not noise:
        grad = None if grads is None else _leaf(_tag_in_group(grads, tag), path)
        row, n = _after_row(case.name, step, f'after/{tag}/{key}', before, after,
                            original_checkpoint.tensor_to_ours(out[after_key], layout), grad,
                            rate, rtol)
        rows.append((row, group))
        n_sign += n
      if noise and res.first_step[group]:
        # What is determined: a first Adam step moves every element by at most lr.
        moved = float(np.max(np.abs(after - before)))
        limit = rate * (1 + rtol)
        rows.append((Row(case.name, step, f'bound/{tag}/{key}', moved, limit, moved / limit,
                         moved <= limit, 'first Adam step: max |after - before| <= lr'), group))
  return rows, n_sign


def _after_row(case: str, step: str, quantity: str, before: np.ndarray, after: np.ndarray,
               ref: np.ndarray, grad: np.ndarray | None, rate: float, rtol: float
               ) -> tuple[Row, int]:
  """Updated values, allowing sign-step differences in a net's first Adam step.

  An element counts as a sign-step difference when both implementations moved it by about lr
  in opposite directions and our gradient there is below SIGN_STEP_GRAD times the tensor's
  largest; the relative error is then taken over the other elements.
  """
  if ref.shape != after.shape:
    return _compare(case, step, quantity, after, ref, rtol), 0
  n = 0
  keep = np.ones(ref.shape, bool)
  if grad is not None:
    ours_step, ref_step = after - before, ref.astype(np.float64) - before
    flipped = ((np.abs(after - ref) > rate) & (np.abs(ours_step) > 0.5 * rate)
               & (np.abs(ref_step) > 0.5 * rate) & (np.sign(ours_step) != np.sign(ref_step))
               & (np.abs(grad) <= SIGN_STEP_GRAD * np.max(np.abs(grad))))
    n = int(flipped.sum())
    keep = ~flipped
  n_ours, n_ref, _ = _rel(after, ref)
  diff = float(np.linalg.norm(np.where(keep, after - ref, 0.0)))
  rel = diff / n_ref if n_ref > 0 else diff
  note = ''
  if n:
    ratio = float(np.max(np.abs(grad)[~keep]) / np.max(np.abs(grad)))
    note = f'{n} sign-step element(s) left out, |grad| <= {ratio:.1e} of the largest'
  return Row(case, step, quantity, n_ours, n_ref, rel, bool(rel <= rtol), note), n


# ----------------------------------------------------------------------------- report


def run_train_parity(fixture_dir: str | pathlib.Path, rtol: float = DEFAULT_RTOL,
                     update_rtol: float = DEFAULT_UPDATE_RTOL,
                     diverged_rtol: float = DEFAULT_DIVERGED_RTOL,
                     cases: Sequence[str] | None = None) -> list[Row]:
  """Runs every case folder of ``fixture_dir`` (or only ``cases``); returns all rows.

  Raises:
    ValueError: ``fixture_dir`` is not a folder of cases, or a named case is missing.
  """
  found = train_replay.find_cases(fixture_dir)
  if cases is not None:
    missing = sorted(set(cases) - {p.name for p in found})
    if missing:
      raise ValueError(f'{fixture_dir}: no case(s) {missing}')
    found = [p for p in found if p.name in cases]
  rows = []
  for case_dir in found:
    rows.extend(run_case(case_dir, rtol, update_rtol, diverged_rtol))
  return rows


def format_table(rows: Sequence[Row], only_failures: bool = False) -> str:
  """The rows as a text table."""
  shown = [r for r in rows if not only_failures or (r.counted and not r.passed)]
  wc = max([4] + [len(r.case) for r in shown])
  wq = max([8] + [len(r.quantity) for r in shown])
  lines = [f'{"case":<{wc}}  {"pass":<5}  {"quantity":<{wq}}  {"ours":>12}  {"theirs":>12}  '
           f'{"rel err":>9}  result']
  for r in shown:
    result = ('pass' if r.passed else 'FAIL') if r.counted else ('(ok)' if r.passed else '(off)')
    line = (f'{r.case:<{wc}}  {r.step:<5}  {r.quantity:<{wq}}  {r.ours:>12.6g}  {r.theirs:>12.6g}  '
            f'{r.rel:>9.2e}  {result}')
    lines.append(line + (f'  ({r.note})' if r.note else ''))
  return '\n'.join(lines)


def format_summary(rows: Sequence[Row], rtol: float, update_rtol: float,
                   diverged_rtol: float) -> str:
  """Per case: passed/counted rows, and the worst relative error of each quantity kind."""
  lines = []
  for case in dict.fromkeys(r.case for r in rows):
    mine = [r for r in rows if r.case == case]
    counted = [r for r in mine if r.counted]
    n_pass = sum(r.passed for r in counted)
    worst = {}
    for r in counted:
      kind = 'bound (max step / lr)' if r.kind == 'bound' else r.kind
      kind += ' (diverged)' if 'diverged since' in r.note else ''
      if kind not in worst or not r.rel <= worst[kind]:
        worst[kind] = r.rel
    parts = ', '.join(f'{k} {v:.1e}' for k, v in worst.items())
    lines.append(f'{case}: {n_pass}/{len(counted)} pass; worst rel err: {parts}')
  n_fail = sum(r.counted and not r.passed for r in rows)
  lines.append(f'{"FAILED" if n_fail else "OK"}: {n_fail} failing row(s) (outputs and losses '
               f'rtol {rtol:g}, update norms and updated values rtol {update_rtol:g}, rows '
               f'after the first update rtol {diverged_rtol:g})')
  return '\n'.join(lines)


def _define_flags() -> None:
  """The CLI's flags (defined only when run as a program: tools share flag names)."""
  flags.DEFINE_float('rtol', DEFAULT_RTOL, 'Outputs and losses pass if rel err <= rtol.')
  flags.DEFINE_float('update_rtol', DEFAULT_UPDATE_RTOL,
                     'Update norms and updated tensors pass if rel err <= this.')
  flags.DEFINE_float(
      'diverged_rtol', DEFAULT_DIVERGED_RTOL,
      'Tolerance of rows that depend on parameters updated after a pass with sign-step '
      'differences.')
  flags.DEFINE_list('cases', None, 'Only these case folders (default: all).')
  flags.DEFINE_bool('only_failures', False, 'Print failing rows only.')


def main(argv: Sequence[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError('usage: python -m vid2vid_jax.tools.train_parity DIR')
  try:
    train_replay.find_cases(argv[1])
  except ValueError as e:
    print(f'train_parity: {e}', file=sys.stderr)
    sys.exit(2)
  f = flags.FLAGS
  rows = run_train_parity(argv[1], f.rtol, f.update_rtol, f.diverged_rtol, f.cases)
  print(format_table(rows, f.only_failures))
  print(format_summary(rows, f.rtol, f.update_rtol, f.diverged_rtol))
  sys.exit(0 if rows and all(r.passed or not r.counted for r in rows) else 1)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
