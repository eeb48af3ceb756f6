"""The platform interface's docstring example made real: a platform without processes.

Each service is an HTTP server on a thread of this process, listening on the port the
orchestrator reserved: ``GET /ready`` (200 once ``ready_after`` requests came),
``POST /`` JSON-RPC (``eth_syncing`` false, ``eth_blockNumber`` a hex quantity that
grows by one per call). Toxiproxy is an in-memory table of proxies (`MemoryProxies`), so
the orchestrator's unit tests see every enable/disable it makes. Knobs for the tests:
`fail_stop` (a stop that raises), `interrupt_stop` (a stop that gets Ctrl-C),
`crash_on_start` (the unit exits at once with code 3).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from l2chaos.backends.base import Toxic
from l2chaos.backends.platform import TOXIPROXY, LoopbackPlatform, PlatformContext, UnitState
from l2chaos.backends.teardown import Teardown

__all__ = ["MemoryPlatform", "MemoryProxies"]

HOST = "127.0.0.1"


class MemoryProxies:
    """The `ProxyApi` of an in-memory Toxiproxy: proxies, their state and toxics."""

    def __init__(self) -> None:
        self.proxies: dict[str, dict[str, object]] = {}
        self.toxic_sets: dict[str, dict[str, Toxic]] = {}
        self.enabled: dict[str, bool] = {}
        self.closed = False

    def version(self) -> str:
        return "memory"

    def create_proxy(self, name: str, listen: str, upstream: str, enabled: bool = True) -> object:
        self.proxies[name] = {"listen": listen, "upstream": upstream}
        self.enabled[name] = enabled
        self.toxic_sets[name] = {}
        return name

    def set_enabled(self, name: str, enabled: bool) -> object:
        self.enabled[name] = enabled
        return name

    def is_enabled(self, name: str) -> bool:
        return self.enabled[name]

    def add_toxic(self, proxy: str, toxic: Toxic) -> object:
        self.toxic_sets[proxy][toxic.name] = toxic
        return toxic

    def remove_toxic(self, proxy: str, name: str, missing_ok: bool = True) -> bool:
        return self.toxic_sets[proxy].pop(name, None) is not None

    def toxics(self, proxy: str) -> list[Toxic]:
        return list(self.toxic_sets[proxy].values())

    def reset(self) -> None:
        for name in self.proxies:
            self.enabled[name] = True
            self.toxic_sets[name].clear()

    def close(self) -> None:
        self.closed = True


class _Service:
    """One service: an HTTP server thread while it runs."""

    def __init__(self, port: int | None, ready_after: int) -> None:
        self.port = port
        self.ready_after = ready_after
        self.requests = 0
        self.block = 0
        self.server: ThreadingHTTPServer | None = None
        self.paused = False
        self.exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.exit_code is None and (self.server is not None or self.port is None)

    def start(self) -> None:
        self.exit_code = None
        if self.port is None or self.server is not None:
            return
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                return

            def _answer(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                svc.requests += 1
                ok = svc.requests > svc.ready_after
                self._answer(200 if ok else 503, {"ready": ok})

            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if req["method"] == "eth_blockNumber":
                    svc.block += 1
                    result: object = hex(svc.block)
                else:
                    result = False
                self._answer(200, {"jsonrpc": "2.0", "id": req["id"], "result": result})

        self.server = ThreadingHTTPServer((HOST, self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def exit(self, code: int) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.exit_code = code
        self.paused = False


class MemoryPlatform(LoopbackPlatform):
    """Services as in-process HTTP servers; see the module docstring."""

    name = "memory"
    capabilities: ClassVar[frozenset[str]] = frozenset({"kill", "stop", "pause"})

    def __init__(
        self,
        *,
        ready_after: Mapping[str, int] | None = None,
        fail_stop: frozenset[str] = frozenset(),
        interrupt_stop: frozenset[str] = frozenset(),
        crash_on_start: frozenset[str] = frozenset(),
    ) -> None:
        self.ready_after = dict(ready_after or {})
        self.fail_stop = fail_stop
        self.interrupt_stop = interrupt_stop
        self.crash_on_start = crash_on_start
        self.units: dict[str, _Service] = {}
        self.created: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.events: list[tuple[str, str]] = []  # (what, unit), in order
        self.removed = False
        self.proxies = MemoryProxies()
        self._ctx: PlatformContext | None = None

    @property
    def ctx(self) -> PlatformContext:
        assert self._ctx is not None
        return self._ctx

    def open(self, ctx: PlatformContext) -> None:
        self._ctx = ctx

    def start_toxiproxy(
        self, api_port: int, listen_ports: Mapping[str, int], seed: int
    ) -> MemoryProxies:
        self.units[TOXIPROXY] = _Service(None, 0)
        self.events.append(("start", TOXIPROXY))
        return self.proxies

    def create(self, service: str, command: list[str], env: dict[str, str]) -> None:
        self.created[service] = (command, env)
        port = self.ctx.ports.get(service)
        self.units[service] = _Service(port, self.ready_after.get(service, 0))

    def inside_values(self, service: str) -> dict[str, str]:
        port = self.ctx.ports.get(service)
        return {"python": "python3", "host": HOST} | ({"port": str(port)} if port else {})

    def start(self, service: str) -> None:
        self.events.append(("start", service))
        unit = self.units[service]
        if service in self.crash_on_start:
            unit.exit(3)
            return
        unit.start()

    def kill(self, service: str) -> None:
        self.events.append(("kill", service))
        self.units[service].exit(-9)

    def stop(self, service: str, timeout_s: float, *, immediate: bool = False) -> None:
        self.events.append(("stop", service))
        if service in self.interrupt_stop:
            self.units[service].exit(0)
            raise KeyboardInterrupt
        if service in self.fail_stop:
            raise RuntimeError(f"{service} would not stop")
        self.units[service].exit(0)

    def pause(self, service: str) -> None:
        self.units[service].paused = True

    def resume(self, service: str) -> None:
        self.units[service].paused = False

    def state(self, service: str) -> UnitState:
        unit = self.units.get(service)
        if unit is None:
            return UnitState(running=False, detail="not created")
        return UnitState(running=unit.running, paused=unit.paused, exit_code=unit.exit_code)

    def pid(self, service: str) -> int | None:
        return None

    def log_tail(self, unit: str, lines: int) -> str:
        return ""

    def remove_all(self, teardown: Teardown) -> None:
        for unit in self.units.values():
            unit.exit(0)
        self.removed = True
