"""Plug-ins "installed" for a test without touching the shared venv: a folder to put on
PYTHONPATH holding the package and the dist-info pip would write, so that
importlib.metadata finds its entry points exactly as after `pip install`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def write_dist_info(
    site: Path, name: str, version: str, entry_points: Mapping[str, Mapping[str, str]]
) -> Path:
    """`site`/NAME-VERSION.dist-info with METADATA and entry_points.txt (group -> name ->
    object reference, as in a pyproject's ``[project.entry-points.GROUP]``)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{entry} = {value}" for entry, value in entries.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return info


def plugin_env(site: Path) -> dict[str, str]:
    """This process's environment with `site` on PYTHONPATH and plug-ins enabled."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("L2CHAOS_NO_PLUGINS", None)
    return env
