"""Backends: where a stack runs (local processes, docker containers)."""

from __future__ import annotations

import importlib.util

__all__ = ["gc_all"]


def gc_all() -> list[str]:
    """Remove leftovers of killed runs of every backend; one line per thing removed."""
    from .local import LocalBackend

    lines = LocalBackend.gc()
    if importlib.util.find_spec(f"{__name__}.docker") is not None:
        from .docker import DockerBackend  # type: ignore[import-not-found,unused-ignore]

        lines += DockerBackend.gc()
    return lines
