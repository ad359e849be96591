"""Hydra configs (conf/) and thin entry scripts behind the wow-gym command."""
