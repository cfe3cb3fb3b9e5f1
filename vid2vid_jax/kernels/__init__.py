"""Convolution kernels: one entry point per conv kind, tuned or plain (`conv`)."""

from vid2vid_jax.kernels.conv import ACCELERATOR_THRESHOLDS
from vid2vid_jax.kernels.conv import CONV_IMPLS
from vid2vid_jax.kernels.conv import conv2d
from vid2vid_jax.kernels.conv import conv_form
from vid2vid_jax.kernels.conv import CPU_THRESHOLDS
from vid2vid_jax.kernels.conv import default_thresholds
from vid2vid_jax.kernels.conv import FORMS
from vid2vid_jax.kernels.conv import PADDING_MODES
from vid2vid_jax.kernels.conv import platform_of
from vid2vid_jax.kernels.conv import Thresholds
from vid2vid_jax.kernels.conv import up_conv2d
