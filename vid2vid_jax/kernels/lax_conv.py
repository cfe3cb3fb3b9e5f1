"""The XLA convolution every formulation builds on: NHWC x HWIO, float32 accumulation."""

from typing import Any

import jax
import jax.numpy as jnp

Dtype = Any
DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')


def acc_dtype(dtype: Dtype) -> Dtype:
  """The output dtype of a conv of ``dtype`` operands: at least float32 (bfloat16 operands
  accumulate and return float32, so the norms that follow see no rounding of raw outputs)."""
  return jnp.promote_types(dtype, jnp.float32)


def conv(x: jax.Array, kernel: jax.Array, strides: int, padding: Any) -> jax.Array:
  """``lax.conv_general_dilated``: [B, H, W, C] x [k, k, C, O] -> [B, H', W', O] in
  ``acc_dtype(x.dtype)``; ``padding``: 'VALID' or ((top, bottom), (left, right))."""
  return jax.lax.conv_general_dilated(x, kernel, (strides, strides), padding,
                                      dimension_numbers=DIMENSION_NUMBERS,
                                      preferred_element_type=acc_dtype(x.dtype))
