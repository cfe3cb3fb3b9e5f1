"""ml_collections configs: ``default.py`` mirrors the original's options; one file per script."""
