"""history.jsonl and audit/balances.jsonl read as typed records (l2chaos.rundir)."""

from __future__ import annotations

from pathlib import Path

import pytest
from l2chaos.invariants.ops import ops_index
from l2chaos.invariants.record import RunRecord
from l2chaos.rundir.balances import Balance, read_balances
from l2chaos.rundir.errors import RecordError
from l2chaos.rundir.history import HISTORY, WriteIds, read_history, write_ids

INVOKE = b'{"t_ns":10,"mono_ns":1,"type":"invoke","op_id":"w0-1","process":"p1","op":"place_order","args":{"size":3},"account":4}\n'
OK = (
    b'{"t_ns":25,"mono_ns":16,"type":"ok","op_id":"w0-1","process":"p1","op":"place_order",'
    b'"account":4,"result":{"order_id":9,"tx_hash":"0xab","block":5,"fills":[1]},'
    b'"latency_ms":15.0}\n'
)


def test_lines_decode_to_the_fields_the_checkers_read(tmp_path: Path) -> None:
    (tmp_path / HISTORY).write_bytes(INVOKE + OK)
    invoke, ok = read_history(tmp_path / HISTORY)
    assert (invoke.type, invoke.op_id, invoke.t_ns, invoke.account) == ("invoke", "w0-1", 10, 4)
    assert (ok.type, ok.latency_ms, ok.process) == ("ok", 15.0, "p1")
    assert write_ids(ok) == WriteIds(tx_hash="0xab", order_id=9, block=5)
    assert write_ids(invoke) == WriteIds()  # no result: no ids


def test_an_acknowledged_write_keeps_its_ids(tmp_path: Path) -> None:
    (tmp_path / HISTORY).write_bytes(INVOKE + OK)
    ops = ops_index(RunRecord(tmp_path))
    assert ops is not None
    (w,) = ops.acked_writes
    assert (w.op_id, w.invoke_t_ns, w.t_ns, w.order_id, w.tx_hash, w.block) == (
        "w0-1", 10, 25, 9, "0xab", 5,
    )  # fmt: skip


def test_a_write_result_of_the_wrong_shape_is_a_record_error(tmp_path: Path) -> None:
    (tmp_path / HISTORY).write_bytes(INVOKE + OK.replace(b'"block":5', b'"block":[5]'))
    with pytest.raises(RecordError, match="operation w0-1: malformed result"):
        ops_index(RunRecord(tmp_path))


def test_a_history_line_of_the_wrong_shape_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / HISTORY).write_bytes(INVOKE + b'{"type":"ok","t_ns":"late"}\n')
    with pytest.raises(RecordError, match="malformed history line") as exc:
        list(read_history(tmp_path / HISTORY))
    assert exc.value.line == 2


def test_balances_decode_typed(tmp_path: Path) -> None:
    p = tmp_path / "balances.jsonl"
    p.write_bytes(b'{"block_seq":3,"block":2,"account":7,"cash":-5,"positions":{"BTC":[2,9]}}\n')
    assert list(read_balances(p)) == [
        Balance(block_seq=3, block=2, account=7, cash=-5, positions={"BTC": [2, 9]})
    ]
