"""FlowNet2 against the fixtures stage by stage, the param tree, and the vid2vid wrapper."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flow
from flow import api
from flow import convert_flownet2
from flow import flownet2_parity


def _failures(rows):
  return [(r.stage, r.max_abs, r.rel, r.note) for r in rows if not r.passed]


def test_param_tree_matches_the_original_state_dict(flownet2_fixtures):
  spec = json.loads((flownet2_fixtures / 'param_shapes.json').read_text())['params']
  expected = convert_flownet2.expected_state_dict_shapes()
  assert {p['key']: tuple(p['shape']) for p in spec} == expected
  params = convert_flownet2.abstract_variables()['params']
  assert sorted(params) == ['flownetc', 'flownetfusion', 'flownets_1', 'flownets_2', 'flownets_d']
  # FlowNetS's flow upsamplers have no bias; FlowNetC's do.
  assert set(params['flownets_1']['upsampled_flow6_to_5']) == {'kernel'}
  assert set(params['flownetc']['upsampled_flow6_to_5']) == {'kernel', 'bias'}
  assert params['flownetc']['conv3_1']['conv']['kernel'].shape == (3, 3, 473, 256)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))
  assert n_params == 162_518_834


@pytest.mark.parametrize('case', ['case_0', 'case_1'])
def test_every_stage_matches_the_fixture(flownet2_fixtures, flownet2_variables, case):
  """Every stored stage within 1e-3 std, the final flow within 1e-3 px (observed ~6e-5 px)."""
  rows = flownet2_parity.check_case(str(flownet2_fixtures / f'{case}_io.npz'),
                                    flownet2_variables, seed=1)
  assert len(rows) >= 25
  assert not _failures(rows)
  final = [r for r in rows if r.stage == f'{case}/flow']
  assert len(final) == 1 and final[0].max_abs <= 1e-3
  # float32 noise level, as the README measured between two float32 runs (~1e-4 std).
  assert max(r.rel for r in rows) < 2e-4


def test_vid2vid_wrapper_matches_the_fixture(flownet2_fixtures, flownet2_variables):
  rows = flownet2_parity.check_wrapper(str(flownet2_fixtures / 'vid2vid_wrapper_io.npz'),
                              flownet2_variables)
  stages = {r.stage for r in rows}
  assert {'wrapper/resize_flow', 'wrapper/resize_conf', 'wrapper/noresize_flow',
          'wrapper/noresize_conf'} <= stages
  assert not _failures(rows)
  assert all(r.max_abs <= 1e-3 for r in rows if r.stage.endswith('_flow'))


def test_compute_flow_and_conf_shapes_and_jit(flownet2_fixtures, flownet2_variables):
  data = np.load(flownet2_fixtures / 'vid2vid_wrapper_io.npz')
  cur = data['noresize_frame_cur'].transpose(0, 2, 3, 1)  # [1, 64, 128, 3] in [-1, 1]
  prev = data['noresize_frame_prev'].transpose(0, 2, 3, 1)
  # [B, T, H, W, 3] input, as vid2vid passes (B, n, 3, H, W): T = 2 copies of the pair.
  cur5, prev5 = np.stack([cur, cur], axis=1), np.stack([prev, prev], axis=1)
  flow5, conf5 = jax.jit(flow.compute_flow_and_conf)(flownet2_variables, cur5, prev5)
  assert flow5.shape == (1, 2, 64, 128, 2) and conf5.shape == (1, 2, 64, 128, 1)
  assert flow5.dtype == jnp.float32
  ref = data['noresize_flow'].transpose(0, 2, 3, 1)
  np.testing.assert_allclose(flow5[:, 0], ref, rtol=0, atol=1e-3)
  np.testing.assert_array_equal(flow5[:, 0], flow5[:, 1])
  assert set(np.unique(np.asarray(conf5)).tolist()) <= {0.0, 1.0}


def test_flownet_size_follows_vid2vid():
  assert api.flownet_size(64, 128) == (64, 128)
  assert api.flownet_size(96, 160) == (64, 128)
  assert api.flownet_size(100, 64) == (64, 64)
  with pytest.raises(ValueError, match='W is not'):
    api.flownet_size(128, 100)  # the original does not resize this, and crashes
  with pytest.raises(ValueError, match='at least 64x64'):
    api.flownet_size(32, 128)


def test_flownet2_rejects_bad_shapes():
  model = flow.FlowNet2()
  with pytest.raises(ValueError, match='multiples of 64'):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 96, 3)),
                   jnp.zeros((1, 64, 96, 3)))
  with pytest.raises(ValueError, match=r'\[B, H, W, 3\]'):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                   jnp.zeros((1, 64, 64, 4)))


def test_no_tensorflow_import():
  code = ('import sys, flow, flow.flownet2_parity, flow.convert_flownet2; '
          'assert "tensorflow" not in sys.modules')
  subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


_BIG_RUN = textwrap.dedent('''
    import json, resource, time
    import jax, jax.numpy as jnp, numpy as np
    import flow
    from flow import weights
    key = jax.random.key(0)
    frames = jax.random.uniform(key, (2, 1, 512, 1024, 3), jnp.float32, -1.0, 1.0)
    variables = weights.random_variables(0)
    start = time.perf_counter()
    flow_, conf = jax.jit(flow.compute_flow_and_conf)(variables, frames[0], frames[1])
    flow_ = np.asarray(flow_)
    print(json.dumps(dict(
        seconds=time.perf_counter() - start, shape=list(flow_.shape),
        finite=bool(np.isfinite(flow_).all()), conf_shape=list(conf.shape),
        peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)))
''')


def test_jit_flownet2_1024x512_on_cpu_within_24_gib(tmp_path):
  """Compile + run at 1024x512 in a fresh process (CPU, 2 cores: ~30 s; peak RSS ~3 GiB)."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, '-c', _BIG_RUN], capture_output=True, text=True,
                        timeout=600, env=env, cwd=tmp_path, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['shape'] == [1, 512, 1024, 2] and result['conf_shape'] == [1, 512, 1024, 1]
  assert result['finite']
  assert result['peak_rss_gib'] < 24, result


@pytest.mark.slow
def test_parity_cli_float64(flownet2_fixtures):
  """The float64 run matches the float64 references to ~1e-14 relative (bound 1e-8)."""
  proc = subprocess.run([sys.executable, '-m', 'flow.flownet2_parity', str(flownet2_fixtures),
                         '--float64'], capture_output=True, text=True, timeout=900, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert 'vs float64 ref' in proc.stdout
