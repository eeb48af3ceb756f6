"""What signed transactions cost the perpdex stack per order (common/signing.py).

An order is signed once (ui-api) and verified twice (rpc, then sequencer). Times
signing and verifying a realistic order transaction, with the key cache warm as in a
running service, and prints the CPU per order and at 1,000 orders/s.

    .venv/bin/python benchmarks/bench_signing.py [--n 50000]
"""

from __future__ import annotations

import argparse
import time

from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.signing import Verifier, sign


def order(i: int) -> dict[str, object]:
    return {
        "kind": "order",
        "account": 1 + i % 200,
        "market": "ETH-USD-PERP",
        "side": "buy" if i % 2 else "sell",
        "type": "limit",
        "size": 200,
        "price": 29_940 + i % 50,
        "post_only": True,
        "reduce_only": False,
        "client_id": f"bench-{i}",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    args = ap.parse_args()
    ring = KeyRing(42, "bench-token")
    keys = {a: ring.signing_key(f"account:{a}") for a in range(1, 201)}
    txs = [order(i) for i in range(args.n)]
    verifier = Verifier(ring)
    t0 = time.perf_counter()
    signed = [sign(keys[tx["account"]], tx) for tx in txs]  # type: ignore[index]
    t1 = time.perf_counter()
    for tx in signed:
        verifier.verify(tx)
    t2 = time.perf_counter()
    sign_us = (t1 - t0) / args.n * 1e6
    verify_us = (t2 - t1) / args.n * 1e6
    per_order = sign_us + 2 * verify_us
    print(
        f"{args.n} orders: sign {sign_us:.1f} µs, verify {verify_us:.1f} µs (first use of each key included)"
    )
    print(
        f"per order (sign once, verify at rpc and sequencer): {per_order:.1f} µs; "
        f"at 1000 orders/s: {per_order / 1000:.1%} of one core"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
