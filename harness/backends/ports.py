"""TCP ports for a run, reserved so that two runs at once never collide.

A bind check alone is not enough between two runs: run A picks a free port, run B picks
the same one before A's service has bound it. So every port is also *reserved*: an
exclusive `flock` on ``<cache>/ports/<port>.lock`` held for as long as the run uses it.
The kernel drops the lock when the file is closed or the owning process dies (even by
SIGKILL), so a reservation can never outlive its run. `release` deletes the lock file
while still holding the lock; a process that opened the old file meanwhile sees, once
it gets the lock, that the path no longer names its file, and tries again, so two
holders of one port can never both believe they hold it.

Ports come from outside the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``), so no outgoing connection of this host
can be sitting on one of them, and from at least 10000 up, away from well-known
services.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from l2chaos.errors import StackError

from .paths import cache_dir, ensure_dir

__all__ = [
    "EPHEMERAL_RANGE_FILE",
    "PortAllocator",
    "PortReservation",
    "candidate_ports",
    "ephemeral_range",
    "parse_port_range",
    "port_is_free",
    "remove_unused_locks",
    "wait_listening",
]

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL = (32768, 60999)  # Linux default
POOL_LOW = 10000
POOL_HIGH = 65535
MAX_ATTEMPTS = 2000


def parse_port_range(text: str) -> tuple[int, int]:
    """``"32768\\t60999\\n"`` → (32768, 60999). Raises ValueError on anything else."""
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected two port numbers, got {text!r}")
    lo, hi = int(parts[0]), int(parts[1])
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"expected 1 <= low <= high <= 65535, got {lo} {hi}")
    return lo, hi


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range; the Linux default when it cannot be read."""
    try:
        return parse_port_range(path.read_text())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL


def candidate_ports(
    ephemeral: tuple[int, int], low: int = POOL_LOW, high: int = POOL_HIGH
) -> list[int]:
    """Ports in [low, high] outside the ephemeral range, in increasing order."""
    e_lo, e_hi = ephemeral
    return [p for p in range(low, high + 1) if not e_lo <= p <= e_hi]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing is bound to host:port (servers set SO_REUSEADDR, so do we)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class PortReservation:
    """One reserved port. `release()` is idempotent and removes the lock file."""

    port: int
    _fd: int | None = field(default=None, repr=False)
    path: Path | None = field(default=None, repr=False)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self.path is not None:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    self.path.unlink()  # still ours: nobody else can hold this inode
        with contextlib.suppress(OSError):
            os.close(fd)  # closing drops the flock


class PortAllocator:
    """Reserves free ports outside the ephemeral range.

    `lock_dir` defaults to ``<cache>/ports``; `pool` to `candidate_ports` of this host.
    """

    def __init__(
        self,
        lock_dir: Path | None = None,
        pool: Iterable[int] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.lock_dir = lock_dir if lock_dir is not None else cache_dir() / "ports"
        self.pool = list(pool) if pool is not None else candidate_ports(ephemeral_range())
        if not self.pool:
            raise StackError("no ports left to allocate outside the ephemeral range")
        self._rng = rng if rng is not None else random.Random()

    def _try(self, port: int) -> PortReservation | None:
        path = self.lock_dir / f"{port}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(fd).st_ino:
            os.close(fd)  # a holder released (and deleted) it as we opened it
            return None
        reservation = PortReservation(port, fd, path)
        if not port_is_free(port):
            reservation.release()  # bound by something else: no lock file left behind
            return None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return reservation

    def reserve(self, count: int = 1) -> list[PortReservation]:
        """Reserve `count` distinct free ports, or raise StackError (nothing kept)."""
        ensure_dir(self.lock_dir)
        got: list[PortReservation] = []
        start = self._rng.randrange(len(self.pool))
        attempts = min(len(self.pool), MAX_ATTEMPTS)
        try:
            for i in range(attempts):
                if len(got) == count:
                    break
                r = self._try(self.pool[(start + i) % len(self.pool)])
                if r is not None:
                    got.append(r)
        except BaseException:
            for r in got:
                r.release()
            raise
        if len(got) < count:
            for r in got:
                r.release()
            raise StackError(
                f"could not reserve {count} free ports in {self.pool[0]}-{self.pool[-1]} "
                f"after {attempts} attempts (lock files under {self.lock_dir})"
            )
        return got

    def reserve_one(self) -> PortReservation:
        return self.reserve(1)[0]


def remove_unused_locks(lock_dir: Path | None = None) -> int:
    """Delete lock files nobody holds (left by versions that never deleted them); the
    same protocol as `release`, so a run reserving a port meanwhile is never hurt."""
    directory = lock_dir if lock_dir is not None else cache_dir() / "ports"
    removed = 0
    for path in directory.glob("*.lock") if directory.is_dir() else ():
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()
                removed += 1
        except OSError:
            pass  # held by a live run, or already gone
        finally:
            os.close(fd)
    return removed


def wait_listening(port: int, timeout_s: float, host: str = "127.0.0.1") -> bool:
    """Poll until something accepts connections on host:port; False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
