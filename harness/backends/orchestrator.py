"""The stack lifecycle every platform shares.

`StackOrchestrator(platform).up(run, run_id=..., run_dir=..., env=...)`:

1. writes the run marker (for `l2chaos gc`) and reserves host ports: Toxiproxy's API,
   one per link (also ``clients -> svc`` links) and one per service;
2. lets the platform prepare the run (`Platform.open`: images, network, scratch);
3. runs Toxiproxy through the platform and creates one proxy per link, from
   `Platform.proxy_listen` to `Platform.peer_address` of its server (an application
   proxy per link, when there is one, goes between the two in `_wire`: a link declared
   ``layer: http`` goes client -> Toxiproxy -> L7 proxy -> server, see `_start_l7proxy`);
4. starts services in dependency waves (every service whose dependencies are ready,
   together), each with its command rendered from the inside view of the platform,
   and waits for its readiness check (readiness.py) with its timeout.

On failure everything started is torn down before StackError is raised. The returned
`OrchestratedStack` is the `RunningStack` faults, probes and load use. Its controls
(`StackControl`) go to the platform under a lock per service; while a service is down
(killed or stopped, until started again) every proxy leading to it is disabled, so its
clients get connection refused at once on every platform. `down` runs every step of the
teardown whatever fails (teardown.py), records the problems (`teardown_problems`, which
the runner writes to run.json) and raises a held interrupt only at the end.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx
from l2chaos.errors import L2ChaosError, StackError
from l2chaos.l7proxy import launch
from l2chaos.l7proxy.client import L7Client
from l2chaos.l7proxy.launch import L7PROXY
from l2chaos.stackspec import ServiceSpec, StackRun, StackSpec, render

from .base import Backend, Endpoint, RunningStack
from .links import StackLinks
from .live import LiveStacks
from .platform import TOXIPROXY, Platform, PlatformContext, ProxyApi
from .ports import PortAllocator, PortReservation
from .procs import RUN_ID_ENV, MarkerStore, RunMarker
from .readiness import ReadyTarget, attempt_for
from .teardown import Teardown
from .toxiproxy import proxy_name

if TYPE_CHECKING:
    from l2chaos.l7proxy.client import L7Links

__all__ = ["OrchestratedStack", "StackControl", "StackOrchestrator"]

P = TypeVar("P", bound=Platform)
_POLL_S = 0.05
_TOXIPROXY_READY_S = 30.0
_LIVE = LiveStacks()


def _say_to_stderr(prefix: str) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(f"[l2chaos] {prefix}: {text}", file=sys.stderr, flush=True)

    return say


class StackOrchestrator(Backend, Generic[P]):
    """The lifecycle of a stack on one platform; see the module docstring."""

    def __init__(
        self,
        platform: type[P],
        *,
        stop_timeout_s: float = 10.0,
        say: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        """`platform` is instantiated with `options` once per run (it holds the run's state)."""
        self.platform = platform
        self.options = options
        self.name = platform.name
        self.stop_timeout_s = stop_timeout_s
        self.say = say if say is not None else _say_to_stderr(platform.name)

    def up(
        self, spec: StackRun, *, run_id: str, run_dir: Path, env: Mapping[str, str]
    ) -> OrchestratedStack[P]:
        """Start the stack; `env` is added to every service's environment. The admin token
        is ``env["L2CHAOS_ADMIN_TOKEN"]`` when given, else a fresh random one."""
        token = env.get("L2CHAOS_ADMIN_TOKEN") or secrets.token_urlsafe(24)
        stack: OrchestratedStack[P] = OrchestratedStack(
            spec,
            self.platform(**self.options),
            run_id=run_id,
            run_dir=Path(run_dir),
            admin_token=token,
            extra_env={**env, "L2CHAOS_ADMIN_TOKEN": token},
            stop_timeout_s=self.stop_timeout_s,
            say=self.say,
        )
        _LIVE.add(stack)
        try:
            stack._bring_up()
        except BaseException as exc:
            stack.down()
            if isinstance(exc, Exception) and not isinstance(exc, L2ChaosError):
                raise StackError(
                    f"starting stack {spec.spec.name!r} on {self.name} failed: {exc}"
                ) from exc
            raise
        return stack

    def down(self, stack: RunningStack) -> list[str]:
        if not isinstance(stack, OrchestratedStack):
            raise StackError(f"the {self.name} backend cannot stop a {type(stack).__name__}")
        return stack.down()


@dataclass
class _Unit:
    name: str
    spec: ServiceSpec
    lock: threading.RLock = field(default_factory=threading.RLock)
    created: bool = False
    disconnected: bool = False


class StackControl:
    """`ServiceControl` for every platform: the platform's call under the service's lock,
    and the links leading to a service disabled while it is down."""

    def __init__(self, stack: OrchestratedStack[Any]) -> None:
        self._stack = stack
        self._platform: Platform = stack.platform

    def _unit(self, service: str) -> _Unit:
        return self._stack._unit(service)

    def pid(self, service: str) -> int | None:
        with self._unit(service).lock:
            return self._platform.pid(service)

    def is_running(self, service: str) -> bool:
        with self._unit(service).lock:
            return self._platform.state(service).running

    def kill(self, service: str) -> None:
        self._going_down(service, lambda: self._platform.kill(service))

    def stop(self, service: str, timeout_s: float = 10.0, *, immediate: bool = False) -> None:
        self._going_down(
            service, lambda: self._platform.stop(service, timeout_s, immediate=immediate)
        )

    def _going_down(self, service: str, act: Callable[[], None]) -> None:
        """Disable the proxies leading to `service`, then stop it. First, while it still
        answers: Toxiproxy dials upstream in its accept loop, so a proxy disabled while a
        dial hangs on a dead container's address would block the API until it times out."""
        with self._unit(service).lock:
            self._stack._held_down(service, True)
            try:
                act()
            except BaseException:
                if self._platform.state(service).running:
                    self._stack._held_down(service, False)
                raise

    def start(self, service: str) -> None:
        """Start it again with the same command, environment and port; no-op if running."""
        with self._unit(service).lock:
            if self._stack.going_down:
                raise StackError("cannot start: the stack is being torn down", service=service)
            if not self._platform.state(service).running:
                self._platform.start(service)
                self._stack._save_marker()
            self._stack._held_down(service, False)

    def restart(self, service: str, timeout_s: float = 10.0) -> None:
        with self._unit(service).lock:
            self.stop(service, timeout_s)
            self.start(service)

    def pause(self, service: str) -> None:
        with self._unit(service).lock:
            self._platform.pause(service)

    def resume(self, service: str) -> None:
        with self._unit(service).lock:
            self._platform.resume(service)

    def disconnect(self, service: str) -> None:
        self._connect(service, False)

    def reconnect(self, service: str) -> None:
        self._connect(service, True)

    def _connect(self, service: str, connected: bool) -> None:
        """Native network isolation where the platform has it; else every link of the
        service disabled (its peers lose it; this host's direct traffic still reaches it)."""
        unit = self._unit(service)
        with unit.lock:
            if unit.disconnected != connected:
                return
            if "disconnect" in self._platform.capabilities:
                if connected:
                    self._platform.reconnect(service)
                else:
                    self._platform.disconnect(service)
            else:
                for lk in self._stack.spec.links_of(service):
                    self._stack.links.hold(lk.name, f"disconnect:{service}", not connected)
            unit.disconnected = not connected

    def wait_ready(self, service: str, timeout_s: float) -> None:
        self._stack._wait_ready(service, timeout_s)


class OrchestratedStack(RunningStack, Generic[P]):
    """A running stack on some platform. Thread-safe; `down()` is idempotent."""

    def __init__(
        self,
        run: StackRun,
        platform: P,
        *,
        run_id: str,
        run_dir: Path,
        admin_token: str,
        extra_env: Mapping[str, str],
        stop_timeout_s: float,
        say: Callable[[str], None],
    ) -> None:
        self.run = run
        self.spec: StackSpec = run.spec
        self.platform = platform
        self.run_id = run_id
        self.stack_name = run.spec.name
        self.admin_token = admin_token
        self.run_dir = run_dir
        self.logs_dir = run_dir / "logs"
        self.teardown_problems = []
        self.owner_pid = os.getpid()
        self._extra_env = dict(extra_env)
        self._stop_timeout_s = stop_timeout_s
        self._say = say
        self._lock = threading.RLock()
        self._down = False
        self._tearing_down = False
        self._cancel = threading.Event()
        self._order = run.spec.start_order()
        self._units = {n: _Unit(n, run.spec.services[n]) for n in self._order}
        self._ports: dict[str, PortReservation] = {}
        self._proxy_api: ProxyApi | None = None
        self._l7: L7Links | None = None
        self._links: StackLinks | None = None
        self._versions: dict[str, str] = {}
        self._store = MarkerStore()
        self._marker = RunMarker.for_this_process(run_id, self.stack_name)
        self._control = StackControl(self)
        self._http = httpx.Client(timeout=2.0, trust_env=False)
        self._ctx: PlatformContext | None = None

    # ------------------------------------------------------------ RunningStack

    @property
    def services(self) -> list[str]:
        return list(self._order)

    def _unit(self, name: str) -> _Unit:
        try:
            return self._units[name]
        except KeyError:
            raise StackError(
                f"unknown service {name!r}; services: {', '.join(self._order)}"
            ) from None

    def _port(self, name: str) -> int | None:
        res = self._ports.get(name)
        return res.port if res is not None else None

    def direct_endpoint(self, service: str) -> Endpoint:
        self._unit(service)
        port = self._port(service)
        if port is None:
            raise StackError(
                "has no `port` in the stack file, so nothing is published to reach it directly",
                service=service,
            )
        return self.platform.reach(port)

    def link_endpoint(self, link: str) -> Endpoint:
        """Where the proxy of `link` is reached from this host."""
        port = self._port(link.replace(" ", ""))
        if port is None or "->" not in link:
            raise StackError(f"unknown link {link!r}")
        return self.platform.reach(port)

    def client_endpoint(self, service: str) -> Endpoint:
        self._unit(service)
        lk = self.spec.client_link(service)
        return self.link_endpoint(lk.name) if lk is not None else self.direct_endpoint(service)

    @property
    def messages(self) -> L7Links | None:
        return self._l7

    @property
    def links(self) -> StackLinks:
        if self._links is None:
            raise StackError("Toxiproxy is not running for this stack")
        return self._links

    @property
    def control(self) -> StackControl:
        return self._control

    def reserved_ports(self) -> list[int]:
        """Every host port this run holds (services, proxies, Toxiproxy's API)."""
        return [r.port for r in self._ports.values()]

    def links_of(self, service: str) -> list[str]:
        """Every link where `service` is the client or the server."""
        return [lk.name for lk in self.spec.links_of(service)]

    def log_path(self, service: str) -> Path:
        if service not in (TOXIPROXY, L7PROXY):
            self._unit(service)
        return self.logs_dir / f"{service}.log"

    def log_tail(self, service: str, lines: int = 30) -> str:
        if service not in (TOXIPROXY, L7PROXY):
            self._unit(service)
        with contextlib.suppress(Exception):
            return self.platform.log_tail(service, lines)
        return ""

    def versions(self) -> dict[str, str]:
        with self._lock:
            out = dict(self._versions)
        with contextlib.suppress(Exception):
            out.update(self.platform.versions())
        return out

    def describe(self) -> dict[str, Any]:
        services = {s: (self.direct_url(s) if self._port(s) else None) for s in self._order}
        return {
            "run_id": self.run_id,
            "stack": self.stack_name,
            "backend": self.platform.name,
            "services": services,
            "links": self.links.links() if self._links is not None else [],
            "proxies": {lk.name: self.link_endpoint(lk.name).hostport for lk in self.spec.links},
            "clients": {s: self.client_endpoint(s).hostport for s in self._order if self._port(s)},
            **self.platform.describe(),
        }

    def _common_values(self) -> dict[str, str]:
        values = {
            "admin_token": self.admin_token,
            "seed": str(self.run.seed),
            "run_id": self.run_id,
            "switches": self.run.switches_json(),
            "stack_dir": str(self.spec.root),
        }
        for name, setting in self.spec.settings.items():
            values[f"setting:{name}"] = setting.render(self.run.settings.get(name, setting.default))
        return values

    def _dsn(self, service: str, hostport: str) -> str:
        pg = self.spec.services[service].postgres
        assert pg is not None
        return f"postgresql://{pg.user}@{hostport}/{pg.database}"

    def template_values(
        self, service: str | None = None, out: Path | None = None
    ) -> dict[str, str]:
        """Values for every template key of harness/stackspec.py, as seen from this host
        (the audit command, readiness commands, harness tools). With `service` also its
        own ``{port}`` (and ``{data_dir}`` where it is on this host); with `out`,
        ``{out}``."""
        values = self._common_values()
        values.update(python=sys.executable, host=self.platform.reach(0).host)
        for lk in self.spec.links:
            values[f"link:{lk.name}"] = self.link_endpoint(lk.name).hostport
        for name in self._order:
            if self._port(name) is None:
                continue
            hostport = self.direct_endpoint(name).hostport
            values[f"direct:{name}"] = hostport
            if self.spec.services[name].postgres is not None:
                values[f"direct_dsn:{name}"] = self._dsn(name, hostport)
        if service is not None:
            self._unit(service)
            if self._port(service) is not None:
                values["port"] = str(self.direct_endpoint(service).port)
            data_dir = self.platform.host_data_dir(service)
            if data_dir is not None:
                values["data_dir"] = str(data_dir)
        if out is not None:
            values["out"] = str(out)
        return values

    def service_values(self, service: str) -> dict[str, str]:
        """Template values as seen from inside `service` (what its command is rendered
        with): ``{link:a->b}`` is the proxy's inside address, ``{direct:svc}`` the
        peer address; ``{python}``, ``{host}``, ``{port}``, ``{data_dir}`` and
        ``{stack_dir}`` are the platform's."""
        self._unit(service)
        values = self._common_values()
        values.update(self.platform.inside_values(service))
        for lk in self.spec.links:
            values[f"link:{lk.name}"] = self.platform.proxy_address(lk.name)
        for name in self._order:
            if self._port(name) is None:
                continue
            peer = self.platform.peer_address(name)
            values[f"direct:{name}"] = peer
            if self.spec.services[name].postgres is not None:
                values[f"direct_dsn:{name}"] = self._dsn(name, peer)
        return values

    @property
    def going_down(self) -> bool:
        return self._tearing_down or self._down

    def __enter__(self) -> OrchestratedStack[P]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ------------------------------------------------------------ bring-up

    def _save_marker(self) -> None:
        with self._lock:
            if self.going_down:
                return
            m = self._marker
            m.processes = self.platform.processes()
            m.ports = [r.port for r in self._ports.values()]
            m.temp_dirs = [str(p) for p in self.platform.temp_dirs()]
            self._store.write(m)

    def _bring_up(self) -> None:
        spec = self.spec
        self._save_marker()  # first, so gc finds whatever follows if this process dies
        published = [n for n in self._order if self.platform.publishes(spec.services[n])]
        l7 = [launch.listen_unit(lk.name) for lk in spec.links if lk.layer == "http"]
        names = [TOXIPROXY, *spec.link_names, *published, *([L7PROXY, *l7] if l7 else [])]
        reserved = PortAllocator().reserve(len(names))
        self._ports = dict(zip(names, reserved, strict=True))
        self._save_marker()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._ctx = PlatformContext(
            run=self.run,
            run_id=self.run_id,
            run_dir=self.run_dir,
            admin_token=self.admin_token,
            extra_env=self._extra_env,
            ports={n: r.port for n, r in self._ports.items()},
            cancel=self._cancel,
            say=self._say,
            save_marker=self._save_marker,
        )
        self.platform.open(self._ctx)
        self._save_marker()
        self._start_l7proxy()
        self._start_toxiproxy()
        self._start_services()

    def _start_toxiproxy(self) -> None:
        api_port = self._ports[TOXIPROXY].port
        listen = {lk: self._ports[lk].port for lk in self.spec.link_names}
        api = self.platform.start_toxiproxy(api_port, listen, self.run.seed)
        self._proxy_api = api
        self._save_marker()
        deadline = time.monotonic() + _TOXIPROXY_READY_S
        while True:
            try:
                self._versions["toxiproxy"] = api.version()
                break
            except Exception as exc:
                last = str(exc)
            st = self.platform.state(TOXIPROXY)
            if not st.running:
                raise StackError(
                    f"Toxiproxy exited with code {st.exit_code}",
                    service=TOXIPROXY,
                    log_tail=self.log_tail(TOXIPROXY),
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"Toxiproxy's API did not answer within {_TOXIPROXY_READY_S:g}s ({last})",
                    service=TOXIPROXY,
                    log_tail=self.log_tail(TOXIPROXY),
                )
            time.sleep(_POLL_S)
        self._links = StackLinks(api, {lk.name: self._wire(api, lk.name) for lk in self.spec.links})

    def _wire(self, api: ProxyApi, link: str) -> str:
        """Create the proxy of `link`; returns its name. An application (L7) proxy for the
        link chains in here: Toxiproxy's upstream becomes the L7 proxy's listen address."""
        name = proxy_name(link)
        server = link.split("->", 1)[1]
        upstream = (
            self.platform.l7_address(link)
            if self._l7 is not None and link in self._l7.links()
            else self.platform.peer_address(server)
        )
        api.create_proxy(name, self.platform.proxy_listen(link), upstream)
        return name

    def _start_l7proxy(self) -> None:
        """The L7 proxy (l2chaos.l7proxy) for the `layer: http` links, with a per-run
        token; its listener for a link forwards to the link's server."""
        http = [lk for lk in self.spec.links if lk.layer == "http"]
        if not http:
            return
        token = secrets.token_urlsafe(24)
        control = self._ports[L7PROXY].port
        listen = {lk.name: self._ports[launch.listen_unit(lk.name)].port for lk in http}
        self.platform.start_l7proxy(control, listen, token)
        self._save_marker()
        client = L7Client(self.platform.reach(control).hostport, token)
        routes = {
            lk.name: (self.platform.l7_listen(lk.name), self.platform.peer_address(lk.server))
            for lk in http
        }
        try:
            self._l7 = launch.connect(
                client,
                routes,
                lambda: self.platform.state(L7PROXY).running,
                lambda: self.log_tail(L7PROXY),
            )
        except BaseException:
            client.close()
            raise

    def _start_services(self) -> None:
        """Start services in waves: each wave is every service whose dependencies are
        ready; a wave's services start and become ready together."""
        ready: set[str] = set()
        pending = list(self._order)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="stack-up")
        try:
            while pending:
                wave = [
                    n for n in pending if all(d in ready for d in self.spec.services[n].depends_on)
                ]
                if not wave:  # the loader rejects cycles; this cannot happen
                    raise StackError(f"cannot order services: {', '.join(pending)}")
                if self.platform.announce_waves:
                    self._say(f"starting {', '.join(wave)}")
                futures = [pool.submit(self._start_one, n) for n in wave]
                for fut in concurrent.futures.as_completed(futures):
                    exc = fut.exception()
                    if exc is not None:
                        raise exc
                ready.update(wave)
                pending = [n for n in pending if n not in ready]
        except BaseException:
            self._cancel.set()  # the rest of the wave stops waiting (SIGINT, a failure)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _service_env(self, name: str, rendered: Mapping[str, str]) -> dict[str, str]:
        env = dict(self._extra_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.run.common_env(admin_token=self.admin_token, run_id=self.run_id))
        env.update(rendered)
        env[RUN_ID_ENV] = self.run_id
        return env

    def _start_one(self, name: str) -> None:
        if self._cancel.is_set():
            return
        unit = self._units[name]
        values = self.service_values(name)
        try:
            argv = [render(part, values) for part in unit.spec.command]
            rendered = {k: render(v, values) for k, v in unit.spec.env.items()}
        except KeyError as exc:
            raise StackError(
                f"template {{{exc.args[0]}}} has no value on the {self.platform.name} platform",
                service=name,
            ) from None
        with unit.lock:
            self.platform.create(name, argv, self._service_env(name, rendered))
            unit.created = True
            self.platform.start(name)
            self._save_marker()
        self._wait_ready(name, unit.spec.ready_timeout_ns / 1e9)
        self.platform.initialise(name)

    # ------------------------------------------------------------ readiness

    def _ready_target(self, name: str) -> ReadyTarget:
        spec = self.spec.services[name]

        def postgres_version(v: str) -> None:
            with self._lock:
                self._versions.setdefault("postgres", v)

        return ReadyTarget(
            endpoint=lambda: self.direct_endpoint(name),
            http=self._http,
            postgres_login=self.platform.postgres_login(spec.postgres) if spec.postgres else None,
            command_values=lambda: self.template_values(name),
            command_env=self.run.common_env(admin_token=self.admin_token, run_id=self.run_id),
            cwd=self.spec.root,
            on_postgres_version=postgres_version,
        )

    def _wait_ready(self, name: str, timeout_s: float) -> None:
        """Wait for the service's readiness check; StackError when it exits or times out."""
        spec = self._unit(name).spec
        attempt = attempt_for(spec.ready_check, self._ready_target(name))
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while True:
            try:
                st = self.platform.state(name)
            except L2ChaosError:
                raise
            except Exception as exc:
                raise StackError(f"inspecting it failed: {exc}", service=name) from None
            if not st.running:
                raise StackError(
                    f"exited with code {st.exit_code} before it was ready"
                    + (f" ({st.detail})" if st.detail else ""),
                    service=name,
                    log_tail=self.log_tail(name),
                )
            if self._cancel.is_set():
                raise StackError("bring-up cancelled or the stack is going down", service=name)
            ok, last = (False, "paused") if st.paused else attempt()
            if ok:
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"not ready after {timeout_s:g}s ({last})",
                    service=name,
                    log_tail=self.log_tail(name),
                )
            time.sleep(_POLL_S)

    def _held_down(self, service: str, down: bool) -> None:
        """Disable (or enable again) every proxy leading to `service`."""
        if self._links is None:
            return
        for lk in self.spec.links_to(service):
            self._links.hold(lk.name, f"down:{service}", down)

    # ------------------------------------------------------------ teardown

    def down(self) -> list[str]:
        """Stop and remove everything; idempotent. Returns the problems met (also in
        `teardown_problems`). Every step runs even if an earlier one fails; an
        interrupt arriving meanwhile is raised once the teardown is complete. A call
        while a teardown is under way returns at once."""
        with self._lock:
            if self.going_down:
                return []
            self._tearing_down = True
        self._cancel.set()
        td = Teardown(self.run_id)
        created = [n for n in reversed(self._order) if self._units[n].created]
        units = created + ([TOXIPROXY] if self._proxy_api is not None else [])
        units += [L7PROXY] if self._l7 is not None else []
        if self._ctx is not None:
            td.step("stopping the stack", self.platform.stop_all, units, self._stop_timeout_s, td)
            td.step("removing the stack", self.platform.remove_all, td)
        if self._proxy_api is not None:
            td.step("closing the toxiproxy client", self._proxy_api.close)
        if self._l7 is not None:
            td.step("closing the L7 proxy client", self._l7.client.close)
        td.step("closing the http client", self._http.close)
        for r in self._ports.values():
            td.step(f"releasing port {r.port}", r.release)
        td.step("removing the run marker", self._store.remove, self.run_id)
        _LIVE.discard(self)
        with self._lock:
            self._down = True
        self.teardown_problems = list(td.problems)
        return td.finish()
