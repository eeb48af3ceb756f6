"""Port range parsing and reservations that keep two runs apart."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from l2chaos.backends.ports import (
    PortAllocator,
    candidate_ports,
    ephemeral_range,
    parse_port_range,
    port_is_free,
)
from l2chaos.errors import StackError


def test_parse_port_range() -> None:
    assert parse_port_range("32768\t60999\n") == (32768, 60999)
    assert parse_port_range(" 1024 65535 ") == (1024, 65535)


@pytest.mark.parametrize("text", ["", "32768", "a b", "60999 32768", "0 100", "1 70000", "1 2 3"])
def test_parse_port_range_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_port_range(text)


def test_ephemeral_range_falls_back_to_the_linux_default(tmp_path: Path) -> None:
    (tmp_path / "r").write_text("garbage")
    assert ephemeral_range(tmp_path / "r") == (32768, 60999)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)
    (tmp_path / "r").write_text("40000 50000\n")
    assert ephemeral_range(tmp_path / "r") == (40000, 50000)


def test_candidate_ports_skip_the_ephemeral_range() -> None:
    ports = candidate_ports((32768, 60999))
    assert ports[0] == 10000
    assert ports[-1] == 65535
    assert 32767 in ports
    assert 61000 in ports
    assert not any(32768 <= p <= 60999 for p in ports)
    assert candidate_ports((1, 65535)) == []


def _free_pool(n: int) -> list[int]:
    pool = [p for p in range(23000, 23400) if port_is_free(p)]
    assert len(pool) >= n
    return pool[:n]


def test_reservations_are_distinct_and_exclusive(tmp_path: Path) -> None:
    pool = _free_pool(4)
    a = PortAllocator(tmp_path, pool)
    b = PortAllocator(tmp_path, pool)
    got_a = a.reserve(3)
    assert len({r.port for r in got_a}) == 3
    got_b = b.reserve_one()  # the only port left
    assert got_b.port not in {r.port for r in got_a}
    with pytest.raises(StackError, match="could not reserve 1 free ports"):
        b.reserve_one()
    got_a[0].release()
    got_a[0].release()  # idempotent
    assert not got_a[0].held
    assert b.reserve_one().port == got_a[0].port
    for r in [*got_a, got_b]:
        r.release()


def test_a_bound_port_is_skipped(tmp_path: Path) -> None:
    pool = _free_pool(2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", pool[0]))
        s.listen()
        got = PortAllocator(tmp_path, pool).reserve(1)
        assert got[0].port == pool[1]
        got[0].release()


def test_a_failed_reservation_keeps_nothing(tmp_path: Path) -> None:
    pool = _free_pool(2)
    alloc = PortAllocator(tmp_path, pool)
    with pytest.raises(StackError):
        alloc.reserve(3)
    got = alloc.reserve(2)  # the two ports taken on the way were released
    assert sorted(r.port for r in got) == sorted(pool)
    for r in got:
        r.release()


def test_lock_file_names_the_holder(tmp_path: Path) -> None:
    r = PortAllocator(tmp_path, _free_pool(1)).reserve_one()
    assert (tmp_path / f"{r.port}.lock").read_text().strip().isdigit()
    r.release()


def test_a_released_port_leaves_no_lock_file(tmp_path: Path) -> None:
    r = PortAllocator(tmp_path, _free_pool(1)).reserve_one()
    assert (tmp_path / f"{r.port}.lock").exists()
    r.release()
    assert list(tmp_path.iterdir()) == []
    r.release()  # idempotent


def test_a_lock_file_deleted_under_a_waiting_opener_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B opened the lock file before A released (and deleted) it: B's lock on the old
    file must not count, or B and a later C would both hold the port."""
    import os

    alloc = PortAllocator(tmp_path, _free_pool(1))
    a = alloc.reserve_one()
    stale = os.open(tmp_path / f"{a.port}.lock", os.O_RDWR)  # B's open, before the release
    a.release()
    c = alloc.reserve_one()  # C creates a new file: the port is C's
    assert c.port == a.port
    c.release()
    c = alloc.reserve_one()
    monkeypatch.setattr(os, "open", lambda *_a, **_k: stale)
    assert alloc._try(c.port) is None  # B gets the lock of a deleted file: not the port
    monkeypatch.undo()
    c.release()


def test_a_port_found_bound_leaves_no_lock_file(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert PortAllocator(tmp_path, [taken])._try(taken) is None
    assert list(tmp_path.iterdir()) == []


def test_gc_removes_unused_lock_files_and_never_a_held_one(tmp_path: Path) -> None:
    from l2chaos.backends.ports import remove_unused_locks

    held = PortAllocator(tmp_path, _free_pool(1)).reserve_one()
    (tmp_path / "12345.lock").write_text("999\n")  # left by an older version
    assert remove_unused_locks(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [f"{held.port}.lock"]
    held.release()
