"""Bridge faults: the L1→L2 relayer stalls, deposits pile up and are retried after."""

from __future__ import annotations

from l2chaos.params import NoParams

from ._hooked import Body, HookedFault


class RelayerStall(HookedFault[NoParams]):
    name = "bridge.relayer_stall"
    summary = "The bridge relayer stops delivering L1→L2 messages for the window, then catches up."
    hook = "relayer_stall"
    resource = "bridge-relayer"

    def inject_body(self) -> Body:
        return {"stalled": True}

    def heal_body(self) -> Body:
        return {"stalled": False}
