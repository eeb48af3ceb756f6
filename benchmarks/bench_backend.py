"""Local backend numbers: cold start to ready, the latency Toxiproxy adds to a link, and
how long control calls take.

    .venv/bin/python benchmarks/bench_backend.py [--starts 3] [--requests 2000]

1. Cold start to ready (`LocalBackend.up`, Postgres from the cached initdb template) and
   teardown (`down`) of the backend tests' own stack (Postgres + two tiny HTTP
   services, three links), and of the reference stack stacks/perpdex/stack.yaml when it
   exists (target: under 10 s). Median, min and max over --starts runs.
2. The latency Toxiproxy adds to a link with no toxic: GET /bytes?n=10 on the tiny api
   service, directly and through the proxy of `front->api`, alternating in blocks;
   p50 and p99 of each and the ratio proxied/direct, over keep-alive connections and
   over a fresh connection per request.
3. Control calls: adding and removing a toxic, disabling and enabling a link, and a
   SIGKILL + start + ready of the api service (p50/p99).

Numbers only, no assertions.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _support import tinystack, up_down_times
from l2chaos.backends.base import Toxic
from l2chaos.backends.local import LocalBackend, LocalStack
from l2chaos.stackspec import StackRun, load_stack

ROOT = Path(__file__).resolve().parent.parent
PERPDEX = ROOT / "stacks" / "perpdex" / "stack.yaml"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"p50 {pct(ms, 50):8.3f} ms  p99 {pct(ms, 99):8.3f} ms  (n={len(ms)})"


def cold_starts(name: str, run: StackRun, starts: int, folder: Path) -> LocalStack | None:
    ups, downs = up_down_times(LocalBackend(stop_timeout_s=10), run, starts, folder, name)
    print(
        f"cold start to ready  {name:10s} median {statistics.median(ups):6.2f} s  "
        f"min {min(ups):6.2f} s  max {max(ups):6.2f} s   "
        f"teardown median {statistics.median(downs):5.2f} s  ({len(ups)} starts, "
        f"{len(run.spec.services)} services, {len(run.spec.links)} links)"
    )
    return None


def rtts_keepalive(hostport: str, n: int) -> list[float]:
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request("GET", "/bytes?n=10")
            resp = conn.getresponse()
            resp.read()
            out.append(time.perf_counter() - t0)
            assert resp.status == 200
    finally:
        conn.close()
    return out


def rtts_fresh(hostport: str, n: int) -> list[float]:
    host, port = hostport.rsplit(":", 1)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/bytes?n=10")
        resp = conn.getresponse()
        resp.read()
        conn.close()
        out.append(time.perf_counter() - t0)
        assert resp.status == 200
    return out


def overhead(stack: LocalStack, requests: int) -> None:
    direct = stack.direct_endpoint("api").hostport
    proxied = stack.link_endpoint("front->api").hostport
    for label, fn, n in (
        ("keep-alive", rtts_keepalive, requests),
        ("fresh conn", rtts_fresh, max(50, requests // 4)),
    ):
        fn(direct, 50)  # warm up both paths
        fn(proxied, 50)
        d: list[float] = []
        p: list[float] = []
        blocks = 10
        for _ in range(blocks):
            d += fn(direct, n // blocks)
            p += fn(proxied, n // blocks)
        print(f"toxiproxy, no toxic, {label}: direct  {summary_ms(d)}")
        print(f"toxiproxy, no toxic, {label}: proxied {summary_ms(p)}")
        print(
            f"toxiproxy, no toxic, {label}: ratio proxied/direct  "
            f"p50 {pct(p, 50) / pct(d, 50):5.2f}x  p99 {pct(p, 99) / pct(d, 99):5.2f}x  "
            f"(adds {1000 * (pct(p, 50) - pct(d, 50)):.3f} ms at p50)"
        )


def timed(fn: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def control_calls(stack: LocalStack) -> None:
    link = "front->api"
    toxic = Toxic("bench", "latency", attributes={"latency": 1, "jitter": 0})

    def toxic_cycle() -> None:
        stack.links.add_toxic(link, toxic)
        stack.links.remove_toxic(link, "bench")

    def link_cycle() -> None:
        stack.links.set_enabled(link, False)
        stack.links.set_enabled(link, True)

    def kill_start() -> None:
        stack.control.kill("api")
        stack.control.start("api")
        stack.control.wait_ready("api", 30)

    print(f"control: add + remove a toxic        {summary_ms(timed(toxic_cycle, 200))}")
    print(f"control: disable + enable a link     {summary_ms(timed(link_cycle, 200))}")
    print(f"control: SIGKILL + start + ready api {summary_ms(timed(kill_start, 20))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=3, help="cold starts per stack")
    ap.add_argument("--requests", type=int, default=2000, help="requests per path (keep-alive)")
    args = ap.parse_args()
    ts = tinystack()
    with tempfile.TemporaryDirectory(prefix="bench-backend-") as tmp:
        folder = Path(tmp)
        tiny = ts.stack_run(ts.write_stack(folder / "tinydef"))
        cold_starts("tinystack", tiny, args.starts, folder)
        if PERPDEX.is_file():
            spec = load_stack(PERPDEX)
            profile = spec.default_profile
            switches = dict(spec.profiles.get(profile, {})) if profile else {}
            run = StackRun(spec, profile, switches, {}, seed=1)
            cold_starts("perpdex", run, args.starts, folder)
        else:
            print(f"cold start to ready  perpdex    (skipped: {PERPDEX} does not exist yet)")
        with ts.up_stack(folder / "overhead", stop_timeout_s=10.0) as stack:
            overhead(stack, args.requests)
            control_calls(stack)


if __name__ == "__main__":
    main()
