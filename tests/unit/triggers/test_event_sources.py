"""Where events come from: a stack's event stream (stack.yaml `events:`), followed by
a poller with a cursor, and the probe loop's readiness flips."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from l2chaos.errors import StackSpecError
from l2chaos.eventsource import EventPoller, EventSourceSpec
from l2chaos.probe import Sample
from l2chaos.signals import EventFeed, ProbeEvents
from l2chaos.stackspec import load_stack

SOURCE = EventSourceSpec(
    service="rpc",
    jsonrpc="getEvents",
    params={"filter": {"chunk_size": 2}},
    cursor_param="filter.from_seq",
    cursor_from="last_seq",
    kinds_param="filter.kinds",
    time="ts",
    block="block",
    kinds=("fill", "funding_index"),
    aliases={"funding_tick": "funding_index"},
)


class Stream:
    """A JSON-RPC event stream like perpdex's starknet_getEvents (seq cursor, kinds filter)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []

    def add(self, kind: str, ts: int) -> None:
        self.events.append({"seq": len(self.events) + 1, "kind": kind, "ts": ts, "block": 3})

    def answer(self, params: dict[str, Any]) -> dict[str, Any]:
        f = params["filter"]
        self.requests.append(f)
        after = int(f.get("from_seq", 0))
        rows = [e for e in self.events if e["seq"] > after and e["kind"] in f["kinds"]]
        rows = rows[: f["chunk_size"]]
        return {"events": rows, "last_seq": rows[-1]["seq"] if rows else after}


@pytest.fixture
def stream() -> Iterator[tuple[Stream, str]]:
    state = Stream()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            out = json.dumps(
                {"jsonrpc": "2.0", "id": body["id"], "result": state.answer(body["params"])}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(out.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_the_poller_skips_history_pages_and_publishes_aliases(stream: tuple[Stream, str]) -> None:
    state, url = stream
    t0 = time.time_ns()
    for _ in range(3):
        state.add("funding_index", t0 - 1000)  # history: three pages of two
    state.add("fill", t0 - 500)
    poller = EventPoller(SOURCE, url, ["funding_tick"])
    poller.prime()
    feed = EventFeed(t0, ["funding_tick"])
    stop = threading.Event()
    poller.start(feed)
    try:
        state.add("fill", t0 + 10)
        state.add("funding_index", t0 + 20)
        seen = feed.wait_for("funding_tick", 0, stop)
    finally:
        poller.stop()
    assert seen is not None
    assert (seen.offset_ns, seen.block, seen.details["seq"]) == (20, 3, 6)
    assert all(r["kinds"] == ["funding_index"] for r in state.requests)
    assert state.requests[0].get("from_seq") is None
    assert state.requests[1]["from_seq"] == 2


def test_probe_samples_become_readiness_events() -> None:
    feed = EventFeed(0, ["not_ready.db", "ready.db", "order_probe_failed"])
    events = ProbeEvents(feed)
    for t, ready, order in [(1, True, True), (2, False, False), (3, True, False)]:
        events(Sample(t, t, {"db": ready}, {"db": ready}, 10 + t, order, None, None))
    stop = threading.Event()
    stop.set()
    got = {n: feed.wait_for(n, 0, stop) for n in ("not_ready.db", "ready.db", "order_probe_failed")}
    assert {n: (e.offset_ns, e.block) for n, e in got.items() if e} == {
        "not_ready.db": (2, 12),
        "ready.db": (3, 13),
        "order_probe_failed": (2, 12),
    }


STACK = """\
name: s
services:
  rpc: {command: ["{python}", "-m", "x"], port: 8000}
events:
  poll: {service: rpc, jsonrpc: getEvents, cursor: {param: filter.from_seq, from: last_seq}}
  kinds: [fill]
"""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("  aliases: {tick: funding}\n", "events.aliases.tick: 'funding' is not one of `kinds`"),
        ("  extra: 1\n", "events.extra: unknown key 'extra'"),
    ],
)
def test_a_bad_events_section_names_its_field(tmp_path: Path, change: str, expected: str) -> None:
    (tmp_path / "stack.yaml").write_text(STACK + change)
    with pytest.raises(StackSpecError) as info:
        load_stack(tmp_path / "stack.yaml")
    assert expected in str(info.value)


def test_an_events_source_needs_a_method_or_a_path(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(STACK.replace("jsonrpc: getEvents, ", ""))
    with pytest.raises(StackSpecError) as info:
        load_stack(tmp_path / "stack.yaml")
    assert "stack.yaml:5: events.poll: give either `jsonrpc` (a method) or `path`" in str(
        info.value
    )
