"""audit/events.jsonl read as typed Events (l2chaos.rundir.events)."""

from __future__ import annotations

from pathlib import Path

import pytest
from l2chaos.invariants.ledger import LedgerError, LedgerState
from l2chaos.rundir.errors import RecordError
from l2chaos.rundir.events import Event, Ledger, read_events

FILL = (
    b'{"seq":7,"block":3,"block_seq":4,"host_ts_ns":10,"chain_ts_ns":11,"kind":"fill",'
    b'"tx":"0xab","data":{"market":"BTC","price":5},'
    b'"ledger":{"cash":[[1,-5],[2,5]],"pos":[[1,"BTC",2,9]],"dust_micro":3}}\n'
)


def _events(tmp_path: Path, *lines: bytes) -> list[Event]:
    p = tmp_path / "events.jsonl"
    p.write_bytes(b"".join(lines))
    return list(read_events(p))


def test_a_line_decodes_to_typed_fields(tmp_path: Path) -> None:
    (ev,) = _events(tmp_path, FILL)
    assert (ev.seq, ev.block, ev.block_seq, ev.kind, ev.tx) == (7, 3, 4, "fill", "0xab")
    assert ev.payload == {"market": "BTC", "price": 5}
    assert ev.ledger == Ledger(cash=[(1, -5), (2, 5)], pos=[(1, "BTC", 2, 9)], dust_micro=3)
    d = LedgerState(dust_account=None).apply_event(ev)
    assert (d.cash_sum, d.sc_sum, d.dust_micro) == (0, 18, 3)


def test_a_malformed_ledger_is_kept_and_reported_when_replayed(tmp_path: Path) -> None:
    line = b'{"seq":1,"block_seq":0,"kind":"fill","ledger":{"cash":[[1,-5],[2,"ten"]]}}\n'
    (ev,) = _events(tmp_path, line)
    assert ev.ledger is None
    assert ev.malformed_ledger == {"cash": [[1, -5], [2, "ten"]]}
    st = LedgerState(dust_account=None)
    with pytest.raises(LedgerError, match="cash delta: expected an integer, got 'ten'"):
        st.apply_event(ev)
    # the entries before the malformed one moved the state, not the totals
    assert st.cash == {1: -5}
    assert st.cash_sum == 0


def test_blank_lines_are_skipped_and_data_that_is_no_object_is_absent(tmp_path: Path) -> None:
    evs = _events(tmp_path, b"\n", b'{"seq":1,"kind":"rollback","data":[1]}\n')
    assert [(e.seq, e.data, e.payload) for e in evs] == [(1, None, {})]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json\n", "invalid JSON line"),
        (b"[1, 2]\n", "expected a JSON object, got list"),
        (b'{"seq":"seven","kind":"fill"}\n', "malformed events line: Expected `int | null`"),
    ],
)
def test_a_broken_line_names_file_and_line(tmp_path: Path, line: bytes, problem: str) -> None:
    with pytest.raises(RecordError, match=problem) as exc:
        _events(tmp_path, FILL, line)
    assert exc.value.line == 2
    assert exc.value.file == tmp_path / "events.jsonl"
