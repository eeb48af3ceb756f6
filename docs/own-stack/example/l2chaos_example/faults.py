"""`example.link_flap`: a link that goes down and up again and again (a flaky cable, a
load balancer that keeps restarting), through the run's Toxiproxy proxy of that link."""

from __future__ import annotations

import threading

from l2chaos.durations import Duration
from l2chaos.faults.base import Details, Fault, FaultContext, Target, TargetKind, Window
from l2chaos.params import param, params


@params
class FlapParams:
    # schedule=True: intervals shrink with the scenario's time_scale
    down: Duration = param(
        Duration.of(ms=500), "how long each outage lasts", min=Duration.of(ms=1), schedule=True
    )
    up: Duration = param(
        Duration.of(s=1),
        "how long the link works between outages",
        min=Duration.of(ms=1),
        schedule=True,
    )


class LinkFlap(Fault[FlapParams]):  # the type argument is the parameter model
    # The name is `family.kind`; scenarios write `fault: example.link_flap`.
    name = "example.link_flap"
    summary = (
        "Flaps a link over its window: down for `down` (connections refused, open ones cut), "
        "up for `up`, again and again; the link is up when the window ends."
    )
    target_kind = TargetKind.LINK  # `target: client->server`, checked against the stack
    window = Window.REQUIRED  # needs `for`

    def __init__(self, target: Target, params: FlapParams, duration: Duration | None) -> None:
        super().__init__(target, params, duration)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flaps = 0

    def resources(self) -> set[str]:
        # no other fault may act on this link while it flaps
        return {f"link:{lk}" for lk in self.target.links}

    def inject(self, ctx: FaultContext) -> Details:
        self._stop.clear()
        self._thread = threading.Thread(target=self._flap, args=(ctx,), daemon=True)
        self._thread.start()
        # self.p is a FlapParams: mypy knows self.p.down is a Duration, not seconds
        return {"links": list(self.target.links), "down_ms": self.p.down.millis,
                "up_ms": self.p.up.millis}  # fmt: skip

    def _flap(self, ctx: FaultContext) -> None:
        period = self.p.down + self.p.up
        window = self.duration or Duration(0)
        rounds = window.ns // period.ns + 1  # bounded; heal stops it sooner
        for _ in range(rounds):
            for lk in self.target.links:
                ctx.links.set_enabled(lk, False)
            self._flaps += 1
            stopped = self._stop.wait(self.p.down.seconds)
            for lk in self.target.links:
                ctx.links.set_enabled(lk, True)
            if stopped or self._stop.wait(self.p.up.seconds):
                return

    def heal(self, ctx: FaultContext) -> Details:
        # safe after a failed or partial inject: stop the loop, leave every link up
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for lk in self.target.links:
            ctx.links.set_enabled(lk, True)
        return {"flaps": self._flaps}
