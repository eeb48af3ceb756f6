"""PostgreSQL for the local backend, from the binaries the ``pgserver`` wheel ships.

Real PostgreSQL 16, no system install. The data dir comes from a template made once
with ``initdb`` and cached under ``<cache>/pg/`` (a copy per run is faster than initdb).
`postgres` itself runs as a direct child in its own process group, never daemonised by
pg_ctl, so the harness's signals reach it: SIGINT is a fast shutdown, SIGQUIT an
immediate one (the crash path), SIGKILL a crash. fsync stays on: crash-recovery faults
would mean nothing without it.

PostgreSQL refuses to run as root. As root the server runs as an unprivileged system
user (``$L2CHAOS_PG_USER``, default ``l2chaos``, created with useradd when missing, as
pgserver does) that owns the data dir. That user must be able to reach the binaries: a
checkout inside a 0700 folder (common in CI) hides them, so then the install is copied
once to a folder it can read (``$TMPDIR/l2chaos-pg-<uid>/``) instead of widening the
permissions of the user's folders.

Readiness is a real connection (``pg_isready``), never a log line.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from l2chaos.errors import StackError
from l2chaos.stackspec import PostgresSpec

from .paths import cache_dir, ensure_dir

__all__ = [
    "INITDB_ARGS",
    "PgInstall",
    "can_traverse",
    "create_database",
    "dsn",
    "find_pg_bin",
    "make_data_dir",
    "pg_is_ready",
    "postgres_argv",
    "quote_ident",
    "resolve_pg_user",
    "wait_pg_ready",
]

INITDB_ARGS = (
    "--username=postgres",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-instructions",
    "--no-sync",  # initdb's own writes only; the running server keeps fsync=on
)
DEFAULT_PG_USER = "l2chaos"
SUPERUSER = "postgres"


def find_pg_bin() -> Path:
    """``$L2CHAOS_PG_BIN``, else the ``pgserver`` wheel's ``pginstall/bin``."""
    explicit = os.environ.get("L2CHAOS_PG_BIN")
    if explicit:
        p = Path(explicit)
        if not (p / "postgres").is_file():
            raise StackError(f"L2CHAOS_PG_BIN={explicit} holds no `postgres` binary")
        return p
    spec = importlib.util.find_spec("pgserver")  # found, not imported: it has side effects
    if spec is None or spec.origin is None:
        raise StackError(
            "PostgreSQL binaries not found: the pgserver package is not installed; "
            "install everything with `bash .ci/setup`"
        )
    p = Path(spec.origin).parent / "pginstall" / "bin"
    if not (p / "postgres").is_file():
        raise StackError(
            f"pgserver is installed but {p}/postgres is missing; re-run `bash .ci/setup`"
        )
    return p


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def dsn(spec: PostgresSpec, host: str, port: int) -> str:
    return f"postgresql://{spec.user}@{host}:{port}/{spec.database}"


def can_traverse(path: Path, uid: int, gids: Iterable[int]) -> bool:
    """Whether user `uid` (groups `gids`) may search every directory down to `path`."""
    if uid == 0:
        return True
    groups = set(gids)
    p = path.resolve()
    for d in [*reversed(p.parents), p]:
        try:
            st = d.stat()
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            continue
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class PgUser:
    name: str
    uid: int
    gid: int

    @property
    def ids(self) -> tuple[int, int]:
        return (self.uid, self.gid)


def resolve_pg_user() -> PgUser | None:
    """The user PostgreSQL runs as: None (this user) unless we are root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("L2CHAOS_PG_USER") or DEFAULT_PG_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create_user(name)
    if entry.pw_uid == 0:
        raise StackError(f"L2CHAOS_PG_USER={name} is root; PostgreSQL refuses to run as root")
    return PgUser(name, entry.pw_uid, entry.pw_gid)


def _create_user(name: str) -> pwd.struct_passwd:
    useradd = shutil.which("useradd")
    if useradd is None:
        raise StackError(
            f"PostgreSQL cannot run as root and user {name!r} does not exist; create it "
            "or set L2CHAOS_PG_USER to an unprivileged user (useradd is not available)"
        )
    res = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode not in (0, 9):  # 9: created meanwhile by another run
        raise StackError(f"useradd {name} failed: {res.stderr.strip()}")
    return pwd.getpwnam(name)


def _user_gids(user: PgUser) -> list[int]:
    return [user.gid] + [g.gr_gid for g in grp.getgrall() if user.name in g.gr_mem]


def _private_dir(path: Path) -> Path:
    """Create `path` (0755, ours) or check an existing one is ours and not writable by others."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o755)
    st = os.lstat(path)
    if (
        not stat.S_ISDIR(st.st_mode)
        or st.st_uid != os.geteuid()
        or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise StackError(f"{path} exists but is not a private folder of this user; remove it")
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class PgInstall:
    """Where the PostgreSQL binaries are for this run, who runs them, and their version."""

    bin: Path
    user: PgUser | None
    version: str

    @classmethod
    def locate(cls) -> PgInstall:
        user = resolve_pg_user()
        bin_dir = find_pg_bin()
        if user is not None and not can_traverse(bin_dir, user.uid, _user_gids(user)):
            bin_dir = _readable_copy(bin_dir, user)
        return cls(bin_dir, user, _pg_version(bin_dir))

    def exe(self, name: str) -> str:
        return str(self.bin / name)

    def template(self) -> Path:
        """The cached initdb template for this version (made once, under a lock)."""
        key = hashlib.sha256(f"{self.version}|{INITDB_ARGS}".encode()).hexdigest()[:12]
        root = ensure_dir(cache_dir() / "pg")
        final = root / f"template-{self.version}-{key}"
        if (final / "PG_VERSION").is_file():
            return final
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (final / "PG_VERSION").is_file():
                return final
            work = Path(tempfile.mkdtemp(prefix="l2chaos-initdb-"))
            try:
                work.chmod(0o711)
                data = work / "pgdata"
                data.mkdir(mode=0o700)
                if self.user is not None:
                    os.chown(data, self.user.uid, self.user.gid)
                res = subprocess.run(
                    [self.exe("initdb"), "-D", str(data), *INITDB_ARGS],
                    capture_output=True,
                    text=True,
                    check=False,
                    cwd=work,
                    user=self.user.uid if self.user else None,
                    group=self.user.gid if self.user else None,
                    extra_groups=[] if self.user else None,
                    timeout=120,
                )
                if res.returncode != 0:
                    raise StackError(
                        f"initdb failed (exit {res.returncode})",
                        service="postgres",
                        log_tail=(res.stdout + res.stderr)[-3000:],
                    )
                tmp = root / f".{final.name}.{os.getpid()}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(data, tmp, symlinks=True)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return final


def _pg_version(bin_dir: Path) -> str:
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise StackError(f"{bin_dir}/postgres --version failed: {out.stderr.strip()}")
    # "postgres (PostgreSQL) 16.2"
    return out.stdout.strip().rsplit(" ", 1)[-1]


def _readable_copy(bin_dir: Path, user: PgUser) -> Path:
    """Copy the install where `user` can read it, keeping its layout; cached per build.

    pgserver's wheel is repaired by auditwheel: its binaries find libpq through the
    RPATH ``$ORIGIN/../../../pgserver.libs``, so the copy keeps
    ``<package>/<install>/{bin,lib,share}`` next to ``<package>.libs``.
    """
    install = bin_dir.parent  # .../site-packages/pgserver/pginstall
    package = install.parent
    version = _pg_version(bin_dir)
    # by content, not by path: every copy of one pgserver build shares one readable copy
    ident = f"{version}|{(bin_dir / 'postgres').stat().st_size}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:10]
    base = _private_dir(Path(tempfile.gettempdir()) / f"l2chaos-pg-{os.geteuid()}")
    final = base / f"{version}-{digest}"
    copied_bin = final / package.name / install.name / "bin"
    if not (final / ".complete").is_file():
        with open(base / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (final / ".complete").is_file():
                tmp = base / f".{final.name}.{os.getpid()}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(final, ignore_errors=True)
                dest = tmp / package.name / install.name
                dest.mkdir(parents=True)
                for part in ("bin", "lib", "share"):
                    if (install / part).is_dir():
                        shutil.copytree(install / part, dest / part, symlinks=True)
                libs = package.parent / f"{package.name}.libs"
                if libs.is_dir():
                    shutil.copytree(libs, tmp / libs.name, symlinks=True)
                for dirpath, _dirnames, filenames in os.walk(tmp):
                    os.chmod(dirpath, 0o755)
                    for f in filenames:
                        fp = Path(dirpath) / f
                        if not fp.is_symlink():
                            fp.chmod(fp.stat().st_mode | 0o444)
                (tmp / ".complete").write_text(f"{install}\n")
                os.replace(tmp, final)
    if not can_traverse(copied_bin, user.uid, _user_gids(user)):
        raise StackError(
            f"user {user.name!r} cannot reach the PostgreSQL binaries at {bin_dir} nor at "
            f"{copied_bin}; make one of them readable by that user"
        )
    for exe in ("postgres", "pg_isready"):
        res = subprocess.run(
            [str(copied_bin / exe), "--version"], capture_output=True, text=True, check=False,
            user=user.uid, group=user.gid, extra_groups=[],
        )  # fmt: skip
        if res.returncode != 0:
            raise StackError(
                f"the copy of the PostgreSQL binaries at {copied_bin} does not run as "
                f"{user.name!r}: {res.stderr.strip()}"
            )
    return copied_bin


def make_data_dir(template: Path, dest: Path, user: PgUser | None) -> None:
    """Copy the template to `dest` (which must not exist), owned by `user`, mode 0700."""
    shutil.copytree(template, dest, symlinks=True)
    dest.chmod(0o700)
    if user is not None:
        for dirpath, _dirnames, filenames in os.walk(dest):
            os.chown(dirpath, user.uid, user.gid)
            for f in filenames:
                os.lchown(os.path.join(dirpath, f), user.uid, user.gid)


def postgres_argv(
    install: PgInstall, data_dir: Path, port: int, host: str = "127.0.0.1"
) -> list[str]:
    return [
        install.exe("postgres"),
        "-D", str(data_dir),
        "-p", str(port),
        "-c", f"listen_addresses={host}",
        "-c", "unix_socket_directories=",  # TCP only: no socket paths to clash or outgrow
        "-c", "max_connections=200",
        "-c", "logging_collector=off",
        "-c", "log_destination=stderr",
        "-c", "log_timezone=UTC",
        "-c", "timezone=UTC",
    ]  # fmt: skip


def pg_is_ready(install: PgInstall, port: int, host: str = "127.0.0.1") -> bool:
    """A real connection attempt: pg_isready exits 0 when the server accepts connections."""
    res = subprocess.run(
        [install.exe("pg_isready"), "-q", "-h", host, "-p", str(port), "-U", SUPERUSER,
         "-d", "postgres", "-t", "2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        check=False, timeout=10,
    )  # fmt: skip
    if res.returncode > 3:  # 0 accepting, 1 rejecting, 2 no answer, 3 no attempt
        raise StackError(f"{install.exe('pg_isready')} cannot run (exit {res.returncode})")
    return res.returncode == 0


def wait_pg_ready(
    install: PgInstall,
    port: int,
    timeout_s: float,
    alive: Callable[[], bool],
    host: str = "127.0.0.1",
) -> bool:
    """Poll until PostgreSQL accepts connections; False on timeout or when `alive()` says
    the server process has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            return False
        if pg_is_ready(install, port, host):
            return True
        time.sleep(0.05)
    return False


def create_database(
    install: PgInstall, port: int, spec: PostgresSpec, host: str = "127.0.0.1"
) -> None:
    """Create the spec's role (LOGIN) and database (owned by it), as the superuser."""
    cmds: list[str] = []
    if spec.user != SUPERUSER:
        cmds.append(f"CREATE ROLE {quote_ident(spec.user)} LOGIN")
    owner = f" OWNER {quote_ident(spec.user)}" if spec.user != SUPERUSER else ""
    if spec.database != "postgres":
        cmds.append(f"CREATE DATABASE {quote_ident(spec.database)}{owner}")
    if not cmds:
        return
    argv = [install.exe("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", str(port),
            "-U", SUPERUSER, "-d", "postgres"]  # fmt: skip
    for c in cmds:
        argv += ["-c", c]
    res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if res.returncode != 0:
        raise StackError(
            f"creating role {spec.user!r} and database {spec.database!r} failed: "
            f"{res.stderr.strip()}"
        )
