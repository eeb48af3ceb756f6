"""How much the operation history costs Locust, and how Locust scales with workers.

    .venv/bin/python benchmarks/bench_load.py [--seconds 10] [--users 20] [--repeat 3]

Starts one trivial HTTP endpoint on 127.0.0.1 (a raw asyncio server in its own process
answering every GET with a small JSON body over keep-alive) and runs Locust against it,
closed loop (no think time), headless, reading requests/s from Locust's own CSV stats:

1. a plain `FastHttpUser` (``self.client.get``) against the same user recording every
   request through l2chaos's history path (`Trader.call`: invoke record, response
   parsed and classified, completion record, buffered file); prints both and the ratio
   (target >= 0.9);
2. the recording user with a Locust master and 1 worker against a master and 2 workers.

Variants alternate and repeat; the median of each is reported. Numbers only, no
assertions. This file is also the locustfile of those runs (Locust imports it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

BODY = b'{"account":1,"cash":"10000.000000","equity":"10250.125000","free_collateral":"9000.5"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
PORT_ENV = "BENCH_LOAD_PORT"
HISTORY_ENV = "BENCH_LOAD_HISTORY"


# --------------------------------------------------------------------- the endpoint


class _Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            self.buf = self.buf[i + 4 :]  # GET requests: no body
            self.transport.write(RESPONSE)


def serve(port: int) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Http, "127.0.0.1", port, backlog=1024)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


# ---------------------------------------------------------- the locustfile part

if __name__ != "__main__" and os.environ.get(PORT_ENV):
    from l2chaos.load.context import Account
    from l2chaos.load.history import HistoryWriter
    from l2chaos.load.ops import Trader
    from l2chaos.load.personas import make_brain
    from l2chaos.load.protocols.perpdex import PERSONA_PARAMS
    from l2chaos.params import Where, bind_params
    from locust import FastHttpUser, constant, events, task

    _WHERE = Where(None, "bench")
    _HOST = f"http://127.0.0.1:{os.environ[PORT_ENV]}"
    _WRITER: list[HistoryWriter] = []

    def _writer() -> HistoryWriter:
        if not _WRITER:
            d = Path(os.environ[HISTORY_ENV])
            d.mkdir(parents=True, exist_ok=True)
            _WRITER.append(HistoryWriter(d / f"bench-{os.getpid()}.jsonl", 0))
        return _WRITER[0]

    def _close(**_kw: object) -> None:
        for w in _WRITER:
            w.close()

    events.quit.add_listener(_close)  # type: ignore[no-untyped-call]

    class Plain(FastHttpUser):
        host = _HOST
        wait_time = constant(0)

        @task
        def get_account(self) -> None:
            # the same request as the recording user's, API key header included
            self.client.get("/v1/account", name="get_account", headers={"X-API-Key": "bench-key"})

    class PlainJson(FastHttpUser):
        """The plain user that also decodes the JSON body, as any trading client must."""

        host = _HOST
        wait_time = constant(0)

        @task
        def get_account(self) -> None:
            self.client.get(
                "/v1/account", name="get_account", headers={"X-API-Key": "bench-key"}
            ).json()

    class Recorded(FastHttpUser):
        host = _HOST
        wait_time = constant(0)
        _n = 0

        def on_start(self) -> None:
            Recorded._n += 1
            settings = bind_params(PERSONA_PARAMS["bridger"], {}, _WHERE)
            self.trader = Trader(
                session=self.client,
                history=_writer(),
                brain=make_brain("bridger", settings, seed=1, worker=0, ordinal=Recorded._n),
                account=Account(Recorded._n, "bench-key"),
                endpoints={"ui": _HOST},
                worker=0,
                uid=Recorded._n,
                ordinal=Recorded._n,
                run_tag="bench",
            )

        @task
        def get_account(self) -> None:
            self.trader.get_account()


# ------------------------------------------------------------------- the driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rps(csv_prefix: Path) -> tuple[float, int, int]:
    with open(f"{csv_prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                return (
                    float(row["Requests/s"]),
                    int(row["Request Count"]),
                    int(row["Failure Count"]),
                )
    raise RuntimeError(f"no Aggregated row in {csv_prefix}_stats.csv")


def _locust(
    user: str, *, port: int, users: int, seconds: int, workers: int, out: Path
) -> tuple[float, int, int, float]:
    """One Locust run: (requests/s, requests, failures, CPU seconds Locust used)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env[PORT_ENV] = str(port)
    env[HISTORY_ENV] = str(out / "history")
    base = [sys.executable, "-m", "locust", "-f", __file__, "--loglevel", "WARNING"]
    run = [
        "--headless", "--users", str(users), "--spawn-rate", str(users),
        "--run-time", f"{seconds}s", "--csv", str(out / "stats"), "--only-summary",
        "--exit-code-on-error", "0", user,
    ]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    log = open(out / "locust.log", "ab")  # noqa: SIM115
    try:
        if workers == 0:
            procs.append(
                subprocess.Popen(
                    base + run, env=env, stdout=log, stderr=log, start_new_session=True
                )
            )
        else:
            mport = _free_port()
            master = [*base, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                      str(mport), "--expect-workers", str(workers), "--expect-workers-max-wait", "30", *run]  # fmt: skip
            procs.append(
                subprocess.Popen(master, env=env, stdout=log, stderr=log, start_new_session=True)
            )
            for _ in range(workers):
                w = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(mport)]
                procs.append(
                    subprocess.Popen(w, env=env, stdout=log, stderr=log, start_new_session=True)
                )
        deadline = time.monotonic() + seconds + 60
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (*_rps(out / "stats"), cpu)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=int, default=10, help="run time of each Locust run")
    ap.add_argument("--users", type=int, default=20, help="concurrent users (closed loop)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant (median reported)")
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], start_new_session=True
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.05)
        results: dict[str, list[float]] = {}
        per_cpu: dict[str, list[float]] = {}
        with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
            variants = [("plain", "Plain", 0), ("plain+json", "PlainJson", 0), ("recorded", "Recorded", 0),
                        ("1 worker", "Recorded", 1), ("2 workers", "Recorded", 2)]  # fmt: skip
            n = 0
            for _ in range(args.repeat):
                for label, user, workers in variants:
                    out = Path(tmp) / f"run-{n}"
                    out.mkdir()
                    n += 1
                    rps, count, failures, cpu = _locust(
                        user,
                        port=port,
                        users=args.users,
                        seconds=args.seconds,
                        workers=workers,
                        out=out,
                    )
                    if failures:
                        print(f"  warning: {label}: {failures} of {count} requests failed")
                    results.setdefault(label, []).append(rps)
                    per_cpu.setdefault(label, []).append(count / cpu if cpu > 0 else 0.0)
                    print(
                        f"  {label:<10} {rps:9.0f} req/s  {count:8d} requests  "
                        f"{count / max(cpu, 1e-9):8.0f} req per Locust CPU-second",
                        flush=True,
                    )
            recorded_lines = sum(
                len(p.read_bytes().splitlines()) for p in Path(tmp).glob("run-*/history/*.jsonl")
            )
        med = {k: statistics.median(v) for k, v in results.items()}
        eff = {k: statistics.median(v) for k, v in per_cpu.items()}
        print()
        print(f"cpus: {os.cpu_count()}, users: {args.users}, {args.seconds}s per run, "
              f"median of {args.repeat}; history records written: {recorded_lines}")  # fmt: skip
        print(f"plain FastHttpUser, 1 process:        {med['plain']:9.0f} req/s")
        print(f"plain, decoding the JSON body:        {med['plain+json']:9.0f} req/s")
        print(f"with history recording, 1 process:    {med['recorded']:9.0f} req/s")
        print(
            f"ratio recorded / plain:               {med['recorded'] / med['plain']:9.3f}  (target >= 0.9)"
        )
        print(
            f"  same, per Locust CPU-second:        {eff['recorded'] / eff['plain']:9.3f}  "
            f"({eff['plain']:.0f} vs {eff['recorded']:.0f} requests per CPU-second)"
        )
        print(
            f"ratio recorded / plain+json:           {med['recorded'] / med['plain+json']:9.3f}  "
            f"(per CPU-second {eff['recorded'] / eff['plain+json']:.3f})"
        )
        print(f"recording, master + 1 worker:         {med['1 worker']:9.0f} req/s")
        print(f"recording, master + 2 workers:        {med['2 workers']:9.0f} req/s")
        print(f"ratio 2 workers / 1 worker:           {med['2 workers'] / med['1 worker']:9.3f}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
