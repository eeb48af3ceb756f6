"""Process faults on one service, through the backend (`ServiceControl`).

Local backend: signals to the service's process group; docker: container calls. Every
fault that brings a service back (kill with `for`, stop, restart, restart_race,
crash_loop) waits for its readiness probe and records how long that took; a service
that does not come back is recorded (``ready: false`` with the reason) rather than
raised, because that is a finding about the stack, for the recoverability checker, not
a broken harness. Heals are safe after a partial inject: they start the service if it
is not running and resume it if it is paused.

Two process faults on one service cannot overlap (resource ``service:<name>``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from l2chaos.errors import L2ChaosError
from l2chaos.params import Param

from .base import Fault, FaultContext, TargetKind, Window

__all__ = [
    "CrashLoop",
    "Disconnect",
    "Kill",
    "Pause",
    "Restart",
    "RestartRace",
    "Stop",
]

S = 1_000_000_000

READY_TIMEOUT = Param(
    "ready_timeout",
    "duration",
    default=60 * S,
    help="how long to wait for the service's readiness probe when it comes back",
)
STOP_TIMEOUT = Param(
    "stop_timeout",
    "duration",
    default=10 * S,
    help="how long a graceful stop may take before SIGKILL",
)


def _ms_since(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 1)


class ProcessFault(Fault):
    """A fault on one service's process."""

    target_kind = TargetKind.SERVICE

    @property
    def service(self) -> str:
        return self.target.services[0]

    def resources(self) -> set[str]:
        return {f"service:{self.service}"}

    def _ready(self, ctx: FaultContext, t0: float) -> dict[str, Any]:
        """Wait for readiness; the details to record (never raises for a slow service)."""
        try:
            ctx.control.wait_ready(self.service, self.p["ready_timeout"] / S)
        except L2ChaosError as exc:
            return {
                "ready": False,
                "ready_error": str(exc).splitlines()[0],
                "waited_ms": _ms_since(t0),
            }
        return {"ready": True, "ready_ms": _ms_since(t0)}

    def _bring_back(self, ctx: FaultContext) -> dict[str, Any]:
        """Resume and start it if needed, then wait until it is ready."""
        ctx.control.resume(self.service)  # harmless when not paused
        was_running = ctx.control.is_running(self.service)
        t0 = time.monotonic()
        if not was_running:
            ctx.control.start(self.service)
        details: dict[str, Any] = {"started": not was_running, "pid": ctx.control.pid(self.service)}
        details.update(self._ready(ctx, t0))
        return details


class Kill(ProcessFault):
    name = "process.kill"
    summary = (
        "SIGKILLs a service (its whole process group; docker kill). With `for` it is started "
        "again after the window, without `for` right away."
    )
    window = Window.OPTIONAL
    params = (READY_TIMEOUT,)

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        old = ctx.control.pid(self.service)
        ctx.control.kill(self.service)
        return {"old_pid": old, "running": ctx.control.is_running(self.service)}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        return self._bring_back(ctx)


class Stop(ProcessFault):
    name = "process.stop"
    summary = (
        "Stops a service gracefully (SIGTERM, PostgreSQL: fast shutdown; SIGKILL after "
        "`stop_timeout`) and starts it again at the end of the window."
    )
    window = Window.REQUIRED
    params = (STOP_TIMEOUT, READY_TIMEOUT)

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        old = ctx.control.pid(self.service)
        t0 = time.monotonic()
        ctx.control.stop(self.service, self.p["stop_timeout"] / S)
        return {"old_pid": old, "stopped_ms": _ms_since(t0)}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        return self._bring_back(ctx)


class Restart(ProcessFault):
    name = "process.restart"
    summary = "Restarts a service at an instant (graceful stop, start) and waits until it is ready."
    window = Window.INSTANT
    params = (STOP_TIMEOUT, READY_TIMEOUT)

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        old = ctx.control.pid(self.service)
        t0 = time.monotonic()
        ctx.control.restart(self.service, self.p["stop_timeout"] / S)
        details: dict[str, Any] = {"old_pid": old, "new_pid": ctx.control.pid(self.service)}
        details.update(self._ready(ctx, t0))
        return details

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        if ctx.control.is_running(self.service):
            return {}
        return self._bring_back(ctx)  # the inject failed between stop and start


class Pause(ProcessFault):
    name = "process.pause"
    summary = (
        "Freezes a service (SIGSTOP to its process group; docker pause) for the window: it "
        "holds its connections but answers nothing. Resumed (SIGCONT) at the end."
    )
    window = Window.REQUIRED

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        ctx.control.pause(self.service)
        return {"pid": ctx.control.pid(self.service)}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        ctx.control.resume(self.service)
        return {"pid": ctx.control.pid(self.service)}


class RestartRace(ProcessFault):
    name = "process.restart_race"
    summary = (
        "The incident's shape: stops a service and brings it back after `downtime` while its "
        "clients keep writing. how=fast is a graceful stop (PostgreSQL: fast shutdown), "
        "how=immediate the crash path (PostgreSQL: immediate shutdown, crash recovery on start)."
    )
    window = Window.REQUIRED
    params = (
        Param("downtime", "duration", default=4 * S, help="how long it stays down", schedule=True),
        Param(
            "how",
            "enum",
            default="fast",
            choices=("fast", "immediate"),
            help="fast: graceful stop; immediate: the crash path (PostgreSQL SIGQUIT, else SIGKILL)",
        ),
        STOP_TIMEOUT,
        READY_TIMEOUT,
    )

    def implied_duration_ns(self) -> int | None:
        return int(self.p["downtime"])

    def validate(self, services: set[str], links: set[str]) -> str | None:
        if self.duration_ns is not None and self.duration_ns != self.p["downtime"]:
            return "process.restart_race lasts its downtime: set with.downtime instead of 'for'"
        return None

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        old = ctx.control.pid(self.service)
        t0 = time.monotonic()
        immediate = self.p["how"] == "immediate"
        ctx.control.stop(self.service, self.p["stop_timeout"] / S, immediate=immediate)
        stopped_ms = _ms_since(t0)
        ctx.note(step="stopped", service=self.service, old_pid=old, stopped_ms=stopped_ms)
        return {"old_pid": old, "how": self.p["how"], "stopped_ms": stopped_ms}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        return self._bring_back(ctx)


class CrashLoop(ProcessFault):
    name = "process.crash_loop"
    summary = (
        "Kills a service `count` times, every `interval`, starting it again right after each "
        "kill (a crash loop); at the end it is left running and ready."
    )
    window = Window.REQUIRED
    params = (
        Param("count", "int", default=3, min=1, max=1000, help="how many kills"),
        Param("interval", "duration", default=2 * S, help="time between kills", schedule=True),
        READY_TIMEOUT,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._kills: list[dict[str, Any]] = []
        self._error: str | None = None

    def implied_duration_ns(self) -> int | None:
        return int(self.p["count"]) * int(self.p["interval"])

    def _loop(self, ctx: FaultContext) -> None:
        interval_s = self.p["interval"] / S
        t0 = time.monotonic()
        try:
            for i in range(int(self.p["count"])):
                if self._stop.is_set():
                    return
                old = ctx.control.pid(self.service)
                ctx.control.kill(self.service)
                ctx.control.start(self.service)
                new = ctx.control.pid(self.service)
                rec = {"kill": i + 1, "old_pid": old, "new_pid": new, "at_ms": _ms_since(t0)}
                self._kills.append(rec)
                ctx.note(step="killed", service=self.service, **rec)
                if self._stop.wait(max(0.0, t0 + (i + 1) * interval_s - time.monotonic())):
                    return
        except Exception as exc:  # a failure of the fault: noted now, and in the heal's details
            self._error = str(exc)
            ctx.note(step="crash loop", service=self.service, error=str(exc))

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(ctx,), name=f"crash-loop-{self.service}", daemon=True
        )
        self._thread.start()
        return {"count": self.p["count"], "interval_ms": self.p["interval"] / 1e6}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        details: dict[str, Any] = {"kills": list(self._kills)}
        if self._error is not None:
            details["loop_error"] = self._error
        details.update(self._bring_back(ctx))
        return details


class Disconnect(ProcessFault):
    name = "process.disconnect"
    summary = (
        "Cuts a service off the network for the window (docker: disconnected from the run's "
        "network; local backend: every link of the service, as client and as server, is "
        "disabled, while the harness still reaches it directly)."
    )
    window = Window.REQUIRED

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._links: tuple[str, ...] = ()

    def validate(self, services: set[str], links: set[str]) -> str | None:
        own = []
        for lk in sorted(links):
            client, _, server = lk.partition("->")
            if self.service in (client, server):
                own.append(lk)
        self._links = tuple(own)
        return None

    def resources(self) -> set[str]:
        # on the local backend it holds the service's links, like a partition would
        return {f"service:{self.service}"} | {f"link:{lk}" for lk in self._links}

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        ctx.control.disconnect(self.service)
        return {"service": self.service}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        ctx.control.reconnect(self.service)
        return {"service": self.service}
