"""Which images a stack needs on the docker backend, and building the missing ones.

For every service the plan names the image it runs:

- a ``postgres:`` service: ``l2chaos/postgres:<key>``, built from
  ``images/postgres/Dockerfile`` on the official image (with a registry: the service's
  ``postgres.image``, default postgres:16) or on the offline base;
- a service whose ``image:`` has no tag and whose stack folder holds a ``Dockerfile``
  (or that names one with ``dockerfile:``): built from that Dockerfile, tagged
  ``<image>:<key>``; services sharing one image share one build;
- any other ``image:`` (``myorg/sequencer:1.4``): used as it is: it must be in the
  engine already, or pullable when a registry answers.

Toxiproxy is ``ghcr.io/shopify/toxiproxy:<version>`` with a registry, else
``l2chaos/toxiproxy:<key>`` built from ``images/toxiproxy/Dockerfile`` with the host's
``toxiproxy-server``. When a link is ``layer: http``, the L7 proxy is
``l2chaos/l7proxy:<key>``, built from ``images/l7proxy/Dockerfile`` with the wheelhouse
(in both modes: it is this checkout's code).

Two modes. ``registry``: Dockerfiles build on their public defaults (BASE_IMAGE unset).
``offline``: ``BASE_IMAGE=l2chaos/base:<key>`` (debootstrap, see base.py) for every
build, and wheels come from the host (wheels.py). `ensure_images` picks the mode: the
one whose images are all present already, else ``offline`` when no registry answers
(``L2CHAOS_IMAGES=offline|registry`` forces one).

`<key>` is a content hash of everything that goes into the image: the Dockerfile, the
build context's files, the BASE_IMAGE, and (for images with wheels) the wheelhouse's
pins and the l2chaos sources. An image whose tag exists is never rebuilt. Builds run
with ``network_mode=none``: nothing is fetched inside a build.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2chaos.errors import InputError, StackError, StackSpecError
from l2chaos.stackspec import ServiceSpec, StackSpec

from ..paths import cache_dir, ensure_dir
from .base import base_tag, ensure_base_image
from .wheels import IMAGE_PYTHON, digest, ensure_wheelhouse, wheelhouse_key

if TYPE_CHECKING:
    import docker

__all__ = [
    "IMAGES_DIR",
    "MODES",
    "PUBLIC_PYTHON",
    "PUBLIC_TOXIPROXY",
    "BuildTarget",
    "ImagePlan",
    "build_cli",
    "ensure_images",
    "has_tag",
    "plan_images",
    "uses_wheels",
]

IMAGES_DIR = Path(__file__).parent
MODES = ("offline", "registry")
TOXIPROXY_VERSION = "2.12.0"
PUBLIC_TOXIPROXY = f"ghcr.io/shopify/toxiproxy:{TOXIPROXY_VERSION}"
PUBLIC_PYTHON = f"python:{IMAGE_PYTHON}-slim"
LABEL_KEY = "l2chaos.key"
_WHEELS = re.compile(r"^\s*(COPY|ADD)\b[^\n]*\bwheels/", re.IGNORECASE | re.MULTILINE)
_SKIP = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".git"}
_REGISTRY_PROBE_S = 20.0


def _h(*parts: str | bytes) -> str:
    return digest(*parts)[:16]


def _own_image(
    name: str,
    base: str | None,
    *key_parts: str,
    wheels: bool = False,
    extra: Mapping[str, Path] | None = None,
) -> BuildTarget:
    """One of the harness's own images (images/<name>/), tagged by its key: the folder's
    content and `key_parts` (what else goes into the image)."""
    folder = IMAGES_DIR / name
    key = _h(f"{name}/1", _tree_hash(folder), *key_parts)
    return BuildTarget(
        name=name,
        tag=f"l2chaos/{name}:{key}",
        key=key,
        dockerfile=folder / "Dockerfile",
        context=folder,
        base_image=base,
        wheels=wheels,
        extra=extra or {},
    )


def has_tag(image: str) -> bool:
    """``repo:tag`` or ``repo@digest`` (a registry's ``host:port/`` is not a tag)."""
    last = image.rsplit("/", 1)[-1]
    return ":" in last or "@" in image


def uses_wheels(dockerfile_text: str) -> bool:
    """The Dockerfile copies ``wheels/`` from its context (then the context gets them)."""
    return bool(_WHEELS.search(dockerfile_text))


def _ignore_patterns(folder: Path) -> list[tuple[bool, str]]:
    """The folder's .dockerignore as (negated, pattern) in order (the last match wins)."""
    try:
        lines = (folder / ".dockerignore").read_text().splitlines()
    except OSError:
        return []
    out = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = line[1:].strip() if neg else line
        out.append((neg, pat.strip("/").removeprefix("./")))
    return out


def _ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for neg, pat in patterns:
        if any(fnmatch.fnmatchcase(p, pat) for p in prefixes):
            verdict = not neg
    return verdict


def _files(folder: Path) -> list[Path]:
    """The build context's files (what .dockerignore lets through), sorted."""
    patterns = _ignore_patterns(folder)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP)
        for f in filenames:
            rel = (Path(dirpath) / f).relative_to(folder)
            if f.endswith(".pyc") or (patterns and _ignored(rel.as_posix(), patterns)):
                continue
            out.append(rel)
    return sorted(out)


def _tree_hash(folder: Path) -> str:
    d = hashlib.sha256()
    for rel in _files(folder):
        d.update(str(rel).encode() + b"\0")
        with contextlib.suppress(OSError):
            d.update(hashlib.sha256((folder / rel).read_bytes()).digest())
    return d.hexdigest()


def _file_hash(path: Path) -> str:
    d = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            d.update(chunk)
    return d.hexdigest()


@dataclass(frozen=True)
class BuildTarget:
    """One image to build: `dockerfile` with `context` (its folder) plus `extra` files."""

    name: str
    tag: str
    key: str
    dockerfile: Path
    context: Path
    base_image: str | None  # BASE_IMAGE build arg; None keeps the Dockerfile's default
    wheels: bool = False
    extra: Mapping[str, Path] = field(default_factory=dict)  # context path -> file


@dataclass
class ImagePlan:
    """What a stack runs on one engine: the image of every service and of Toxiproxy."""

    mode: str
    arch: str
    base: str | None  # the offline base image tag
    builds: list[BuildTarget]
    services: dict[str, str]
    toxiproxy: str
    given: list[str]
    l7proxy: str | None = (
        None  # built when a link is `layer: http`  # images used as they are (the user's, or public ones)
    )

    def all_images(self) -> list[str]:
        out = [b.tag for b in self.builds] + list(self.given)
        return list(dict.fromkeys(out))


def _toxiproxy_binary() -> Path:
    from ..toxiproxy import find_toxiproxy_server

    return find_toxiproxy_server().resolve()


def _service_dockerfile(spec: StackSpec, svc: ServiceSpec) -> Path | None:
    """The Dockerfile a service is built from, or None when its image is used as given."""
    if svc.dockerfile is not None:
        path = (spec.root / svc.dockerfile).resolve()
        if not path.is_file():
            raise StackSpecError(
                f"dockerfile {svc.dockerfile!r} not found (looked at {path})",
                file=spec.path,
                line=svc.line,
                field=f"services.{svc.name}.dockerfile",
            )
        return path
    if svc.image is not None and not has_tag(svc.image) and (spec.root / "Dockerfile").is_file():
        return spec.root / "Dockerfile"
    return None


def plan_images(
    spec: StackSpec, mode: str, arch: str, *, src_root: Path | None = None
) -> ImagePlan:
    """The plan for one mode, computed from files only (no engine calls)."""
    if mode not in MODES:
        raise InputError(f"unknown image mode {mode!r}; allowed: {', '.join(MODES)}")
    offline = mode == "offline"
    base = base_tag(arch) if offline else None
    builds: dict[str, BuildTarget] = {}
    services: dict[str, str] = {}
    given: list[str] = []

    def add(target: BuildTarget) -> str:
        builds.setdefault(target.tag, target)
        return target.tag

    for name in spec.start_order():
        svc = spec.services[name]
        if svc.postgres is not None:
            pg_base = base if offline else svc.postgres.image
            services[name] = add(_own_image("postgres", pg_base, pg_base or ""))
            continue
        dockerfile = _service_dockerfile(spec, svc)
        if dockerfile is None:
            if svc.image is None:
                raise StackSpecError(
                    "the docker backend runs services from images: give it `image:` "
                    "(or `postgres:`); `command:` alone is for the local backend",
                    file=spec.path,
                    line=svc.line,
                    field=f"services.{name}",
                )
            services[name] = svc.image
            given.append(svc.image)
            continue
        text = dockerfile.read_text()
        wheels = uses_wheels(text)
        context = dockerfile.parent
        key = _h(
            "service/1",
            text,
            _tree_hash(context),
            base or "",
            wheelhouse_key(arch, src_root) if wheels else "",
        )
        repo = svc.image if svc.image is not None else f"l2chaos/{spec.name}-{name}"
        tag = f"{repo}:{key}" if not has_tag(repo) else repo
        services[name] = add(
            BuildTarget(
                name=repo.rsplit(":", 1)[0] if has_tag(repo) else repo,
                tag=tag,
                key=key,
                dockerfile=dockerfile,
                context=context,
                base_image=base,
                wheels=wheels,
            )
        )
    if offline:
        binary = _toxiproxy_binary()
        toxiproxy = add(
            _own_image(
                "toxiproxy",
                base,
                _file_hash(binary),
                base or "",
                extra={"toxiproxy-server": binary},
            )
        )
    else:
        toxiproxy = PUBLIC_TOXIPROXY
        given.append(PUBLIC_TOXIPROXY)
    l7proxy = None
    if any(lk.layer == "http" for lk in spec.links):
        wheel_key = wheelhouse_key(arch, src_root)
        l7proxy = add(_own_image("l7proxy", base, base or "", wheel_key, wheels=True))
    return ImagePlan(
        mode=mode,
        arch=arch,
        base=base,
        builds=list(builds.values()),
        services=services,
        toxiproxy=toxiproxy,
        given=list(dict.fromkeys(given)),
        l7proxy=l7proxy,
    )


# ------------------------------------------------------------------ engine side


def _exists(client: docker.DockerClient, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _built_ok(client: docker.DockerClient, target: BuildTarget) -> bool:
    """Present with the right content key (a fixed user tag may hold an older build)."""
    import docker.errors

    try:
        img = client.images.get(target.tag)
    except docker.errors.ImageNotFound:
        return False
    labels = (img.attrs.get("Config") or {}).get("Labels") or {}
    return bool(labels.get(LABEL_KEY) == target.key)


def missing(client: docker.DockerClient, plan: ImagePlan) -> list[str]:
    """Images of the plan that are not in the engine (builds and given ones)."""
    out = [b.tag for b in plan.builds if not _built_ok(client, b)]
    out += [g for g in plan.given if not _exists(client, g)]
    return out


def registry_answers(client: docker.DockerClient, ref: str = PUBLIC_PYTHON) -> bool:
    """Whether the engine can reach a registry: a manifest lookup of a public image."""
    result: list[bool] = []

    def probe() -> None:
        try:
            client.api.inspect_distribution(ref)  # type: ignore[no-untyped-call]
            result.append(True)
        except Exception:
            result.append(False)

    t = threading.Thread(target=probe, name="registry-probe", daemon=True)
    t.start()
    t.join(_REGISTRY_PROBE_S)
    return bool(result and result[0])


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    path = ensure_dir(cache_dir() / "docker") / "build.lock"
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _build(
    client: docker.DockerClient,
    target: BuildTarget,
    say: Callable[[str], None],
    wheelhouse: Any,
) -> None:
    ctx = Path(tempfile.mkdtemp(prefix=".ctx-", dir=ensure_dir(cache_dir() / "docker")))
    try:
        for rel in _files(target.context):
            _link_or_copy(target.context / rel, ctx / rel)
        for rel_name, src in target.extra.items():
            _link_or_copy(src, ctx / rel_name)
        if target.wheels:
            for sub, folder in (("deps", wheelhouse.deps_dir), ("l2chaos", wheelhouse.l2chaos_dir)):
                for f in folder.iterdir():
                    if f.is_file():
                        _link_or_copy(f, ctx / "wheels" / sub / f.name)
        args = {"BASE_IMAGE": target.base_image} if target.base_image else None
        say(
            f"building {target.tag}"
            + (f" on {target.base_image}" if target.base_image else " on its default base")
        )
        t0 = time.monotonic()
        tail: list[str] = []
        error: str | None = None
        stream = client.api.build(
            path=str(ctx),
            dockerfile=str(target.dockerfile.relative_to(target.context)),
            tag=target.tag,
            buildargs=args,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            network_mode="none",
            labels={LABEL_KEY: target.key, "l2chaos.image": target.name},
            use_config_proxy=False,
        )
        for chunk in stream:
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                error = str(chunk["error"]).strip()
            text = str(chunk.get("stream", "")).rstrip()
            for line in text.splitlines():
                tail = [*tail[-39:], line]
                if line.startswith("Step "):
                    say(f"  {target.name}: {line[:160]}")
        if error is not None or not _exists(client, target.tag):
            raise StackError(
                f"building {target.tag} from {target.dockerfile} failed: {error or 'no image'}",
                log_tail="\n".join(tail),
            )
        say(f"built {target.tag} in {time.monotonic() - t0:.1f}s")
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def _pull(client: docker.DockerClient, ref: str, say: Callable[[str], None]) -> None:
    import docker.errors

    say(f"pulling {ref}")
    try:
        client.images.pull(ref)
    except docker.errors.DockerException as exc:
        raise StackError(f"pulling {ref} failed: {str(exc).splitlines()[0][:300]}") from None


def _choose_mode(
    client: docker.DockerClient,
    spec: StackSpec,
    arch: str,
    offline: bool | None,
    say: Callable[[str], None],
) -> ImagePlan:
    forced = os.environ.get("L2CHAOS_IMAGES", "").strip().lower() or None
    if forced is not None and forced not in (*MODES, "auto"):
        raise InputError(
            f"L2CHAOS_IMAGES={forced!r}; allowed: offline, registry, auto", field="L2CHAOS_IMAGES"
        )
    if offline:
        forced = "offline"
    if forced in MODES:
        return plan_images(spec, forced, arch)
    plans: dict[str, ImagePlan] = {}
    problems: dict[str, str] = {}
    for m in MODES:
        try:
            plans[m] = plan_images(spec, m, arch)
        except StackError as exc:  # e.g. offline without a toxiproxy-server binary
            problems[m] = str(exc)
    for p in plans.values():
        if not missing(client, p):
            return p
    mode = "registry" if registry_answers(client) else "offline"
    if mode not in plans:
        raise StackError(f"{mode} images cannot be planned: {problems[mode]}")
    if mode == "registry":
        say("a registry answers: building on the public base images")
    else:
        say("no registry answers: building offline (debootstrap base, wheels from this host)")
    return plans[mode]


def ensure_images(
    client: docker.DockerClient,
    spec: StackSpec,
    say: Callable[[str], None],
    *,
    offline: bool | None = None,
    arch: str | None = None,
) -> ImagePlan:
    """Every image the stack needs, present in the engine; builds what is missing.

    `offline`: True forces the offline build, None picks (see the module docstring).
    """
    import docker.errors

    engine_arch = arch or str(client.version().get("Arch", "amd64"))
    plan = _choose_mode(client, spec, engine_arch, offline, say)
    todo = missing(client, plan)
    if not todo:
        return plan
    with _build_lock():  # one builder at a time per host; others wait, then find them built
        todo = missing(client, plan)
        if not todo:
            return plan
        if plan.base is not None and any(b.tag in todo for b in plan.builds):
            ensure_base_image(client, plan.arch, say)
        wheelhouse = None
        if any(b.wheels and b.tag in todo for b in plan.builds):
            wheelhouse = ensure_wheelhouse(plan.arch, say)
        for target in plan.builds:
            if target.tag in todo:
                _build(client, target, say, wheelhouse)
        for ref in plan.given:
            if ref in todo:
                if plan.mode == "registry":
                    _pull(client, ref, say)
                else:
                    raise StackError(
                        f"image {ref} is not in the engine and no registry answers; load it "
                        "there (`docker load`, `docker build -t ...`) or run with a registry"
                    )
    with contextlib.suppress(docker.errors.DockerException):
        left = missing(client, plan)
        if left:
            raise StackError(f"images still missing after the build: {', '.join(left)}")
    return plan


def build_cli(stack: str, offline: bool) -> int:
    """``l2chaos images build [--offline] [--stack NAME]``: build every image the stack
    needs on the configured engine; print the image of each service."""
    from l2chaos.stackspec import resolve_stack

    from ..docker_engine import connect

    spec = resolve_stack(stack, Path.cwd())

    def say(text: str) -> None:
        print(f"[images] {text}", file=sys.stderr, flush=True)

    engine = connect(timeout_s=900)
    try:
        t0 = time.monotonic()
        plan = ensure_images(engine.client, spec, say, offline=True if offline else None)
        say(f"{plan.mode} images of stack {spec.name!r} ready in {time.monotonic() - t0:.1f}s")
        width = max(len(s) for s in [*plan.services, "toxiproxy"])
        for svc, image in plan.services.items():
            print(f"{svc:<{width}}  {image}")
        print(f"{'toxiproxy':<{width}}  {plan.toxiproxy}")
    finally:
        engine.close()
    return 0
