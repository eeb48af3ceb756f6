"""Images for the docker backend, built with or without a registry.

    l2chaos images build [--offline] [--stack perpdex]

`ensure_images` (called by the docker backend before `up`) and `build_cli` (the CLI)
make sure every image a stack needs is in the engine. See `plan.py` for which image
each service runs and how tags are keyed, `base.py` for the debootstrap base image,
`wheels.py` for the wheelhouse, and the Dockerfiles in ``postgres/`` and
``toxiproxy/`` next to this file (the reference stack's is ``stacks/perpdex/Dockerfile``).
"""

from __future__ import annotations

from .base import base_tag, ensure_base_image
from .plan import (
    MODES,
    PUBLIC_TOXIPROXY,
    BuildTarget,
    ImagePlan,
    build_cli,
    ensure_images,
    has_tag,
    missing,
    plan_images,
    registry_answers,
    uses_wheels,
)
from .wheels import ensure_wheelhouse

__all__ = [
    "MODES",
    "PUBLIC_TOXIPROXY",
    "BuildTarget",
    "ImagePlan",
    "base_tag",
    "build_cli",
    "ensure_base_image",
    "ensure_images",
    "ensure_wheelhouse",
    "has_tag",
    "missing",
    "plan_images",
    "registry_answers",
    "uses_wheels",
]
