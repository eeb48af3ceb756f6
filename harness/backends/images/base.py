"""The offline base image: a Debian rootfs made with debootstrap on this host.

No container registry answers here, so the base of every image built offline is
``l2chaos/base:<key>``: Debian bookworm (minbase) with python3.11, python3-venv and
Debian's postgresql, made with ``debootstrap`` on the host (apt mirrors are reachable
from the host, and it needs no container) and turned into an image with ``docker
import``. The rootfs tarball is cached under ``<cache>/docker/`` (and debootstrap's
.deb files under ``<cache>/docker/debs``), so a second build (or CI run) imports the
cached tarball instead of bootstrapping again. The key is a hash of the recipe (suite,
variant, packages, clean-up), so changing the recipe makes a new image.

debootstrap mounts /proc (and, in some containers, binds /dev) inside the target while
it runs; a work folder is only ever removed after everything mounted under it is
unmounted, and never across a file-system boundary.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from l2chaos.errors import StackError

from ..paths import cache_dir, ensure_dir

if TYPE_CHECKING:
    import docker

__all__ = [
    "BASE_PACKAGES",
    "BASE_REPO",
    "SUITE",
    "base_key",
    "base_tag",
    "ensure_base_image",
    "remove_tree",
]

SUITE = "bookworm"
VARIANT = "minbase"
BASE_REPO = "l2chaos/base"
BASE_PACKAGES = ("python3", "python3-venv", "postgresql", "netbase", "procps")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What the rootfs loses before it is packed: package caches and lists, docs, the
# default cluster Debian's postgresql makes (the postgres image makes its own).
_CLEAN = (
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "etc/postgresql/*/main",
    "var/lib/postgresql/*/main",
    "var/log/*.log",
)
_CHANGES = (
    "ENV LANG=C.UTF-8",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["/bin/bash"]',
    "LABEL l2chaos.image=base",
)
_DEBOOTSTRAP_TIMEOUT_S = 1800


def base_key(arch: str) -> str:
    recipe = "\0".join(["base/1", SUITE, VARIANT, arch, *BASE_PACKAGES, *_CLEAN, *_CHANGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def base_tag(arch: str) -> str:
    return f"{BASE_REPO}:{base_key(arch)}"


def _debian_arch(arch: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    prefix = str(path.resolve())
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            mnt = parts[1].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                found.append(mnt)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """Unmount whatever is mounted below `path`, then remove it without crossing into
    another file system (a leftover bind mount of /dev must never be emptied)."""
    if not path.exists():
        return
    for mnt in _mounts_under(path):
        subprocess.run(["umount", "-l", mnt], check=False, capture_output=True, timeout=60)
    left = _mounts_under(path)
    if left:
        raise StackError(f"cannot remove {path}: still mounted below it: {', '.join(left)}")
    subprocess.run(
        ["rm", "-rf", "--one-file-system", str(path)], check=False, capture_output=True, timeout=600
    )


def _debootstrap(arch: str, rootfs: Path, say: Callable[[str], None]) -> None:
    exe = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if os.access("/usr/sbin/debootstrap", os.X_OK) else None
    )
    if exe is None:
        raise StackError(
            "debootstrap is not installed; it makes the base image when no registry answers "
            "(`bash .ci/setup --docker` installs it)"
        )
    if os.geteuid() != 0:
        raise StackError("debootstrap needs root to make the offline base image; run as root")
    mirror = os.environ.get("L2CHAOS_DEBIAN_MIRROR") or DEFAULT_MIRROR
    debs = ensure_dir(cache_dir() / "docker" / "debs")
    argv = [
        exe, f"--variant={VARIANT}", f"--arch={_debian_arch(arch)}",
        f"--include={','.join(BASE_PACKAGES)}", f"--cache-dir={debs}",
        SUITE, str(rootfs), mirror,
    ]  # fmt: skip
    say(f"base image: debootstrap {SUITE} ({', '.join(BASE_PACKAGES)}) from {mirror}")
    t0 = time.monotonic()
    log = rootfs.parent / "debootstrap.log"
    with open(log, "wb") as out:
        try:
            done = subprocess.run(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
                timeout=_DEBOOTSTRAP_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"debootstrap took longer than {_DEBOOTSTRAP_TIMEOUT_S}s") from None
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        extra = ""
        with contextlib.suppress(OSError):
            dlog = rootfs / "debootstrap" / "debootstrap.log"
            extra = "\n".join(dlog.read_text(errors="replace").splitlines()[-15:])
        raise StackError(
            f"debootstrap exited {done.returncode}; the Debian mirror must be reachable "
            "from this host (L2CHAOS_DEBIAN_MIRROR picks another)",
            log_tail=tail + ("\n" + extra if extra else ""),
        )
    say(f"base image: rootfs ready in {time.monotonic() - t0:.0f}s")


def _clean(rootfs: Path) -> None:
    for pattern in _CLEAN:
        for p in rootfs.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()


def _rootfs_tar(arch: str, say: Callable[[str], None]) -> Path:
    """The cached rootfs tarball for this recipe, made with debootstrap when missing."""
    base = ensure_dir(cache_dir() / "docker")
    final = base / f"rootfs-{base_key(arch)}.tar"
    if final.is_file():
        say(f"base image: using the cached rootfs {final}")
        return final
    work = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=base))
    try:
        rootfs = work / "rootfs"
        _debootstrap(arch, rootfs, say)
        if _mounts_under(rootfs):
            for mnt in _mounts_under(rootfs):
                subprocess.run(["umount", "-l", mnt], check=False, capture_output=True)
        _clean(rootfs)
        tmp_tar = work / "rootfs.tar"
        done = subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs),
             "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
             "--exclude=./debootstrap", "-cf", str(tmp_tar), "."],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"packing the rootfs failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp_tar, final)
        for old in base.glob("rootfs-*.tar"):
            if old != final:
                old.unlink(missing_ok=True)
    finally:
        remove_tree(work)
    say(f"base image: rootfs cached as {final} ({final.stat().st_size >> 20} MiB)")
    return final


def ensure_base_image(client: docker.DockerClient, arch: str, say: Callable[[str], None]) -> str:
    """``l2chaos/base:<key>`` in the engine: imported from the (cached) rootfs if missing."""
    import docker.errors

    tag = base_tag(arch)
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    tar = _rootfs_tar(arch, say)
    say(f"base image: docker import as {tag}")
    t0 = time.monotonic()
    repo, _, key = tag.partition(":")
    client.api.import_image_from_file(str(tar), repository=repo, tag=key, changes=list(_CHANGES))
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        raise StackError(f"docker import of {tar} did not produce {tag}") from None
    say(f"base image: imported in {time.monotonic() - t0:.0f}s")
    return tag
