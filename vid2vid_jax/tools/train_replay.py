"""Replays one recorded training iteration of the original through our `steps.train_step`.

A case folder (``opt.txt``, ``inputs.npz``, ``outputs.npz``, ``losses.json``, the original's
``.pth`` files) becomes our config and params through the checkpoint importer; its recorded clip,
reference flows and passes run through our jitted step, carrying the train and sequence states
from pass to pass. `vid2vid_jax.tools.train_parity` compares the results with the recording.
"""

from collections.abc import Callable, Mapping
import dataclasses
import functools
import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vid2vid_jax import checkpoint
from vid2vid_jax import losses as losses_lib
from vid2vid_jax import original_checkpoint
from vid2vid_jax import schedule as schedule_lib
from vid2vid_jax import steps
from vid2vid_jax import train_state
from vid2vid_jax import vgg as vgg_lib

CASE_FILES = ('opt.txt', 'inputs.npz', 'outputs.npz', 'losses.json')


def nhwc(x: np.ndarray) -> np.ndarray:
  """[..., C, H, W] -> [..., H, W, C] float32."""
  return np.moveaxis(np.asarray(x, np.float32), -3, -1)


def find_cases(fixture_dir: str | pathlib.Path) -> list[pathlib.Path]:
  """The case folders of ``fixture_dir`` (those holding every file of CASE_FILES), sorted.

  Raises:
    ValueError: ``fixture_dir`` is not a folder or holds no case.
  """
  root = pathlib.Path(fixture_dir)
  if not root.is_dir():
    raise ValueError(f'{root} is not a folder')
  cases = sorted(p for p in root.iterdir()
                 if p.is_dir() and all((p / f).is_file() for f in CASE_FILES))
  if not cases:
    raise ValueError(f'{root} holds no training-parity case (folders with {", ".join(CASE_FILES)})')
  return cases


def parity_config(case_dir: pathlib.Path) -> tuple[Any, dict[str, Any]]:
  """Config and imported variables of a case, with the original's training behaviour.

  Returns:
    (config, variables) as `original_checkpoint.import_checkpoint_dir`, with the compat options of
    docs/training_parity.md set, our extra loss terms off, the dataset flow source and the
    case's vgg19.pth.
  """
  config, variables = original_checkpoint.import_checkpoint_dir(case_dir)
  for name, value in config.compat.items():  # True restores the original's behaviour
    if isinstance(value, bool):
      config.compat[name] = True
  # Our additions to the original's losses stay off, whatever the defaults become.
  loss = config.loss
  loss.lambda_l1 = loss.lambda_l2 = loss.lambda_occlusion = loss.lambda_mask = 0.0
  loss.warp_flow_grad = True
  config.flow.source = 'dataset'
  config.loss.vgg_weights = str(case_dir / 'vgg19.pth') if config.loss.use_vgg else ''
  return config, variables


def _train_params(variables: Mapping[str, Any]) -> dict[str, Any]:
  """Imported variables -> train_lib's params layout {'g', 'd': {'image'[, 'face']}, 'd_t'}."""
  return jax.tree_util.tree_map(
      jnp.asarray, checkpoint.train_params_from_imported(variables))


def encode_cond(config: Any, input_a: np.ndarray, inst: np.ndarray | None) -> np.ndarray:
  """The conditioning frames our pipeline makes from the original's A (and inst) tensors.

  Args:
    input_a: [B, T, C, H, W] label ids (as floats) when label_nc > 0, else the input image.
    inst: [B, T, 1, H, W] instance ids, or None.

  Returns:
    [B, T, H, W, cond_channels] float32.
  """
  data = config.data
  if data.label_nc == 0:
    return nhwc(input_a)
  from input_pipeline import street  # pylint: disable=g-import-not-at-top  (TensorFlow)
  domain = street.StreetDomain(
      label_nc=data.label_nc, input_nc=data.input_nc, use_instance=data.use_instance,
      resize_or_crop=data.resize_or_crop, load_size=data.load_size, fine_size=data.fine_size,
      flip=False)
  features = {'label': np.rint(input_a[:, :, 0]).astype(np.int32)}
  if data.use_instance:
    features['inst'] = np.rint(inst[:, :, 0]).astype(np.int32)
  return np.asarray(domain.finalize(features)['cond'], np.float32)


def lookup_flow_fn(frames: np.ndarray, tables: Mapping[int, tuple[np.ndarray, np.ndarray]]
                   ) -> Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
  """A FlowNet2 stand-in that returns recorded flows, as the original's fixture run did.

  Args:
    frames: [T, H, W, 3] the clip's real frames.
    tables: {gap: (flow [T, H, W, 2], conf [T, H, W, 1])}: entry j is the pair (frame j,
      frame j - gap).

  Returns:
    flow_fn(cur [N, H, W, 3], prev [N, H, W, 3]) -> (flow, conf): each pair is identified by
    exact equality with the clip's frames. A pair that is not in a table gives zero flow and
    confidence: the step also evaluates temporal windows that reach into history it does not
    have yet (all-zero frames) and masks their losses out, so these must stay finite; a wrong
    pair in a used window shows in the D_T losses.
  """
  frames = jnp.asarray(frames)
  gaps = sorted(tables)
  flows = jnp.stack([jnp.asarray(tables[g][0]) for g in gaps])
  confs = jnp.stack([jnp.asarray(tables[g][1]) for g in gaps])

  def index(x):
    hits = jnp.all(x[:, None] == frames[None], axis=(2, 3, 4))  # [N, T]
    return jnp.where(jnp.any(hits, axis=1), jnp.argmax(hits, axis=1), -10**6)

  def flow_fn(cur, prev):
    j, i = index(cur), index(prev)
    match = (j - i)[:, None] == jnp.asarray(gaps)[None]  # [N, n_gaps]
    found = jnp.any(match, axis=1) & (j >= 0) & (i >= 0)
    g = jnp.argmax(match, axis=1)
    j = jnp.clip(j, 0, frames.shape[0] - 1)
    keep = found[:, None, None, None]
    return jnp.where(keep, flows[g, j], 0.0), jnp.where(keep, confs[g, j], 0.0)

  return flow_fn


@dataclasses.dataclass
class Case:
  """Everything read from one case folder."""
  name: str
  path: pathlib.Path
  config: Any
  variables: dict[str, Any]
  inputs: dict[str, np.ndarray]
  outputs: dict[str, np.ndarray]
  meta: dict[str, Any]
  n_steps: int


def load_case(case_dir: pathlib.Path) -> Case:
  config, variables = parity_config(case_dir)
  with np.load(case_dir / 'inputs.npz') as f:
    inputs = {k: f[k] for k in f.files}
  with np.load(case_dir / 'outputs.npz') as f:
    outputs = {k: f[k] for k in f.files}
  recorded = json.loads((case_dir / 'losses.json').read_text())
  n_steps = len(recorded['meta']['inner_iterations_i'])
  return Case(case_dir.name, case_dir, config, variables, inputs, outputs, recorded['meta'],
              n_steps)


def _clip_frames(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
  b = inputs['data_B']  # [1, T * 3, H, W]
  if b.shape[0] != 1:  # the flow look-up identifies frames of one clip
    raise ValueError(f'data_B {b.shape}: the tool handles batchSize 1 cases only')
  return nhwc(b.reshape(b.shape[0], -1, 3, *b.shape[2:]))[0]


def _chunk(case: Case, k: int) -> dict[str, np.ndarray]:
  """Pass k's chunk in our layout: cond, image and the consecutive reference flows."""
  inp = case.inputs
  cond = encode_cond(case.config, inp[f'step{k}/input_A'], inp.get(f'step{k}/inst_A'))
  image = nhwc(inp[f'step{k}/input_B'])
  first = case.meta['inner_iterations_i'][k]
  t = image.shape[1]
  return dict(cond=cond, image=image,
              flow_gt=nhwc(inp['flow_ref_skip1'][:, first:first + t]),
              conf_gt=nhwc(inp['conf_ref_skip1'][:, first:first + t]))


def _flow_tables(inputs: Mapping[str, np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
  tables = {}
  for key in inputs:
    if key.startswith('flow_ref_skip'):
      gap = int(key[len('flow_ref_skip'):])
      tables[gap] = (nhwc(inputs[key])[0], nhwc(inputs[f'conf_ref_skip{gap}'])[0])
  return tables


@dataclasses.dataclass
class PassResult:
  """What our step saw and did in one recorded inner pass (host arrays)."""
  cond: np.ndarray  # [B, n, H, W, C] conditioning of the new frames
  prev_frames: list[np.ndarray]  # per pyramid level (0 = full resolution) before the pass
  scalars: dict[str, Any]
  images: dict[str, np.ndarray]
  before: dict[str, Any]  # train params before / after the pass
  after: dict[str, Any]
  first_step: dict[str, bool]  # optimizer group -> this pass was its first update
  grads: dict[str, Any]  # optimizer group -> its gradient when first_step (else absent)


def simulate(case: Case) -> list[PassResult]:
  """Runs every recorded pass of ``case`` through our jitted `train_step`, carrying the
  TrainState and SequenceState from pass to pass."""
  config = case.config
  models = train_state.build_models(config)
  weights = losses_lib.loss_weights_from_config(config)
  schedule = schedule_lib.schedule_from_config(config)
  context = models.generator.n_frames - 1
  options = steps.step_options(config, schedule, 0, _chunk(case, 0)['image'].shape[1] - context)
  params = _train_params(case.variables)
  frames = _clip_frames(case.inputs)
  _, height, width, _ = frames.shape
  expected = jax.eval_shape(functools.partial(train_state.init_params, models, batch=1,
                                              height=height, width=width), jax.random.key(0))
  if jax.tree_util.tree_structure(expected) != jax.tree_util.tree_structure(params):
    raise ValueError('the imported networks do not form the params tree of the config')
  txs = train_state.make_optimizers(schedule, params)
  state = train_state.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state={k: txs[k].init(train_state.group_params(params, k))
                                          for k in txs})
  frozen = {'vgg': None, 'flownet': None, 'first_frame': None}
  if weights.use_vgg:
    frozen['vgg'] = jax.tree_util.tree_map(jnp.asarray,
                                           vgg_lib.load_vgg19_weights(config.loss.vgg_weights))
  step_fn = jax.jit(functools.partial(
      steps.train_step, models, weights, options, txs,
      flow_fn=lookup_flow_fn(frames, _flow_tables(case.inputs))))
  rates = {k: jnp.float32(v) for k, v in schedule.learning_rates(0).items()}
  seq = train_state.empty_sequence_state(models, 1, height, width)
  b1 = {k: float(state.opt_state[k].hyperparams['b1']) for k in txs}
  results = []
  for k in range(case.n_steps):
    first = bool(case.inputs[f'step{k}/fake_B_prev_last_is_None'])
    if first != (k == 0):
      raise ValueError(f'step{k}: fake_B_prev_last_is_None={first}; the tool expects one clip '
                       'whose first pass is step0')
    chunk = _chunk(case, k)
    prev = [np.asarray(p) for p in reversed(seq.prev_frames)]
    counts = {g: int(state.opt_state[g].count) for g in txs}
    before = jax.device_get(state.params)
    state, seq, metrics = step_fn(state, seq, chunk, rates, frozen)
    first_step = {g: counts[g] == 0 and int(state.opt_state[g].count) == 1 for g in txs}
    # Adam's first moment after its first update is (1 - b1) * grad.
    grads = {g: jax.tree_util.tree_map(lambda m, g=g: np.asarray(m) / (1 - b1[g]),
                                       optax.tree_utils.tree_get(state.opt_state[g], 'mu'))
             for g in txs if first_step[g]}
    results.append(PassResult(
        cond=chunk['cond'][:, context:], prev_frames=prev,
        scalars=jax.device_get(metrics['scalars']), images=jax.device_get(metrics['images']),
        before=before, after=jax.device_get(state.params), first_step=first_step, grads=grads))
  return results
