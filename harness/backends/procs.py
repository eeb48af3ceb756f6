"""Child processes in their own process groups, run markers, and `gc`.

`GroupProcess` starts one service as a child in a new session (so it leads its own
process group), with stdout and stderr appended to its log, and signals the whole group
(SIGKILL, SIGSTOP/SIGCONT) or only the leader (a graceful stop of PostgreSQL's
postmaster, which stops its backends itself). The leader is reaped only after the rest
of its group is gone: while it is a zombie its pid, and so the group id, cannot be
reused, so a group signal never reaches a stranger.

Every child gets ``L2CHAOS_RUN_ID=<run_id>`` in its environment. A run writes a marker
``<cache>/runs/<run_id>.json`` (owner pid and start time, process groups, ports, temp
dirs) and removes it at teardown. `gc()` finds markers whose owner is gone (killed with
SIGKILL, say), kills every process whose ``/proc/<pid>/environ`` carries that run id
(and only those: a reused pid never matches) and removes the run's temp dirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from l2chaos.childproc import spawn_logged
from l2chaos.errors import StackError

from .paths import cache_dir, ensure_dir

__all__ = [
    "RUN_ID_ENV",
    "TEMP_PREFIX",
    "GroupProcess",
    "MarkerStore",
    "RunMarker",
    "gc_runs",
    "group_members",
    "kill_run_processes",
    "make_run_tempdir",
    "pids_of_run",
    "process_start_time",
    "read_environ",
]

RUN_ID_ENV = "L2CHAOS_RUN_ID"
TEMP_PREFIX = "l2chaos-run-"
_POLL_S = 0.01


# ------------------------------------------------------------------ /proc helpers


def _stat_fields(pid: int) -> list[str]:
    """Fields 3.. of /proc/<pid>/stat (state first); empty when `pid` does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    return text[text.rfind(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    rest = _stat_fields(pid)
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def process_state(pid: int) -> str | None:
    """One-letter state (R, S, T, Z, ...) of `pid`, None when it does not exist."""
    rest = _stat_fields(pid)
    return rest[0] if rest else None


def read_environ(pid: int) -> dict[str, str] | None:
    """The environment `pid` was started with; None when unreadable (gone, zombie, foreign)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    found = []
    for pid in _all_pids():
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        rest = text[text.rfind(")") + 2 :].split()
        if len(rest) > 2 and rest[2] == str(pgid) and rest[0] != "Z":
            found.append(pid)
    return found


def _all_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def _ancestors() -> set[int]:
    """This process and its ancestors: never ours to kill, whatever their environment."""
    out = {os.getpid()}
    pid = os.getpid()
    for _ in range(64):
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(text[text.rfind(")") + 2 :].split()[1])
        if pid <= 1 or pid in out:
            break
        out.add(pid)
    return out


def pids_of_run(run_id: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries L2CHAOS_RUN_ID=run_id."""
    skip = _ancestors()
    found = []
    for pid in _all_pids():
        if pid in skip:
            continue
        env = read_environ(pid)
        if env is not None and env.get(RUN_ID_ENV) == run_id and process_state(pid) != "Z":
            found.append(pid)
    return found


def _kill_if_ours(pid: int, run_id: str) -> bool:
    """SIGKILL `pid` if it still carries the run id, race-free through a pidfd where the
    kernel has them (the pid cannot be reused while the pidfd is open)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    try:
        env = read_environ(pid)
        if env is None or env.get(RUN_ID_ENV) != run_id:
            return False
        if fd is not None:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if fd is not None:
            os.close(fd)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


# ------------------------------------------------------------------ child processes


@dataclass
class GroupProcess:
    """One child process leading its own process group.

    `stop_signal` asks it to stop (SIGTERM; SIGINT for PostgreSQL's fast shutdown);
    `stop_leader_only` sends that signal to the leader alone (the postmaster shuts down
    its backends itself). `user` = (uid, gid) runs it as another user (PostgreSQL as root).
    Not thread-safe by itself: the owner serialises calls.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    user: tuple[int, int] | None = None
    stop_signal: int = signal.SIGTERM
    stop_leader_only: bool = False
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _exit: int | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> int:
        """Start it (again); returns the new pid. Raises StackError when exec fails."""
        if self.is_running():
            raise StackError("already running", service=self.name)
        self._reap()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs.update(user=self.user[0], group=self.user[1], extra_groups=[])
        with open(self.log_path, "ab") as log:
            try:
                self._popen = spawn_logged(
                    self.argv, log, cwd=self.cwd, env=dict(self.env), close_fds=True, **kwargs
                )
            except OSError as exc:
                raise StackError(
                    f"cannot start {self.argv[0]!r}: {exc}", service=self.name
                ) from exc
        self._exit = None
        self.starts += 1
        return self._popen.pid

    def _peek_exit(self) -> int | None:
        """Exit code (negative signal) if the leader has exited; leaves it a zombie."""
        if self._popen is None:
            return self._exit
        if self._exit is not None:
            return self._exit
        try:
            info = os.waitid(os.P_PID, self._popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # already reaped elsewhere
            rc = self._popen.returncode
            self._exit = rc if rc is not None else 0
            return self._exit
        if info is None or info.si_pid == 0:
            return None
        if info.si_code == os.CLD_EXITED:
            self._exit = info.si_status
        else:
            self._exit = -info.si_status
        return self._exit

    def is_running(self) -> bool:
        return self._popen is not None and self._peek_exit() is None

    @property
    def returncode(self) -> int | None:
        return self._peek_exit()

    def signal_group(self, sig: int) -> bool:
        """Send `sig` to the whole group; False when nothing is left to signal."""
        if self._popen is None:
            return False
        try:
            os.killpg(self._popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def signal_leader(self, sig: int) -> bool:
        if not self.is_running() or self._popen is None:
            return False
        try:
            os.kill(self._popen.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def wait_stopped(self, stopped: bool, timeout_s: float) -> bool:
        """Wait until the leader is (or is no longer) stopped by a signal (state T)."""
        deadline = time.monotonic() + timeout_s
        while self._popen is not None and self.is_running():
            if (process_state(self._popen.pid) == "T") == stopped:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S / 10)
        return False

    def wait_exit(self, timeout_s: float) -> int | None:
        """Wait until the leader exits (not reaped); its exit code, or None on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            rc = self._peek_exit()
            if rc is not None or self._popen is None:
                return rc
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL_S)

    def _finish(self) -> None:
        """The leader has exited: kill what is left of its group, wait until it is gone
        (bounded), then reap the leader (whose zombie kept the group id reserved)."""
        if self._popen is not None and self._popen.returncode is None:
            self.signal_group(signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while group_members(self._popen.pid) and time.monotonic() < deadline:
                time.sleep(_POLL_S / 5)
        self._reap()

    def _reap(self) -> None:
        if self._popen is not None and self._popen.returncode is None:
            with contextlib.suppress(ChildProcessError):
                self._popen.wait(timeout=5)

    def kill(self) -> int | None:
        """SIGKILL the whole group; returns the leader's exit code."""
        if self._popen is None:
            return None
        self.signal_group(signal.SIGKILL)
        rc = self.wait_exit(10.0)
        self._finish()
        return rc

    def stop(self, timeout_s: float = 10.0, sig: int | None = None) -> int | None:
        """Graceful stop: the stop signal, then SIGKILL to the group after `timeout_s`."""
        if self._popen is None:
            return None
        if self.is_running():
            s = self.stop_signal if sig is None else sig
            if self.stop_leader_only:
                self.signal_leader(s)
            else:
                self.signal_group(s)
            self.signal_group(signal.SIGCONT)  # a paused process cannot act on a signal
            if self.wait_exit(timeout_s) is None:
                self.signal_group(signal.SIGKILL)
                self.wait_exit(10.0)
        rc = self._peek_exit()
        self._finish()
        return rc


# ------------------------------------------------------------------ temp dirs


def make_run_tempdir(run_id: str) -> Path:
    """A fresh temp dir for the run's data dirs (mode 0711: other users may traverse,
    so PostgreSQL running as its own user reaches its data dir inside)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)[:60]
    path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{safe}-"))
    path.chmod(0o711)
    return path


def _is_our_tempdir(path: Path) -> bool:
    """Only dirs this module creates are ever removed by gc."""
    try:
        resolved = path.resolve()
    except OSError:
        return False
    return (
        resolved.name.startswith(TEMP_PREFIX)
        and resolved.parent == Path(tempfile.gettempdir()).resolve()
        and not path.is_symlink()
    )


# ------------------------------------------------------------------ markers


@dataclass
class RunMarker:
    """What a live run holds, so `gc` can clean up after an owner killed with SIGKILL."""

    run_id: str
    owner_pid: int
    owner_start: int | None
    created_t_ns: int
    stack: str = ""
    processes: dict[str, int] = field(default_factory=dict)  # name -> current pid (= pgid)
    ports: list[int] = field(default_factory=list)
    temp_dirs: list[str] = field(default_factory=list)

    @classmethod
    def for_this_process(cls, run_id: str, stack: str = "") -> RunMarker:
        pid = os.getpid()
        return cls(run_id, pid, process_start_time(pid), time.time_ns(), stack)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunMarker:
        d = json.loads(text)
        if not isinstance(d, dict) or not isinstance(d.get("run_id"), str):
            raise ValueError("not a run marker")
        return cls(
            run_id=d["run_id"],
            owner_pid=int(d["owner_pid"]),
            owner_start=None if d.get("owner_start") is None else int(d["owner_start"]),
            created_t_ns=int(d.get("created_t_ns", 0)),
            stack=str(d.get("stack", "")),
            processes={str(k): int(v) for k, v in dict(d.get("processes", {})).items()},
            ports=[int(p) for p in d.get("ports", [])],
            temp_dirs=[str(p) for p in d.get("temp_dirs", [])],
        )

    def owner_alive(self) -> bool:
        """The owner is still running (same pid *and* same start time: not a reused pid)."""
        start = process_start_time(self.owner_pid)
        if start is None or process_state(self.owner_pid) == "Z":
            return False
        return self.owner_start is None or start == self.owner_start


class MarkerStore:
    """Marker files under ``<cache>/runs``; writes are atomic (write, then rename)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory if directory is not None else cache_dir() / "runs"
        self._lock = threading.Lock()

    def path(self, run_id: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
        return self.dir / f"{safe}.json"

    def write(self, marker: RunMarker) -> Path:
        with self._lock:
            ensure_dir(self.dir)
            final = self.path(marker.run_id)
            tmp = final.with_name(f".{final.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(marker.to_json())
            os.replace(tmp, final)
            return final

    def remove(self, run_id: str) -> bool:
        with self._lock:
            try:
                self.path(run_id).unlink()
            except FileNotFoundError:
                return False
            return True

    def all_by_run(self) -> list[tuple[str, RunMarker]]:
        """Every readable marker, keyed by its run id."""
        return [(m.run_id, m) for _, m in self.all() if m is not None]

    def all(self) -> list[tuple[Path, RunMarker | None]]:
        """Every marker; None for a file that does not parse."""
        if not self.dir.is_dir():
            return []
        out: list[tuple[Path, RunMarker | None]] = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                out.append((p, RunMarker.from_json(p.read_text())))
            except (OSError, ValueError, KeyError, TypeError):
                out.append((p, None))
        return out


def kill_run_processes(run_id: str, rounds: int = 20) -> list[str]:
    """SIGKILL every live process carrying this run id (a few rounds catch late forks),
    then wait (bounded) until they are gone. One line per process killed."""
    lines: list[str] = []
    killed: set[int] = set()
    for _ in range(rounds):
        pids = [p for p in pids_of_run(run_id) if p not in killed]
        if not pids:
            break
        for pid in pids:
            name = _comm(pid)
            if _kill_if_ours(pid, run_id):
                killed.add(pid)
                lines.append(f"killed pid {pid} ({name}) of run {run_id}")
        time.sleep(0.05)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and pids_of_run(run_id):
        time.sleep(0.02)
    return lines


def gc_runs(store: MarkerStore | None = None) -> list[str]:
    """Clean up every run whose owner is gone; one line per thing removed."""
    store = store if store is not None else MarkerStore()
    lines: list[str] = []
    for path, marker in store.all():
        if marker is None:
            path.unlink(missing_ok=True)
            lines.append(f"removed unreadable marker {path}")
            continue
        if marker.owner_alive():
            continue
        lines.extend(kill_run_processes(marker.run_id))
        for d in marker.temp_dirs:
            p = Path(d)
            if p.exists() and _is_our_tempdir(p):
                shutil.rmtree(p, ignore_errors=True)
                lines.append(f"removed temp dir {p} of run {marker.run_id}")
        path.unlink(missing_ok=True)
        lines.append(f"removed marker {path} (run {marker.run_id}, owner pid {marker.owner_pid})")
    return lines
