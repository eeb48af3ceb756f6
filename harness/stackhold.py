"""`l2chaos stack up|down|status STACK`: a stack brought up by hand, for exploring.

`up` starts a detached holder process (``python -m l2chaos.stackhold serve``) that
brings the stack up on the chosen backend (``--backend local|docker|auto``), writes its
endpoints to a state file, and keeps it up until it gets SIGTERM; `down` sends that and
waits; `status` reads the state file and probes every service. Everything lives in
``<cache>/stacks/<key>/`` (the key is the stack's name, or for a path its file's name
and a hash of the path), never beside the stack file: the admin token and the API keys
in files readable only by the owner.

`down` signals a pid only when it still is the holder: the state records the holder's
process start time, and the process must still run ``l2chaos.stackhold`` (a reused pid
is never signalled). A holder that died without teardown leaves its state and maybe
processes: `status` says so, and `down` removes them (as `l2chaos gc` does).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .backends.paths import cache_dir
from .backends.procs import pids_of_run, process_start_time
from .childproc import spawn_logged
from .errors import (
    EXIT_HARNESS_BROKE,
    EXIT_OK,
    L2ChaosError,
    StackError,
    StackSpecError,
    UsageError,
)
from .params import Where
from .scenario import parse_set_value, parse_stack_section
from .stackspec import StackRun, resolve_stack

__all__ = ["HolderState", "down", "holder_alive", "serve", "state_key", "status", "up"]

_SAFE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_HOLDER_MODULE = "l2chaos.stackhold"


def state_key(ref: str) -> str:
    """Where a stack's state lives: its registered name, or for a path the stack file's
    folder name and a hash of the resolved path (so `up PATH` never writes beside it)."""
    if _SAFE_NAME.match(ref) and not Path(ref).exists():
        return ref
    path = Path(ref).expanduser().resolve()
    if path.is_dir():
        path = path / "stack.yaml"
    slug = re.sub(r"[^a-z0-9_-]+", "-", path.parent.name.lower()).strip("-") or "stack"
    return f"{slug}-{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"


def _state_dir(key: str) -> Path:
    d = cache_dir() / "stacks" / key
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


@dataclass
class HolderState:
    """state.json: what `up` wrote, or (status failed) why the holder gave up."""

    status: str  # "starting", "up" or "failed"
    name: str = ""
    pid: int = 0
    pid_start: int | None = None
    backend: str = "local"
    profile: str | None = None
    run_id: str = ""
    run_dir: str = ""
    services: dict[str, str] = field(default_factory=dict)
    postgres: list[str] = field(default_factory=list)
    token_file: str = ""
    accounts_file: str = ""
    error: str = ""

    @classmethod
    def read(cls, key: str) -> HolderState | None:
        """The state, or None when there is none or it does not parse (a broken file is
        treated as no state, never a crash)."""
        try:
            data = json.loads((_state_dir(key) / "state.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            state = cls(**known)
        except TypeError:
            return None
        ok = isinstance(state.pid, int) and isinstance(state.services, dict)
        return state if ok and not isinstance(state.pid, bool) else None

    def write(self, key: str) -> None:
        path = _state_dir(key) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.chmod(0o600)
        os.replace(tmp, path)


def holder_alive(pid: int, start: int | None) -> bool:
    """`pid` is still the holder: a positive pid (0 or less would name process groups),
    the same start time, and a command line running the holder module."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    now = process_start_time(pid)
    if now is None or (start is not None and now != start):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return _HOLDER_MODULE.encode() in cmdline


def _stack_run(ref: str, profile: str | None, sets: list[str], seed: int) -> StackRun:
    """The stack section a scenario would have, from the command line's --set values
    (``switches.NAME=true``, ``settings.NAME=VALUE``), validated the same way."""
    try:
        resolve_stack(ref, Path.cwd())
    except StackSpecError as exc:
        if exc.file is not None:  # the stack file itself is bad: report it as is
            raise
        raise UsageError(exc.problem, field="STACK") from None
    switches: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        group, dot, name = key.partition(".")
        if not sep or not dot or group not in ("switches", "settings"):
            raise UsageError(
                f"--set for a stack takes switches.NAME=VALUE or settings.NAME=VALUE, got {item!r}"
            )
        value = parse_set_value(key, raw)
        (switches if group == "switches" else settings)[name] = value
    section: dict[str, Any] = {"ref": ref, "switches": switches, "settings": settings}
    if profile is not None:
        section["profile"] = profile
    _, run = parse_stack_section({"stack": section}, Where("--set", ""), Path.cwd(), seed, None)
    return run


def up(
    ref: str,
    *,
    profile: str | None = None,
    sets: list[str] | None = None,
    seed: int = 1,
    backend: str = "local",
) -> int:
    from .backends import platform_for

    sets = list(sets or [])
    run = _stack_run(ref, profile, sets, seed)  # validate before starting anything
    platform_for(backend, run.spec)  # an unknown backend is bad input too
    key = state_key(ref)
    state = HolderState.read(key)
    if state is not None and holder_alive(state.pid, state.pid_start):
        raise UsageError(
            f"stack {ref!r} is already up (holder pid {state.pid}); run: l2chaos stack down {ref}"
        )
    if state is not None:
        _clean_orphans(key, state)
    d = _state_dir(key)
    (d / "state.json").unlink(missing_ok=True)
    args = json.dumps(
        {"ref": str(Path(ref).resolve()) if key != ref else ref, "key": key,
         "profile": profile, "sets": sets, "seed": seed, "backend": backend}
    )  # fmt: skip
    with (d / "holder.log").open("w") as log:
        spawn_logged([sys.executable, "-m", _HOLDER_MODULE, "serve", args], log)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = HolderState.read(key)
        if state is not None and state.status in ("up", "failed"):
            break
        time.sleep(0.25)
    if state is None or state.status != "up":
        tail = (d / "holder.log").read_text()[-2000:]
        raise StackError(f"stack {ref!r} did not come up", log_tail=tail)
    _print_state(state)
    print(f"\nbring it down with: l2chaos stack down {ref}")
    return EXIT_OK


def _print_state(state: HolderState) -> None:
    print(
        f"stack {state.name} is up on {state.backend} "
        f"(profile {state.profile}, holder pid {state.pid})"
    )
    for svc, url in state.services.items():
        print(f"  {svc:<10} {url}")
    print(f"  admin token:   {state.token_file}")
    print(f"  accounts+keys: {state.accounts_file}")
    print(f"  logs:          {state.run_dir}/logs")


def _address(run: StackRun, stack: Any, service: str) -> str:
    """A DSN for a database, a URL for everything else."""
    if run.spec.services[service].postgres is not None:
        return str(stack.template_values()[f"direct_dsn:{service}"])
    return str(stack.direct_url(service))


def _reachable(address: str, postgres: bool) -> str:
    if postgres:
        host, _, port = address.split("@", 1)[-1].split("/", 1)[0].rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return "accepting connections"
        except OSError as exc:
            return f"unreachable ({exc.strerror or type(exc).__name__})"
    try:
        code = httpx.get(address + "/health", timeout=1).status_code
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "healthy" if code == 200 else f"HTTP {code}"


def _write_secret(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def serve(args_json: str) -> int:
    """The holder process: bring the stack up, record it, wait for SIGTERM, bring it down."""
    from .backends import backend as make_backend
    from .rundir import RunDir

    args = json.loads(args_json)
    key = str(args["key"])
    d = _state_dir(key)
    me = HolderState("starting", pid=os.getpid(), pid_start=process_start_time(os.getpid()))
    me.backend = str(args.get("backend", "local"))
    try:
        run = _stack_run(
            str(args["ref"]), args.get("profile"), list(args.get("sets", [])), int(args["seed"])
        )
        orchestrator = make_backend(me.backend, run.spec)
    except L2ChaosError as exc:
        HolderState("failed", error=str(exc)).write(key)
        return exc.exit_code
    me.name, me.profile = run.spec.name, run.profile
    token = os.urandom(18).hex()
    rd = RunDir.create(d / "runs", f"stack-{run.spec.name}")
    me.run_id, me.run_dir = rd.run_id, str(rd.path)
    me.write(key)  # from here on `down` can find (and stop) this holder
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        stack = orchestrator.up(
            run, run_id=rd.run_id, run_dir=rd.path, env={"L2CHAOS_ADMIN_TOKEN": token}
        )
    except L2ChaosError as exc:  # the message is the log; `up` shows its tail
        HolderState("failed", error=str(exc)).write(key)
        print(f"l2chaos: {exc}", flush=True)
        return exc.exit_code
    try:
        _write_secret(d / "admin-token", token + "\n")
        accounts = []
        if run.spec.accounts is not None:
            url = stack.direct_url(run.spec.accounts["service"], run.spec.accounts["path"])
            accounts = httpx.get(
                url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ).json()
        _write_secret(d / "accounts.json", json.dumps(accounts, indent=1))
        me.status = "up"
        me.services = {s: _address(run, stack, s) for s in stack.services}
        me.postgres = run.spec.postgres_services()
        me.token_file, me.accounts_file = str(d / "admin-token"), str(d / "accounts.json")
        me.write(key)
        stop.wait()
    finally:
        problems = orchestrator.down(stack)
        for p in problems:
            print(f"l2chaos: teardown: {p}", flush=True)
        (d / "state.json").unlink(missing_ok=True)
    return EXIT_OK


def _orphans(state: HolderState) -> list[int]:
    return pids_of_run(state.run_id) if state.run_id else []


def _clean_orphans(key: str, state: HolderState) -> list[str]:
    """What a holder that died without teardown left behind: removed like `gc` does."""
    from .backends import gc_all

    lines = gc_all() if _orphans(state) or state.backend != "local" else []
    (_state_dir(key) / "state.json").unlink(missing_ok=True)
    return lines


def down(ref: str) -> int:
    key = state_key(ref)
    state = HolderState.read(key)
    if state is None or not holder_alive(state.pid, state.pid_start):
        if state is not None and (state.run_id or state.pid):
            lines = _clean_orphans(key, state)
            print(f"stack {ref!r}: its holder is gone; removed {len(lines)} leftover(s)")
        else:
            print(f"stack {ref!r} is not up")
        (_state_dir(key) / "state.json").unlink(missing_ok=True)
        return EXIT_OK
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and holder_alive(state.pid, state.pid_start):
        time.sleep(0.2)
    if holder_alive(state.pid, state.pid_start):
        os.kill(state.pid, signal.SIGKILL)
        _clean_orphans(key, state)
        print(f"stack {ref!r}: the holder did not stop in time; killed it and ran gc")
        return EXIT_HARNESS_BROKE
    print(f"stack {ref!r} is down")
    return EXIT_OK


def status(ref: str) -> int:
    state = HolderState.read(key := state_key(ref))
    if state is None or not holder_alive(state.pid, state.pid_start):
        left = _orphans(state) if state is not None else []
        if left:
            print(
                f"stack {ref!r} is not up, but its holder died and left {len(left)} "
                f"process(es) of run {state.run_id if state else ''} running: "
                f"run `l2chaos stack down {ref}` or `l2chaos gc`"
            )
            return EXIT_HARNESS_BROKE
        print(f"stack {ref!r} is not up")
        return EXIT_OK
    if state.status != "up":
        print(f"stack {ref!r} is starting (holder pid {state.pid}); state in {_state_dir(key)}")
        return EXIT_OK
    _print_state(state)
    print("health:")
    for svc, address in state.services.items():
        print(f"  {svc:<10} {_reachable(address, svc in state.postgres)}")
    return EXIT_OK


if __name__ == "__main__":  # the holder: python -m l2chaos.stackhold serve ARGS_JSON
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        sys.exit("usage: python -m l2chaos.stackhold serve ARGS_JSON")
    sys.exit(serve(sys.argv[2]))
