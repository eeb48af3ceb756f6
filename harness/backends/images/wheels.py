"""The wheelhouse: Python wheels fetched on this host for images built without network.

Containers here cannot use HTTPS (only the host trusts the machine's egress), so nothing
is downloaded inside a build. Two parts, each cached under ``<cache>/docker/wheels/``:

- ``deps-<key>/``: `pip download` of the services' dependencies (aiohttp, asyncpg,
  uvloop, pinned to the versions installed next to the harness, so containers run what
  the local backend runs) and everything they need, as binary wheels for the image's
  Python (3.11) and the engine's architecture, plus a ``requirements.txt``. The key is
  a hash of the pins, the Python version and the platform.
- ``l2chaos-<key>/``: a wheel of this checkout (`pip wheel`, built from a clean copy of
  the package folders so the checkout gets no build/ or egg-info). The key is a hash of
  every file that goes into it (`source_key`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from l2chaos.errors import StackError

from ..paths import cache_dir, ensure_dir

__all__ = [
    "IMAGE_PYTHON",
    "STACK_REQUIREMENTS",
    "Wheelhouse",
    "deps_key",
    "ensure_wheelhouse",
    "pinned_requirements",
    "source_files",
    "source_key",
    "source_root",
]

IMAGE_PYTHON = "3.11"
# What the reference stack's services import beyond the standard library and l2chaos
# (pyproject.toml: "reference stack services").
STACK_REQUIREMENTS = ("aiohttp", "asyncpg", "uvloop")
SOURCE_FOLDERS = ("harness", "faults", "stacks", "scenarios")
SOURCE_TOP_FILES = ("setup.py", "pyproject.toml", "README.md", "LICENSE")
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_PIP_TIMEOUT_S = 900


def digest(*parts: str | bytes) -> str:
    """sha256 (hex) of the parts, each ended by a NUL (so ('ab', 'c') != ('a', 'bc'))."""
    d = hashlib.sha256()
    for p in parts:
        d.update(p if isinstance(p, bytes) else p.encode())
        d.update(b"\0")
    return d.hexdigest()


def pinned_requirements(names: Iterable[str] = STACK_REQUIREMENTS) -> list[str]:
    """``name==version`` for each, as installed next to the harness (unpinned if absent)."""
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


GLIBC_MINOR = 36  # Debian bookworm's glibc (the offline base and python:3.11-slim)


def platform_tag(arch: str) -> str:
    """The newest manylinux tag for an engine architecture (``amd64``, ``arm64``)."""
    machine = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
    if arch not in machine:
        raise StackError(f"no wheels for engine architecture {arch!r} (amd64 or arm64 only)")
    return f"manylinux_2_{GLIBC_MINOR}_{machine[arch]}"


def platform_tags(arch: str) -> list[str]:
    """Every manylinux tag the image accepts, newest first: pip takes `--platform`
    literally, so each older glibc level (and its legacy alias) is named."""
    newest = platform_tag(arch)
    machine = newest.split("_", 3)[3]
    tags = [f"manylinux_2_{m}_{machine}" for m in range(GLIBC_MINOR, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{machine}" for m, name in legacy.items() if machine == "x86_64" or m == 17]
    return tags


def deps_key(requirements: Iterable[str], platform: str) -> str:
    return digest("deps/1", IMAGE_PYTHON, platform, *sorted(requirements))[:16]


def source_root() -> Path:
    """The l2chaos checkout this process runs from (the wheel is built from it)."""
    import l2chaos

    root = Path(l2chaos.__file__).resolve().parent.parent
    if (root / "setup.py").is_file() and all((root / f).is_dir() for f in SOURCE_FOLDERS):
        return root
    raise StackError(
        f"building an image with the l2chaos wheel needs the l2chaos source checkout; "
        f"l2chaos runs from {root}, which has no setup.py with {', '.join(SOURCE_FOLDERS)}"
    )


def source_files(root: Path) -> list[Path]:
    """Every file that goes into the l2chaos wheel, relative to `root`, sorted."""
    out: list[Path] = []
    for name in SOURCE_TOP_FILES:
        if (root / name).is_file():
            out.append(Path(name))
    for folder in SOURCE_FOLDERS:
        for dirpath, dirnames, filenames in os.walk(root / folder):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for f in filenames:
                if f.endswith((".pyc", ".pyo")) or f.startswith(".#"):
                    continue
                out.append((Path(dirpath) / f).relative_to(root))
    return sorted(out)


def source_key(root: Path) -> str:
    d = hashlib.sha256(b"l2chaos-src/1\0")
    for rel in source_files(root):
        d.update(str(rel).encode() + b"\0")
        with contextlib.suppress(OSError):  # a file removed meanwhile by another editor
            d.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return d.hexdigest()[:16]


@dataclass(frozen=True)
class Wheelhouse:
    deps_dir: Path  # wheels + requirements.txt
    l2chaos_dir: Path  # the one l2chaos wheel
    key: str  # hash of both keys, for image tags


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    ensure_dir(path.parent)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _pip(args: list[str], what: str, cwd: Path) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            env=env,
            timeout=_PIP_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise StackError(f"{what}: pip took longer than {_PIP_TIMEOUT_S}s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise StackError(
            f"{what} failed (pip exit {done.returncode}); PyPI must be reachable from this host",
            log_tail=tail,
        )


def _ensure_deps(
    base: Path, requirements: list[str], arch: str, say: Callable[[str], None]
) -> Path:
    platform = platform_tag(arch)
    final = base / f"deps-{deps_key(requirements, platform)}"
    if (final / "requirements.txt").is_file():
        return final
    say(f"wheelhouse: downloading {', '.join(requirements)} for cp{IMAGE_PYTHON} {platform}")
    tmp = Path(tempfile.mkdtemp(prefix=".deps-", dir=base))
    try:
        _pip(
            [
                "download", "--quiet", "--only-binary=:all:", "--dest", str(tmp),
                "--python-version", IMAGE_PYTHON, "--implementation", "cp",
                "--abi", f"cp{IMAGE_PYTHON.replace('.', '')}",
                *(arg for tag in platform_tags(arch) for arg in ("--platform", tag)),
                *requirements,
            ],
            "downloading the services' wheels",
            tmp,
        )  # fmt: skip
        (tmp / "requirements.txt").write_text("\n".join(requirements) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"wheelhouse: {len(list(final.glob('*.whl')))} wheels in {final}")
    return final


def _ensure_l2chaos(base: Path, root: Path, say: Callable[[str], None]) -> Path:
    key = source_key(root)
    final = base / f"l2chaos-{key}"
    if any(final.glob("l2chaos-*.whl")):
        return final
    say(f"wheelhouse: building the l2chaos wheel from {root}")
    work = Path(tempfile.mkdtemp(prefix=".l2chaos-", dir=base))
    try:
        src = work / "src"
        for rel in source_files(root):
            dest = src / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                shutil.copy2(root / rel, dest)
        out = work / "out"
        _pip(
            ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(src)],
            "building the l2chaos wheel",
            work,
        )
        wheels = list(out.glob("l2chaos-*.whl"))
        if len(wheels) != 1:
            raise StackError(f"pip wheel made {len(wheels)} l2chaos wheels in {out}, not one")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(base, "l2chaos-", keep={final.name}, newest=3)
    return final


def _prune(base: Path, prefix: str, keep: set[str], newest: int) -> None:
    """Remove all but the `newest` cached folders with this prefix (never those in `keep`)."""
    dirs = sorted(
        (d for d in base.glob(f"{prefix}*") if d.is_dir() and d.name not in keep),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for d in dirs[max(0, newest - len(keep)) :]:
        shutil.rmtree(d, ignore_errors=True)


def ensure_wheelhouse(
    arch: str, say: Callable[[str], None], root: Path | None = None
) -> Wheelhouse:
    """The cached wheelhouse for an engine of this architecture; fetched/built if missing."""
    base = ensure_dir(cache_dir() / "docker" / "wheels")
    requirements = pinned_requirements()
    src_root = root if root is not None else source_root()
    with _locked(base / ".lock"):
        deps = _ensure_deps(base, requirements, arch, say)
        own = _ensure_l2chaos(base, src_root, say)
    return Wheelhouse(deps, own, digest(deps.name, own.name)[:16])


def wheelhouse_key(arch: str, root: Path | None = None) -> str:
    """The key `ensure_wheelhouse` would return, computed without fetching anything."""
    src_root = root if root is not None else source_root()
    deps = f"deps-{deps_key(pinned_requirements(), platform_tag(arch))}"
    return digest(deps, f"l2chaos-{source_key(src_root)}")[:16]
