"""Pieces every trainer shares: the YAML config with --set overrides, and the run folder."""
