"""FlowNet2 in pure JAX/Flax (no custom CUDA ops). Never imports TensorFlow."""
