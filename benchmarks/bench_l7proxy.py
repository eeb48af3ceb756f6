"""What the L7 (JSON-RPC/HTTP-aware) proxy costs on a link, with no fault.

Starts a JSON-RPC upstream (aiohttp + uvloop, answers at once), the real
toxiproxy-server and the real L7 proxy (``python -m l2chaos.l7proxy``), then measures
each path a call can take:

- ``direct``: client -> upstream;
- ``toxiproxy``: client -> Toxiproxy -> upstream (what every link had before);
- ``l7``: client -> L7 proxy -> upstream;
- ``toxiproxy+l7``: client -> Toxiproxy -> L7 proxy -> upstream (a ``layer: http`` link);
- ``toxiproxy+l7 rule``: the same with a rule on the link that matches no call (every
  body is parsed as JSON-RPC and looked at);
- ``mitmproxy`` (with ``--mitmdump PATH``): mitmdump in reverse mode with an addon that
  parses every JSON-RPC body, the alternative considered for the proxy.

Latency: sequential calls over one keep-alive connection (http.client), in interleaved
rounds so machine load hits every path alike; p50/p99 and the added p50 against direct
and against Toxiproxy alone. Throughput: a client process with 32 concurrent
connections for `--seconds`; calls/s forwarded, and the proxy's CPU time per call (so
calls/s one core of this machine could forward, whatever the client and upstream cost).

    .venv/bin/python benchmarks/bench_l7proxy.py [--calls 3000] [--seconds 5] [--mitmdump PATH]

Measured while choosing the library (2-core machine shared with other builds; p99s
are noise from that), p50 ms / p50 added over direct / proxy CPU ms per call:

    direct                         0.242  -      -
    toxiproxy                      0.397  0.155  0.059
    l7 (aiohttp + uvloop, chosen)  0.536  0.294  0.271   (~3,700 calls/s per core)
    toxiproxy+l7                   0.789  0.547  0.303
    mitmproxy 11 reverse + addon   5.510  5.268  1.638   (~600 calls/s per core)

The goal: under 1 ms p50 added, and not the bottleneck of the reference stack at its
sustained order rate (bench_orders.py: >= 300 orders/s; an order crosses two HTTP
links, ui-api -> rpc and rpc -> sequencer).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from _support import percentile
from l2chaos.backends.ports import PortAllocator, wait_listening
from l2chaos.backends.toxiproxy import ToxiproxyClient, find_toxiproxy_server

BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "starknet_getTransactionReceipt",
        "params": {"transaction_hash": "0x" + "ab" * 32},
    }
).encode()
MITM_ADDON = """
import json
from mitmproxy import http

class ParseRpc:
    def request(self, flow: http.HTTPFlow) -> None:
        doc = json.loads(flow.request.content or b"null")
        if isinstance(doc, dict) and doc.get("method") == "never_called":
            flow.response = http.Response.make(500)

addons = [ParseRpc()]
"""


# ------------------------------------------------------------ child roles


def serve_upstream(port: int) -> None:
    from aiohttp import web

    answer = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"status": "ACCEPTED"}}).encode()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/", handle)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def run_load(url: str, seconds: float, concurrency: int) -> None:
    import aiohttp

    async def main() -> int:
        done = 0
        deadline = time.monotonic() + seconds
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as s:

            async def worker() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    async with s.post(url, data=BODY) as r:
                        await r.read()
                    done += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done

    print(asyncio.run(main()))


# ------------------------------------------------------------ measuring


def wait_port(port: int, timeout_s: float = 15.0) -> None:
    if not wait_listening(port, timeout_s):
        raise SystemExit(f"nothing listens on {port} after {timeout_s:g}s")


def latencies(port: int, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out: list[float] = []
    headers = {"Content-Type": "application/json"}
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/", body=BODY, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t) * 1000)
        if resp.status != 200:
            raise SystemExit(f"port {port} answered {resp.status}")
    conn.close()
    return out


def throughput(port: int, seconds: float, proxies: list[psutil.Process]) -> tuple[float, float]:
    """(calls/s, proxy CPU ms per call)."""
    cpu0 = sum(p.cpu_times().user + p.cpu_times().system for p in proxies)
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            f"http://127.0.0.1:{port}/",
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    calls = int(out.stdout.strip())
    cpu = sum(p.cpu_times().user + p.cpu_times().system for p in proxies) - cpu0
    return calls / seconds, (cpu * 1000 / calls if proxies else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000, help="sequential calls per path")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0, help="throughput window per path")
    ap.add_argument("--mitmdump", help="path of mitmdump, to compare mitmproxy's reverse mode")
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--load", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_upstream:
        return serve_upstream(args.serve_upstream)
    if args.load:
        return run_load(args.load, args.seconds, 32)

    ports = PortAllocator().reserve(8)
    up, tp_api, tp_direct, tp_l7, l7_ctl, l7_direct, l7_behind, mitm = (r.port for r in ports)
    token = secrets.token_urlsafe(16)
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-l7-"))
    try:
        env = dict(os.environ, L2CHAOS_L7_TOKEN=token)
        procs.append(subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up)]))
        procs.append(
            subprocess.Popen(
                [str(find_toxiproxy_server()), "-host", "127.0.0.1", "-port", str(tp_api)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        l7 = subprocess.Popen(
            [sys.executable, "-m", "l2chaos.l7proxy", "--control", f"127.0.0.1:{l7_ctl}"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        procs.append(l7)
        for p in (up, tp_api, l7_ctl):
            wait_port(p)
        tp = ToxiproxyClient(f"127.0.0.1:{tp_api}")
        tp.create_proxy("direct", f"127.0.0.1:{tp_direct}", f"127.0.0.1:{up}")
        tp.create_proxy("l7", f"127.0.0.1:{tp_l7}", f"127.0.0.1:{l7_behind}")
        ctl = httpx.Client(
            base_url=f"http://127.0.0.1:{l7_ctl}",
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
        )
        for name, listen in (("direct", l7_direct), ("behind", l7_behind)):
            ctl.post(
                "/links",
                json={"name": name, "listen": f"127.0.0.1:{listen}", "upstream": f"127.0.0.1:{up}"},
            ).raise_for_status()
        paths: dict[str, int] = {
            "direct": up,
            "toxiproxy": tp_direct,
            "l7": l7_direct,
            "toxiproxy+l7": tp_l7,
        }
        proxy_procs: dict[str, list[psutil.Process]] = {
            "direct": [],
            "toxiproxy": [psutil.Process(procs[1].pid)],
            "l7": [psutil.Process(l7.pid)],
            "toxiproxy+l7": [psutil.Process(procs[1].pid), psutil.Process(l7.pid)],
        }
        if args.mitmdump:
            addon = tmp / "parse_rpc.py"
            addon.write_text(MITM_ADDON)
            mp = subprocess.Popen(
                [
                    args.mitmdump,
                    "--mode",
                    f"reverse:http://127.0.0.1:{up}",
                    "--listen-host",
                    "127.0.0.1",
                    "--listen-port",
                    str(mitm),
                    "-q",
                    "-s",
                    str(addon),
                    "--set",
                    f"confdir={tmp}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(mp)
            wait_port(mitm, 60)
            paths["mitmproxy"] = mitm
            proxy_procs["mitmproxy"] = [psutil.Process(mp.pid)]

        for port in paths.values():
            latencies(port, 200)  # warm up connections and code paths
        samples: dict[str, list[float]] = {k: [] for k in paths}
        samples["toxiproxy+l7 rule"] = []
        per_round = max(1, args.calls // args.rounds)
        rule = {
            "id": "bench",
            "family": "rpc",
            "action": {"kind": "error"},
            "match": {"methods": ["never_called"]},
        }
        for _ in range(args.rounds):
            for name, port in paths.items():
                samples[name] += latencies(port, per_round)
            ctl.post("/links/behind/rules", json=rule).raise_for_status()
            samples["toxiproxy+l7 rule"] += latencies(tp_l7, per_round)
            ctl.delete("/links/behind/rules/bench").raise_for_status()

        p50 = {k: percentile(v, 0.5) for k, v in samples.items()}
        print(f"latency, {per_round * args.rounds} sequential calls per path (ms):")
        print(
            f"  {'path':<20} {'p50':>7} {'p99':>7} {'+p50 vs direct':>15} {'+p50 vs toxiproxy':>18}"
        )
        for name, v in samples.items():
            print(
                f"  {name:<20} {p50[name]:7.3f} {percentile(v, 0.99):7.3f} "
                f"{p50[name] - p50['direct']:15.3f} {p50[name] - p50['toxiproxy']:18.3f}"
            )
        print(f"throughput, 32 connections, {args.seconds:g}s per path:")
        print(f"  {'path':<20} {'calls/s':>9} {'proxy CPU ms/call':>18} {'calls/s per core':>17}")
        for name, port in paths.items():
            rate, cpu_ms = throughput(port, args.seconds, proxy_procs[name])
            per_core = f"{1000 / cpu_ms:17.0f}" if cpu_ms else f"{'-':>17}"
            print(f"  {name:<20} {rate:9.0f} {cpu_ms:18.3f} {per_core}")
    finally:
        for child in reversed(procs):
            child.terminate()
        for child in procs:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for r in ports:
            r.release()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
