"""Session-scoped FlowNet2 weights for tests/flow (built once: ~5 s, ~1.3 GB)."""

import jax
import numpy as np
import pytest

from flow import convert_flownet2
from flow import weights


@pytest.fixture(scope='session')
def flownet2_state_dict(flownet2_fixtures) -> dict[str, np.ndarray]:
  """The fixture folder's test weights in the original's layout (checked against its sums)."""
  return weights.fixture_state_dict(str(flownet2_fixtures), verify=True)


@pytest.fixture(scope='session')
def flownet2_variables(flownet2_state_dict) -> dict:
  """Our FlowNet2 variables for those weights, on the default device."""
  return jax.device_put(convert_flownet2.state_dict_to_variables(flownet2_state_dict))
