"""`example.link_flap`: a link that goes down and up again and again (a flaky cable, a
load balancer that keeps restarting), through the run's Toxiproxy proxy of that link."""

from __future__ import annotations

import threading
from typing import Any

from l2chaos.faults.base import Fault, FaultContext, Target, TargetKind, Window
from l2chaos.params import Param

MS = 1_000_000


class LinkFlap(Fault):
    # The name is `family.kind`; scenarios write `fault: example.link_flap`.
    name = "example.link_flap"
    summary = (
        "Flaps a link over its window: down for `down` (connections refused, open ones cut), "
        "up for `up`, again and again; the link is up when the window ends."
    )
    target_kind = TargetKind.LINK  # `target: client->server`, checked against the stack
    window = Window.REQUIRED  # needs `for`
    params = (
        # schedule=True: intervals shrink with the scenario's time_scale
        Param("down", "duration", 500 * MS, "how long each outage lasts", min=MS, schedule=True),
        Param("up", "duration", 1000 * MS, "how long the link works between outages",
              min=MS, schedule=True),
    )  # fmt: skip

    def __init__(self, target: Target, params: Any, duration_ns: int | None) -> None:
        super().__init__(target, params, duration_ns)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flaps = 0

    def resources(self) -> set[str]:
        # no other fault may act on this link while it flaps
        return {f"link:{lk}" for lk in self.target.links}

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        self._stop.clear()
        self._thread = threading.Thread(target=self._flap, args=(ctx,), daemon=True)
        self._thread.start()
        return {"links": list(self.target.links), "down_ms": self.p["down"] // MS,
                "up_ms": self.p["up"] // MS}  # fmt: skip

    def _flap(self, ctx: FaultContext) -> None:
        period = self.p["down"] + self.p["up"]
        rounds = (self.duration_ns or 0) // period + 1  # bounded; heal stops it sooner
        for _ in range(rounds):
            for lk in self.target.links:
                ctx.links.set_enabled(lk, False)
            self._flaps += 1
            stopped = self._stop.wait(self.p["down"] / 1e9)
            for lk in self.target.links:
                ctx.links.set_enabled(lk, True)
            if stopped or self._stop.wait(self.p["up"] / 1e9):
                return

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        # safe after a failed or partial inject: stop the loop, leave every link up
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for lk in self.target.links:
            ctx.links.set_enabled(lk, True)
        return {"flaps": self._flaps}
