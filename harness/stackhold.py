"""`l2chaos stack up|down|status STACK`: a stack brought up by hand, for exploring.

`up` starts a detached holder process (``python -m l2chaos.stackhold serve``) that
brings the stack up on the local backend, writes its endpoints to a state file, and
keeps it up until it gets SIGTERM; `down` sends that and waits; `status` reads the
state file and probes every service. The admin token and the API keys stay in files
readable only by the owner, in ~/.cache/l2chaos/stacks/<name>/.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from .backends.paths import cache_dir
from .errors import EXIT_HARNESS_BROKE, EXIT_OK, L2ChaosError, StackError, UsageError
from .params import Where
from .scenario import parse_set_value, parse_stack_section
from .stackspec import StackRun

__all__ = ["down", "serve", "status", "up"]


def _state_dir(name: str) -> Path:
    d = cache_dir() / "stacks" / name
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _read_state(name: str) -> dict[str, Any] | None:
    path = _state_dir(name) / "state.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stack_run(name: str, profile: str | None, sets: list[str], seed: int) -> StackRun:
    """The stack section a scenario would have, from the command line's --set values
    (``switches.NAME=true``, ``settings.NAME=VALUE``), validated the same way."""
    switches: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        group, dot, field = key.partition(".")
        if not sep or not dot or group not in ("switches", "settings"):
            raise UsageError(
                f"--set for a stack takes switches.NAME=VALUE or settings.NAME=VALUE, got {item!r}"
            )
        value = parse_set_value(key, raw)
        (switches if group == "switches" else settings)[field] = value
    section: dict[str, Any] = {"ref": name, "switches": switches, "settings": settings}
    if profile is not None:
        section["profile"] = profile
    _, run = parse_stack_section({"stack": section}, Where("--set", ""), Path.cwd(), seed, None)
    return run


def up(
    name: str, *, profile: str | None = None, sets: list[str] | None = None, seed: int = 1
) -> int:
    sets = list(sets or [])
    _stack_run(name, profile, sets, seed)  # validate before starting anything
    state = _read_state(name)
    if state is not None and _alive(int(state.get("pid", 0))):
        raise UsageError(
            f"stack {name!r} is already up (holder pid {state['pid']}); run: l2chaos stack down {name}"
        )
    d = _state_dir(name)
    (d / "state.json").unlink(missing_ok=True)
    args = json.dumps({"name": name, "profile": profile, "sets": sets, "seed": seed})
    with (d / "holder.log").open("w") as log:
        subprocess.Popen(
            [sys.executable, "-m", "l2chaos.stackhold", "serve", args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = _read_state(name)
        if state is not None and state.get("status") in ("up", "failed"):
            break
        time.sleep(0.25)
    if state is None or state.get("status") != "up":
        tail = (d / "holder.log").read_text()[-2000:]
        raise StackError(f"stack {name!r} did not come up", log_tail=tail)
    _print_state(state)
    print(f"\nbring it down with: l2chaos stack down {name}")
    return EXIT_OK


def _print_state(state: dict[str, Any]) -> None:
    print(
        f"stack {state['name']} is up (profile {state.get('profile')}, holder pid {state['pid']})"
    )
    for svc, url in state["services"].items():
        print(f"  {svc:<10} {url}")
    print(f"  admin token:   {state['token_file']}")
    print(f"  accounts+keys: {state['accounts_file']}")
    print(f"  logs:          {state['run_dir']}/logs")


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


def serve(args_json: str) -> int:
    """The holder process: bring the stack up, record it, wait for SIGTERM, bring it down."""
    from .backends.local import LocalBackend
    from .rundir import RunDir

    args = json.loads(args_json)
    name = args["name"]
    d = _state_dir(name)
    run = _stack_run(
        name, args.get("profile"), list(args.get("sets", [])), int(args.get("seed", 1))
    )
    token = os.urandom(18).hex()
    rd = RunDir.create(d / "runs", f"stack-{name}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    backend = LocalBackend()
    try:
        stack = backend.up(
            run, run_id=rd.run_id, run_dir=rd.path, env={"L2CHAOS_ADMIN_TOKEN": token}
        )
    except L2ChaosError as exc:  # the message is the log; `up` shows its tail
        (d / "state.json").write_text(json.dumps({"status": "failed", "error": str(exc)}))
        print(f"l2chaos: {exc}", flush=True)
        return exc.exit_code
    try:
        token_file = d / "admin-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        accounts_file = d / "accounts.json"
        accounts = []
        if run.spec.accounts is not None:
            url = stack.direct_url(run.spec.accounts["service"], run.spec.accounts["path"])
            accounts = httpx.get(
                url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ).json()
        accounts_file.write_text(json.dumps(accounts, indent=1))
        accounts_file.chmod(0o600)
        state = {
            "status": "up",
            "name": name,
            "profile": run.profile,
            "pid": os.getpid(),
            "run_id": rd.run_id,
            "run_dir": str(rd.path),
            "services": {s: _address(run, stack, s) for s in stack.services},
            "postgres": run.spec.postgres_services(),
            "token_file": str(token_file),
            "accounts_file": str(accounts_file),
        }
        (d / "state.json").write_text(json.dumps(state, indent=1))
        stop.wait()
    finally:
        backend.down(stack)
        (d / "state.json").unlink(missing_ok=True)
    return EXIT_OK


def down(name: str) -> int:
    state = _read_state(name)
    if state is None or not _alive(int(state.get("pid", 0))):
        print(f"stack {name!r} is not up")
        (_state_dir(name) / "state.json").unlink(missing_ok=True)
        return EXIT_OK
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        from .backends import gc_all

        gc_all()
        print(f"stack {name!r}: the holder did not stop in time; killed it and ran gc")
        return EXIT_HARNESS_BROKE
    print(f"stack {name!r} is down")
    return EXIT_OK


def status(name: str) -> int:
    state = _read_state(name)
    if state is None or not _alive(int(state.get("pid", 0))):
        print(f"stack {name!r} is not up")
        return EXIT_OK
    _print_state(state)
    print("health:")
    for svc, address in state["services"].items():
        print(f"  {svc:<10} {_reachable(address, svc in state.get('postgres', []))}")
    return EXIT_OK


if __name__ == "__main__":  # the holder: python -m l2chaos.stackhold serve ARGS_JSON
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        sys.exit("usage: python -m l2chaos.stackhold serve ARGS_JSON")
    sys.exit(serve(sys.argv[2]))
