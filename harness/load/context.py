"""The load context: everything a Locust process needs, in one JSON file.

The harness writes it outside the run directory with mode 0600 (it holds API keys) and
passes its path in ``L2CHAOS_LOAD_CONTEXT``; each Locust worker learns its index from
``L2CHAOS_LOAD_WORKER``. A redacted copy (every ``api_key`` → ``***``) goes to
run_dir/load/load-plan.json.

Accounts: the stack's accounts with role ``trader`` (an account without a role counts
as one) are dealt to workers round robin, worker i getting accounts i, i+W, i+2W, …
(W = local plus remote workers), so no two users anywhere share one. Locust's
dispatcher gives a worker at most ceil(users / W) users, so every worker's share must
be at least that large; `split_accounts` refuses otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LoadError
from .plan import LoadPlan

__all__ = [
    "CONTEXT_ENV",
    "CONTEXT_FORMAT",
    "HISTORY_DIR_ENV",
    "WORKER_ENV",
    "Account",
    "LoadContext",
    "redacted",
    "split_accounts",
    "sweep_secret_files",
    "write_secret_json",
]

CONTEXT_ENV = "L2CHAOS_LOAD_CONTEXT"
WORKER_ENV = "L2CHAOS_LOAD_WORKER"
HISTORY_DIR_ENV = "L2CHAOS_LOAD_HISTORY_DIR"  # a remote worker writes its history here
CONTEXT_FORMAT = "l2chaos-load-context/1"


@dataclass(frozen=True)
class Account:
    """A trader account: its id, its credential (perpdex: the API key; evm: the signing
    key, hex) and, where the protocol has one, its public address."""

    account: int
    api_key: str
    role: str = "trader"
    address: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"account": self.account, "api_key": self.api_key, "role": self.role}
        if self.address is not None:
            out["address"] = self.address
        return out

    @classmethod
    def from_json(cls, a: Mapping[str, Any]) -> Account:
        addr = a.get("address")
        return cls(
            int(a["account"]),
            str(a["api_key"]),
            str(a.get("role") or "trader"),
            str(addr) if addr is not None else None,
        )


def _parse_accounts(accounts: Sequence[Mapping[str, Any]]) -> list[Account]:
    out: list[Account] = []
    for i, a in enumerate(accounts):
        acct, key = a.get("account"), a.get("api_key")
        if (
            isinstance(acct, bool)
            or not isinstance(acct, int)
            or not isinstance(key, str)
            or not key
        ):
            raise LoadError(
                f"account entry {i} from the stack is malformed (need an integer 'account' and "
                f"a non-empty 'api_key'): keys {sorted(a)}"
            )
        out.append(Account.from_json(a))
    return out


def split_accounts(
    accounts: Sequence[Mapping[str, Any]], users: int, workers: int
) -> list[list[Account]]:
    """Deal trader accounts to `workers` so that no two users share one; LoadError if
    there are too few for `users` users."""
    traders = [a for a in _parse_accounts(accounts) if a.role == "trader"]
    ids = [a.account for a in traders]
    if len(set(ids)) != len(ids):
        raise LoadError("the stack listed the same trader account twice")
    if len(traders) < users:
        raise LoadError(
            f"{users} users need {users} trader accounts (one each, never shared) but the stack "
            f"has {len(traders)}; lower load.users or give the stack more accounts"
        )
    per_worker = -(-users // workers)
    slices = [traders[i::workers] for i in range(workers)]
    short = min(len(s) for s in slices)
    if short < per_worker:
        need = per_worker * workers
        raise LoadError(
            f"{users} users on {workers} workers put up to {per_worker} users on one worker, so "
            f"the stack needs at least {need} trader accounts (it has {len(traders)}); lower "
            f"load.users or load.workers, or give the stack more accounts"
        )
    return slices


@dataclass(frozen=True)
class LoadContext:
    """The contents of the load-context file."""

    plan: LoadPlan
    seed: int
    t0_ns: int
    duration_s: float
    endpoints: Mapping[str, str]
    allow_targets: tuple[str, ...]
    slices: tuple[tuple[Account, ...], ...]
    history_dir: str
    trace_dir: str | None
    data: Mapping[str, Any] = field(default_factory=dict)  # the protocol's shared data

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CONTEXT_FORMAT,
            "seed": self.seed,
            "t0_ns": self.t0_ns,
            "duration_s": self.duration_s,
            "endpoints": dict(self.endpoints),
            "allow_targets": list(self.allow_targets),
            "history_dir": self.history_dir,
            "trace_dir": self.trace_dir,
            "plan": self.plan.to_json(),
            "workers": [[a.to_json() for a in s] for s in self.slices],
            "data": dict(self.data),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadContext:
        if data.get("format") != CONTEXT_FORMAT:
            raise LoadError(f"not an l2chaos load context (format {data.get('format')!r})")
        return cls(
            plan=LoadPlan.from_json(data["plan"]),
            seed=int(data["seed"]),
            t0_ns=int(data["t0_ns"]),
            duration_s=float(data["duration_s"]),
            endpoints=dict(data["endpoints"]),
            allow_targets=tuple(data["allow_targets"]),
            slices=tuple(tuple(Account.from_json(a) for a in s) for s in data["workers"]),
            history_dir=str(data["history_dir"]),
            trace_dir=data.get("trace_dir"),
            data=dict(data.get("data") or {}),
        )

    @classmethod
    def read(cls, path: str | Path) -> LoadContext:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LoadError(f"cannot read the load context {path}: {exc}") from None
        return cls.from_json(data)


def redacted(data: Any) -> Any:
    """A copy with every `api_key` value replaced by ``***``."""
    if isinstance(data, Mapping):
        return {k: ("***" if k == "api_key" else redacted(v)) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redacted(v) for v in data]
    return data


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), which a reused pid does not share."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[19]


_SECRET_NAME = re.compile(r"^l2chaos-load-(\d+)-(\d+)-[^/]*\.json$")


def write_secret_json(data: Any, directory: str | Path | None = None) -> Path:
    """Write `data` as JSON to a new file readable only by this user (0600) outside the
    run directory (the system temp dir unless `directory` is given); return its path.

    The name carries the writer's pid and start time, so `sweep_secret_files` can remove
    the file if the writer dies (SIGKILL) before deleting it."""
    me = os.getpid()
    prefix = f"l2chaos-load-{me}-{_start_time(me) or 0}-"
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".json", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def sweep_secret_files(directory: str | Path | None = None) -> list[str]:
    """Delete load-context files (they hold API keys) whose writer is gone: its pid is
    not running, or runs another process (a different start time). One line per file."""
    folder = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    removed: list[str] = []
    try:
        entries = list(folder.glob("l2chaos-load-*.json"))
    except OSError:
        return removed
    for path in entries:
        m = _SECRET_NAME.match(path.name)
        if m is None:
            continue
        pid, started = int(m.group(1)), m.group(2)
        if _start_time(pid) == started:
            continue  # its writer still runs: the file is in use
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(f"removed the load context {path} of dead process {pid}")
    return removed
