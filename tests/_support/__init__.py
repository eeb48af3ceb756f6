"""Helpers the test folders share (importable as `tests._support`: pytest puts the
repository root on sys.path, see `pythonpath` in pyproject.toml)."""
