"""Packaged data files (read through importlib.resources, so they work from an installed wheel)."""
