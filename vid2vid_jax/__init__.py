"""vid2vid-jax: a JAX/Flax reimplementation of NVIDIA vid2vid (NeurIPS 2018).

This package never imports TensorFlow: it must load on machines (e.g. GPU images) without it.
"""

__version__ = '0.1.0'
