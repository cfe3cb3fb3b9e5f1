"""Flax linen networks of vid2vid: generators and discriminators (NHWC)."""
