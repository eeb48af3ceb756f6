"""Remote Locust workers and history merging, for swarms larger than one machine.

    python -m l2chaos.load worker --master HOST:PORT --context FILE --index K
                                  [--history-dir DIR] [--endpoint ROLE=URL ...]
                                  [--allow-target HOST ...]
    python -m l2chaos.load merge RUN_DIR

`worker` joins a running l2chaos Locust master as worker K (K counts from the number of
local workers: the master's run directory has load/remote-workers.txt with the exact
commands). It runs Locust in its own process with the load context copied from the
master's machine; `--endpoint ui=http://10.0.0.5:8080` points it at the stack as seen
from this machine (such a host must be named with `--allow-target`). Its history goes
to DIR/worker-K.jsonl (default ./l2chaos-history); copy it into the master's
RUN_DIR/history/ afterwards and run `merge` to rebuild RUN_DIR/history.jsonl.

See docs/load.md. Bad arguments: one message, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ..errors import L2ChaosError, UsageError
from ..safety import ensure_allowed
from .context import CONTEXT_ENV, HISTORY_DIR_ENV, WORKER_ENV, LoadContext, write_secret_json
from .history import check_history, merge_histories
from .rate import RATE_FILE, WORKER_RATE_GLOB, merge_rates
from .runner import LOCUSTFILE

__all__ = ["main"]


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"expected HOST:PORT, got {text!r}", field="--master")
    return host, int(port)


def _endpoints(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        role, sep, url = pair.partition("=")
        if not sep or not role or not url.startswith(("http://", "https://")):
            raise UsageError(
                f"expected ROLE=URL such as ui=http://10.0.0.5:8080, got {pair!r}",
                field="--endpoint",
            )
        out[role] = url.rstrip("/")
    return out


def worker(args: argparse.Namespace) -> int:
    host, port = _hostport(args.master)
    if not Path(args.context).is_file():
        raise UsageError(f"no such file: {args.context}", field="--context")
    ctx = LoadContext.read(args.context)
    if not 0 <= args.index < len(ctx.slices):
        raise UsageError(
            f"worker index {args.index} is outside 0..{len(ctx.slices) - 1} "
            f"(the context has accounts for {len(ctx.slices)} workers)",
            field="--index",
        )
    data = ctx.to_json()
    allow = [*ctx.allow_targets, *args.allow_target]
    endpoints = {**ctx.endpoints, **_endpoints(args.endpoint)}
    for url in endpoints.values():
        ensure_allowed(url, allow=allow, what="load")
    data["endpoints"] = endpoints
    data["allow_targets"] = allow
    history_dir = Path(args.history_dir).resolve()
    history_dir.mkdir(parents=True, exist_ok=True)
    private = write_secret_json(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env.update(
        {
            CONTEXT_ENV: str(private),
            WORKER_ENV: str(args.index),
            HISTORY_DIR_ENV: str(history_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
            "--master-host", host, "--master-port", str(port), "--loglevel", "INFO"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env)

    def forward(signum: int, _frame: FrameType | None) -> None:
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        private.unlink(missing_ok=True)
    print(f"history: {history_dir / f'worker-{args.index}.jsonl'}")
    return code


def merge(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    files = sorted((run_dir / "history").glob("worker-*.jsonl"))
    if not files:
        raise UsageError(f"no history files in {run_dir / 'history'}", field="RUN_DIR")
    stats = merge_histories(files, run_dir / "history.jsonl")
    rates = sorted((run_dir / "history").glob(WORKER_RATE_GLOB))
    if rates:  # an open-loop load: the workers' per-second arrivals too
        (run_dir / "load").mkdir(exist_ok=True)
        merge_rates(rates, run_dir / "load" / RATE_FILE)
    chk = check_history(run_dir / "history.jsonl")
    print(
        json.dumps({"merge": stats.to_json(), "well_formed": chk.ok, "problems": chk.problems[:10]})
    )
    return 0 if chk.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m l2chaos.load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="join an l2chaos Locust master from this machine")
    w.add_argument("--master", required=True, help="HOST:PORT of the master")
    w.add_argument(
        "--context", required=True, help="the load context file copied from the master's machine"
    )
    w.add_argument(
        "--index", required=True, type=int, help="this worker's index (from remote-workers.txt)"
    )
    w.add_argument("--history-dir", default="l2chaos-history", help="where worker-K.jsonl goes")
    w.add_argument("--endpoint", action="append", default=[], help="ROLE=URL as reached from here")
    w.add_argument(
        "--allow-target", action="append", default=[], help="a non-loopback host that is yours"
    )
    m = sub.add_parser(
        "merge",
        help="rebuild RUN_DIR/history.jsonl from RUN_DIR/history/worker-*.jsonl (and "
        "RUN_DIR/load/rate.jsonl from rate-*.jsonl)",
    )
    m.add_argument("run_dir", metavar="RUN_DIR")
    args = ap.parse_args(argv)
    try:
        return worker(args) if args.cmd == "worker" else merge(args)
    except L2ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
