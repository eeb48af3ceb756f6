"""Backends turn a stack spec into running services: the `StackOrchestrator`
(orchestrator.py) over a platform (platform.py) registered by name: `local` (child
processes, the embedded default), `docker` (containers), and plug-ins of the entry-point
group ``l2chaos.platforms``. See `base.py` for what a running stack provides."""

from __future__ import annotations

from typing import TYPE_CHECKING

from l2chaos.errors import InputError

if TYPE_CHECKING:
    from l2chaos.stackspec import StackSpec

    from .orchestrator import StackOrchestrator
    from .platform import Platform

__all__ = ["backend", "gc_all", "platform_for"]


def platform_for(name: str, spec: StackSpec | None = None) -> type[Platform]:
    """The platform class called `name`; ``auto``: the first (by rank) that runs every
    service of `spec`. InputError (naming ``--backend``) for an unknown name."""
    from l2chaos.registry import platforms

    known: dict[str, type[Platform]] = platforms()
    if name == "auto":
        ranked = sorted(known.values(), key=lambda p: (p.auto_rank, p.name))
        services = list(spec.services.values()) if spec is not None else []
        for cls in ranked:
            if all(cls.supports(s) for s in services):
                return cls
        raise InputError("no platform can run every service of this stack", field="--backend")
    if name not in known:
        raise InputError(
            f"unknown backend {name!r}; allowed: auto, {', '.join(known)}", field="--backend"
        )
    return known[name]


def backend(name: str, spec: StackSpec | None = None) -> StackOrchestrator[Platform]:
    """A `StackOrchestrator` on the platform `name` (see `platform_for`)."""
    from .orchestrator import StackOrchestrator

    return StackOrchestrator(platform_for(name, spec))


def gc_all() -> list[str]:
    """Remove leftovers of killed runs on every platform; one line per thing removed."""
    from l2chaos.load import gc as load_gc
    from l2chaos.registry import platforms

    from .ports import remove_unused_locks
    from .procs import gc_runs

    lines = gc_runs()
    for cls in platforms().values():
        lines += cls.gc()
    unused = remove_unused_locks()
    if unused:
        lines.append(f"removed {unused} unused port lock file(s)")
    return lines + load_gc()
