"""How much the operation history costs Locust, and how Locust scales with workers.

    .venv/bin/python benchmarks/bench_load.py [--seconds 12] [--users 20] [--repeat 3]

Starts one trivial HTTP endpoint on 127.0.0.1 (a raw asyncio server in its own process
answering every GET with a small JSON body over keep-alive) and runs Locust against it,
closed loop (no think time), headless:

1. in one Locust process, the same users alternating every second (a seeded random order
   per cycle) between four ways of making the same request: a plain `FastHttpUser`
   (``self.client.get``), the same decoding the JSON body, the request recorded through
   l2chaos's history path as the bridger's balance read (`Trader.call`: invoke entry,
   the answer kept undecoded in the completion entry, batched worker log; decoded,
   classified and summarised at the merge), and recorded as a read whose body the
   persona uses (decoded, classified and summarised at once). The process samples
   its own CPU time and request count at each switch; summed per mode over the run
   (the first 2 s left out) this gives requests/s and requests per CPU-second of each,
   side by side under the same machine load. Goal: recorded / plain per CPU-second
   >= 0.95 (CPU-seconds are the robust figure on a shared machine), judged on the
   median over every cycle of every run of the ratio within the cycle (the two modes
   measured seconds apart, so a burst from the rest of the machine sways few cycles);
   the read whose body is used is judged against plain+json. Every 8th recorded call
   is also timed inside the process: its CPU time outside the request (where no other
   greenlet runs), less the same timer's reading around every 8th plain request (the
   timer's own cost, measured in the same run under the same load), against plain's
   CPU time per request;
2. the recording user with a Locust master and 1 worker against a master and 2 workers.

Rounds repeat; the median of each figure is reported. Numbers only, no assertions.
This file is also the locustfile of those runs (Locust imports it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import itertools
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from _support import arg_parser

BODY = b'{"account":1,"cash":"10000.000000","equity":"10250.125000","free_collateral":"9000.5"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
PORT_ENV = "BENCH_LOAD_PORT"
HISTORY_ENV = "BENCH_LOAD_HISTORY"
SAMPLES_ENV = "BENCH_LOAD_SAMPLES"
PHASE_S = 1.0
MODES = ("plain", "plain+json", "recorded", "recorded+json")
_MODE = ["recorded"]  # what Bench users do now (the distributed runs stay recording)
TARGET = 0.95


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
    from l2chaos.load.protocols.base import DriverArgs
    from l2chaos.load.protocols.perpdex import PERSONA_PARAMS
    from l2chaos.params import Where, bind_params
    from locust import FastHttpUser, constant, events, task

    _WHERE = Where(None, "bench")
    _HOST = f"http://127.0.0.1:{os.environ[PORT_ENV]}"
    _WRITER: list[HistoryWriter] = []
    _KEY = {"X-API-Key": "bench-key"}

    def _writer() -> HistoryWriter:
        if not _WRITER:
            d = Path(os.environ[HISTORY_ENV])
            d.mkdir(parents=True, exist_ok=True)
            _WRITER.append(HistoryWriter(d / f"bench-{os.getpid()}.jsonl", 0))
        return _WRITER[0]

    # CPU-seconds outside the request and calls timed: of the recorded calls, and of the
    # plain ones (nothing but the timer there: its own cost, taken off the former)
    _COST = [0.0, 0]
    _NULL = [0.0, 0]
    _TIME_EVERY = 8

    def _close(**_kw: object) -> None:
        for w in _WRITER:
            w.close()
        if os.environ.get(SAMPLES_ENV):
            Path(os.environ[SAMPLES_ENV] + ".cost").write_text(
                f"{_COST[0]} {_COST[1]} {_NULL[0]} {_NULL[1]}\n"
            )

    class _Timed:
        """Locust's session, adding up the CPU time spent inside its requests (other
        greenlets run there too: what is left outside is the caller's own). Only timed
        calls go through it."""

        def __init__(self, session: Any) -> None:
            self.session = session
            self.inside = 0.0

        def request(self, *args: Any, **kwargs: Any) -> Any:
            t = time.process_time()
            try:
                return self.session.request(*args, **kwargs)
            finally:
                self.inside += time.process_time() - t

    events.quit.add_listener(_close)  # type: ignore[no-untyped-call]

    def _switcher(environment: Any) -> None:
        """Every PHASE_S: this process's monotonic time, CPU time and requests so far,
        then the next mode (every mode once per cycle, in a seeded random order)."""
        import gevent

        rng = random.Random(7)
        with open(os.environ[SAMPLES_ENV], "a", encoding="utf-8") as f:
            while True:
                order = list(MODES)
                rng.shuffle(order)
                for mode in order:
                    _MODE[0] = mode
                    total = environment.runner.stats.total.num_requests
                    f.write(f"{time.monotonic()} {time.process_time()} {total} {mode}\n")
                    f.flush()
                    gevent.sleep(PHASE_S)

    def _on_start(environment: Any, **_kw: object) -> None:
        if os.environ.get(SAMPLES_ENV):
            import gevent

            gevent.spawn(_switcher, environment)

    events.test_start.add_listener(_on_start)  # type: ignore[no-untyped-call]

    class Bench(FastHttpUser):
        """One user, four ways of making the same request (the mode of the moment):
        plain `self.client.get`; the same decoding the JSON body (as a trading client
        must); recorded through `Trader.call` as the bridger's balance read (the body
        kept undecoded, judged at the merge); recorded as a read whose body the persona
        uses (decoded, classified and summarised at once)."""

        host = _HOST
        wait_time = constant(0)
        _n = 0

        def on_start(self) -> None:
            Bench._n += 1
            self.timed = _Timed(self.client)
            self.calls = 0
            args = DriverArgs(
                persona="bridger",
                settings=bind_params(PERSONA_PARAMS["bridger"], {}, _WHERE),
                session=self.client,
                history=_writer(),
                account=Account(Bench._n, "bench-key"),
                endpoints={"ui": _HOST},
                seed=1,
                worker=0,
                uid=Bench._n,
                ordinal=Bench._n,
                run_tag="bench",
            )
            brain = make_brain("bridger", args.settings, seed=1, worker=0, ordinal=Bench._n)
            self.trader = Trader(args, brain)
            self._ops: dict[str, Callable[[], object]] = {
                "plain": self._plain,
                "plain+json": self._plain_json,
                "recorded": self._recorded,
                "recorded+json": self.trader.get_account,
            }

        def _timed(self, cost: list[float], call: Callable[[], object]) -> object:
            """`call()`, adding to `cost` its CPU time outside the requests it makes
            through `self.timed` (no switch to another greenlet happens outside a
            request: that time is this call's own)."""
            timed = self.timed
            inside, t = timed.inside, time.process_time()
            try:
                return call()
            finally:
                cost[0] += time.process_time() - t - (timed.inside - inside)
                cost[1] += 1

        def _recorded(self) -> object:
            """The bridger's balance read; every `_TIME_EVERY`th call timed into `_COST`."""
            self.calls += 1
            trader = self.trader
            if self.calls % _TIME_EVERY:
                return trader.get_account(need_body=False)
            trader.session = self.timed
            try:
                return self._timed(_COST, lambda: trader.get_account(need_body=False))
            finally:
                trader.session = self.client

        def _plain(self) -> object:
            """A plain request; every `_TIME_EVERY`th timed the same way into `_NULL`."""
            self.calls += 1
            if self.calls % _TIME_EVERY:
                return self.client.get("/v1/account", name="get_account", headers=_KEY)
            timed = self.timed
            return self._timed(
                _NULL, lambda: timed.request("GET", "/v1/account", name="get_account", headers=_KEY)
            )

        def _plain_json(self) -> object:
            return self.client.get("/v1/account", name="get_account", headers=_KEY).json()

        @task
        def get_account(self) -> None:
            self._ops[_MODE[0]]()


# ------------------------------------------------------------------- the driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Run:
    """One Locust run (standalone, or a master with workers) and where it writes."""

    label: str
    out: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cpu0: float = 0.0

    @property
    def samples(self) -> Path:
        return self.out / "samples.txt"


def _start(
    label: str, user: str, *, port: int, users: int, seconds: int, workers: int, out: Path
) -> _Run:
    out.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env[PORT_ENV] = str(port)
    env[HISTORY_ENV] = str(out / "history")
    base = [sys.executable, "-m", "locust", "-f", __file__, "--loglevel", "WARNING"]
    run = [
        "--headless", "--users", str(users), "--spawn-rate", str(users),
        "--run-time", f"{seconds}s", "--csv", str(out / "stats"), "--only-summary",
        "--exit-code-on-error", "0", user,
    ]  # fmt: skip
    r = _Run(label, out)
    log = open(out / "locust.log", "ab")  # noqa: SIM115
    try:
        if workers == 0:
            env[SAMPLES_ENV] = str(r.samples)
            r.procs.append(
                subprocess.Popen(
                    base + run, env=env, stdout=log, stderr=log, start_new_session=True
                )
            )
        else:
            mport = _free_port()
            master = [*base, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                      str(mport), "--expect-workers", str(workers), "--expect-workers-max-wait", "30", *run]  # fmt: skip
            r.procs.append(
                subprocess.Popen(master, env=env, stdout=log, stderr=log, start_new_session=True)
            )
            for _ in range(workers):
                w = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(mport)]
                r.procs.append(
                    subprocess.Popen(w, env=env, stdout=log, stderr=log, start_new_session=True)
                )
    finally:
        log.close()
    return r


def _wait(runs: list[_Run], seconds: int) -> None:
    deadline = time.monotonic() + seconds + 60
    procs = [p for r in runs for p in r.procs]
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _stats(out: Path) -> tuple[float, int, int]:
    """(requests/s, requests, failures) of the whole run, from Locust's CSV."""
    with open(out / "stats_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                return (
                    float(row["Requests/s"]),
                    int(row["Request Count"]),
                    int(row["Failure Count"]),
                )
    raise RuntimeError(f"no Aggregated row in {out}/stats_stats.csv")


@dataclass
class _Mode:
    """What one mode did over its phases: requests, CPU-seconds, seconds."""

    requests: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / max(self.wall_s, 1e-9)

    @property
    def per_cpu(self) -> float:
        return self.requests / max(self.cpu_s, 1e-9)


def _phases(samples: Path, warmup_s: float = 2.0) -> dict[str, _Mode]:
    """Per mode, its phases summed (the warm-up and the last, cut, phase left out)."""
    rows = [line.split() for line in samples.read_text().splitlines() if line.strip()]
    out = {m: _Mode() for m in MODES}
    t_first = float(rows[0][0])
    for a, b in itertools.pairwise(rows):
        if float(a[0]) < t_first + warmup_s:
            continue
        m = out[a[3]]
        m.requests += int(b[2]) - int(a[2])
        m.cpu_s += float(b[1]) - float(a[1])
        m.wall_s += float(b[0]) - float(a[0])
    return out


def _cycle_ratios(samples: Path, a: str, b: str, warmup_s: float = 2.0) -> list[float]:
    """Per cycle (every mode once, in a shuffled order, next to each other in time), the
    requests per CPU-second of mode `a` over those of `b`: pairs measured seconds
    apart, so a burst of load from the rest of the machine lands in few of them."""
    rows = [line.split() for line in samples.read_text().splitlines() if line.strip()]
    t_first = float(rows[0][0])
    phases = list(itertools.pairwise(rows))
    out: list[float] = []
    for k in range(0, len(phases) - len(MODES) + 1, len(MODES)):
        cycle = phases[k : k + len(MODES)]
        if float(cycle[0][0][0]) < t_first + warmup_s:
            continue
        per_cpu: dict[str, float] = {}
        for x, y in cycle:
            cpu = float(y[1]) - float(x[1])
            per_cpu[x[3]] = (int(y[2]) - int(x[2])) / cpu if cpu > 0 else 0.0
        if per_cpu.get(a) and per_cpu.get(b):
            out.append(per_cpu[a] / per_cpu[b])
    return out


def _records(tmp: Path) -> int:
    """History records written by every recording run."""
    from l2chaos.load.history import worker_records

    return sum(sum(1 for _ in worker_records(p)) for p in tmp.glob("*/history/*.jsonl"))


def _ab_run(
    args: argparse.Namespace, port: int, tmp: Path, n: int
) -> tuple[dict[str, _Mode], list[float], float]:
    r = _start(f"modes {n}", "Bench", port=port, users=args.users, seconds=args.seconds,
               workers=0, out=tmp / f"run-{n}-modes")  # fmt: skip
    _wait([r], args.seconds)
    _rps, count, failures = _stats(r.out)
    if failures:
        print(f"  warning: {failures} of {count} requests failed")
    modes = _phases(r.samples)
    cycles = _cycle_ratios(r.samples, "recorded", "plain")
    cost_s, timed, null_s, nulls = Path(f"{r.samples}.cost").read_text().split()
    timer_us = float(null_s) / max(int(nulls), 1) * 1e6
    cost_us = float(cost_s) / max(int(timed), 1) * 1e6 - timer_us
    print(
        f"  run {n}: "
        + ", ".join(f"{k} {m.per_cpu:.0f}/CPU-s {m.rps:.0f}/s" for k, m in modes.items())
        + f"; recorded / plain per CPU-second {modes['recorded'].per_cpu / modes['plain'].per_cpu:.3f}"
        + f" (median of {len(cycles)} cycles {statistics.median(cycles):.3f});"
        + f" recording path {cost_us:.2f} us of CPU per operation ({timed} timed, the"
        + f" timer's own {timer_us:.2f} us, timed around {nulls} plain requests, taken off)",
        flush=True,
    )
    return modes, cycles, cost_us


def _distributed(args: argparse.Namespace, port: int, tmp: Path, n: int, workers: int) -> float:
    r = _start(f"{workers} worker(s)", "Bench", port=port, users=args.users,
               seconds=args.seconds, workers=workers, out=tmp / f"run-{n}-w{workers}")  # fmt: skip
    _wait([r], args.seconds)
    rps, count, failures = _stats(r.out)
    if failures:
        print(f"  warning: {r.label}: {failures} of {count} requests failed")
    print(f"  master + {workers} worker(s): {rps:7.0f} req/s", flush=True)
    return rps


def _serve(n: int) -> tuple[list[int], list[subprocess.Popen[bytes]]]:
    ports = [_free_port() for _ in range(n)]
    servers = [
        subprocess.Popen([sys.executable, __file__, "--serve", str(p)], start_new_session=True)
        for p in ports
    ]
    for port in ports:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.05)
    return ports, servers


def main() -> None:
    ap = arg_parser(__doc__)
    ap.add_argument("--seconds", type=int, default=30, help="run time of each Locust run")
    ap.add_argument("--users", type=int, default=20, help="concurrent users (closed loop)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each kind (median reported)")
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return

    ports, servers = _serve(1)
    try:
        runs: list[dict[str, _Mode]] = []
        paired: list[float] = []  # recorded / plain per CPU-second, per cycle
        json_paired: list[float] = []  # recorded+json / plain+json
        costs: list[float] = []  # the recording path's CPU per operation, us, per run
        dist: dict[int, list[float]] = {1: [], 2: []}
        with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
            for n in range(args.repeat):
                modes, cycles, cost_us = _ab_run(args, ports[0], Path(tmp), n)
                runs.append(modes)
                costs.append(cost_us)
                paired += cycles
                json_paired += _cycle_ratios(
                    Path(tmp) / f"run-{n}-modes" / "samples.txt", "recorded+json", "plain+json"
                )
                for workers in (1, 2):
                    dist[workers].append(_distributed(args, ports[0], Path(tmp), n, workers))
            records = _records(Path(tmp))
        load = os.getloadavg()
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    def med(label: str, what: str) -> float:
        return float(statistics.median(getattr(r[label], what) for r in runs))

    def ratio(a: str, b: str, what: str) -> float:
        return float(statistics.median(getattr(r[a], what) / getattr(r[b], what) for r in runs))

    per_cpu = statistics.median(paired)
    q1, _, q3 = statistics.quantiles(paired, n=4)
    print()
    print(f"cpus: {os.cpu_count()}, load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min), "
          f"users: {args.users}, {args.seconds}s per run, median of {args.repeat} runs; "
          f"history records written: {records}")  # fmt: skip
    print(f"in one Locust process, the modes alternating every {PHASE_S:.0f} s:")
    for label in MODES:
        print(
            f"  {label:<14} {med(label, 'rps'):8.0f} req/s  {med(label, 'per_cpu'):8.0f} req per CPU-second"
        )
    verdict = "meets" if per_cpu >= TARGET else "MISSES"
    print(
        f"ratio recorded / plain, per CPU-second:  {per_cpu:6.3f}  (goal >= {TARGET}: {verdict}; "
        f"median of {len(paired)} cycles, quartiles {q1:.3f} - {q3:.3f})"
    )
    print(f"  same, summed per run, median of runs:   {ratio('recorded', 'plain', 'per_cpu'):6.3f}")
    cost = statistics.median(costs)
    plain_us = 1e6 / med("plain", "per_cpu")
    print(
        f"recording path, timed in the Locust process outside the request: {cost:.2f} us of "
        f"CPU per operation (median of runs) against {plain_us:.0f} us per plain request: "
        f"ratio {plain_us / (plain_us + cost):.3f}"
    )
    print(f"ratio recorded / plain, req/s:           {ratio('recorded', 'plain', 'rps'):6.3f}")
    used = statistics.median(json_paired)
    print(
        f"ratio recorded+json / plain+json, per CPU-second: {used:6.3f}  (a read whose body "
        f"is used; median of {len(json_paired)} cycles)"
    )
    one, two = statistics.median(dist[1]), statistics.median(dist[2])
    print(f"recording, master + 1 worker:         {one:9.0f} req/s")
    print(f"recording, master + 2 workers:        {two:9.0f} req/s")
    print(f"ratio 2 workers / 1 worker:           {two / one:9.3f}")


if __name__ == "__main__":
    main()
