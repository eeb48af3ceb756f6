"""Where the backends keep their state on this host.

Everything lives under one cache folder: ``$L2CHAOS_CACHE``, else
``$XDG_CACHE_HOME/l2chaos``, else ``~/.cache/l2chaos``. Read when called, never at
import time, so a test or a caller can point it elsewhere.

    bin/toxiproxy-server     installed by `bash .ci/setup`
    ports/<port>.lock        port reservations (flock held while a run uses the port)
    runs/<run_id>.json       marker of a live run, for `gc`
    pg/                      the PostgreSQL data-dir template (initdb once)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "ensure_dir"]


def cache_dir() -> Path:
    explicit = os.environ.get("L2CHAOS_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "l2chaos"


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    return path
