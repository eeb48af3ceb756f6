"""``python -m l2chaos.l7proxy --control HOST:PORT --decisions FILE``: the L7 proxy
process. The control token comes from the environment variable named by
``--token-env`` (default ``L2CHAOS_L7_TOKEN``), never from the command line. Links are
added through the control API (server.py). SIGTERM/SIGINT stop it cleanly."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from .server import DEFAULT_MAX_BODY, DecisionLog, L7Server


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m l2chaos.l7proxy", description=__doc__)
    ap.add_argument("--control", required=True, help="host:port of the control API")
    ap.add_argument("--decisions", type=Path, help="JSONL file every decision is appended to")
    ap.add_argument("--token-env", default="L2CHAOS_L7_TOKEN")
    ap.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY)
    return ap.parse_args(argv)


async def _serve(args: argparse.Namespace, token: str) -> None:
    if args.decisions is not None:
        args.decisions.parent.mkdir(parents=True, exist_ok=True)
    server = L7Server(DecisionLog(args.decisions), max_body=args.max_body)
    runner = web.AppRunner(server.control_app(token), access_log=None)
    await runner.setup()
    host, _, port = args.control.rpartition(":")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, int(port), reuse_address=True).start()
        print(f"l7proxy: control API on {args.control}", flush=True)
        await stop.wait()
    finally:
        await server.close()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"l7proxy: set {args.token_env} to the control token", file=sys.stderr)
        return 2
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_serve(args, token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
