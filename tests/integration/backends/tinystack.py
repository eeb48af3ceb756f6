"""The backend tests' stack (teststack.yaml) and helpers to observe it from outside.

Used by the tests on the local backend (tests/_support/tiny.py offers it as fixtures)
and by benchmarks/bench_backend.py and bench_timeline.py.
"""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path

from l2chaos.backends.local import LocalBackend, LocalStack
from l2chaos.backends.procs import pids_of_run
from l2chaos.stackspec import StackRun, load_stack

from tests._support.stacks import fault_context, new_run_id, stack_up, wait_until

HERE = Path(__file__).resolve().parent
TINYSVC = HERE / "tinysvc.py"
TEMPLATE = HERE / "teststack.yaml"


def write_stack(folder: Path, mode: str = "normal", ready_timeout: str = "15s") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = (
        TEMPLATE.read_text()
        .replace("@TINYSVC@", str(TINYSVC))
        .replace("@MODE@", mode)
        .replace("@READY_TIMEOUT@", ready_timeout)
    )
    path = folder / "stack.yaml"
    path.write_text(text)
    return path


def stack_run(path: Path, seed: int = 1) -> StackRun:
    return StackRun(spec=load_stack(path), profile=None, switches={}, settings={}, seed=seed)


def up_stack(
    folder: Path, mode: str = "normal", run_id: str | None = None, stop_timeout_s: float = 10.0
) -> AbstractContextManager[LocalStack]:
    run = stack_run(write_stack(folder / "stackdef", mode))
    backend = LocalBackend(stop_timeout_s=stop_timeout_s)
    return stack_up(backend, run, folder, run_id or new_run_id())


# ---------------------------------------------------------------- observing traffic


def http_get(
    hostport: str, path: str, timeout: float = 5.0, recv_size: int = 65536
) -> tuple[int, bytes, list[int], float]:
    """GET over a fresh connection, read until the server closes it.

    Returns (status, body, sizes of every recv() chunk, seconds until EOF).
    Raises OSError (timeout, reset, refused) as the socket does.
    """
    host, port = hostport.rsplit(":", 1)
    t0 = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n".encode())
        chunks: list[bytes] = []
        while True:
            data = s.recv(recv_size)
            if not data:
                break
            chunks.append(data)
    elapsed = time.perf_counter() - t0
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body, [len(c) for c in chunks], elapsed


def pg_ready(stack: LocalStack, hostport: str) -> bool:
    """A real connection to Postgres at hostport (pg_isready)."""
    pg = stack.platform._pg
    assert pg is not None
    host, port = hostport.rsplit(":", 1)
    res = subprocess.run(
        [pg.exe("pg_isready"), "-q", "-h", host, "-p", port, "-U", "postgres", "-t", "2"],
        check=False,
    )
    return res.returncode == 0


def psql(stack: LocalStack, sql: str, db: str = "tiny", user: str = "tiny") -> str:
    pg = stack.platform._pg
    assert pg is not None
    ep = stack.direct_endpoint("db")
    res = subprocess.run(
        [pg.exe("psql"), "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", ep.host, "-p",
         str(ep.port), "-U", user, "-d", db, "-c", sql],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return res.stdout.strip()


def proc_state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2 :].split()[0]


def listening_ports() -> set[int]:
    """Ports in LISTEN state on this host (IPv4 and IPv6), from /proc/net/tcp*."""
    ports: set[int] = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A":  # LISTEN
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def leftovers(run_id: str, ports: list[int], tempdir: Path | None) -> list[str]:
    """What a run left behind: processes, listening ports, temp dir."""
    found = [f"pid {p}" for p in pids_of_run(run_id)]
    listening = listening_ports()
    found += [f"port {p}" for p in ports if p in listening]
    if tempdir is not None and tempdir.exists():
        found.append(f"dir {tempdir}")
    return found


__all__ = [
    "TINYSVC",
    "fault_context",
    "http_get",
    "leftovers",
    "listening_ports",
    "new_run_id",
    "pg_ready",
    "proc_state",
    "psql",
    "stack_run",
    "up_stack",
    "wait_until",
    "write_stack",
]
