"""The local platform: a stack as child processes on 127.0.0.1, no Docker.

Every unit is a `GroupProcess` (its own process group, log appended to
``run_dir/logs/<unit>.log``, ``L2CHAOS_RUN_ID`` in its environment) running in its
scratch folder ``<temp dir>/<service>`` (``{data_dir}``, also the command's working
directory). Services listen on their reserved port directly, so the inside view of
addresses is the host view. PostgreSQL services run pgserver's binaries on a copy of a
cached initdb template (postgres.py); ``toxiproxy-server`` is the binary `.ci/setup`
installs.

Process control: kill = SIGKILL to the group; stop = SIGTERM (PostgreSQL: SIGINT, its
fast shutdown) then SIGKILL after the timeout; an immediate stop is PostgreSQL's SIGQUIT
(the crash path) or SIGKILL; pause/resume = SIGSTOP/SIGCONT to the group. Processes
share the host's network, so there is no native `disconnect`: the orchestrator disables
every Toxiproxy link of the service instead (its peers lose it; the harness's direct
control traffic still reaches it).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from l2chaos.errors import StackError
from l2chaos.l7proxy import launch as l7launch
from l2chaos.l7proxy.launch import L7PROXY

from .orchestrator import OrchestratedStack, StackOrchestrator
from .platform import LOOPBACK as HOST
from .platform import TOXIPROXY, LoopbackPlatform, PlatformContext, UnitState
from .postgres import PgInstall, create_database, make_data_dir, postgres_argv
from .procs import RUN_ID_ENV, GroupProcess, kill_run_processes, make_run_tempdir
from .toxiproxy import ToxiproxyClient, find_toxiproxy_server

if TYPE_CHECKING:
    from l2chaos.stackspec import PostgresSpec, ServiceSpec

    from .teardown import Teardown

__all__ = ["HOST", "LocalBackend", "LocalPlatform", "LocalStack"]

log = logging.getLogger(__name__)


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


class LocalPlatform(LoopbackPlatform):
    """Units as local process groups; see the module docstring."""

    name = "local"
    summary = "the stack as child processes on 127.0.0.1 (no Docker; the default)"
    capabilities: ClassVar[frozenset[str]] = frozenset({"kill", "stop", "pause"})
    auto_rank = 0

    def __init__(self, *, toxiproxy_log_level: str = "info") -> None:
        self.toxiproxy_log_level = toxiproxy_log_level
        self._procs: dict[str, GroupProcess] = {}
        self._pg: PgInstall | None = None
        self._ctx: PlatformContext | None = None
        self.tempdir: Path | None = None

    @classmethod
    def supports(cls, spec: ServiceSpec) -> bool:
        return bool(spec.command) or spec.postgres is not None

    @classmethod
    def publishes(cls, spec: ServiceSpec) -> bool:
        return True  # every service gets a port here, `{port}` even without `port:`

    @property
    def ctx(self) -> PlatformContext:
        if self._ctx is None:
            raise StackError("the local platform is not open")
        return self._ctx

    def _proc(self, unit: str) -> GroupProcess:
        try:
            return self._procs[unit]
        except KeyError:
            raise StackError("was never created", service=unit) from None

    # ---------------------------------------------------------------- bring-up

    def open(self, ctx: PlatformContext) -> None:
        self._ctx = ctx
        self.tempdir = make_run_tempdir(ctx.run_id)
        ctx.save_marker()
        if ctx.run.spec.postgres_services():
            self._pg = PgInstall.locate()

    def _host_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("L2CHAOS_")}
        env[RUN_ID_ENV] = self.ctx.run_id
        return env

    def _scratch(self, unit: str) -> Path:
        assert self.tempdir is not None
        path = self.tempdir / unit
        path.mkdir(mode=0o755, exist_ok=True)
        return path

    def start_toxiproxy(
        self, api_port: int, listen_ports: Mapping[str, int], seed: int
    ) -> ToxiproxyClient:
        env = self._host_env()
        env["LOG_LEVEL"] = self.toxiproxy_log_level
        binary = find_toxiproxy_server()
        # The scenario seed drives Toxiproxy's per-connection toxicity draws too.
        argv = [str(binary), "-host", HOST, "-port", str(api_port), "-seed", str(seed)]
        proc = GroupProcess(
            name=TOXIPROXY,
            argv=argv,
            env=env,
            cwd=self._scratch(f"_{TOXIPROXY}"),
            log_path=self.ctx.log_path(TOXIPROXY),
        )
        self._procs[TOXIPROXY] = proc
        proc.start()
        return ToxiproxyClient(f"{HOST}:{api_port}")

    def start_l7proxy(self, control_port: int, listen_ports: Mapping[str, int], token: str) -> None:
        control = f"{HOST}:{control_port}"
        decisions = str(self.ctx.run_dir / l7launch.DECISIONS_FILE)
        proc = GroupProcess(
            name=L7PROXY,
            argv=l7launch.command(sys.executable, control, decisions),
            env={**self._host_env(), l7launch.TOKEN_ENV: token},
            cwd=self._scratch(f"_{L7PROXY}"),
            log_path=self.ctx.log_path(L7PROXY),
        )
        self._procs[L7PROXY] = proc
        proc.start()

    def create(self, service: str, command: list[str], env: dict[str, str]) -> None:
        spec = self.ctx.service(service)
        port = self.ctx.ports[service]
        data_dir = self._scratch(service)
        log_path = self.ctx.log_path(service)
        if spec.postgres is not None:
            assert self._pg is not None
            pgdata = data_dir / "pgdata"
            make_data_dir(self._pg.template(), pgdata, self._pg.user)
            self._procs[service] = GroupProcess(
                name=service,
                argv=postgres_argv(self._pg, pgdata, port, HOST),
                env={
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "LC_ALL": "C",
                    "TZ": "UTC",
                    RUN_ID_ENV: self.ctx.run_id,
                },
                cwd=data_dir,
                log_path=log_path,
                user=self._pg.user.ids if self._pg.user else None,
                stop_signal=signal.SIGINT,  # fast shutdown
                stop_leader_only=True,  # the postmaster stops its backends itself
            )
            return
        if not command:
            raise StackError("has no command to run on the local platform", service=service)
        self._procs[service] = GroupProcess(
            name=service,
            argv=command,
            env={**self._host_env(), **env},
            cwd=data_dir,
            log_path=log_path,
        )

    def postgres_login(self, spec: PostgresSpec) -> tuple[str, str]:
        return "postgres", "postgres"  # the template's superuser; `initialise` adds spec's

    def initialise(self, service: str) -> None:
        pg = self.ctx.service(service).postgres
        if pg is not None:
            assert self._pg is not None
            create_database(self._pg, self.ctx.ports[service], pg, HOST)

    # ---------------------------------------------------------------- addresses

    def host_data_dir(self, service: str) -> Path | None:
        return self.tempdir / service if self.tempdir is not None else None

    def inside_values(self, service: str) -> dict[str, str]:
        data_dir = self.host_data_dir(service)
        return {
            "python": sys.executable,
            "host": HOST,
            "port": str(self.ctx.ports[service]),
            **({"data_dir": str(data_dir)} if data_dir is not None else {}),
        }

    # ---------------------------------------------------------------- control

    def start(self, service: str) -> None:
        proc = self._proc(service)
        if proc.is_running():
            return
        proc.stop(0)  # reap the previous leader and any stragglers of its group
        proc.start()

    def kill(self, service: str) -> None:
        self._proc(service).kill()

    def stop(self, service: str, timeout_s: float, *, immediate: bool = False) -> None:
        proc = self._proc(service)
        if not proc.is_running():
            proc.stop(0)  # reap a crashed leader and anything left in its group
        elif not immediate:
            proc.stop(timeout_s)
        elif service not in (TOXIPROXY, L7PROXY) and self.ctx.service(service).postgres is not None:
            proc.stop(timeout_s, sig=signal.SIGQUIT)
        else:
            proc.kill()

    def pause(self, service: str) -> None:
        proc = self._proc(service)
        if not proc.is_running() or not proc.signal_group(signal.SIGSTOP):
            raise StackError("cannot pause: it is not running", service=service)
        proc.wait_stopped(True, timeout_s=2.0)  # signals are delivered asynchronously

    def resume(self, service: str) -> None:
        proc = self._proc(service)
        if proc.signal_group(signal.SIGCONT):
            proc.wait_stopped(False, timeout_s=2.0)

    def state(self, service: str) -> UnitState:
        proc = self._procs.get(service)
        if proc is None:
            return UnitState(running=False, detail="not created")
        return UnitState(running=proc.is_running(), exit_code=proc.returncode)

    def pid(self, service: str) -> int | None:
        proc = self._proc(service)
        return proc.pid if proc.is_running() else None

    # ---------------------------------------------------------------- records

    def log_tail(self, unit: str, lines: int) -> str:
        return _tail(self.ctx.log_path(unit), lines)

    def processes(self) -> dict[str, int]:
        return {n: p.pid for n, p in self._procs.items() if p.pid is not None}

    def temp_dirs(self) -> list[Path]:
        return [self.tempdir] if self.tempdir is not None else []

    def versions(self) -> dict[str, str]:
        return {"postgres": self._pg.version} if self._pg is not None else {}

    # ---------------------------------------------------------------- teardown

    def remove_all(self, teardown: Teardown) -> None:
        def sweep() -> None:  # anything of this run still alive (started as an interrupt came)
            for line in kill_run_processes(self.ctx.run_id, rounds=5):
                log.warning("teardown of run %s: %s", self.ctx.run_id, line)

        teardown.step("sweeping stray processes", sweep)
        if self.tempdir is not None:
            teardown.step("removing the temp dir", shutil.rmtree, self.tempdir)


class LocalBackend(StackOrchestrator[LocalPlatform]):
    """The orchestrator on the local platform (the embedded default)."""

    def __init__(self, *, stop_timeout_s: float = 10.0, toxiproxy_log_level: str = "info") -> None:
        super().__init__(
            LocalPlatform, stop_timeout_s=stop_timeout_s, toxiproxy_log_level=toxiproxy_log_level
        )


LocalStack = OrchestratedStack[LocalPlatform]  # the running stack, whatever the platform
