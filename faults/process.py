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
from typing import Literal, TypeVar

from l2chaos.errors import L2ChaosError
from l2chaos.params import Duration, JsonValue, NoParams, param, params

from .base import Details, Fault, FaultContext, Target, TargetKind, Window

__all__ = [
    "CrashLoop",
    "Disconnect",
    "Kill",
    "Pause",
    "Restart",
    "RestartRace",
    "Stop",
]

READY_HELP = "how long to wait for the service's readiness probe when it comes back"
STOP_HELP = "how long a graceful stop may take before SIGKILL"


@params
class ReadyParams:
    """A fault that brings its service back waits this long for it to be ready."""

    ready_timeout: Duration = param(Duration.of(s=60), READY_HELP)


@params
class StopParams(ReadyParams):
    stop_timeout: Duration = param(Duration.of(s=10), STOP_HELP)


def _ms_since(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 1)


PP = TypeVar("PP")
RP = TypeVar("RP", bound=ReadyParams)


class ProcessFault(Fault[PP]):
    """A fault on one service's process."""

    target_kind = TargetKind.SERVICE

    @property
    def service(self) -> str:
        return self.target.services[0]

    def resources(self) -> set[str]:
        return {f"service:{self.service}"}


class Revived(ProcessFault[RP]):
    """A process fault that brings its service back and waits until it is ready."""

    def _ready(self, ctx: FaultContext, t0: float) -> Details:
        """Wait for readiness; the details to record (never raises for a slow service)."""
        try:
            ctx.control.wait_ready(self.service, self.p.ready_timeout.seconds)
        except L2ChaosError as exc:
            return {
                "ready": False,
                "ready_error": str(exc).splitlines()[0],
                "waited_ms": _ms_since(t0),
            }
        return {"ready": True, "ready_ms": _ms_since(t0)}

    def _bring_back(self, ctx: FaultContext) -> Details:
        """Resume and start it if needed, then wait until it is ready."""
        ctx.control.resume(self.service)  # harmless when not paused
        was_running = ctx.control.is_running(self.service)
        t0 = time.monotonic()
        if not was_running:
            ctx.control.start(self.service)
        details: Details = {"started": not was_running, "pid": ctx.control.pid(self.service)}
        details.update(self._ready(ctx, t0))
        return details

    def heal(self, ctx: FaultContext) -> Details:
        return self._bring_back(ctx)


class Kill(Revived[ReadyParams]):
    name = "process.kill"
    needs_backend = frozenset({"kill"})
    summary = (
        "SIGKILLs a service (its whole process group; docker kill). With `for` it is started "
        "again after the window, without `for` right away."
    )
    window = Window.OPTIONAL

    def inject(self, ctx: FaultContext) -> Details:
        old = ctx.control.pid(self.service)
        ctx.control.kill(self.service)
        return {"old_pid": old, "running": ctx.control.is_running(self.service)}


class Stop(Revived[StopParams]):
    name = "process.stop"
    needs_backend = frozenset({"stop"})
    summary = (
        "Stops a service gracefully (SIGTERM, PostgreSQL: fast shutdown; SIGKILL after "
        "`stop_timeout`) and starts it again at the end of the window."
    )
    window = Window.REQUIRED

    def inject(self, ctx: FaultContext) -> Details:
        old = ctx.control.pid(self.service)
        t0 = time.monotonic()
        ctx.control.stop(self.service, self.p.stop_timeout.seconds)
        return {"old_pid": old, "stopped_ms": _ms_since(t0)}


class Restart(Revived[StopParams]):
    name = "process.restart"
    needs_backend = frozenset({"stop"})
    summary = "Restarts a service at an instant (graceful stop, start) and waits until it is ready."
    window = Window.INSTANT

    def inject(self, ctx: FaultContext) -> Details:
        old = ctx.control.pid(self.service)
        t0 = time.monotonic()
        ctx.control.restart(self.service, self.p.stop_timeout.seconds)
        details: Details = {"old_pid": old, "new_pid": ctx.control.pid(self.service)}
        details.update(self._ready(ctx, t0))
        return details

    def heal(self, ctx: FaultContext) -> Details:
        if ctx.control.is_running(self.service):
            return {}
        return self._bring_back(ctx)  # the inject failed between stop and start


class Pause(ProcessFault[NoParams]):
    name = "process.pause"
    needs_backend = frozenset({"pause"})
    summary = (
        "Freezes a service (SIGSTOP to its process group; docker pause) for the window: it "
        "holds its connections but answers nothing. Resumed (SIGCONT) at the end."
    )
    window = Window.REQUIRED

    def inject(self, ctx: FaultContext) -> Details:
        ctx.control.pause(self.service)
        return {"pid": ctx.control.pid(self.service)}

    def heal(self, ctx: FaultContext) -> Details:
        ctx.control.resume(self.service)
        return {"pid": ctx.control.pid(self.service)}


@params
class RestartRaceParams(StopParams):
    downtime: Duration = param(Duration.of(s=4), "how long it stays down", schedule=True)
    how: Literal["fast", "immediate"] = param(
        "fast",
        "fast: graceful stop; immediate: the crash path (PostgreSQL SIGQUIT, else SIGKILL)",
    )


class RestartRace(Revived[RestartRaceParams]):
    name = "process.restart_race"
    needs_backend = frozenset({"stop"})
    summary = (
        "The incident's shape: stops a service and brings it back after `downtime` while its "
        "clients keep writing. how=fast is a graceful stop (PostgreSQL: fast shutdown), "
        "how=immediate the crash path (PostgreSQL: immediate shutdown, crash recovery on start)."
    )
    window = Window.REQUIRED

    def implied_duration(self) -> Duration | None:
        return self.p.downtime

    def validate(self, services: set[str], links: set[str]) -> str | None:
        if self.duration is not None and self.duration != self.p.downtime:
            return "process.restart_race lasts its downtime: set with.downtime instead of 'for'"
        return None

    def inject(self, ctx: FaultContext) -> Details:
        old = ctx.control.pid(self.service)
        t0 = time.monotonic()
        immediate = self.p.how == "immediate"
        ctx.control.stop(self.service, self.p.stop_timeout.seconds, immediate=immediate)
        stopped_ms = _ms_since(t0)
        ctx.note(step="stopped", service=self.service, old_pid=old, stopped_ms=stopped_ms)
        return {"old_pid": old, "how": self.p.how, "stopped_ms": stopped_ms}


@params
class CrashLoopParams(ReadyParams):
    count: int = param(3, "how many kills", min=1, max=1000)
    interval: Duration = param(Duration.of(s=2), "time between kills", schedule=True)


class CrashLoop(Revived[CrashLoopParams]):
    name = "process.crash_loop"
    needs_backend = frozenset({"kill"})
    summary = (
        "Kills a service `count` times, every `interval`, starting it again right after each "
        "kill (a crash loop); at the end it is left running and ready."
    )
    window = Window.REQUIRED

    def __init__(self, target: Target, params: CrashLoopParams, duration: Duration | None) -> None:
        super().__init__(target, params, duration)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._kills: list[JsonValue] = []
        self._error: str | None = None

    def implied_duration(self) -> Duration | None:
        return self.p.interval * self.p.count

    def _loop(self, ctx: FaultContext) -> None:
        interval_s = self.p.interval.seconds
        t0 = time.monotonic()
        try:
            for i in range(self.p.count):
                if self._stop.is_set():
                    return
                old = ctx.control.pid(self.service)
                ctx.control.kill(self.service)
                ctx.control.start(self.service)
                new = ctx.control.pid(self.service)
                rec: Details = {
                    "kill": i + 1,
                    "old_pid": old,
                    "new_pid": new,
                    "at_ms": _ms_since(t0),
                }
                self._kills.append(rec)
                ctx.note(step="killed", service=self.service, **rec)
                if self._stop.wait(max(0.0, t0 + (i + 1) * interval_s - time.monotonic())):
                    return
        except Exception as exc:  # a failure of the fault: noted now, and in the heal's details
            self._error = str(exc)
            ctx.note(step="crash loop", service=self.service, error=str(exc))

    def inject(self, ctx: FaultContext) -> Details:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(ctx,), name=f"crash-loop-{self.service}", daemon=True
        )
        self._thread.start()
        return {"count": self.p.count, "interval_ms": self.p.interval.millis}

    def heal(self, ctx: FaultContext) -> Details:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        details: Details = {"kills": list(self._kills)}
        if self._error is not None:
            details["loop_error"] = self._error
        details.update(self._bring_back(ctx))
        return details


class Disconnect(ProcessFault[NoParams]):
    name = "process.disconnect"
    summary = (
        "Cuts a service off the network for the window (docker: disconnected from the run's "
        "network; local backend: every link of the service, as client and as server, is "
        "disabled, while the harness still reaches it directly)."
    )
    window = Window.REQUIRED

    def __init__(self, target: Target, params: NoParams, duration: Duration | None) -> None:
        super().__init__(target, params, duration)
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

    def inject(self, ctx: FaultContext) -> Details:
        ctx.control.disconnect(self.service)
        return {"service": self.service}

    def heal(self, ctx: FaultContext) -> Details:
        ctx.control.reconnect(self.service)
        return {"service": self.service}
