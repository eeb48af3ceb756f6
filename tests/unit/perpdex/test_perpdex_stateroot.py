"""State root and block hash follow the algorithm pinned in docs/architecture.md."""

from __future__ import annotations

import hashlib
import random

from l2chaos.stacks.perpdex.engine.stateroot import (
    GENESIS_PARENT,
    StateRoot,
    block_hash,
    leaf,
    state_root,
    tx_root,
)


def test_root_by_hand() -> None:
    a = hashlib.sha256(b"-4|999997|").digest()
    b = hashlib.sha256(b"7|-80036000000|BTC-USD-PERP:1000000:5000000000;ETH-USD-PERP:-5:0").digest()
    want = "0x" + hashlib.sha256(a + b).hexdigest()
    accounts = [
        (
            7,
            -80036000000,
            {
                "ETH-USD-PERP": [-5, 0],
                "BTC-USD-PERP": [1000000, 5000000000],
                "PAXG-USD-PERP": [0, 3],
            },
        ),
        (-4, 999997, {}),
        (3, 0, {}),  # empty state has no leaf
    ]
    assert state_root(accounts) == want
    assert leaf(-4, 999997, {}) == a


def test_empty_root_and_genesis_hash() -> None:
    empty = "0x" + hashlib.sha256(b"").hexdigest()
    assert state_root([]) == empty
    assert StateRoot().root() == empty
    assert tx_root([]) == empty
    text = f"0|{GENESIS_PARENT}|{empty}|{empty}|123"
    assert (
        block_hash(0, GENESIS_PARENT, empty, empty, 123)
        == "0x" + hashlib.sha256(text.encode()).hexdigest()
    )


def test_incremental_root_equals_root_from_scratch() -> None:
    rng = random.Random(7)
    inc = StateRoot()
    state: dict[int, tuple[int, dict[str, list[int]]]] = {}
    for _ in range(2000):
        a = rng.randint(-4, 40)
        cash = rng.choice([0, rng.randint(-(10**12), 10**12)])
        pos = {
            m: [rng.choice([0, rng.randint(-(10**7), 10**7)]), rng.randint(0, 10**10)]
            for m in rng.sample(
                ["BTC-USD-PERP", "ETH-USD-PERP", "PAXG-USD-PERP"], rng.randint(0, 3)
            )
        }
        state[a] = (cash, pos)
        inc.update(a, cash, pos)
        if rng.random() < 0.05:
            assert inc.root() == state_root((k, c, p) for k, (c, p) in state.items())
    assert inc.root() == state_root((k, c, p) for k, (c, p) in state.items())
