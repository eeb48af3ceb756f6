"""The docker tests' stack (teststack/) and helpers to observe it from outside.

Offered to the docker tests as fixtures by tests/docker/conftest.py.
"""

from __future__ import annotations

import shutil
import socket
from contextlib import AbstractContextManager
from pathlib import Path

from l2chaos.backends.docker import DockerBackend, DockerStack
from l2chaos.stackspec import StackRun, load_stack

from tests._support import stacks
from tests._support.stacks import fault_context as fault_context
from tests._support.stacks import wait_until as wait_until

HERE = Path(__file__).resolve().parent
TESTSTACK = HERE / "teststack"


def write_stack(folder: Path, *, api_mode: str = "normal", ready_timeout: str = "30s") -> Path:
    """A copy of the test stack (Dockerfile and service included) with api's mode and
    ready timeout changed; the copy builds the same image (same content, same tag)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in ("Dockerfile", "tinysvc.py"):
        shutil.copy2(TESTSTACK / f, folder / f)
    text = (TESTSTACK / "stack.yaml").read_text()
    text = text.replace(
        '      TINY_DATA: "{data_dir}"\n',
        f'      TINY_DATA: "{{data_dir}}"\n      TINY_MODE: {api_mode}\n',
    )
    text = text.replace(
        "    ready_timeout: 30s\n    depends_on: [db]",
        f"    ready_timeout: {ready_timeout}\n    depends_on: [db]",
    )
    path = folder / "stack.yaml"
    path.write_text(text)
    return path


def stack_run(path: Path = TESTSTACK / "stack.yaml", seed: int = 1) -> StackRun:
    return StackRun(
        spec=load_stack(path), profile="quiet", switches={"loud": False}, settings={}, seed=seed
    )


def new_run_id(prefix: str = "dtest") -> str:
    return stacks.new_run_id(prefix)


def up_stack(
    folder: Path,
    run: StackRun | None = None,
    run_id: str | None = None,
    stop_timeout_s: float = 5.0,
) -> AbstractContextManager[DockerStack]:
    backend = DockerBackend(stop_timeout_s=stop_timeout_s)
    return stacks.stack_up(backend, run or stack_run(), folder, run_id or new_run_id())


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET with a fresh connection; (0, error) when nothing answers."""
    import httpx

    try:
        with httpx.Client(timeout=timeout, trust_env=False) as c:
            r = c.get(url)
            return r.status_code, r.text
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}"


def get(stack: DockerStack, service: str, path: str, timeout: float = 5.0) -> tuple[int, str]:
    return http_get(stack.direct_url(service, path), timeout)


def boot(stack: DockerStack, service: str) -> str:
    status, body = get(stack, service, "/boot")
    assert status == 200, body
    return body


def db_ok(stack: DockerStack) -> bool:
    from l2chaos.backends.readiness import pg_handshake

    ep = stack.direct_endpoint("db")
    return pg_handshake(ep.host, ep.port, "tiny", "tiny")[0]


def psql(stack: DockerStack, sql: str) -> str:
    """Run SQL with psql inside the db container (the image's own client)."""
    res = stack.platform.container("db").exec_run(
        [
            "psql",
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "tiny",
            "-d",
            "tiny",
            "-c",
            sql,
        ],
        user="postgres",
    )
    assert isinstance(res.output, bytes)
    out = res.output.decode(errors="replace").strip()
    assert res.exit_code == 0, out
    return out


def tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True
