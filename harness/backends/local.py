"""The local backend: a stack as child processes on 127.0.0.1, no Docker.

`LocalBackend().up(run, run_id=..., run_dir=..., env=...)` reserves ports for every
service, every link's proxy and Toxiproxy's API; starts ``toxiproxy-server`` with one
proxy per link (the client gets the proxy's address through ``{link:a->b}``, never the
server's); starts PostgreSQL services from pgserver's binaries and every other service
from its rendered command, each in its own process group, in dependency order, waiting
for readiness; and returns a `LocalStack`. On any failure during `up`, everything
started so far is torn down before StackError (naming the service, its exit code and
the tail of its log) is raised.

Teardown (`down`, also `with stack:`, and an atexit fallback) is idempotent: services
in reverse order, then Toxiproxy, then PostgreSQL, then temp dirs, marker and port
reservations. Logs stay in ``run_dir/logs/``.

Process control on this backend (see `LocalControl`): kill = SIGKILL to the group;
stop = SIGTERM (PostgreSQL: SIGINT, its fast shutdown) then SIGKILL after the timeout;
an immediate stop is PostgreSQL's SIGQUIT (the crash path) or SIGKILL; pause/resume =
SIGSTOP/SIGCONT to the group. `disconnect` is an approximation here: processes share
the host's network, so it disables every Toxiproxy link of the service (both as client
and as server): traffic between services stops, new connections are refused, existing
ones are cut; the harness's own control traffic (direct addresses) still reaches it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from l2chaos.errors import Interrupted, StackError
from l2chaos.stackspec import ServiceSpec, StackRun, render

from .base import Backend, Endpoint, RunningStack
from .live import LiveStacks
from .ports import PortAllocator, PortReservation
from .postgres import PgInstall, create_database, dsn, make_data_dir, postgres_argv, wait_pg_ready
from .procs import (
    RUN_ID_ENV,
    GroupProcess,
    MarkerStore,
    RunMarker,
    gc_runs,
    kill_run_processes,
    make_run_tempdir,
)
from .toxiproxy import ToxiproxyClient, ToxiproxyLinks, find_toxiproxy_server, proxy_name

__all__ = ["LocalBackend", "LocalControl", "LocalStack"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
TOXIPROXY_LOG = "toxiproxy-server"
_TOXIPROXY_READY_S = 15.0
_POLL_S = 0.05


@dataclass
class _Service:
    name: str
    spec: ServiceSpec
    port: PortReservation
    data_dir: Path
    proc: GroupProcess
    ready_timeout_s: float
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def is_postgres(self) -> bool:
        return self.spec.postgres is not None


def _tail(path: Path, lines: int = 30, max_bytes: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


class LocalControl:
    """`ServiceControl` over process groups (see the module docstring)."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack

    def _svc(self, service: str) -> _Service:
        return self._stack._service(service)

    def pid(self, service: str) -> int | None:
        svc = self._svc(service)
        with svc.lock:
            return svc.proc.pid if svc.proc.is_running() else None

    def kill(self, service: str) -> None:
        svc = self._svc(service)
        with svc.lock:
            svc.proc.kill()

    def stop(self, service: str, timeout_s: float = 10.0, *, immediate: bool = False) -> None:
        svc = self._svc(service)
        with svc.lock:
            if not svc.proc.is_running():
                svc.proc.stop(0)  # reap a crashed leader and anything left in its group
                return
            if immediate:
                if svc.is_postgres:
                    svc.proc.stop(timeout_s, sig=signal.SIGQUIT)
                else:
                    svc.proc.kill()
            else:
                svc.proc.stop(timeout_s)

    def start(self, service: str) -> None:
        """Start it again with the same command, environment and port; no-op if running."""
        svc = self._svc(service)
        with svc.lock:
            if self._stack.going_down:
                raise StackError("cannot start: the stack is being torn down", service=service)
            if svc.proc.is_running():
                return
            svc.proc.stop(0)  # reap the previous leader and any stragglers of its group
            svc.proc.start()
            self._stack._save_marker()

    def restart(self, service: str, timeout_s: float = 10.0) -> None:
        svc = self._svc(service)
        with svc.lock:
            self.stop(service, timeout_s)
            self.start(service)

    def pause(self, service: str) -> None:
        svc = self._svc(service)
        with svc.lock:
            if not svc.proc.is_running() or not svc.proc.signal_group(signal.SIGSTOP):
                raise StackError("cannot pause: it is not running", service=service)
            svc.proc.wait_stopped(True, timeout_s=2.0)  # signals are delivered asynchronously

    def resume(self, service: str) -> None:
        svc = self._svc(service)
        with svc.lock:
            if svc.proc.signal_group(signal.SIGCONT):
                svc.proc.wait_stopped(False, timeout_s=2.0)

    def disconnect(self, service: str) -> None:
        for link in self._stack.links_of(service):
            self._stack.links.set_enabled(link, False)

    def reconnect(self, service: str) -> None:
        for link in self._stack.links_of(service):
            self._stack.links.set_enabled(link, True)

    def is_running(self, service: str) -> bool:
        svc = self._svc(service)
        with svc.lock:
            return svc.proc.is_running()

    def wait_ready(self, service: str, timeout_s: float) -> None:
        self._stack._wait_ready(self._svc(service), timeout_s)


class LocalStack(RunningStack):
    """A running stack of local processes. Thread-safe; `down()` is idempotent."""

    def __init__(
        self,
        run: StackRun,
        *,
        run_id: str,
        run_dir: Path,
        admin_token: str,
        extra_env: Mapping[str, str],
        stop_timeout_s: float,
        toxiproxy_log_level: str,
    ) -> None:
        self.run = run
        self.spec = run.spec
        self.run_id = run_id
        self.stack_name = run.spec.name
        self.admin_token = admin_token
        self.run_dir = run_dir
        self.logs_dir = run_dir / "logs"
        self._extra_env = dict(extra_env)
        self._stop_timeout_s = stop_timeout_s
        self._tp_log_level = toxiproxy_log_level
        self._lock = threading.RLock()
        self._down = False
        self._tearing_down = False
        self._services: dict[str, _Service] = {}
        self._order: list[str] = []
        self._started: list[str] = []
        self._ports: list[PortReservation] = []
        self._link_ports: dict[str, PortReservation] = {}
        self._svc_ports: dict[str, PortReservation] = {}
        self._tp_port: PortReservation | None = None
        self._tp_proc: GroupProcess | None = None
        self._tp_client: ToxiproxyClient | None = None
        self._links: ToxiproxyLinks | None = None
        self._pg: PgInstall | None = None
        self._versions: dict[str, str] = {}
        self._store = MarkerStore()
        self._marker = RunMarker.for_this_process(run_id, self.stack_name)
        self.tempdir: Path | None = None
        self._control = LocalControl(self)
        self.owner_pid = os.getpid()
        self._http = httpx.Client(timeout=2.0, trust_env=False)

    # ------------------------------------------------------------ RunningStack

    @property
    def services(self) -> list[str]:
        return list(self._order)

    def _service(self, name: str) -> _Service:
        try:
            return self._services[name]
        except KeyError:
            raise StackError(
                f"unknown service {name!r}; services: {', '.join(self._order)}"
            ) from None

    def direct_endpoint(self, service: str) -> Endpoint:
        res = self._svc_ports.get(service)
        if res is None:
            raise StackError(f"unknown service {service!r}; services: {', '.join(self._order)}")
        return Endpoint(HOST, res.port)

    def link_endpoint(self, link: str) -> Endpoint:
        """Where the proxy of `link` listens (what the client service uses)."""
        try:
            return Endpoint(HOST, self._link_ports[link.replace(" ", "")].port)
        except KeyError:
            raise StackError(f"unknown link {link!r}") from None

    @property
    def links(self) -> ToxiproxyLinks:
        if self._links is None:
            raise StackError("Toxiproxy is not running for this stack")
        return self._links

    @property
    def control(self) -> LocalControl:
        return self._control

    def links_of(self, service: str) -> list[str]:
        """Every link where `service` is the client or the server."""
        return [lk.name for lk in self.spec.links_of(service)]

    def log_path(self, service: str) -> Path:
        if service == TOXIPROXY_LOG:
            return self.logs_dir / f"{TOXIPROXY_LOG}.log"
        self._service(service)
        return self.logs_dir / f"{service}.log"

    def log_tail(self, service: str, lines: int = 30) -> str:
        return _tail(self.log_path(service), lines)

    def versions(self) -> dict[str, str]:
        with self._lock:
            if "toxiproxy" not in self._versions and self._tp_client is not None:
                self._versions["toxiproxy"] = self._tp_client.version()
            return dict(self._versions)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["backend"] = "local"
        d["proxies"] = {lk: self.link_endpoint(lk).hostport for lk in self._link_ports}
        return d

    def template_values(
        self, service: str | None = None, out: Path | None = None
    ) -> dict[str, str]:
        """Values for every template key of harness/stackspec.py, as seen from this host.

        With `service`, also its own ``{port}``, ``{host}`` and ``{data_dir}``; with
        `out`, ``{out}`` (the audit command).
        """
        values: dict[str, str] = {
            "python": sys.executable,
            "host": HOST,
            "admin_token": self.admin_token,
            "seed": str(self.run.seed),
            "run_id": self.run_id,
            "switches": self.run.switches_json(),
        }
        for lk, res in self._link_ports.items():
            values[f"link:{lk}"] = f"{HOST}:{res.port}"
        for name, res in self._svc_ports.items():
            values[f"direct:{name}"] = f"{HOST}:{res.port}"
            pg = self.spec.services[name].postgres
            if pg is not None:
                values[f"direct_dsn:{name}"] = dsn(pg, HOST, res.port)
        for name, setting in self.spec.settings.items():
            values[f"setting:{name}"] = setting.render(self.run.settings.get(name, setting.default))
        if service is not None:
            if service not in self._svc_ports:
                raise StackError(f"unknown service {service!r}")
            values["port"] = str(self._svc_ports[service].port)
            if self.tempdir is not None:
                values["data_dir"] = str(self.tempdir / service)
        if out is not None:
            values["out"] = str(out)
        return values

    @property
    def going_down(self) -> bool:
        return self._tearing_down or self._down

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ------------------------------------------------------------ bring-up

    def _save_marker(self) -> None:
        with self._lock:
            if self._down or self._tearing_down:
                return
            m = self._marker
            m.processes = {
                name: pid
                for name, pid in (
                    [(TOXIPROXY_LOG, self._tp_proc.pid if self._tp_proc else None)]
                    + [(n, s.proc.pid) for n, s in self._services.items()]
                )
                if pid is not None
            }
            m.ports = [r.port for r in self._ports]
            m.temp_dirs = [str(self.tempdir)] if self.tempdir else []
            self._store.write(m)

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("L2CHAOS_")}
        env.update(self._extra_env)
        env[RUN_ID_ENV] = self.run_id
        return env

    def _bring_up(self) -> None:
        spec = self.spec
        self._order = spec.start_order()
        if TOXIPROXY_LOG in spec.services:
            raise StackError(f"a service may not be named {TOXIPROXY_LOG!r} on the local backend")
        self._save_marker()  # first, so gc finds whatever follows if this process dies
        self.tempdir = make_run_tempdir(self.run_id)
        self._save_marker()
        self.logs_dir.mkdir(parents=True, exist_ok=True)

        allocator = PortAllocator()
        n = len(self._order) + len(spec.links) + 1
        self._ports = allocator.reserve(n)
        ports = iter(self._ports)
        self._tp_port = next(ports)
        for lk in spec.links:
            self._link_ports[lk.name] = next(ports)
        self._svc_ports = {name: next(ports) for name in self._order}

        if spec.postgres_services():
            self._pg = PgInstall.locate()
            self._versions["postgres"] = self._pg.version

        for name in self._order:
            s = spec.services[name]
            data_dir = self.tempdir / name
            data_dir.mkdir(mode=0o755)
            self._services[name] = _Service(
                name=name,
                spec=s,
                port=self._svc_ports[name],
                data_dir=data_dir,
                proc=self._make_proc(name, s, self._svc_ports[name].port, data_dir),
                ready_timeout_s=s.ready_timeout_ns / 1e9,
            )
        self._save_marker()

        self._start_toxiproxy()
        for name in self._order:
            svc = self._services[name]
            if svc.is_postgres:
                self._start_postgres(svc)
            else:
                with svc.lock:
                    svc.proc.start()
                self._started.append(name)
                self._save_marker()
                self._wait_ready(svc, svc.ready_timeout_s)

    def _make_proc(self, name: str, s: ServiceSpec, port: int, data_dir: Path) -> GroupProcess:
        log_path = self.logs_dir / f"{name}.log"
        if s.postgres is not None:
            assert self._pg is not None
            pgdata = data_dir / "pgdata"
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LC_ALL": "C",
                "TZ": "UTC",
                RUN_ID_ENV: self.run_id,
            }
            return GroupProcess(
                name=name,
                argv=postgres_argv(self._pg, pgdata, port, HOST),
                env=env,
                cwd=data_dir,
                log_path=log_path,
                user=self._pg.user.ids if self._pg.user else None,
                stop_signal=signal.SIGINT,  # fast shutdown
                stop_leader_only=True,  # the postmaster stops its backends itself
            )
        values = self.template_values(name)
        try:
            argv = [render(part, values) for part in s.command]
            rendered_env = {k: render(v, values) for k, v in s.env.items()}
        except KeyError as exc:
            raise StackError(
                f"unknown template key {{{exc.args[0]}}} in its command or env", service=name
            ) from None
        if not argv:
            raise StackError("has no command to run on the local backend", service=name)
        env = self._base_env()
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.run.common_env(admin_token=self.admin_token, run_id=self.run_id))
        env.update(rendered_env)
        env[RUN_ID_ENV] = self.run_id
        return GroupProcess(name=name, argv=argv, env=env, cwd=data_dir, log_path=log_path)

    def _start_toxiproxy(self) -> None:
        assert self._tp_port is not None
        assert self.tempdir is not None
        binary = find_toxiproxy_server()
        cwd = self.tempdir / f"_{TOXIPROXY_LOG}"
        cwd.mkdir(mode=0o755)
        env = self._base_env()
        env["LOG_LEVEL"] = self._tp_log_level
        api = f"{HOST}:{self._tp_port.port}"
        self._tp_proc = GroupProcess(
            name=TOXIPROXY_LOG,
            # The scenario seed drives Toxiproxy's per-connection toxicity draws too.
            argv=[
                str(binary),
                "-host",
                HOST,
                "-port",
                str(self._tp_port.port),
                "-seed",
                str(self.run.seed),
            ],
            env=env,
            cwd=cwd,
            log_path=self.logs_dir / f"{TOXIPROXY_LOG}.log",
        )
        self._tp_proc.start()
        self._save_marker()
        self._tp_client = ToxiproxyClient(api)
        deadline = time.monotonic() + _TOXIPROXY_READY_S
        while not self._tp_client.ping():
            if not self._tp_proc.is_running():
                raise StackError(
                    f"toxiproxy-server ({binary}) exited with code {self._tp_proc.returncode}",
                    service=TOXIPROXY_LOG,
                    log_tail=self.log_tail(TOXIPROXY_LOG),
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"toxiproxy-server did not answer at {api} within {_TOXIPROXY_READY_S:g}s",
                    service=TOXIPROXY_LOG,
                    log_tail=self.log_tail(TOXIPROXY_LOG),
                )
            time.sleep(_POLL_S)
        self._versions["toxiproxy"] = self._tp_client.version()
        proxies: dict[str, str] = {}
        for lk in self.spec.links:
            name = proxy_name(lk.name)
            upstream = self._services[lk.server].port.port
            self._tp_client.create_proxy(
                name, f"{HOST}:{self._link_ports[lk.name].port}", f"{HOST}:{upstream}"
            )
            proxies[lk.name] = name
        self._links = ToxiproxyLinks(self._tp_client, proxies)

    def _start_postgres(self, svc: _Service) -> None:
        assert self._pg is not None
        assert svc.spec.postgres is not None
        template = self._pg.template()
        make_data_dir(template, svc.data_dir / "pgdata", self._pg.user)
        with svc.lock:
            svc.proc.start()
        self._started.append(svc.name)
        self._save_marker()
        self._wait_ready(svc, svc.ready_timeout_s)
        create_database(self._pg, svc.port.port, svc.spec.postgres, HOST)

    # ------------------------------------------------------------ readiness

    def _wait_ready(self, svc: _Service, timeout_s: float) -> None:
        """Wait for the service's readiness probe; StackError when it exits or times out."""
        if svc.is_postgres:
            assert self._pg is not None
            ok = wait_pg_ready(self._pg, svc.port.port, timeout_s, svc.proc.is_running, HOST)
            if ok:
                return
            self._not_ready(svc, timeout_s, "pg_isready never reported it accepting connections")
        path = svc.spec.ready or svc.spec.health
        url = self.direct_url(svc.name, path) if path else None
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while True:
            if not svc.proc.is_running():
                self._not_ready(svc, timeout_s, last)
            if url is not None:
                try:
                    resp = self._http.get(url)
                    if resp.status_code == 200:
                        return
                    last = f"GET {url} answered {resp.status_code}: {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"GET {url}: {type(exc).__name__} {exc}"
            else:
                try:
                    with socket.create_connection((HOST, svc.port.port), timeout=1.0):
                        return
                except OSError as exc:
                    last = f"connect {HOST}:{svc.port.port}: {exc}"
            if time.monotonic() >= deadline:
                self._not_ready(svc, timeout_s, last)
            time.sleep(_POLL_S)

    def _not_ready(self, svc: _Service, timeout_s: float, last: str) -> None:
        rc = svc.proc.returncode
        if rc is not None:
            how = f"exited with code {rc} before it was ready"
        else:
            how = f"not ready after {timeout_s:g}s ({last})"
        raise StackError(how, service=svc.name, log_tail=self.log_tail(svc.name))

    # ------------------------------------------------------------ teardown

    def _sweep(self) -> None:
        for line in kill_run_processes(self.run_id, rounds=5):
            log.warning("teardown of run %s: %s", self.run_id, line)

    def down(self) -> list[str]:
        """Stop everything; idempotent. Returns problems met on the way.

        Every step runs even if an earlier one fails. An interrupt (KeyboardInterrupt,
        l2chaos Interrupted) arriving meanwhile is held until the teardown is complete,
        then raised. A call while a teardown is already under way returns at once.
        """
        with self._lock:
            if self._down or self._tearing_down:
                return []
            self._tearing_down = True
        problems: list[str] = []
        held: BaseException | None = None

        def step(what: str, fn: Any, *args: Any) -> None:
            nonlocal held
            try:
                fn(*args)
            except BaseException as exc:  # teardown goes on whatever happens
                problems.append(f"{what}: {exc!r}")
                log.warning("teardown of run %s: %s: %r", self.run_id, what, exc)
                if isinstance(exc, Interrupted) or not isinstance(exc, Exception):
                    held = held or exc

        def stop(svc: _Service) -> None:
            with svc.lock:
                svc.proc.stop(self._stop_timeout_s)

        for name in reversed(self._order):
            svc = self._services.get(name)
            if svc is not None and not svc.is_postgres:
                step(f"stopping {name}", stop, svc)
        if self._tp_proc is not None:
            step("stopping toxiproxy-server", self._tp_proc.stop, self._stop_timeout_s)
        for name in reversed(self._order):
            svc = self._services.get(name)
            if svc is not None and svc.is_postgres:
                step(f"stopping {name}", stop, svc)
        # anything of this run still alive (say, started just as an interrupt arrived)
        step("sweeping stray processes", self._sweep)
        if self._tp_client is not None:
            step("closing toxiproxy client", self._tp_client.close)
        step("closing http client", self._http.close)
        if self.tempdir is not None:
            step("removing temp dir", shutil.rmtree, self.tempdir)
        for r in self._ports:
            r.release()
        step("removing marker", self._store.remove, self.run_id)
        _LIVE.discard(self)
        with self._lock:
            self._down = True
        if held is not None:
            raise held
        return problems


# ------------------------------------------------------------ atexit fallback


_LIVE = LiveStacks()


class LocalBackend(Backend):
    """Stacks as local processes; see the module docstring."""

    name = "local"

    def __init__(self, *, stop_timeout_s: float = 10.0, toxiproxy_log_level: str = "info") -> None:
        self.stop_timeout_s = stop_timeout_s
        self.toxiproxy_log_level = toxiproxy_log_level

    def up(
        self, spec: StackRun, *, run_id: str, run_dir: Path, env: Mapping[str, str]
    ) -> LocalStack:
        """Start the stack; `env` is added to every service's environment. The admin token
        is ``env["L2CHAOS_ADMIN_TOKEN"]`` when given, else a fresh random one."""
        token = env.get("L2CHAOS_ADMIN_TOKEN") or secrets.token_urlsafe(24)
        stack = LocalStack(
            spec,
            run_id=run_id,
            run_dir=Path(run_dir),
            admin_token=token,
            extra_env=env,
            stop_timeout_s=self.stop_timeout_s,
            toxiproxy_log_level=self.toxiproxy_log_level,
        )
        _LIVE.add(stack)
        try:
            stack._bring_up()
        except BaseException as exc:
            stack.down()
            if isinstance(exc, Exception) and not isinstance(exc, StackError):
                raise StackError(f"starting stack {spec.spec.name!r} failed: {exc}") from exc
            raise
        return stack

    def down(self, stack: RunningStack) -> None:
        if not isinstance(stack, LocalStack):
            raise StackError(f"the local backend cannot stop a {type(stack).__name__}")
        stack.down()

    @classmethod
    def gc(cls) -> list[str]:
        return gc_runs()
