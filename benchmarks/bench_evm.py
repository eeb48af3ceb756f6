"""EVM transactions/s the load reaches against go-ethereum, and what recording costs.

    .venv/bin/python benchmarks/bench_evm.py [--seconds 20] [--users 32] [--period 0]

Starts geth --dev (the binary .ci/setup builds; `--period` seconds between blocks, 0:
a block for every transaction) on 127.0.0.1, funds one key per user with the evm
protocol's own set-up, then runs one Locust process, closed loop (no think time), with
two kinds of sender in the same run, half the users each:

- `Recorded`: the evm protocol's sender as the load runs it (sign with eth-account,
  eth_sendRawTransaction, poll eth_getTransactionReceipt every 20 ms), every
  transaction recorded in the history (invoke, completion with tx hash and block);
- `Plain`: the same sender with the history writes left out.

Prints confirmed transactions/s of each and their ratio (the history's overhead for
this protocol), and the whole load's transactions/s. Numbers only, no assertions. This
file is also the locustfile of that run (Locust imports it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _support import arg_parser

CTX_ENV = "BENCH_EVM_CONTEXT"


# ---------------------------------------------------------- the locustfile part

if __name__ != "__main__" and os.environ.get(CTX_ENV):
    from l2chaos.load.context import Account
    from l2chaos.load.history import HistoryWriter, OpHandle
    from l2chaos.load.protocols import DriverArgs, protocol
    from l2chaos.params import Where, bind_params
    from locust import FastHttpUser, constant, events, task

    _CTX = json.loads(Path(os.environ[CTX_ENV]).read_text())
    _PROTO = protocol("evm")
    _SETTINGS = bind_params(_PROTO.personas["sender"], {"receipt_poll": "20ms", "think": ["0s", "0s"]}, Where(None, "bench"))  # fmt: skip
    _OUT = Path(_CTX["out"])
    _COUNTS = {"Recorded": 0, "Plain": 0}
    _WRITERS: list[HistoryWriter] = []

    class _NoHistory(HistoryWriter):
        """The recording path left out: no record is formatted or written."""

        def __init__(self) -> None:
            pass

        def invoke(self, **_kw: Any) -> OpHandle:
            return OpHandle(0)

        def complete(self, handle: OpHandle, type_: str, *_a: Any, **_kw: Any) -> None:
            return

    def _quit(**_kw: object) -> None:
        for w in _WRITERS:
            w.close()
        (_OUT / f"counts-{os.getpid()}.json").write_text(json.dumps(_COUNTS))

    events.quit.add_listener(_quit)  # type: ignore[no-untyped-call]

    class _Sender(FastHttpUser):
        abstract = True
        host = _CTX["rpc"]
        wait_time = constant(0)
        max_retries = 0
        _next = 0

        def history(self) -> HistoryWriter:
            raise NotImplementedError

        def on_start(self) -> None:
            i = _Sender._next
            _Sender._next += 1
            acct = _CTX["accounts"][i]
            self.driver: Any = _PROTO.driver(
                DriverArgs(
                    persona="sender", settings=_SETTINGS, session=self.client,
                    history=self.history(), account=Account.from_json(acct),
                    endpoints={"rpc": _CTX["rpc"]}, data=_CTX["data"], seed=1, worker=0,
                    uid=i, ordinal=i, run_tag="bench", trace=None, stopping=lambda: False,
                )
            )  # fmt: skip

        @task
        def send(self) -> None:
            outcome = self.driver.send("transfer", {"to": _CTX["sink"], "value": 1, "gas": 21000})
            if outcome.type == "ok":
                _COUNTS[type(self).__name__] += 1

    class Recorded(_Sender):
        def history(self) -> HistoryWriter:
            if not _WRITERS:
                w = HistoryWriter(
                    _OUT / "history.jsonl", 0, write_ops=_PROTO.write_ops, protocol="evm"
                )
                _WRITERS.append(w)
            return _WRITERS[0]

    class Plain(_Sender):
        def history(self) -> HistoryWriter:
            return _NoHistory()


# ------------------------------------------------------------------- the driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_geth(tmp: Path, port: int, period: int) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "l2chaos.stacks.geth", "--dev", "--dev.period", str(period),
        "--dev.gaslimit", "60000000", "--datadir", str(tmp / "geth"), "--http",
        "--http.addr", "127.0.0.1", "--http.port", str(port), "--http.api", "eth,net,web3",
        "--ipcdisable", "--nodiscover", "--maxpeers", "0", "--port", "0",
        "--authrpc.port", "0", "--verbosity", "2",
    ]  # fmt: skip
    log = open(tmp / "geth.log", "wb")  # noqa: SIM115
    return subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)


def _wait_rpc(url: str, proc: subprocess.Popen[bytes]) -> None:
    from l2chaos.jsonrpc import RpcCallError, RpcClient

    rpc = RpcClient(url, timeout_s=1.0)
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit("geth exited while starting (see its log)")
        with contextlib.suppress(RpcCallError):
            rpc.call("eth_blockNumber")
            return
        time.sleep(0.1)
    raise SystemExit("geth did not answer within 30 s")


def main() -> None:
    ap = arg_parser(__doc__)
    ap.add_argument("--seconds", type=int, default=20, help="Locust run time")
    ap.add_argument("--users", type=int, default=32, help="senders (half recorded, half plain)")
    ap.add_argument("--period", type=int, default=0, help="geth --dev.period (0: on demand)")
    args = ap.parse_args()
    from l2chaos.load.protocols import SetupArgs, protocol

    users = max(2, args.users - args.users % 2)
    with tempfile.TemporaryDirectory(prefix="bench-evm-") as tmp_name:
        tmp = Path(tmp_name)
        port = _free_port()
        url = f"http://127.0.0.1:{port}/"
        geth = _start_geth(tmp, port, args.period)
        try:
            _wait_rpc(url, geth)
            prepared = protocol("evm").prepare(
                SetupArgs(endpoints={"rpc": url}, users=users, seed=1,
                          options={"funding": "dev"}, stack_accounts=[])
            )  # fmt: skip
            ctx = {"rpc": url, "out": str(tmp), "accounts": list(prepared.accounts),
                   "data": prepared.data, "sink": prepared.data["addresses"][0]}  # fmt: skip
            (tmp / "ctx.json").write_text(json.dumps(ctx))
            env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
            env[CTX_ENV] = str(tmp / "ctx.json")
            argv = [
                sys.executable, "-m", "locust", "-f", __file__, "--headless", "--users",
                str(users), "--spawn-rate", str(users), "--run-time", f"{args.seconds}s",
                "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
                "Recorded", "Plain",
            ]  # fmt: skip
            with open(tmp / "locust.log", "wb") as log:
                locust = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)  # fmt: skip
                try:
                    locust.wait(timeout=args.seconds + 60)
                finally:
                    if locust.poll() is None:
                        os.killpg(locust.pid, signal.SIGKILL)
                        locust.wait()
            counts = {"Recorded": 0, "Plain": 0}
            for f in tmp.glob("counts-*.json"):
                for k, v in json.loads(f.read_text()).items():
                    counts[k] += v
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(geth.pid, signal.SIGTERM)
            try:
                geth.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(geth.pid, signal.SIGKILL)
                geth.wait()
    rec, plain = counts["Recorded"] / args.seconds, counts["Plain"] / args.seconds
    print(
        f"geth --dev.period {args.period}, {users} senders closed loop, {args.seconds}s: "
        f"{rec + plain:.1f} confirmed EVM transactions/s"
    )
    print(f"  recorded senders ({users // 2}): {rec:.1f} tx/s")
    print(f"  plain senders    ({users // 2}): {plain:.1f} tx/s")
    ratio = rec / plain if plain else float("nan")
    print(f"  recorded / plain: {ratio:.3f} (the history's overhead for the evm protocol)")


if __name__ == "__main__":
    main()
