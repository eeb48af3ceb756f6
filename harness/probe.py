"""Samples the stack a few times a second: health and readiness of every service, block
height (and, with a `chain` probe, the head block, which feeds the chain record), and
an order round-trip through the stack's real write path. The samples go to
probes.jsonl; the recoverability checker measures recovery times from them, and the
baseline check before the first fault uses the same probes.

Every probe has its own timeout (`timeout` in the stack file; 1s, the order probe 3s).
The write (order) probe runs in its own thread on its own schedule (`interval`, default
the sampling interval), so a slow write never slows health and height sampling: a
sample carries the order result that completed since the previous sample (none when
none did). JSON-RPC probes accept integers and hex quantities ("0x1a").

Probes are control traffic: they reach services directly, never through Toxiproxy.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from .backends.base import RunningStack
from .chainrecord import Block, ChainRecorder, fetch_block
from .durations import parse_duration
from .errors import BaselineError
from .jsonrpc import RpcCallError, RpcClient, quantity
from .rundir import JsonlWriter
from .rundir.probes import Sample
from .stackspec import StackSpec

__all__ = ["ProbeLoop", "Prober", "Sample", "baseline_check"]

_ORDER_TIMEOUT_S = 3.0


OrderResult = tuple[bool | None, float | None, str | None]


def _timeout(probe: Mapping[str, Any] | None, default_s: float) -> float:
    if probe is None or "timeout" not in probe:
        return default_s
    return parse_duration(probe["timeout"]) / 1e9


class Prober:
    """One sample on demand. Thread-safe. With `run_dir` and a `chain` probe it keeps
    the run's chain record (`chain`)."""

    def __init__(
        self,
        spec: StackSpec,
        stack: RunningStack,
        *,
        timeout_s: float = 1.0,
        run_dir: Path | None = None,
    ) -> None:
        self._spec = spec
        self._stack = stack
        self._timeout = timeout_s
        self._http = httpx.Client(timeout=timeout_s)
        self._admin = httpx.Client(
            timeout=max(timeout_s, 2.0), headers={"Authorization": f"Bearer {stack.admin_token}"}
        )
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")
        probes = spec.probes
        self._height_timeout = _timeout(probes.get("block_height"), timeout_s)
        self._order_timeout = _timeout(probes.get("order"), _ORDER_TIMEOUT_S)
        self.order_interval_s: float | None = (
            parse_duration(probes["order"]["interval"]) / 1e9
            if "interval" in probes.get("order", {})
            else None
        )
        self._rpc: dict[str, RpcClient] = {}
        self.chain: ChainRecorder | None = None
        chain = probes.get("chain")
        if chain is not None:
            self._chain_rpc = self._client(chain, _timeout(chain, timeout_s))
            self._chain_api = str(chain.get("api", "evm"))
            if run_dir is not None:
                rec_rpc = self._client(
                    chain, max(5.0, _timeout(chain, timeout_s)), key="record", direct=True
                )
                self.chain = ChainRecorder(rec_rpc, self._chain_api, run_dir)
        self._order_lock = threading.Lock()
        self._order_fresh: OrderResult | None = None

    @property
    def spec(self) -> StackSpec:
        return self._spec

    def _client(
        self, probe: Mapping[str, Any], timeout_s: float, key: str = "", *, direct: bool = False
    ) -> RpcClient:
        """A JSON-RPC client of the probe's service: as clients reach it (through the
        `clients -> service` link when there is one), or `direct` (the chain scan at
        wind-down, control traffic)."""
        where = self._stack.direct_url if direct else self._stack.client_url
        url = where(str(probe["service"]), str(probe.get("path", "/")))
        client = RpcClient(url, timeout_s=timeout_s)
        self._rpc[f"{key}{probe['service']}{timeout_s}"] = client
        return client

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()
        self._admin.close()
        for c in self._rpc.values():
            c.close()
        if self.chain is not None:
            self.chain.close()

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
                url = self._stack.client_url(service, str(probe.get("path", "/")))
                value: Any = RpcClient(url, client=self._http).call(
                    str(probe["jsonrpc"]), [], timeout_s=self._height_timeout
                )
            else:
                resp = self._http.get(
                    self._stack.client_url(service, str(probe["path"])),
                    timeout=self._height_timeout,
                )
                value = resp.json()
                if isinstance(value, Mapping):
                    value = value.get("block_height")
        except (httpx.HTTPError, RpcCallError, ValueError):
            return None
        return quantity(value)

    def head(self) -> Block | None:
        """The head block through the `chain` probe (None without one, or no answer)."""
        if "chain" not in self._spec.probes:
            return None
        try:
            return fetch_block(self._chain_rpc, self._chain_api, None)
        except RpcCallError:
            return None

    def order_round_trip(self) -> OrderResult:
        probe = self._spec.probes.get("order")
        if probe is None:
            return None, None, None
        url = self._stack.client_url(
            str(probe["service"]), str(probe.get("path", "/admin/probe/order"))
        )
        start = time.perf_counter()
        try:
            resp = self._admin.request(
                str(probe.get("method", "POST")), url, timeout=self._order_timeout
            )
        except httpx.HTTPError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:200]
        ms = round((time.perf_counter() - start) * 1000, 2)
        if resp.status_code >= 300:
            return False, ms, f"HTTP {resp.status_code}: {resp.text[:160]}"
        return True, ms, None

    def post_order(self, result: OrderResult) -> None:
        """A result of the order probe's own schedule, for the next sample."""
        with self._order_lock:
            self._order_fresh = result

    def _take_order(self) -> OrderResult:
        with self._order_lock:
            fresh, self._order_fresh = self._order_fresh, None
        return fresh if fresh is not None else (None, None, None)

    def sample(self, *, with_order: bool = False) -> Sample:
        """Health, readiness, height and head now; with `with_order` also an order
        round-trip (else the one the order schedule completed since the last sample)."""
        t_ns, mono = time.time_ns(), time.monotonic_ns()
        services = list(self._spec.services)
        health_f = {s: self._pool.submit(self._health, s) for s in services}
        height_f = self._pool.submit(self.block_height)
        head_f = self._pool.submit(self.head)
        order_f = self._pool.submit(self.order_round_trip) if with_order else None
        health = {s: f.result()[0] for s, f in health_f.items()}
        ready = {s: f.result()[1] for s, f in health_f.items()}
        ok, ms, err = order_f.result() if order_f is not None else self._take_order()
        head = head_f.result()
        height = height_f.result()
        if height is None and head is not None and "block_height" not in self._spec.probes:
            height = head.number
        if head is not None and self.chain is not None:
            self.chain.observe(t_ns, head)
        return Sample(t_ns, mono, health, ready, height, ok, ms, err, head)


class ProbeLoop:
    """Samples every `interval_s` into probes.jsonl until stopped, and hands each sample
    to its subscribers (the timeline's block heights and probe events); the order probe
    runs in a thread of its own every `prober.order_interval_s` (default `interval_s`)."""

    def __init__(self, prober: Prober, log: JsonlWriter, interval_s: float = 0.25) -> None:
        self._prober = prober
        self._log = log
        self._interval = interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._subscribers: list[Callable[[Sample], None]] = []
        self.last: Sample | None = None
        self.failures = 0
        self.first_failure: str | None = None

    def subscribe(self, callback: Callable[[Sample], None]) -> None:
        """Call `callback(sample)` after every sample (before `start`)."""
        self._subscribers.append(callback)

    def start(self) -> None:
        targets = [("probe-loop", self._run)]
        if "order" in self._prober.spec.probes:
            targets.append(("probe-order", self._run_order))
        for name, target in targets:
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

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

    def _run_order(self) -> None:
        interval = self._prober.order_interval_s or self._interval
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._prober.post_order(self._prober.order_round_trip())
            except Exception as exc:  # as in _run: counted, reported by the run (exit 3)
                self.failures += 1
                self.first_failure = self.first_failure or f"{type(exc).__name__}: {exc}"
            self._stop.wait(max(0.0, interval - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)


def baseline_check(prober: Prober, log: JsonlWriter, *, timeout_s: float = 30.0) -> Sample:
    """Before the first fault: every service healthy and ready, blocks advancing, and an
    order round-trip accepted. Raises BaselineError (exit 3) with what was wrong."""
    deadline = time.monotonic() + timeout_s
    first_height: int | None = None
    last: Sample | None = None
    needs_height = bool({"block_height", "chain"} & set(prober.spec.probes))
    for _ in range(10_000):
        last = prober.sample(with_order=True)
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
