"""The Docker engine: which one to talk to, and starting a local one when it is down.

Which engine: the one the docker CLI would use. ``DOCKER_HOST`` first, then the docker
context (``DOCKER_CONTEXT``, else ``currentContext`` in ``~/.docker/config.json``), else
the local socket. `connect()` returns an `Engine`: the SDK client plus whether the
engine runs on this host (``unix://`` or a loopback ``tcp://``) or elsewhere
(``tcp://host``, ``ssh://user@host``: its socket forwarded by the system's ``ssh``, see
`SshSocketForward`).

Starting one (`ensure`, also ``python -m l2chaos.backends.docker_engine ensure``, which
``bash .ci/setup --docker`` runs): when the engine is the local default and it does not
answer, ``dockerd`` is started detached (its own session, re-parented to init, so it
outlives the caller), logging to ``<cache>/dockerd.log``, and waited for. Flags are
found by trying: first the engine's defaults (overlay2, iptables); if it dies on the
storage driver it is started again with ``--storage-driver=vfs``, if it dies on
iptables with ``--iptables=false --ip-masq=false``. A remote engine is never started,
only checked. Quick when the engine already answers (one ping).

    python -m l2chaos.backends.docker_engine ensure    # start if needed, print what it did
    python -m l2chaos.backends.docker_engine status    # exit 0 when an engine answers
    python -m l2chaos.backends.docker_engine stop      # stop a dockerd that `ensure` started
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from l2chaos.childproc import spawn_logged
from l2chaos.errors import StackError
from l2chaos.safety import is_loopback

from .paths import cache_dir, ensure_dir

if TYPE_CHECKING:  # the SDK is imported when an engine is used, not at import time
    import docker
    import docker.tls

__all__ = [
    "DEFAULT_SOCKET",
    "Engine",
    "EngineUnavailable",
    "connect",
    "engine_host",
    "ensure",
    "host_is_local",
    "main",
    "stop_started",
]

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
PIDFILE = Path("/var/run/docker.pid")
START_TIMEOUT_S = 90.0
# Flag sets tried in order; each later one answers a failure seen in the log.
_FALLBACKS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("defaults", (), ()),
    (
        "vfs storage driver",
        ("--storage-driver=vfs",),
        ("storage driver", "overlay", "graphdriver", "driver not supported"),
    ),
    (
        "no iptables",
        ("--iptables=false", "--ip-masq=false"),
        ("iptables", "nf_tables", "xtables", "failed to create nat chain"),
    ),
)


class EngineUnavailable(StackError):
    """No Docker engine answers, and none could be started. The message says why."""


@dataclass
class Engine:
    """A connected engine. `host` is its address as configured (``unix://...``,
    ``tcp://...``, ``ssh://...``); `local` says it runs on this host."""

    client: docker.DockerClient
    host: str
    local: bool
    source: str  # "DOCKER_HOST", "context <name>" or "default socket"
    forward: SshSocketForward | None = None  # ssh:// engines: the socket's forward

    @property
    def remote_host(self) -> str | None:
        """The engine's host name for a remote engine (what its published ports are on)."""
        if self.local:
            return None
        return urlsplit(self.host).hostname

    @property
    def ssh_destination(self) -> str | None:
        """``user@host`` (and ``-p port`` folded in by the caller) for an ssh:// engine."""
        parts = urlsplit(self.host)
        if parts.scheme != "ssh" or parts.hostname is None:
            return None
        return f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname

    @property
    def ssh_port(self) -> int | None:
        parts = urlsplit(self.host)
        return parts.port if parts.scheme == "ssh" else None

    def info(self) -> dict[str, str]:
        v = self.client.version()
        return {
            "docker": str(v.get("Version", "?")),
            "docker_api": str(v.get("ApiVersion", "?")),
            "docker_arch": str(v.get("Arch", "?")),
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.forward is not None:
            self.forward.close()


def engine_host(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(host, source) the docker CLI would use: DOCKER_HOST, the context, the default."""
    env = os.environ if environ is None else environ
    explicit = env.get("DOCKER_HOST")
    if explicit:
        return explicit, "DOCKER_HOST"
    from docker.context import ContextAPI

    name = env.get("DOCKER_CONTEXT") or None
    try:
        ctx = ContextAPI.get_context(name)
    except Exception as exc:  # a broken context file: say which, do not guess
        raise EngineUnavailable(f"docker context {name or '(current)'}: {exc}") from None
    if ctx is None:
        raise EngineUnavailable(
            f"docker context {name!r} does not exist (DOCKER_CONTEXT); see `docker context ls`"
        )
    host = ctx.Host if ctx.name != "default" else None
    if host:
        return host, f"context {ctx.name}"
    return DEFAULT_SOCKET, "default socket"


def host_is_local(host: str) -> bool:
    """A unix socket, or tcp to a loopback address: the engine shares this host."""
    parts = urlsplit(host)
    if parts.scheme in ("unix", "npipe", ""):
        return True
    if parts.scheme in ("tcp", "http", "https"):
        return is_loopback((parts.hostname or "").lower())
    return False  # ssh:// and anything else


def connect(timeout_s: float = 120.0, environ: Mapping[str, str] | None = None) -> Engine:
    """A client for the engine the docker CLI would use; EngineUnavailable when it does
    not answer (with what to do)."""
    import docker
    import docker.errors

    host, source = engine_host(environ)
    forward: SshSocketForward | None = None
    try:
        _probe(host)  # a plain connection first: the SDK leaks its socket when refused
        base_url = host
        if host.startswith("ssh://"):
            env = os.environ if environ is None else environ
            forward = SshSocketForward.open(host, env.get("L2CHAOS_DOCKER_SSH_SOCKET") or "")
            base_url = f"unix://{forward.socket}"
        client = docker.DockerClient(
            base_url=base_url, timeout=int(timeout_s), tls=_tls(source, environ)
        )
        client.ping()
    except (docker.errors.DockerException, OSError, EngineUnavailable) as exc:
        if forward is not None:
            forward.close()
        hint = (
            "start it with `bash .ci/setup --docker` (or `python -m "
            "l2chaos.backends.docker_engine ensure`)"
            if host == DEFAULT_SOCKET
            else "check that the engine runs and that this host can reach it"
        )
        raise EngineUnavailable(
            f"no Docker engine answers at {host} ({source}): {_short(exc)}; {hint}"
        ) from None
    return Engine(client, host, host_is_local(host), source, forward)


def _probe(host: str, timeout_s: float = 5.0) -> None:
    """Raise OSError when nothing accepts connections at a unix:// or tcp:// host."""
    parts = urlsplit(host)
    if parts.scheme == "unix":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(parts.path)
    elif parts.scheme in ("tcp", "http", "https") and parts.hostname:
        port = parts.port or (2376 if parts.scheme == "https" else 2375)
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()


class SshSocketForward:
    """The remote engine's socket forwarded to a local one by ``ssh -N -L`` (OpenSSH
    streams unix sockets), so the SDK talks to an ``ssh://`` engine as if it were local
    and needs neither paramiko nor a docker CLI on the remote side. Key-based login
    (BatchMode); the remote socket is ``/var/run/docker.sock`` unless
    ``L2CHAOS_DOCKER_SSH_SOCKET`` says otherwise. The ssh process dies with this one
    (parent-death signal) and at `close`."""

    def __init__(self, proc: subprocess.Popen[bytes], folder: Path) -> None:
        self.proc = proc
        self.folder = folder
        self.socket = folder / "docker.sock"

    @classmethod
    def open(cls, host: str, remote_socket: str = "", timeout_s: float = 20.0) -> SshSocketForward:
        parts = urlsplit(host)
        if parts.hostname is None:
            raise EngineUnavailable(f"DOCKER_HOST {host}: no host name")
        ssh = shutil.which("ssh")
        if ssh is None:
            raise EngineUnavailable(f"{host}: the ssh client is not installed")
        folder = Path(tempfile.mkdtemp(prefix="l2chaos-ssh-"))
        local = folder / "docker.sock"
        dest = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname
        argv = [ssh, "-N", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                "-o", "ServerAliveInterval=15", "-o", "StreamLocalBindUnlink=yes"]  # fmt: skip
        if parts.port:
            argv += ["-p", str(parts.port)]
        argv += ["-L", f"{local}:{remote_socket or '/var/run/docker.sock'}", dest]
        log = open(folder / "ssh.log", "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            proc = spawn_logged(argv, log, preexec_fn=_die_with_parent)
        finally:
            log.close()
        fwd = cls(proc, folder)
        deadline = time.monotonic() + timeout_s
        while not local.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                text = (folder / "ssh.log").read_text(errors="replace").strip()
                fwd.close()
                raise EngineUnavailable(
                    f"ssh to {dest} for the engine's socket failed: {text[-500:] or 'timeout'}"
                )
            time.sleep(0.05)
        return fwd

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def _tls(source: str, environ: Mapping[str, str] | None) -> docker.tls.TLSConfig | bool:
    """TLS settings as the docker CLI reads them: DOCKER_TLS_VERIFY/DOCKER_CERT_PATH for
    DOCKER_HOST, the context's TLS material for a context; False for none."""
    if source == "DOCKER_HOST":
        from docker.utils import kwargs_from_env

        kw = kwargs_from_env(environment=dict(os.environ if environ is None else environ))
        tls = kw.get("tls")
        return tls if tls else False
    if source.startswith("context "):
        from docker.context import ContextAPI

        ctx = ContextAPI.get_context(source.removeprefix("context "))
        cfg = ctx.TLSConfig if ctx is not None else None
        return cfg if cfg else False
    return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


# ------------------------------------------------------------------ starting dockerd


def _log_path() -> Path:
    return cache_dir() / "dockerd.log"


def _started_marker() -> Path:
    return cache_dir() / "dockerd.started-by-l2chaos"


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _log_tail(path: Path, offset: int, lines: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def _spawn_dockerd(dockerd: str, flags: tuple[str, ...], log: Path) -> None:
    """Start dockerd detached: a shell in a new session starts it in the background and
    exits, so dockerd is re-parented to init (nobody's child here: no zombie, no handle
    to leak, no signal from this terminal) and outlives the caller."""
    argv = [dockerd, f"--host={DEFAULT_SOCKET}", f"--pidfile={PIDFILE}", *flags]
    with open(log, "ab") as out:
        out.write(f"\n=== l2chaos starting: {' '.join(argv)} ===\n".encode())
        out.flush()
        subprocess.run(
            ["/bin/sh", "-c", '"$@" </dev/null & exit 0', "sh", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            check=True,
            timeout=30,
            close_fds=True,
        )


def _wait_answer(deadline: float, alive: Callable[[], bool]) -> bool:
    import docker
    import docker.errors

    while time.monotonic() < deadline:
        try:
            client = docker.DockerClient(base_url=DEFAULT_SOCKET, timeout=5)
            try:
                client.ping()
                return True
            finally:
                client.close()
        except (docker.errors.DockerException, OSError):
            pass
        if not alive():
            return False
        time.sleep(0.25)
    return False


def _alive_after(grace_until: float) -> Callable[[], bool]:
    """dockerd counts as alive while its pidfile names a live process, or during the
    first seconds (before it wrote the pidfile)."""
    return lambda: _read_pid(PIDFILE) is not None or time.monotonic() < grace_until


def ensure(say: Callable[[str], None] = print, timeout_s: float = START_TIMEOUT_S) -> Engine:
    """An engine that answers: the configured one, or a local dockerd started now.

    Never starts anything for DOCKER_HOST or a non-default context (it only checks).
    Raises EngineUnavailable with the reason (and dockerd's log tail) otherwise.
    """
    host, _source = engine_host()
    try:
        engine = connect()
    except EngineUnavailable as exc:
        if host != DEFAULT_SOCKET:
            raise
        first_error = str(exc)
    else:
        say(f"docker engine answers at {engine.host} ({engine.source})")
        return engine
    dockerd = shutil.which("dockerd") or next(
        (p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if os.access(p, os.X_OK)), None
    )
    if dockerd is None:
        raise EngineUnavailable(
            f"{first_error}\ndockerd is not installed: install Debian's docker.io "
            "(`bash .ci/setup --docker` does)"
        )
    if os.geteuid() != 0:
        raise EngineUnavailable(
            f"{first_error}\nstarting dockerd needs root; start the engine yourself, "
            "or point DOCKER_HOST at one"
        )
    if _read_pid(PIDFILE) is not None:
        # a dockerd is starting or stuck; give it the time a fresh start would get
        say(f"dockerd (pid {_read_pid(PIDFILE)}) runs but does not answer yet; waiting")
        if _wait_answer(time.monotonic() + timeout_s, lambda: _read_pid(PIDFILE) is not None):
            return connect()
        raise EngineUnavailable(
            f"dockerd (pidfile {PIDFILE}) runs but does not answer at {DEFAULT_SOCKET} "
            f"after {timeout_s:g}s; see {_log_path()}"
        )
    log = _log_path()
    ensure_dir(log.parent)
    flags: tuple[str, ...] = ()
    tried: list[str] = []
    tail = ""
    for label, extra, triggers in _FALLBACKS:
        if tried and not any(t in tail.lower() for t in triggers):
            continue  # this fallback answers a failure we did not see
        flags = (*flags, *extra)
        tried.append(label)
        offset = log.stat().st_size if log.exists() else 0
        say(f"starting dockerd ({label}; log: {log})")
        t0 = time.monotonic()
        _spawn_dockerd(dockerd, flags, log)
        # the pidfile appears within a second or two; until then count it as alive
        ok = _wait_answer(t0 + timeout_s, _alive_after(t0 + 5.0))
        if ok:
            _started_marker().write_text(" ".join(flags) + "\n")
            say(f"dockerd answers after {time.monotonic() - t0:.1f}s ({label})")
            return connect()
        tail = _log_tail(log, offset)
        pid = _read_pid(PIDFILE)
        if pid is not None:  # alive but never answered: stop it before trying other flags
            _stop_pid(pid, 20.0)
    raise EngineUnavailable(
        f"dockerd did not come up (tried: {', '.join(tried)}); last lines of {log}:\n{tail}"
    )


def _stop_pid(pid: int, timeout_s: float) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return False


def stop_started(say: Callable[[str], None] = print) -> bool:
    """Stop the dockerd that `ensure` started (and only that one); True when one was stopped."""
    marker = _started_marker()
    if not marker.exists():
        say("no dockerd started by l2chaos here")
        return False
    pid = _read_pid(PIDFILE)
    marker.unlink()
    if pid is None:
        say("dockerd started by l2chaos is not running any more")
        return False
    graceful = _stop_pid(pid, 30.0)
    say(f"stopped dockerd (pid {pid}){'' if graceful else ' with SIGKILL'}")
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("ensure", "status", "stop"):
        print(
            "usage: python -m l2chaos.backends.docker_engine ensure|status|stop",
            file=sys.stderr,
        )
        return 2

    def say(text: str) -> None:
        print(f"[docker] {text}", flush=True)

    try:
        if args[0] == "ensure":
            engine = ensure(say)
            info = engine.info()
            say(f"engine {info['docker']} (API {info['docker_api']}, {info['docker_arch']})")
            engine.close()
        elif args[0] == "status":
            engine = connect(timeout_s=10)
            say(f"engine answers at {engine.host} ({engine.source}): {engine.info()}")
            engine.close()
        else:
            stop_started(say)
    except EngineUnavailable as exc:
        say(str(exc))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
