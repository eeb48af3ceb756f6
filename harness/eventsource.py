"""A stack's event stream, for `{event: ...}` triggers: the `events:` section of
stack.yaml and the poller that follows it during a run.

    events:
      poll:
        service: rpc                       # reached directly, like the probes
        jsonrpc: starknet_getEvents        # a JSON-RPC method (POST), or `path:` for HTTP GET
        params: {filter: {chunk_size: 1000}}
        cursor: {param: filter.from_seq, from: last_seq}   # resume point: sent / read back
        kinds_param: filter.kinds          # optional: the wanted names are sent here
        items: events                      # the list of events in the answer
        name: kind                         # each event's name
        time: host_ts_ns                   # optional: its UTC ns (else: when it was seen)
        block: block                       # optional: its block height
        interval: 200ms                    # pause when nothing new came
      kinds: [fill, liquidation, ...]      # the names it reports (validation)
      aliases: {funding_tick: funding_index}

Paths are dotted (`filter.from_seq`). The poller pages until an answer has no events,
then waits `interval`. It is primed before time zero (everything already there is
history, never a trigger), and an answer it cannot read is retried at the next
interval. Besides the stream, the probe loop reports readiness flips
(`l2chaos.signals.probe_event_names`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from .durations import parse_duration
from .signals import EventFeed, probe_event_names

__all__ = ["EventPoller", "EventSourceSpec", "parse_events", "stack_event_names"]

_POLL_KEYS = {
    "service", "jsonrpc", "path", "params", "cursor", "kinds_param", "items", "name", "time",
    "block", "interval",
}  # fmt: skip
_MAX_PAGES = 10_000  # per drain; bounded


class _Ctx(Protocol):
    """stackspec's error helpers."""

    def err(self, field: str, problem: str, container: object = None, key: Any = None) -> Any: ...

    def mapping(self, value: Any, field: str, container: object, key: Any) -> Any: ...

    def keys(self, d: Any, field: str, allowed: set[str], required: set[str] = ...) -> None: ...


@dataclass(frozen=True)
class EventSourceSpec:
    service: str
    jsonrpc: str | None = None
    path: str = "/"
    params: Mapping[str, Any] = field(default_factory=dict)
    cursor_param: str | None = None
    cursor_from: str | None = None
    kinds_param: str | None = None
    items: str = "events"
    name: str = "kind"
    time: str | None = None
    block: str | None = None
    interval_ns: int = 200_000_000
    kinds: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [*self.kinds, *self.aliases]

    def kind_of(self, name: str) -> str:
        return self.aliases.get(name, name)


def stack_event_names(spec: Any) -> list[str]:
    """Every event name a stack reports: its stream's kinds and aliases, and the probe
    loop's readiness flips."""
    names = probe_event_names(list(spec.services), "order" in spec.probes)
    source = getattr(spec, "events", None)
    return [*(source.names() if source is not None else ()), *names]


def parse_events(
    ctx: _Ctx, doc: Mapping[str, Any], services: Sequence[str]
) -> EventSourceSpec | None:
    if "events" not in doc:
        return None
    b = ctx.mapping(doc["events"], "events", doc, "events")
    ctx.keys(b, "events", {"poll", "kinds", "aliases"}, {"poll", "kinds"})
    p = ctx.mapping(b["poll"], "events.poll", b, "poll")
    ctx.keys(p, "events.poll", _POLL_KEYS, {"service"})
    if p["service"] not in services:
        raise ctx.err(
            "events.poll.service",
            f"unknown service {p['service']!r}; services: {', '.join(services)}",
            p,
            "service",
        )
    if ("jsonrpc" in p) == ("path" in p):
        raise ctx.err("events.poll", "give either `jsonrpc` (a method) or `path` (HTTP GET)", p)
    cursor = ctx.mapping(p.get("cursor", {}), "events.poll.cursor", p, "cursor")
    ctx.keys(
        cursor, "events.poll.cursor", {"param", "from"}, {"param", "from"} if cursor else set()
    )
    kinds = b["kinds"]
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
        raise ctx.err("events.kinds", f"expected a list of event names, got {kinds!r}", b, "kinds")
    aliases = ctx.mapping(b.get("aliases", {}), "events.aliases", b, "aliases")
    for alias, kind in aliases.items():
        if kind not in kinds:
            raise ctx.err(
                f"events.aliases.{alias}", f"{kind!r} is not one of `kinds`", aliases, alias
            )
    try:
        interval = parse_duration(p.get("interval", "200ms"))
    except ValueError as exc:
        raise ctx.err("events.poll.interval", str(exc), p, "interval") from None
    if interval <= 0:
        raise ctx.err("events.poll.interval", "must be positive", p, "interval")
    strings = {
        k: p.get(k) for k in ("jsonrpc", "path", "kinds_param", "items", "name", "time", "block")
    }
    for key, value in strings.items():
        if value is not None and not isinstance(value, str):
            raise ctx.err(f"events.poll.{key}", f"expected a string, got {value!r}", p, key)
    params = ctx.mapping(p.get("params", {}), "events.poll.params", p, "params")
    return EventSourceSpec(
        service=str(p["service"]),
        jsonrpc=strings["jsonrpc"],
        path=strings["path"] or "/",
        params=_plain(params),
        cursor_param=cursor.get("param"),
        cursor_from=cursor.get("from"),
        kinds_param=strings["kinds_param"],
        items=strings["items"] or "events",
        name=strings["name"] or "kind",
        time=strings["time"],
        block=strings["block"],
        interval_ns=interval,
        kinds=tuple(kinds),
        aliases={str(k): str(v) for k, v in aliases.items()},
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _get(data: Any, path: str | None) -> Any:
    if path is None:
        return None
    for part in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        child = data.get(part)
        if not isinstance(child, dict):
            child = data[part] = {}
        data = child
    data[last] = value


class EventPoller:
    """Follows a stack's event stream into an `EventFeed`."""

    def __init__(self, spec: EventSourceSpec, url: str, wanted: Sequence[str]) -> None:
        self._spec = spec
        self._url = url
        # the stream's kinds behind the wanted names (an alias and its kind are one kind)
        self._wanted = sorted({spec.kind_of(n) for n in wanted})
        self._names = {k: [n for n in wanted if spec.kind_of(n) == k] for k in self._wanted}
        self._cursor: Any = None
        self._http = httpx.Client(timeout=2.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rpc_id = 0
        self.errors = 0

    def _request(self) -> Any:
        s = self._spec
        params = _plain(s.params)
        if s.cursor_param and self._cursor is not None:
            _put(params, s.cursor_param, self._cursor)
        if s.kinds_param:
            _put(params, s.kinds_param, list(self._wanted))
        if s.jsonrpc is None:
            resp = self._http.get(self._url, params=params)
            resp.raise_for_status()
            return resp.json()
        self._rpc_id += 1
        body = {"jsonrpc": "2.0", "id": self._rpc_id, "method": s.jsonrpc, "params": params}
        resp = self._http.post(self._url, json=body)
        resp.raise_for_status()
        answer = resp.json()
        if not isinstance(answer, Mapping) or "result" not in answer:
            raise ValueError(f"no result: {str(answer)[:200]}")
        return answer["result"]

    def _page(self, feed: EventFeed | None) -> int:
        """One request; the number of events it brought (publishes them when `feed`)."""
        result = self._request()
        items = _get(result, self._spec.items)
        if not isinstance(items, list):
            raise ValueError(f"{self._spec.items!r} is not a list in the answer")
        nxt = _get(result, self._spec.cursor_from)
        if nxt is not None:
            self._cursor = nxt
        if feed is not None:
            for item in items:
                self._publish(feed, item)
        return len(items)

    def _publish(self, feed: EventFeed, item: Any) -> None:
        kind = _get(item, self._spec.name)
        if kind not in self._names:
            return
        t = _get(item, self._spec.time)
        block = _get(item, self._spec.block)
        details = {
            k: item[k] for k in ("seq", "kind", "tx") if isinstance(item, Mapping) and k in item
        }
        for name in self._names[kind]:
            feed.publish(
                name,
                t if isinstance(t, int) else time.time_ns(),
                block=block if isinstance(block, int) else None,
                details=details,
            )

    def prime(self, timeout_s: float = 30.0) -> None:
        """Skip what is already there: history never fires a trigger."""
        deadline = time.monotonic() + timeout_s
        for _ in range(_MAX_PAGES):
            if self._page(None) == 0 or time.monotonic() > deadline:
                return

    def start(self, feed: EventFeed) -> None:
        self._thread = threading.Thread(target=self._run, args=(feed,), name="events", daemon=True)
        self._thread.start()

    def _run(self, feed: EventFeed) -> None:
        while not self._stop.is_set():
            try:
                for _ in range(_MAX_PAGES):
                    if self._page(feed) == 0 or self._stop.is_set():
                        break
            except (httpx.HTTPError, ValueError):
                self.errors += 1  # the service is down or busy: next interval
            self._stop.wait(self._spec.interval_ns / 1e9)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._http.close()
