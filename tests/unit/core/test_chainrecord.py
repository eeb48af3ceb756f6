"""The chain record's reorg detection from the heads the probes see."""

from __future__ import annotations

import json
from pathlib import Path

from l2chaos.chainrecord import REORGS, Block, ChainRecorder
from l2chaos.jsonrpc import RpcClient


def blk(n: int, fork: str = "a", pfork: str | None = None) -> Block:
    return Block(n, f"{fork}{n}", f"{pfork or fork}{n - 1}")


def reorgs(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (tmp_path / REORGS).read_text().splitlines()]


def test_steps_back_and_rewrites_are_recorded_with_their_depth(tmp_path: Path) -> None:
    rec = ChainRecorder(RpcClient("http://127.0.0.1:9/"), "evm", tmp_path)
    for n in (1, 2, 3, 4, 4):  # the same head twice is one observation
        rec.observe(n, blk(n))
    assert rec.reorgs == 0
    rec.observe(5, blk(2))  # a rollback to 2: the head seen at 2 again
    rec.observe(6, blk(3, "b", "a"))  # a new block 3 on top of 2
    rec.observe(7, blk(4, "b"))
    rec.observe(8, blk(5, "c", "c"))  # its parent is not the 4 seen: rewritten under us
    rec.close()
    got = reorgs(tmp_path)
    assert [(r["from_number"], r["to_number"], r["common_ancestor"], r["depth"]) for r in got] == [
        (4, 2, 2, 2),
        (4, 5, None, 1),  # at least block 4 was replaced
    ]
    assert got[1]["ancestor_at_most"] == 3
    assert rec.first_number == 1
    heads = (tmp_path / "chain" / "heads.jsonl").read_text().splitlines()
    assert len(heads) == 8
