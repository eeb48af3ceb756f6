"""Bridge faults: the L1→L2 relayer stalls, deposits pile up and are retried after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._hooked import HookedFault
from .base import TargetKind, Window


class RelayerStall(HookedFault):
    name = "bridge.relayer_stall"
    summary = "The bridge relayer stops delivering L1→L2 messages for the window, then catches up."
    hook = "relayer_stall"
    resource = "bridge-relayer"
    target_kind = TargetKind.NONE
    window = Window.REQUIRED
    needs_hooks = ("relayer_stall",)

    def inject_body(self) -> Mapping[str, Any]:
        return {"stalled": True}

    def heal_body(self) -> Mapping[str, Any]:
        return {"stalled": False}
