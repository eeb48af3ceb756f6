"""Samples the stack a few times a second: health and readiness of every service, block
height, and an order round-trip through the stack's real write path. The samples go to
probes.jsonl; the recoverability checker measures recovery times from them, and the
baseline check before the first fault uses the same probes.

Probes are control traffic: they reach services directly, never through Toxiproxy.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from .backends.base import RunningStack
from .errors import BaselineError
from .rundir import JsonlWriter
from .stackspec import StackSpec

__all__ = ["ProbeLoop", "Prober", "Sample", "baseline_check"]


@dataclass
class Sample:
    t_ns: int
    mono_ns: int
    health: dict[str, bool]
    ready: dict[str, bool]
    block_height: int | None
    order_ok: bool | None
    order_ms: float | None
    order_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "t_ns": self.t_ns,
            "mono_ns": self.mono_ns,
            "health": self.health,
            "ready": self.ready,
            "block_height": self.block_height,
            "order_ok": self.order_ok,
            "order_ms": self.order_ms,
            "order_error": self.order_error,
        }


class Prober:
    """One sample on demand. Thread-safe."""

    def __init__(self, spec: StackSpec, stack: RunningStack, *, timeout_s: float = 1.0) -> None:
        self._spec = spec
        self._stack = stack
        self._timeout = timeout_s
        self._http = httpx.Client(timeout=timeout_s)
        self._admin = httpx.Client(
            timeout=max(timeout_s, 2.0), headers={"Authorization": f"Bearer {stack.admin_token}"}
        )
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")
        self._rpc_id = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()
        self._admin.close()

    def _http_ok(self, service: str, path: str) -> bool:
        try:
            return self._http.get(self._stack.client_url(service, path)).status_code == 200
        except httpx.HTTPError:
            return False

    def _tcp_ok(self, service: str) -> bool:
        ep = self._stack.client_endpoint(service)
        try:
            with socket.create_connection((ep.host, ep.port), timeout=self._timeout):
                return True
        except OSError:
            return False

    def _health(self, service: str) -> tuple[bool, bool]:
        svc = self._spec.services[service]
        if svc.postgres is not None:
            ok = self._tcp_ok(service)
            return ok, ok
        health = self._http_ok(service, svc.health) if svc.health else True
        ready = self._http_ok(service, svc.ready) if svc.ready else health
        return health, ready

    def block_height(self) -> int | None:
        probe = self._spec.probes.get("block_height")
        if probe is None:
            return None
        service = str(probe["service"])
        try:
            if "jsonrpc" in probe:
                self._rpc_id += 1
                body = {
                    "jsonrpc": "2.0",
                    "id": self._rpc_id,
                    "method": probe["jsonrpc"],
                    "params": [],
                }
                resp = self._http.post(
                    self._stack.client_url(service, str(probe.get("path", "/"))), json=body
                )
                value: Any = resp.json()
                value = value.get("result") if isinstance(value, Mapping) else None
            else:
                resp = self._http.get(self._stack.client_url(service, str(probe["path"])))
                value = resp.json()
                if isinstance(value, Mapping):
                    value = value.get("block_height")
        except (httpx.HTTPError, ValueError):
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def order_round_trip(self) -> tuple[bool | None, float | None, str | None]:
        probe = self._spec.probes.get("order")
        if probe is None:
            return None, None, None
        url = self._stack.client_url(
            str(probe["service"]), str(probe.get("path", "/admin/probe/order"))
        )
        start = time.perf_counter()
        try:
            resp = self._admin.request(str(probe.get("method", "POST")), url, timeout=3.0)
        except httpx.HTTPError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:200]
        ms = round((time.perf_counter() - start) * 1000, 2)
        if resp.status_code >= 300:
            return False, ms, f"HTTP {resp.status_code}: {resp.text[:160]}"
        return True, ms, None

    def sample(self) -> Sample:
        t_ns, mono = time.time_ns(), time.monotonic_ns()
        services = list(self._spec.services)
        health_f = {s: self._pool.submit(self._health, s) for s in services}
        height_f = self._pool.submit(self.block_height)
        order_f = self._pool.submit(self.order_round_trip)
        health = {s: f.result()[0] for s, f in health_f.items()}
        ready = {s: f.result()[1] for s, f in health_f.items()}
        ok, ms, err = order_f.result()
        return Sample(t_ns, mono, health, ready, height_f.result(), ok, ms, err)


class ProbeLoop:
    """Samples every `interval_s` into probes.jsonl until stopped, and hands each sample
    to its subscribers (the timeline's block heights and probe events)."""

    def __init__(self, prober: Prober, log: JsonlWriter, interval_s: float = 0.25) -> None:
        self._prober = prober
        self._log = log
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscribers: list[Callable[[Sample], None]] = []
        self.last: Sample | None = None
        self.failures = 0
        self.first_failure: str | None = None

    def subscribe(self, callback: Callable[[Sample], None]) -> None:
        """Call `callback(sample)` after every sample (before `start`)."""
        self._subscribers.append(callback)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="probe-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                sample = self._prober.sample()
                self.last = sample
                self._log.write(sample.to_json())
                for callback in self._subscribers:
                    callback(sample)
            except Exception as exc:  # the loop goes on; the run reports it (exit 3)
                self.failures += 1
                self.first_failure = self.first_failure or f"{type(exc).__name__}: {exc}"
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - began)))

    def problem(self) -> str | None:
        """What went wrong while sampling, for the run's problems (None: nothing)."""
        if not self.failures:
            return None
        return f"{self.failures} probe sample(s) failed, the first with {self.first_failure}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def baseline_check(prober: Prober, log: JsonlWriter, *, timeout_s: float = 30.0) -> Sample:
    """Before the first fault: every service healthy and ready, blocks advancing, and an
    order round-trip accepted. Raises BaselineError (exit 3) with what was wrong."""
    deadline = time.monotonic() + timeout_s
    first_height: int | None = None
    last: Sample | None = None
    needs_height = "block_height" in prober._spec.probes
    for _ in range(10_000):
        last = prober.sample()
        log.write(last.to_json())
        if first_height is None:
            first_height = last.block_height
        advancing = not needs_height or (
            last.block_height is not None
            and first_height is not None
            and last.block_height > first_height
        )
        if all(last.ready.values()) and advancing and last.order_ok is not False:
            return last
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert last is not None
    problems = [f"{s} not ready" for s, ok in last.ready.items() if not ok]
    if needs_height and (last.block_height is None or last.block_height == first_height):
        problems.append(f"no new blocks (height {last.block_height})")
    if last.order_ok is False:
        problems.append(f"probe order failed: {last.order_error}")
    raise BaselineError(
        f"the stack was not healthy before the first fault (after {timeout_s:g}s): "
        + "; ".join(problems)
    )
