"""Preset stack configs, shipped inside the package as ``emoomni.presets`` so that they work from an install as
well as from a checkout. `emoomni --config NAME` (or EMOOMNI_CONFIG=NAME) loads config/NAME.yaml; the default is
stack.yaml (CPU). See README, Configuration."""
