"""Docker backend numbers: offline image builds, stack up and down, docker vs local.

    .venv/bin/python benchmarks/bench_docker.py [--cold] [--starts 3] [--time-scale 0.5]

1. Offline image build of the reference stack (`ensure_images(offline=True)`):
   - with --cold: from nothing (no debootstrap .debs, rootfs tarball, wheelhouse or
     images), then with the host caches kept but the images removed (a fresh engine on a
     CI machine that keeps ~/.cache), then with everything cached;
   - without --cold: only with everything cached (--cold removes this stack's images and
     the caches, so it must not run while other runs use them).
2. Stack up to ready with cached images, and down, of the reference stack
   (targets: up < 30 s, down < 10 s). Median, min, max over --starts.
3. The flagship scenario (hardened, at --time-scale) through `l2chaos run` on the
   docker and on the local backend: wall time of each and the ratio docker/local.

Numbers only, no assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import docker.errors
from _support import up_down_times
from l2chaos.backends.docker import DockerBackend
from l2chaos.backends.docker_engine import ensure
from l2chaos.backends.images import ensure_images, plan_images
from l2chaos.backends.images.base import base_tag
from l2chaos.backends.paths import cache_dir
from l2chaos.stacks.perpdex import STACK_FILE
from l2chaos.stackspec import StackRun, load_stack

ROOT = Path(__file__).resolve().parent.parent
FLAGSHIP = ROOT / "scenarios" / "paradex-2026-01-19-db-restart-race.yaml"


def quiet(_: str) -> None:
    pass


def stats(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):6.2f} s  min {min(values):6.2f} s  "
        f"max {max(values):6.2f} s  (n={len(values)})"
    )


def remove_images(client: docker.DockerClient, refs: list[str]) -> None:
    for ref in refs:
        with contextlib.suppress(docker.errors.NotFound):
            try:
                client.images.remove(ref, noprune=False)
            except docker.errors.NotFound:
                raise
            except docker.errors.APIError as exc:  # in use by a container of another run
                sys.exit(f"cannot time a cold build: {ref}: {exc.explanation}")


def bench_build(cold: bool) -> None:
    engine = ensure(quiet)
    client = engine.client
    spec = load_stack(STACK_FILE)
    arch = str(client.version().get("Arch", "amd64"))
    plan = plan_images(spec, "offline", arch)
    print("1. offline image build of the reference stack")
    if cold:
        remove_images(client, [b.tag for b in plan.builds] + [base_tag(arch)])
        for sub in ("debs", "wheels"):
            shutil.rmtree(cache_dir() / "docker" / sub, ignore_errors=True)
        for tar in (cache_dir() / "docker").glob("rootfs-*.tar"):
            tar.unlink()
        t0 = time.monotonic()
        ensure_images(client, spec, quiet, offline=True)
        print(f"   cold (debootstrap, wheels, every image)   {time.monotonic() - t0:7.1f} s")
        remove_images(client, [b.tag for b in plan.builds] + [base_tag(arch)])
        t0 = time.monotonic()
        ensure_images(client, spec, quiet, offline=True)
        print(f"   host caches kept, images removed          {time.monotonic() - t0:7.1f} s")
    else:
        ensure_images(client, spec, quiet, offline=True)
    times = []
    for _ in range(5):
        t0 = time.monotonic()
        ensure_images(client, spec, quiet, offline=True)
        times.append(time.monotonic() - t0)
    print(f"   everything cached (nothing rebuilt)       {statistics.median(times):7.3f} s")
    engine.close()


def bench_up_down(starts: int) -> None:
    spec = load_stack(STACK_FILE)
    run = StackRun(
        spec=spec,
        profile="hardened",
        switches=dict(spec.profiles["hardened"]),
        settings={},
        seed=1,
    )
    backend = DockerBackend(say=quiet)
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        ups, downs = up_down_times(backend, run, starts, Path(tmp), "docker")
    print(
        f"2. reference stack ({len(spec.services)} services + Toxiproxy, {len(spec.links)} links)"
    )
    print(f"   up to ready, cached images   {stats(ups)}   target < 30 s")
    print(f"   down                         {stats(downs)}   target < 10 s")


def run_cli(backend: str, time_scale: str, out: Path) -> tuple[float, int]:
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "l2chaos.cli", "run", str(FLAGSHIP), "--backend", backend,
         "--profile", "hardened", "--time-scale", time_scale, "--out", str(out), "--no-progress"],
        capture_output=True, text=True, check=False, timeout=1800, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return time.monotonic() - t0, done.returncode


def bench_scenario(time_scale: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-docker-runs-") as tmp:
        walls = {}
        for backend in ("local", "docker"):
            wall, code = run_cli(backend, time_scale, Path(tmp) / backend)
            walls[backend] = wall
            print(
                f"3. flagship [hardened] x{time_scale} on {backend:<6} {wall:7.1f} s (exit {code})"
            )
        print(
            f"   docker/local wall time ratio {walls['docker'] / walls['local']:.2f} "
            f"(docker adds {walls['docker'] - walls['local']:+.1f} s)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--cold", action="store_true", help="also time builds from nothing (destructive)"
    )
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--time-scale", default="0.5")
    args = ap.parse_args()
    bench_build(args.cold)
    bench_up_down(args.starts)
    bench_scenario(args.time_scale)


if __name__ == "__main__":
    main()
