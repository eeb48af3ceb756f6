"""Backends turn a stack spec into running services: `local` (child processes, the
embedded default) and `docker` (containers). See `base.py` for what they provide."""

from __future__ import annotations

__all__ = ["gc_all"]


def gc_all() -> list[str]:
    """Remove leftovers of killed runs on every backend; one line per thing removed."""
    from l2chaos.load import gc as load_gc

    from .docker import DockerBackend
    from .local import LocalBackend

    return LocalBackend.gc() + DockerBackend.gc() + load_gc()
