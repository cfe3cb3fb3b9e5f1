"""Command-line tools (``python -m vid2vid_jax.tools.<name>``)."""
