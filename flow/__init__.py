"""FlowNet2 in pure JAX/Flax (no custom CUDA ops). Never imports TensorFlow.

  variables = flow.load_flownet2(config.flow.checkpoint)   # from `python -m flow.convert_flownet2`
  flow_ref, conf_ref = flow.compute_flow_and_conf(variables, real_b, real_b_prev)

Modules: ``correlation`` (FlowNetC's correlation), ``layers`` (conv/deconv blocks, ChannelNorm,
Resample2d, upsampling), ``networks`` (FlowNetC/S/SD/Fusion, FlowNet2), ``api`` (vid2vid's
wrapper), ``convert_flownet2`` (official checkpoint -> ours), ``checkpoint`` (save/load),
``weights`` (the fixtures' deterministic test weights), ``parity`` (stage-by-stage check).
``flow.correlation`` is the module; the layer is ``flow.correlation.correlation``.
"""

from flow.api import compute_flow_and_conf
from flow.api import flownet_size
from flow.checkpoint import load_flownet2
from flow.checkpoint import save_flownet2
from flow.layers import channel_norm
from flow.layers import resample2d
from flow.networks import FlowNet2
from flow.networks import FlowNetC
from flow.networks import FlowNetFusion
from flow.networks import FlowNetS
from flow.networks import FlowNetSD

__all__ = [
    'FlowNet2', 'FlowNetC', 'FlowNetFusion', 'FlowNetS', 'FlowNetSD', 'channel_norm',
    'compute_flow_and_conf', 'flownet_size', 'load_flownet2', 'resample2d',
    'save_flownet2',
]
