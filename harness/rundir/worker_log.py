"""history/worker-<n>.jsonl, the worker log: how each Locust worker records its
operations while the run goes, and how they are read back as history.jsonl records.

A worker's file (history/worker-<n>.jsonl) is its worker log, format 2: a header line
{"l2chaos_worker_history": 2, "worker": n, "protocol": name}, then one JSON object per
written batch, {"o": offset_ns, "e": [entry, ...]}, each entry an array:
  ["p", ident, process, persona, account, op, write]  names the fields of `ident`
  ["i", seq, mono_ns, ident, args, step]               an invoke (op_id w<n>-<seq>)
  [type, seq, mono_ns, result, error]                  its ok / fail / info
  ["r", seq, mono_ns, body]                            a 2xx read kept undecoded: its
       outcome and result are the header protocol's `read_result(op, body)`
Entries carry the monotonic clock; t_ns = mono_ns + offset_ns, the wall clock's offset
when the batch was written. A batch orjson refuses (an integer beyond 64 bits, a
non-string key, a lone surrogate) is written by the standard library, its line
prefixed with "J". `worker_records` and the merge turn entries into the records of
history.jsonl (docs/architecture.md); format 1, one such record per line (what
earlier versions wrote), is still read.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic_ns, time_ns
from typing import Any, NamedTuple

import orjson

from .operations import COMPLETIONS, Outcome

__all__ = [
    "WORKER_FORMAT",
    "MergeStats",
    "Rec",
    "encode_batch",
    "header_line",
    "records",
    "worker_records",
]

WORKER_FORMAT = 2
_HEADER_KEY = "l2chaos_worker_history"
_STDLIB_MARK = "J"


def header_line(worker: int, protocol: str) -> bytes:
    """The first line of a worker log (without its newline)."""
    return orjson.dumps({_HEADER_KEY: WORKER_FORMAT, "worker": worker, "protocol": protocol})


def encode_batch(batch: list[tuple[Any, ...]]) -> bytes:
    """One batch line of entries, stamped with the wall clock's offset now."""
    obj = {"o": time_ns() - monotonic_ns(), "e": batch}
    try:
        return orjson.dumps(obj, default=str) + b"\n"
    except TypeError:
        text = json.dumps(obj, default=str, separators=(",", ":"))
        return (_STDLIB_MARK + text + "\n").encode("ascii")


def _make_encoder() -> Callable[[Any], str]:
    """A compact JSON encoder built once (json.dumps builds one per call): the fallback
    of `_enc` for what orjson refuses (integers beyond 64 bits, non-string keys)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is not None:
        chunks = make(
            None, str, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )

        def enc(obj: Any) -> str:
            return "".join(chunks(obj, 0))

        return enc
    return json.JSONEncoder(separators=(",", ":"), default=str).encode  # pragma: no cover


_enc_std = _make_encoder()
_str = json.encoder.encode_basestring_ascii


def _enc(obj: Any) -> str:
    """Compact JSON of `obj` (values JSON has no type for, such as Decimal, as text):
    orjson, five times faster than the standard library on a record's small objects."""
    try:
        return orjson.dumps(obj, default=str).decode()
    except TypeError:
        return _enc_std(obj)


_HEAD = re.compile(r'^\{"t_ns":(\d+),"mono_ns":(-?\d+|null),"type":"(\w+)","op_id":"([^"]*)"')


class Rec(NamedTuple):
    """One history.jsonl record as a line, with what the merge orders and pairs by."""

    t_ns: int
    type: str
    op_id: str
    line: str


@dataclass
class MergeStats:
    """What a merge saw."""

    files: int = 0
    records: int = 0
    operations: int = 0
    by_type: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("ok", "fail", "info"), 0)
    )
    closed_at_end: int = 0  # invokes without completion, closed with a synthetic info
    partial_lines: int = 0  # a last line cut short by a killed worker, dropped
    bad_lines: int = 0  # lines that are not history records, dropped

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def records(path: Path, stats: MergeStats) -> Iterator[Rec]:
    """The history records of one worker file, in its order (format 2 or 1)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
        if first.startswith('{"' + _HEADER_KEY + '"'):
            yield from _records_v2(f, first, stats)
        else:
            yield from _records_v1(itertools.chain((first,) if first else (), f), stats)


def _records_v1(lines: Iterable[str], stats: MergeStats) -> Iterator[Rec]:
    for line in lines:
        if not line.endswith("\n"):
            stats.partial_lines += 1
            return
        m = _HEAD.match(line)
        if m is not None:
            yield Rec(int(m.group(1)), m.group(3), m.group(4), line)
            continue
        try:
            rec = json.loads(line)
            yield Rec(int(rec["t_ns"]), str(rec["type"]), str(rec["op_id"]), line)
        except (ValueError, KeyError, TypeError):
            if line.strip():
                stats.bad_lines += 1


ReadResult = Callable[[str, str], tuple[Outcome, Any]]


def _read_result(name: str) -> ReadResult:
    """The `read_result` of the protocol a worker log names (imported only when a log
    holds undecoded reads: the protocols import this module)."""
    from l2chaos.load.protocols import protocol

    return protocol(name).read_result


class _WorkerLog:
    """Turns the entries of a format-2 worker log into history.jsonl records, formatted
    as format 1 wrote them."""

    def __init__(self, header: Mapping[str, Any]) -> None:
        self.worker = int(header["worker"])
        self.protocol = str(header.get("protocol") or "perpdex")
        self.prefix = f"w{self.worker}-"
        self.idents: dict[int, tuple[str, str]] = {}  # ident -> (encoded fields, op)
        self.open: dict[int, tuple[str, int, str]] = {}  # seq -> (fields, invoke mono, op)
        self._read: ReadResult | None = None

    def define(self, e: list[Any]) -> None:
        _, ident, process, persona, account, op, write = e
        fields = (
            f',"process":{_enc(process)},"worker":{self.worker},"persona":{_enc(persona)}'
            f',"account":{_enc(account)},"op":{_enc(op)}'
        )
        self.idents[int(ident)] = (fields + (',"write":true' if write else ""), str(op))

    def invoke(self, e: list[Any], offset: int) -> Rec:
        _, seq, m, ident, args, step = e
        m = int(m)
        t = m + offset
        fields, op = self.idents[ident]
        op_id = f"{self.prefix}{int(seq)}"
        a = "{}" if not args else _enc(args)
        tail = "}\n" if step is None else f',"step":{int(step)}}}\n'
        if seq in self.open:
            raise ValueError(f"{op_id} invoked twice")
        self.open[seq] = (fields, m, op)
        line = (
            f'{{"t_ns":{t},"mono_ns":{m},"type":"invoke","op_id":"{op_id}"{fields},"args":{a}{tail}'
        )
        return Rec(t, "invoke", op_id, line)

    def complete(self, e: list[Any], offset: int) -> Rec:
        fields, mono, op = self.open.pop(e[1])
        if e[0] == "r":
            _, seq, m, body = e
            if self._read is None:
                self._read = _read_result(self.protocol)
            try:
                outcome, result = self._read(op, str(body))
                typ, error = outcome.type, outcome.error
            except Exception as exc:  # a bug in the protocol: the same record as at once
                typ, result, error = "info", None, f"interrupted: {type(exc).__name__}: {exc}"
        else:
            typ, seq, m, result, error = e
        if typ not in COMPLETIONS:
            raise ValueError(f"unknown entry {typ!r}")
        m = int(m)
        t = m + offset
        op_id = f"{self.prefix}{int(seq)}"
        res = "null" if result is None else _enc(result)
        err = "null" if error is None else _str(str(error))
        lat = (m - mono) // 1000 / 1000  # ms, to the microsecond
        line = (
            f'{{"t_ns":{t},"mono_ns":{m},"type":"{typ}","op_id":"{op_id}"{fields}'
            f',"result":{res},"error":{err},"latency_ms":{lat}}}\n'
        )
        return Rec(t, typ, op_id, line)


def _records_v2(lines: Iterable[str], header: str, stats: MergeStats) -> Iterator[Rec]:
    try:
        log = _WorkerLog(json.loads(header))
    except (ValueError, KeyError, TypeError):
        stats.bad_lines += 1
        return
    for line in lines:
        if not line.endswith("\n"):
            stats.partial_lines += 1  # a batch cut short by a killed worker
            return
        try:
            if line.startswith(_STDLIB_MARK):
                batch = json.loads(line[len(_STDLIB_MARK) :])
            else:
                batch = orjson.loads(line)
            offset, entries = int(batch["o"]), list(batch["e"])
        except (ValueError, KeyError, TypeError):
            stats.bad_lines += 1
            continue
        for e in entries:
            try:
                if e[0] == "p":
                    log.define(e)
                elif e[0] == "i":
                    yield log.invoke(e, offset)
                else:
                    yield log.complete(e, offset)
            except (ValueError, KeyError, TypeError, IndexError):
                stats.bad_lines += 1  # malformed, or a completion without its invoke


def worker_records(path: Path) -> Iterator[dict[str, Any]]:
    """The history records of one worker file (format 2 or 1) as history.jsonl holds
    them, in the file's order; a batch still being written is left out (so a file of a
    running worker can be read)."""
    for rec in records(path, MergeStats()):
        yield json.loads(rec.line)
