"""Run the whole perpdex stack locally for manual use.

    python -m l2chaos.stacks.perpdex [--profile hardened|vulnerable] [--seed N]
        [--set accounts=100 --set block_interval=200ms ...] [--run-dir DIR]

Brings the stack up on the local backend (real Postgres, real Toxiproxy, one proxy
per link), prints the endpoints, the accounts file (API keys, mode 0600) and the admin
token, and keeps it up until Ctrl-C; then everything is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from l2chaos.accounts import read_accounts
from l2chaos.errors import EXIT_BAD_INPUT, EXIT_HARNESS_BROKE, InputError, L2ChaosError
from l2chaos.scenario import parse_stack_settings
from l2chaos.stacks.perpdex import STACK_FILE
from l2chaos.stackspec import StackRun, load_stack


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m l2chaos.stacks.perpdex", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--profile", default=None, help="hardened (default) or vulnerable")
    ap.add_argument("--seed", type=int, default=1604710)
    ap.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a stack setting"
    )
    ap.add_argument("--run-dir", default=None, help="where logs and the accounts file go")
    args = ap.parse_args(argv)
    from l2chaos.backends import backend

    try:
        spec = load_stack(STACK_FILE)
        profile = args.profile or spec.default_profile or "hardened"
        if profile not in spec.profiles:
            raise InputError(
                f"unknown profile {profile!r}; profiles: {', '.join(spec.profiles)}",
                field="--profile",
            )
        run = StackRun(
            spec,
            profile,
            spec.profiles[profile],
            parse_stack_settings(spec, args.set),
            seed=args.seed,
        )
    except InputError as exc:
        print(f"perpdex: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    run_id = f"perpdex-manual-{time.strftime('%Y%m%dT%H%M%S')}"
    run_dir = Path(args.run_dir or Path("runs") / run_id).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    print(f"starting perpdex ({profile}) in {run_dir} ...", flush=True)
    try:
        stack = backend("local").up(
            run, run_id=run_id, run_dir=run_dir, env={"L2CHAOS_ADMIN_TOKEN": token}
        )
    except L2ChaosError as exc:
        print(f"perpdex: {exc}", file=sys.stderr)
        return EXIT_HARNESS_BROKE
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        accounts = read_accounts(stack, token)
        acc_file = run_dir / "accounts.json"
        fd = os.open(acc_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(accounts, fh, indent=1)
        print(f"perpdex is up (profile {profile}, switches {run.switches_json()})")
        for svc in stack.services:
            print(f"  {svc:10s} {stack.direct_url(svc)}")
        for lk in stack.links.links():
            print(f"  link {lk}")
        print(f"  accounts   {acc_file} ({len(accounts)} accounts, API keys inside)")
        print(f"  admin      Authorization: Bearer {token}")
        print(f"  logs       {run_dir / 'logs'}")
        print("Ctrl-C to stop.", flush=True)
        while not stop:
            time.sleep(0.5)
    finally:
        print("stopping ...", flush=True)
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
