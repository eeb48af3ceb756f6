"""aiohttp plumbing shared by the services: JSON responses and errors, /health and
/ready, the admin bearer-token guard, admission control (503 with Retry-After past a
bound of requests in flight, common/admission.py), and the serve loop (uvloop,
SIGTERM/SIGINT)."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from l2chaos.stacks.perpdex.common.admission import Admission
from l2chaos.stacks.perpdex.common.config import Common, ConfigError, env_int
from l2chaos.stacks.perpdex.common.inputs import InputError, loads_bounded
from l2chaos.stacks.perpdex.common.log import JsonLog

__all__ = [
    "ApiError",
    "Service",
    "admission_limit",
    "dumps",
    "error_response",
    "json_response",
    "overloaded",
    "read_json",
    "run_main",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def json_response(obj: Any, status: int = 200, retry_after: int | None = None) -> web.Response:
    """`obj` as JSON; with `retry_after` (seconds) a `Retry-After` header too."""
    resp = web.Response(text=dumps(obj), status=status, content_type="application/json")
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


def error_response(
    status: int, code: str, message: str, field: str | None = None, retry_after: int | None = None
) -> web.Response:
    error = {"code": code, "message": message, "field": field}
    return json_response({"error": error}, status, retry_after)


class ApiError(Exception):
    """Raised by handlers; becomes `{"error": {code, message, field}}` with `status` (and
    a `Retry-After` header when the client should come back later)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


def overloaded(admission: Admission) -> ApiError:
    """The answer to a request admission control refused."""
    now = time.monotonic_ns()
    behind_ms = admission.lag.behind(now) // 1_000_000
    return ApiError(
        503,
        "overloaded",
        f"{admission.inflight} requests in flight (at most {admission.limit}), the event "
        f"loop {behind_ms} ms behind (at most {admission.max_lag_ns // 1_000_000}); retry later",
        retry_after=admission.retry_after(now),
    )


LAG_TICK_S = 0.01  # the loop-lag timer of admission control


def admission_limit(common: Common, env: Mapping[str, str]) -> tuple[int, int] | None:
    """(requests in flight, loop lag in ns) bounding a service's edge when the
    `admission_control` switch is on (None: no bound)."""
    if not common.switches.get("admission_control", False):
        return None
    inflight = env_int(env, "PERPDEX_ADMISSION_INFLIGHT", 512, min=1, max=100_000)
    lag_ms = env_int(env, "PERPDEX_ADMISSION_LAG_MS", 500, min=1, max=60_000)
    return inflight, lag_ms * 1_000_000


async def read_json(request: web.Request) -> Any:
    """The body as JSON (None when empty): 413 past the service's size limit, 400 when it
    is not JSON or nests deeper than the limit (see common/inputs.py)."""
    raw = await request.read()
    if not raw:
        return None
    try:
        return loads_bounded(raw)
    except InputError as exc:
        raise ApiError(400, "malformed_json", str(exc), "(body)") from None


class Service:
    """A service: its app (with /health, /ready and the admin guard) and its lifecycle.

    Subclasses add routes in `__init__`, connect in `start` and release in `stop`, and
    say whether they serve in `ready()` -> (ok, reason).
    """

    max_body = 64 * 1024  # bytes; a service that takes batches raises it

    def __init__(
        self, common: Common, log: JsonLog, admission: tuple[int, int] | None = None
    ) -> None:
        self.common = common
        self.log = log
        self.admission = None if admission is None else Admission(*admission)
        self.app = web.Application(
            middlewares=[self._errors, self._admin_guard, self._admit],
            client_max_size=self.max_body,
        )
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/ready", self._ready)

    def ready(self) -> tuple[bool, str]:
        return True, "serving"

    def gated(self, request: web.Request) -> bool:
        """Whether admission control bounds this request (a service names its costly
        routes; /health and /ready never are)."""
        return False

    async def start(self) -> None:
        """Connect and start background work; raising aborts the service."""

    async def stop(self) -> None:
        """Stop background work and close connections."""

    async def watch_lag(self) -> None:
        """Admission control's view of how far the event loop runs behind."""
        if self.admission is None:
            return
        lag = self.admission.lag
        while True:
            due = time.monotonic_ns() + int(LAG_TICK_S * 1e9)
            lag.due_ns = due
            await asyncio.sleep(LAG_TICK_S)
            lag.fired(due, time.monotonic_ns())

    async def _health(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "service": self.common.service, "pid": os.getpid()})

    async def _ready(self, request: web.Request) -> web.Response:
        ok, reason = self.ready()
        return json_response({"ready": ok, "reason": reason}, 200 if ok else 503)

    @web.middleware
    async def _admin_guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/admin"):
            token = self.common.admin_token
            if token is None:
                return error_response(404, "not_found", "no such route")
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, f"Bearer {token}".encode()):
                return error_response(401, "unauthorized", "admin routes need the bearer token")
        return await handler(request)

    @web.middleware
    async def _admit(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        gate = self.admission
        if gate is None or not self.gated(request):
            return await handler(request)
        if not gate.enter(time.monotonic_ns()):
            raise overloaded(gate)
        try:
            return await handler(request)
        finally:
            gate.leave(time.monotonic_ns())

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.field, exc.retry_after)
        except InputError as exc:  # a strict parser refused a value the handler did not name
            return error_response(400, "invalid", str(exc))
        except web.HTTPRequestEntityTooLarge:
            return error_response(
                413, "too_large", f"the body is larger than {self.max_body} bytes", "(body)"
            )
        except web.HTTPException as exc:
            if exc.status >= 400:
                return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: logged, answered as JSON, never a traceback page
            self.log.error("unhandled error", path=request.path, error=repr(exc))
            return error_response(500, "internal", "internal error")


async def _serve(svc: Service) -> None:
    runner = web.AppRunner(svc.app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, svc.common.host, svc.common.port, backlog=1024, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    svc.log.info("listening", host=svc.common.host, port=svc.common.port)
    watcher = asyncio.create_task(svc.watch_lag())
    try:
        starter = asyncio.create_task(svc.start())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({starter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if starter in done:
            starter.result()  # re-raise a failed start
            await stopper
        else:
            starter.cancel()
            await asyncio.gather(starter, return_exceptions=True)
    finally:
        watcher.cancel()
        svc.log.info("stopping")
        try:
            await asyncio.wait_for(svc.stop(), 10)
        finally:
            await runner.cleanup()
            svc.log.info("stopped")


C = TypeVar("C")


def run_main(
    name: str,
    service: Callable[[C, JsonLog], Service],
    config: Callable[[Common, Mapping[str, str]], C],
) -> None:
    """Entry point of service `name`: its config from the environment (the settings every
    service has, then its own), then serve until a signal."""
    log = JsonLog(name, level=os.environ.get("PERPDEX_LOG_LEVEL", "info"))
    try:
        svc = service(config(Common.from_env(name, os.environ), os.environ), log)
    except ConfigError as exc:
        log.error("bad configuration", problem=str(exc), variable=exc.name)
        sys.exit(2)
    try:
        import uvloop

        uvloop.run(_serve(svc))
    except Exception as exc:
        log.error("service failed", error=repr(exc))
        sys.exit(1)
