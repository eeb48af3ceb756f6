"""Runs Locust for a scenario: out of process, bounded, and always cleaned up.

    runner = LoadRunner(plan, endpoints={"ui": ui_url, "rpc": rpc_url}, accounts=accounts,
                        seed=seed, run_dir=run_dir, duration_s=60, t0_ns=t0_ns)
    with runner:                 # start() ... stop()
        runner.wait(timeout=70)  # Locust stops itself after duration_s
    runner.result.merge          # run_dir/history.jsonl is merged

Locust runs as its own process(es), never imported here (gevent must not patch the
harness): one standalone process for ``workers: 0`` (the default), else a master and N workers on
this machine (plus `remote_workers` joining from elsewhere, docs/load.md). Every
process gets its own session, so `stop` can signal and kill whole process groups.

Bounded three ways: Locust gets ``--run-time``; `stop` is graceful (SIGTERM, which makes
Locust stop its users, write its CSV files and exit) and then kills; and a watchdog
thread kills everything at start-up + duration + `grace` whatever the caller does.

Files: run_dir/load/ (Locust CSV stats with full history, the Locust logs,
load-plan.json with API keys redacted, summary.json), run_dir/history/worker-<n>.jsonl
while running, run_dir/history.jsonl after `stop`. The load context (with API keys)
lives outside the run directory, mode 0600, deleted by `stop`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ..childproc import spawn_logged
from ..errors import LoadError
from ..safety import ensure_allowed
from .context import (
    CONTEXT_ENV,
    WORKER_ENV,
    Account,
    LoadContext,
    redacted,
    split_accounts,
    sweep_secret_files,
    write_secret_json,
)
from .history import MergeStats, merge_histories
from .plan import LoadPlan
from .protocols import SetupArgs
from .protocols import protocol as find_protocol
from .rate import RATE_FILE, WORKER_RATE_GLOB, RateSummary, merge_rates

__all__ = ["LOCUSTFILE", "LoadResult", "LoadRunner", "locust_class"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RUN_ID_ENV = "L2CHAOS_RUN_ID"  # as l2chaos.backends.procs.RUN_ID_ENV
_POLL_S = 0.05
_TERM_WAIT_S = 10.0  # after SIGTERM, before SIGKILL
_READY_FILE_WAIT_S = 0.1


def locust_class(persona: str) -> str:
    """The Locust user class name of a persona (locustfile.py: Maker, Taker, ...)."""
    return persona.capitalize()


@dataclass
class _Proc:
    role: str  # "standalone", "master" or "worker-<n>"
    popen: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]
    worker: int | None = None  # for processes that run users


@dataclass
class LoadResult:
    """What a load run did, after `stop`."""

    exit_codes: dict[str, int | None] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)  # roles that needed SIGKILL
    deadline_hit: bool = False
    history: Path | None = None
    merge: MergeStats | None = None
    exceptions: int = 0  # errors raised inside user code (stats_exceptions.csv)
    started_t_ns: int = 0
    stopped_t_ns: int = 0
    rate: RateSummary | None = None  # open loop: target and achieved arrivals

    @property
    def clean(self) -> bool:
        """Every process exited by itself with code 0 and no user code raised."""
        return (
            not self.killed
            and not self.deadline_hit
            and self.exceptions == 0
            and all(c == 0 for c in self.exit_codes.values())
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_codes": dict(self.exit_codes),
            "killed": list(self.killed),
            "deadline_hit": self.deadline_hit,
            "history": str(self.history) if self.history else None,
            "merge": self.merge.to_json() if self.merge else None,
            "exceptions": self.exceptions,
            "started_t_ns": self.started_t_ns,
            "stopped_t_ns": self.stopped_t_ns,
            "rate": self.rate.to_json() if self.rate else None,
            "clean": self.clean,
        }


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host if host not in ("*", "0.0.0.0", "") else "127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class LoadRunner:
    """Starts, watches and stops Locust for one run. Thread-safe; `stop` is idempotent."""

    def __init__(
        self,
        plan: LoadPlan,
        *,
        endpoints: Mapping[str, str],
        accounts: Sequence[Mapping[str, Any]],
        seed: int,
        run_dir: Path,
        duration_s: float,
        t0_ns: int,
        allow_targets: Iterable[str] = (),
        python: str | None = None,
        context_dir: Path | None = None,
        run_id: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not duration_s > 0 or not math.isfinite(duration_s):
            raise LoadError(
                f"load duration must be a positive number of seconds, got {duration_s!r}"
            )
        self.plan = plan
        self.endpoints = {k: v.rstrip("/") for k, v in endpoints.items()}
        self.seed = int(seed)
        self.run_dir = Path(run_dir).absolute()  # Locust runs in load/: relative paths would break
        self.duration_s = float(duration_s)
        self.t0_ns = int(t0_ns)
        self.allow_targets = tuple(allow_targets)
        self.python = python or sys.executable
        self.context_dir = context_dir
        self.run_id = run_id
        self.load_dir = self.run_dir / "load"
        self.history_dir = self.run_dir / "history"
        self.history_path = self.run_dir / "history.jsonl"
        self.protocol = find_protocol(plan.protocol)
        self.options = dict(options or {})
        self.stack_accounts = list(accounts)
        self.data: Mapping[str, Any] = {}
        self._prepared = False

        needs = self.protocol.endpoints_needed(plan.counts)
        missing = sorted(needs - set(self.endpoints))
        if missing:
            raise LoadError(
                f"the {plan.protocol} load needs endpoint(s) {', '.join(missing)} but the stack "
                f"provides {', '.join(sorted(self.endpoints)) or 'none'} (stack.yaml `load:` maps "
                "roles to services)"
            )
        for role, url in self.endpoints.items():
            if not url.startswith(("http://", "https://")):
                raise LoadError(f"endpoint {role} must be an http(s) URL, got {url!r}")
            ensure_allowed(url, allow=self.allow_targets, what="load")
        # A protocol that makes its own accounts (evm: keys from the seed) deals them at
        # start; the stack's accounts are checked now, before anything starts.
        self.slices: list[list[Account]] = (
            []
            if self.protocol.own_accounts
            else split_accounts(accounts, plan.users, plan.total_workers)
        )

        self._lock = threading.RLock()
        self._procs: list[_Proc] = []
        self._context_path: Path | None = None
        self._started = False
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._deadline_mono: float | None = None
        self._deadline_hit = False
        self._killed: list[str] = []
        self.result: LoadResult | None = None
        self._started_t_ns = 0
        self._master_port: int | None = None

    @property
    def context_path(self) -> Path | None:
        """Where the load context (with API keys) is while Locust runs; gone after stop."""
        return self._context_path

    @property
    def pids(self) -> dict[str, int]:
        """Process id of every Locust process, by role (each leads its own group)."""
        return {p.role: p.popen.pid for p in self._procs}

    # ------------------------------------------------------------------ commands

    def _base_cmd(self) -> list[str]:
        return [self.python, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "INFO"]

    def _run_args(self) -> list[str]:
        classes = [locust_class(p.name) for p in self.plan.personas if p.count > 0]
        stop_s = math.ceil(self.plan.stop_timeout_ns / 1e9)
        return [
            "--headless",
            "--users", str(self.plan.users),
            "--spawn-rate", repr(self.plan.spawn_rate),
            "--run-time", f"{max(1, round(self.duration_s))}s",
            "--stop-timeout", str(stop_s),
            "--csv", str(self.load_dir / "stats"),
            "--csv-full-history",
            "--exit-code-on-error", "0",
            "--only-summary",
            *classes,
        ]  # fmt: skip

    def commands(self) -> list[tuple[str, list[str], int | None]]:
        """(role, argv, worker index) of every local process, in start order."""
        if not self.plan.distributed:
            return [("standalone", self._base_cmd() + self._run_args(), 0)]
        host = self.plan.master_bind_host
        if self._master_port is None:
            self._master_port = self.plan.master_port or _free_port(host)
        port = self._master_port
        start_s = max(1, math.ceil(self.plan.start_timeout_ns / 1e9))
        master = [
            *self._base_cmd(),
            "--master",
            "--master-bind-host", host,
            "--master-bind-port", str(port),
            "--expect-workers", str(self.plan.total_workers),
            "--expect-workers-max-wait", str(start_s),
            *self._run_args(),
        ]  # fmt: skip
        connect = "127.0.0.1" if host in ("*", "0.0.0.0", "") else host
        out: list[tuple[str, list[str], int | None]] = [("master", master, None)]
        for i in range(self.plan.workers):
            argv = [
                *self._base_cmd(),
                "--worker", "--master-host", connect, "--master-port", str(port),
            ]  # fmt: skip
            out.append((f"worker-{i}", argv, i))
        return out

    def _env(self, worker: int | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
        env["PYTHONUNBUFFERED"] = "1"
        if self.run_id:
            # the backends' teardown sweep and `l2chaos gc` find (and kill) a run's
            # processes by this variable, so a Locust orphaned by a killed harness dies too
            env[RUN_ID_ENV] = self.run_id
        assert self._context_path is not None
        env[CONTEXT_ENV] = str(self._context_path)
        if worker is not None:
            env[WORKER_ENV] = str(worker)
        return env

    # ------------------------------------------------------------------- start

    def _context(self) -> LoadContext:
        return LoadContext(
            plan=self.plan,
            seed=self.seed,
            t0_ns=self.t0_ns,
            duration_s=self.duration_s,
            endpoints=self.endpoints,
            allow_targets=self.allow_targets,
            slices=tuple(tuple(s) for s in self.slices),
            history_dir=str(self.history_dir),
            trace_dir=str(self.load_dir / "decisions") if self.plan.trace_decisions else None,
            data=self.data,
        )

    def prepare(self) -> None:
        """The protocol's set-up (evm: fund the users' keys); `start` does it when it
        was not done before. LoadError when it fails."""
        if self._prepared:
            return
        prepared = self.protocol.prepare(
            SetupArgs(
                endpoints=self.endpoints,
                users=self.plan.users,
                seed=self.seed,
                options=self.options,
                stack_accounts=self.stack_accounts,
                timeout_s=self.plan.start_timeout_ns / 1e9,
            )
        )
        self.data = dict(prepared.data)
        if self.protocol.own_accounts:
            self.slices = split_accounts(
                prepared.accounts, self.plan.users, self.plan.total_workers
            )
        self._prepared = True

    def start(self) -> None:
        """Start Locust and return once every local process runs users (its history
        file exists); LoadError (with the log tail) if one fails to start."""
        with self._lock:
            if self._started:
                raise LoadError("this load runner was already started")
            self._started = True
            self._started_t_ns = time.time_ns()
            self.load_dir.mkdir(parents=True, exist_ok=True)
            self.history_dir.mkdir(parents=True, exist_ok=True)
            for pattern in ("worker-*.jsonl", WORKER_RATE_GLOB):
                for old in self.history_dir.glob(pattern):
                    old.unlink()
            self.prepare()
            ctx = self._context()
            data = ctx.to_json()
            sweep_secret_files(self.context_dir)  # left by a harness that was killed
            self._context_path = write_secret_json(data, self.context_dir)
            public = redacted(data)
            public["context_file"] = "(outside the run directory, deleted at stop)"
            (self.load_dir / "load-plan.json").write_text(
                json.dumps(public, indent=2) + "\n", encoding="utf-8"
            )
            if self.plan.remote_workers:
                self._write_remote_instructions()
            try:
                for role, argv, worker in self.commands():
                    self._spawn(role, argv, worker)
                    if role == "master":
                        self._wait_master_listening()
            except BaseException:
                self._shutdown(graceful=False)
                raise
            budget = self.plan.start_timeout_ns / 1e9
            if self.plan.remote_workers:
                budget *= 2  # the master may still wait for remote workers after ours are up
            self._deadline_mono = (
                time.monotonic() + budget + self.duration_s + self.plan.grace_ns / 1e9
            )
            self._watchdog = threading.Thread(
                target=self._watch, name="l2chaos-load-watchdog", daemon=True
            )
            self._watchdog.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def remote_commands(self) -> list[str]:
        """The command each remote worker runs on its machine (docs/load.md)."""
        host = self.plan.master_bind_host
        shown = socket.gethostname() if host in ("*", "0.0.0.0", "") else host
        port = self._master_port or self.plan.master_port
        return [
            f"python -m l2chaos.load worker --master {shown}:{port} --context <copy of the "
            f"context file> --index {i}"
            for i in range(self.plan.workers, self.plan.total_workers)
        ]

    def _write_remote_instructions(self) -> None:
        self.commands()  # picks the master port
        lines = [
            f"# {self.plan.remote_workers} remote worker(s) expected within the start timeout",
            f"# context file (API keys, mode 0600, deleted at stop): {self._context_path}",
            "# copy it to each worker machine (scp), then run there:",
            *self.remote_commands(),
            "# add --endpoint ui=URL --endpoint rpc=URL --allow-target HOST if the stack is",
            "# reached at another address from there; afterwards copy each worker-K.jsonl",
            f"# into {self.history_dir}/ and run: python -m l2chaos.load merge {self.run_dir}",
        ]
        (self.load_dir / "remote-workers.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _spawn(self, role: str, argv: list[str], worker: int | None) -> None:
        log = self.load_dir / (
            "locust.log" if role in ("standalone", "master") else f"locust-{role}.log"
        )
        f = open(log, "ab")  # noqa: SIM115 - closed in _shutdown
        try:
            popen = spawn_logged(argv, f, env=self._env(worker), cwd=str(self.load_dir))
        except OSError as exc:
            f.close()
            raise LoadError(f"cannot start Locust ({role}): {exc}") from None
        runs_users = role != "master"
        self._procs.append(_Proc(role, popen, log, f, worker if runs_users else None))

    def _wait_master_listening(self) -> None:
        """Workers that start before the master's port is bound retry slowly; wait for it."""
        end = time.monotonic() + self.plan.start_timeout_ns / 1e9
        host = self.plan.master_bind_host
        connect = "127.0.0.1" if host in ("*", "0.0.0.0", "") else host
        master = self._procs[-1]
        assert self._master_port is not None
        while time.monotonic() < end:
            if master.popen.poll() is not None:
                raise LoadError(
                    f"the Locust master exited with code {master.popen.returncode} while starting"
                    f"\n--- {master.log} ---\n{_tail(master.log)}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((connect, self._master_port), 0.2),
            ):
                return
            time.sleep(_POLL_S)
        raise LoadError(f"the Locust master did not listen on port {self._master_port} in time")

    def _wait_ready(self) -> None:
        end = time.monotonic() + self.plan.start_timeout_ns / 1e9
        pending = {p.worker: p for p in self._procs if p.worker is not None}
        while pending:
            for w, p in list(pending.items()):
                if (self.history_dir / f"worker-{w}.jsonl").exists():
                    del pending[w]
                elif p.popen.poll() is not None:
                    raise LoadError(
                        f"Locust ({p.role}) exited with code {p.popen.returncode} while starting"
                        f"\n--- {p.log} ---\n{_tail(p.log)}"
                    )
            for p in self._procs:
                if p.worker is None and p.popen.poll() is not None:
                    raise LoadError(
                        f"Locust ({p.role}) exited with code {p.popen.returncode} while starting"
                        f"\n--- {p.log} ---\n{_tail(p.log)}"
                    )
            if not pending:
                break
            if time.monotonic() > end:
                roles = ", ".join(p.role for p in pending.values())
                raise LoadError(f"Locust ({roles}) did not start within the start timeout")
            time.sleep(_READY_FILE_WAIT_S)

    # ---------------------------------------------------------------- watching

    def _watch(self) -> None:
        assert self._deadline_mono is not None
        while not self._stopping.is_set():
            left = self._deadline_mono - time.monotonic()
            if left <= 0:
                with self._lock:
                    if self.alive():
                        self._deadline_hit = True
                        self._shutdown(graceful=False)
                return
            if not self.alive():
                return
            self._stopping.wait(min(left, 0.5))

    def alive(self) -> bool:
        """Whether any Locust process of this run is still running."""
        return any(p.popen.poll() is None for p in self._procs)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until Locust ends by itself (its run time is over). Returns the exit code
        of the standalone/master process, or None if `timeout` seconds passed first."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.alive():
            if end is not None and time.monotonic() >= end:
                return None
            time.sleep(_POLL_S)
        main = self._procs[0] if self._procs else None
        return main.popen.returncode if main else None

    def progress(self) -> dict[str, Any] | None:
        """The latest aggregated Locust numbers (users, requests/s, failures/s, p50/p95/p99
        in ms) from stats_stats_history.csv, or None before the first sample."""
        path = self.load_dir / "stats_stats_history.csv"
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
        except OSError:
            return None
        if not rows:
            return None
        last = rows[-1]

        def num(key: str) -> float | None:
            try:
                return float(last[key])
            except (KeyError, TypeError, ValueError):
                return None

        return {
            "users": num("User Count"),
            "rps": num("Requests/s"),
            "failures_per_s": num("Failures/s"),
            "p50_ms": num("50%"),
            "p95_ms": num("95%"),
            "p99_ms": num("99%"),
            "requests": num("Total Request Count"),
            "failures": num("Total Failure Count"),
        }

    # ------------------------------------------------------------------- stop

    def _signal(self, p: _Proc, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.popen.pid, sig)

    def _wait_procs(self, procs: Sequence[_Proc], timeout: float) -> None:
        end = time.monotonic() + timeout
        while any(p.popen.poll() is None for p in procs) and time.monotonic() < end:
            time.sleep(_POLL_S)

    def _shutdown(self, *, graceful: bool) -> None:
        """Stop every process: SIGTERM (the standalone/master first: it tells workers to
        quit), wait, then SIGKILL whatever is left. Reaps and closes logs."""
        if graceful:
            mains = [p for p in self._procs if p.worker is None or p.role == "standalone"]
            for p in mains:
                if p.popen.poll() is None:
                    self._signal(p, signal.SIGTERM)
            self._wait_procs(self._procs, self.plan.stop_timeout_ns / 1e9 + _TERM_WAIT_S)
            for p in self._procs:
                if p.popen.poll() is None:
                    self._signal(p, signal.SIGTERM)
            self._wait_procs(self._procs, _TERM_WAIT_S)
        for p in self._procs:
            if p.popen.poll() is None:
                self._killed.append(p.role)
            # the whole group, also when the leader is gone (nothing of ours may survive)
            self._signal(p, signal.SIGKILL)
        for p in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=5)
            with contextlib.suppress(OSError):
                p.log_file.close()

    def stop(self) -> LoadResult:
        """Stop Locust (gracefully, then by force), merge the history into
        run_dir/history.jsonl, delete the load context. Idempotent; safe from any thread."""
        with self._lock:
            if self.result is not None:
                return self.result
            self._stopping.set()
            try:
                if self._procs:
                    self._shutdown(graceful=True)
            finally:
                if self._context_path is not None:
                    self._context_path.unlink(missing_ok=True)
            if self._watchdog is not None and self._watchdog is not threading.current_thread():
                self._watchdog.join(timeout=5)
            stopped = time.time_ns()
            result = LoadResult(
                exit_codes={p.role: p.popen.returncode for p in self._procs},
                killed=list(dict.fromkeys(self._killed)),
                deadline_hit=self._deadline_hit,
                started_t_ns=self._started_t_ns,
                stopped_t_ns=stopped,
            )
            if self._started:
                files = sorted(self.history_dir.glob("worker-*.jsonl"), key=_worker_number)
                result.merge = merge_histories(files, self.history_path, end_t_ns=stopped)
                result.history = self.history_path
                if self.plan.rate is not None:
                    rates = sorted(self.history_dir.glob(WORKER_RATE_GLOB), key=_worker_number)
                    result.rate = RateSummary.of(merge_rates(rates, self.load_dir / RATE_FILE))
                result.exceptions = _count_exceptions(self.load_dir / "stats_exceptions.csv")
                (self.load_dir / "summary.json").write_text(
                    json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8"
                )
            self.result = result
            return result

    def __enter__(self) -> LoadRunner:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:  # last line of defence: never leave Locust running
        procs = getattr(self, "_procs", [])
        for p in procs:
            if p.popen.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(p.popen.pid, signal.SIGKILL)


def _worker_number(path: Path) -> int:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 1 << 30


def _count_exceptions(path: Path) -> int:
    """Occurrences in Locust's stats_exceptions.csv (errors raised in user code)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return sum(int(r.get("Count") or 0) for r in csv.DictReader(f))
    except (OSError, ValueError):
        return 0
