"""The audit export's and the chain record's JSON-lines files read as typed records
(l2chaos.rundir: blocks, transactions, market_state, bridge, oracle_reference, l7,
probes, chain, faults): the fields the writers produce, and a line of the wrong shape is one
RecordError naming the file and the line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from l2chaos.invariants.record import AUDIT, FAULTS, L7, RunRecord
from l2chaos.rundir.bridge import BridgeState
from l2chaos.rundir.errors import RecordError
from l2chaos.rundir.transactions import Transaction

Reader = Callable[[RunRecord], Iterator[object]]

# per file: the RunRecord method that reads it, a line as its writer produces it, and the
# same line with one field missing or of the wrong type
_CASES = json.loads((Path(__file__).parent / "data" / "stream_lines.json").read_text())
STREAMS: list[tuple[str, Reader, bytes, bytes]] = [
    (
        name,
        getattr(RunRecord, c["read"]),
        json.dumps(c["good"]).encode(),
        json.dumps(c["bad"]).encode(),
    )
    for name, c in _CASES.items()
    if not name.startswith("_")
]


def _record(tmp_path: Path, name: str, *lines: bytes) -> RunRecord:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"".join(line + b"\n" for line in lines))
    return RunRecord(tmp_path)


@pytest.mark.parametrize(("name", "read", "good", "bad"), STREAMS, ids=[s[0] for s in STREAMS])
def test_a_line_of_the_wrong_type_names_file_and_line(
    tmp_path: Path, name: str, read: Reader, good: bytes, bad: bytes
) -> None:
    assert len(list(read(_record(tmp_path, name, good, b"", good)))) == 2
    with pytest.raises(RecordError, match=r"malformed \w+ line: ") as exc:
        list(read(_record(tmp_path, name, good, bad)))
    assert (exc.value.file, exc.value.line) == (tmp_path / name, 2)


def test_a_missing_file_reads_as_empty(tmp_path: Path) -> None:
    record = RunRecord(tmp_path)
    for name, read, _, _ in STREAMS:
        assert list(read(record)) == [], name
    assert record.bridge_state() is None


def test_fields_a_writer_leaves_out_take_their_defaults(tmp_path: Path) -> None:
    (blk,) = _record(tmp_path, AUDIT.BLOCKS, b'{"seq":4}').blocks()
    assert (blk.seq, blk.number, blk.canonical, blk.host_ts_ns) == (4, None, True, None)
    (d,) = _record(tmp_path, L7, b'{"t_ns":1,"effect":"oversize"}').l7_decisions()
    assert (d.rule, d.hit, d.effect) == (None, False, "oversize")


@pytest.mark.parametrize(
    ("nonce", "number"), [(7, 7), ("7", 7), (" 7", 7), ("0x7", None), (None, None)]
)
def test_a_deposit_nonce_is_the_number_whether_written_as_text_or_number(
    nonce: int | str | None, number: int | None
) -> None:
    assert Transaction(nonce=nonce).deposit_nonce == number


def test_bridge_state_is_typed(tmp_path: Path) -> None:
    record = _record(tmp_path, AUDIT.BRIDGE_STATE, b'{"escrow_balance":5,"source":"x"}')
    assert record.bridge_state() == BridgeState(escrow_balance=5, event_cursor=None)
    (tmp_path / AUDIT.BRIDGE_STATE).write_bytes(b'{"escrow_balance":"5"}')
    with pytest.raises(RecordError, match="malformed bridge state") as exc:
        record.bridge_state()
    assert exc.value.file == tmp_path / AUDIT.BRIDGE_STATE


def test_the_fault_log_folds_per_fault(tmp_path: Path) -> None:
    record = _record(
        tmp_path,
        FAULTS,
        b'{"fault_id":0,"label":"cut","name":"net.cut","target":"db","action":"inject",'
        b'"params":{"x":1},"t_ns":100,"took_ms":0.5,"ok":true,"trigger":{"kind":"time"},'
        b'"trigger_text":"at 1s","block":3}',
        b'{"fault_id":0,"name":"net.cut","target":"db","action":"note","details":{"s":1}}',
        b'{"fault_id":0,"name":"net.cut","target":"db","action":"heal","t_ns":900,'
        b'"took_ms":1,"ok":true}',
    )
    (fr,) = record.faults()
    assert (fr.label, fr.params, fr.block) == ("cut", {"x": 1}, 3)
    assert fr.trigger == {"kind": "time", "text": "at 1s"}
    assert fr.window(0) == (100, 1_000_900)
    assert [n.details for n in fr.notes] == [{"s": 1}]


def test_a_fault_line_of_the_wrong_type_names_file_and_line(tmp_path: Path) -> None:
    record = _record(tmp_path, FAULTS, b'{"fault_id":"zero","action":"inject"}')
    with pytest.raises(RecordError, match="malformed faults line") as exc:
        record.faults()
    assert exc.value.line == 1


def test_a_header_of_the_wrong_shape_names_file_and_field(tmp_path: Path) -> None:
    ok = _record(tmp_path, AUDIT.HEADER, b'{"stack":"x","markets":{"BTC":{"mmf_bps":300}}}')
    assert ok.header is not None
    assert ok.header.market("BTC") == {"mmf_bps": 300}
    for line, problem in (
        (b'{"markets":{"BTC":{"mmf_bps":"300"}}}', "markets.BTC.mmf_bps: expected an integer"),
        (b'{"system_accounts":[]}', "system_accounts: expected an object, got list"),
    ):
        with pytest.raises(RecordError, match=problem) as exc:
            _ = _record(tmp_path, AUDIT.HEADER, line).header
        assert exc.value.file == tmp_path / AUDIT.HEADER
