"""Jepsen-style operation history: writing, classifying, merging, checking.

Every client operation is an `invoke` record followed by exactly one completion:
`ok` (acknowledged; a write carries its id/hash), `fail` (definitely did not happen:
HTTP 4xx, a rejected receipt, a refused connection) or `info` (unknown: timeout,
connection reset, HTTP 5xx). A process that saw `info` is never reused. The format is
pinned in docs/architecture.md ("history.jsonl").

Each Locust worker writes its own worker log with `HistoryWriter`: compact entries in
batches, written when the buffer fills, when the caller flushes (every 0.5 s) and at the
end; the worker formats no record and may leave a read's answer undecoded (its outcome
decided at the merge, exactly as at request time). `merge_histories` turns the worker
logs into records and merges them in `t_ns` order into run_dir/history.jsonl in one
streaming pass (a k-way merge: memory is bounded by the operations in flight, not the
length of the run), closing operations a killed worker left open with a synthetic
`info`. `check_history` verifies a merged file is well formed. Nothing here imports
Locust or gevent.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic_ns, time_ns
from typing import Any, NamedTuple

import orjson

__all__ = [
    "COMPLETIONS",
    "READ_OPS",
    "WRITE_OPS",
    "HistoryCheck",
    "HistoryWriter",
    "MergeStats",
    "OpHandle",
    "Outcome",
    "check_history",
    "classify_http",
    "classify_rpc",
    "describe_error",
    "merge_histories",
    "parse_json",
    "worker_records",
    "write_id",
]

WRITE_OPS = frozenset({"place_order", "cancel_order", "deposit", "withdraw"})
READ_OPS = frozenset(
    {
        "get_markets",
        "get_account",
        "get_positions",
        "get_orders",
        "rpc_block_number",
        "rpc_get_block",
        "rpc_get_receipt",
    }
)
COMPLETIONS = frozenset({"ok", "fail", "info"})
# Fields of a write's result that identify it in the stack's record (any one suffices).
WRITE_ID_FIELDS = ("tx_hash", "order_id", "nonce")


class Outcome(NamedTuple):
    """How an operation ended: `type` is ok, fail or info; `error` says why if not ok."""

    type: str
    error: str | None = None


# ------------------------------------------------------------------------- writing


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
_IDENT_CACHE_MAX = 10_000


def _enc(obj: Any) -> str:
    """Compact JSON of `obj` (values JSON has no type for, such as Decimal, as text):
    orjson, five times faster than the standard library on a record's small objects."""
    try:
        return orjson.dumps(obj, default=str).decode()
    except TypeError:
        return _enc_std(obj)


def parse_json(content: bytes | None) -> Any:
    """The JSON value of a response body, None when it is empty or not JSON (orjson;
    what it refuses, such as integers beyond 64 bits or NaN, through the standard
    library)."""
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(content)
    except ValueError:  # UnicodeDecodeError included
        return None


# A worker's file (history/worker-<n>.jsonl) is its worker log, format 2: a header line
# {"l2chaos_worker_history": 2, "worker": n, "protocol": name}, then one JSON object per
# written batch, {"o": offset_ns, "e": [entry, ...]}, each entry an array:
#   ["p", ident, process, persona, account, op, write]  names the fields of `ident`
#   ["i", seq, mono_ns, ident, args, step]               an invoke (op_id w<n>-<seq>)
#   [type, seq, mono_ns, result, error]                  its ok / fail / info
#   ["r", seq, mono_ns, body]                            a 2xx read kept undecoded: its
#        outcome and result are the header protocol's `read_result(op, body)`
# Entries carry the monotonic clock; t_ns = mono_ns + offset_ns, the wall clock's offset
# when the batch was written. A batch orjson refuses (an integer beyond 64 bits, a
# non-string key, a lone surrogate) is written by the standard library, its line
# prefixed with "J". `worker_records` and the merge turn entries into the records of
# history.jsonl (docs/architecture.md); format 1, one such record per line (what
# earlier versions wrote), is still read.
WORKER_FORMAT = 2
_HEADER_KEY = "l2chaos_worker_history"
_STDLIB_MARK = "J"


def _encode_batch(batch: list[tuple[Any, ...]]) -> bytes:
    obj = {"o": time_ns() - monotonic_ns(), "e": batch}
    try:
        return orjson.dumps(obj, default=str) + b"\n"
    except TypeError:
        text = json.dumps(obj, default=str, separators=(",", ":"))
        return (_STDLIB_MARK + text + "\n").encode("ascii")


class OpHandle:
    """An invoked operation that still needs its completion."""

    __slots__ = ("done", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.done = False


class HistoryWriter:
    """Appends one worker's operations to its worker log through a batch buffer.

    Recording an operation is two tuple appends on the request path; nothing is
    formatted per record. A full buffer, `flush` (every 0.5 s in a Locust worker) and
    `close` encode the buffer in one orjson call and write it with one system call (the
    worker log format above); the merge writes the history.jsonl records. `args` and
    `result` are encoded when their batch is written: do not change them after handing
    them over. Not thread-safe: one writer per process (Locust users are greenlets of
    one thread).

    The fields that repeat per process (process, persona, account, op) are written once
    as an *ident*, a number never reused; a caller may keep `ident(...)` for `invoke_as`.
    """

    def __init__(
        self,
        path: Path,
        worker: int,
        *,
        buffer_records: int = 4096,
        write_ops: frozenset[str] = WRITE_OPS,
        protocol: str = "perpdex",
    ) -> None:
        self.path = path
        self.worker = int(worker)
        self.write_ops = write_ops
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._buf: list[tuple[Any, ...]] = []
        self._buffer_records = buffer_records
        self._next = 0
        self._next_ident = 0
        self._idents: dict[tuple[str, str, int | None, str], int] = {}
        # written with the first batch: an empty log is one where nothing was recorded
        self._header: bytes | None = orjson.dumps(
            {_HEADER_KEY: WORKER_FORMAT, "worker": self.worker, "protocol": protocol}
        )

    def ident(self, process: str, persona: str, account: int | None, op: str) -> int:
        """The ident of these fields (defined in the log the first time)."""
        key = (process, persona, account, op)
        ident = self._idents.get(key)
        if ident is None:
            if len(self._idents) >= _IDENT_CACHE_MAX:
                self._idents.clear()  # a key seen again gets a new ident
            ident = self._next_ident
            self._next_ident += 1
            self._idents[key] = ident
            self._buf.append(("p", ident, process, persona, account, op, op in self.write_ops))
        return ident

    def invoke(
        self,
        *,
        process: str,
        persona: str,
        account: int | None,
        op: str,
        args: Mapping[str, Any],
        step: int | None = None,
    ) -> OpHandle:
        """Record an invoke now; return the handle to complete it with."""
        return self.invoke_as(self.ident(process, persona, account, op), args, step)

    def invoke_as(self, ident: int, args: Mapping[str, Any], step: int | None = None) -> OpHandle:
        """`invoke` with the ident of its fields (see `ident`)."""
        if self._fd < 0:
            raise ValueError(f"history {self.path} is closed")
        seq = self._next
        self._next = seq + 1
        buf = self._buf
        buf.append(("i", seq, monotonic_ns(), ident, args or None, step))
        if len(buf) >= self._buffer_records:
            self._drain()
        return OpHandle(seq)

    def complete(
        self,
        handle: OpHandle,
        type_: str,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record the completion of `handle` (ok, fail or info). A second call is an error."""
        if type_ not in COMPLETIONS:
            raise ValueError(f"completion type must be ok, fail or info, got {type_!r}")
        self._done(handle, (type_, handle.seq, monotonic_ns(), result, error))

    def complete_raw(self, handle: OpHandle, body: str) -> None:
        """Record a read answered 2xx with its body undecoded: the merge decides its
        outcome and result with the protocol's `read_result` (ok with what it keeps of
        the body, or fail when the body is not JSON), as the caller would have."""
        self._done(handle, ("r", handle.seq, monotonic_ns(), body))

    def _done(self, handle: OpHandle, entry: tuple[Any, ...]) -> None:
        if handle.done:
            raise ValueError(f"operation w{self.worker}-{handle.seq} is already complete")
        if self._fd < 0:
            raise ValueError(f"history {self.path} is closed")
        handle.done = True
        buf = self._buf
        buf.append(entry)
        if len(buf) >= self._buffer_records:
            self._drain()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _drain(self) -> None:
        if self._fd >= 0 and self._buf:
            data = _encode_batch(self._buf)
            self._buf.clear()
            if self._header is not None:
                data, self._header = self._header + b"\n" + data, None
            self._write(data)

    def flush(self) -> None:
        """Write the buffered records to the file (the caller does this now and then)."""
        self._drain()

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self._drain()
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1


# ---------------------------------------------------------------------- classifying


def _root_cause(exc: BaseException) -> BaseException:
    seen = 0
    while seen < 5:
        inner = getattr(exc, "original", None)
        if not isinstance(inner, BaseException):
            break
        exc = inner
        seen += 1
    return exc


def describe_error(exc: BaseException) -> str:
    """A short, stable description of a transport error for the history."""
    root = _root_cause(exc)
    name = type(root).__name__
    if isinstance(root, (TimeoutError, socket.timeout)) or "Timeout" in name:
        return "timeout"
    if isinstance(root, ConnectionRefusedError):
        return "connection refused"
    if isinstance(root, ConnectionResetError):
        return "connection reset"
    if isinstance(root, (BrokenPipeError,)):
        return "broken pipe"
    if "ConnectionClosed" in name:
        return "connection closed before the response"
    text = str(root)
    return f"{name}: {text}" if text else name


def _error_text(body: Any) -> str:
    """The `{"error": {"code", "message", "field"}}` of the stack, as one string."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            parts = [str(err[k]) for k in ("code", "field", "message") if err.get(k) is not None]
            return ": ".join(parts)
        if isinstance(err, str):
            return err
    return ""


def classify_http(status: int, exc: BaseException | None, body: Any = None) -> Outcome:
    """Classify an HTTP exchange by transport and status; a 2xx is `ok` here (a write's
    body is judged separately by `write_id`).

    - refused connection: `fail` (the request never reached the server);
    - any other transport error (timeout, reset, closed): `info`;
    - 5xx, 1xx and 3xx: `info` (the server may have acted); 4xx: `fail`.
    """
    if exc is not None and status == 0:
        root = _root_cause(exc)
        if isinstance(root, ConnectionRefusedError):
            return Outcome("fail", "connection refused")
        return Outcome("info", describe_error(exc))
    if 200 <= status < 300:
        return Outcome("ok")
    detail = _error_text(body)
    text = f"HTTP {status}" + (f": {detail}" if detail else "")
    if 400 <= status < 500:
        return Outcome("fail", text)
    return Outcome("info", text)


def classify_rpc(body: Any) -> Outcome:
    """Classify a JSON-RPC 2.0 response body that came with HTTP 200.

    An error object is `info` when it is an internal or server error (-32603,
    -32000..-32099: the node may have failed mid-way) and `fail` otherwise (parse error,
    invalid request or params, method not found, a definite application error).
    """
    if not isinstance(body, Mapping):
        return Outcome("info", "not a JSON-RPC response")
    err = body.get("error")
    if err is None and "result" in body:
        return Outcome("ok")
    if not isinstance(err, Mapping):
        return Outcome("info", "JSON-RPC response without result or error")
    code = err.get("code")
    text = f"JSON-RPC {code}: {err.get('message', '')}".rstrip(": ")
    if isinstance(code, int) and (code == -32603 or -32099 <= code <= -32000):
        return Outcome("info", text)
    return Outcome("fail", text)


def write_id(result: Mapping[str, Any] | None) -> str | None:
    """The identifying field of a write's result (tx_hash, order_id or nonce), if any."""
    if not result:
        return None
    for key in WRITE_ID_FIELDS:
        if result.get(key) not in (None, ""):
            return key
    return None


# -------------------------------------------------------------------------- merging

_HEAD = re.compile(r'^\{"t_ns":(\d+),"mono_ns":(-?\d+|null),"type":"(\w+)","op_id":"([^"]*)"')


class _Rec(NamedTuple):
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
        return {
            "files": self.files,
            "records": self.records,
            "operations": self.operations,
            "by_type": dict(self.by_type),
            "closed_at_end": self.closed_at_end,
            "partial_lines": self.partial_lines,
            "bad_lines": self.bad_lines,
        }


def _records(path: Path, stats: MergeStats) -> Iterator[_Rec]:
    """The history records of one worker file, in its order (format 2 or 1)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
        if first.startswith('{"' + _HEADER_KEY + '"'):
            yield from _records_v2(f, first, stats)
        else:
            yield from _records_v1(itertools.chain((first,) if first else (), f), stats)


def _records_v1(lines: Iterable[str], stats: MergeStats) -> Iterator[_Rec]:
    for line in lines:
        if not line.endswith("\n"):
            stats.partial_lines += 1
            return
        m = _HEAD.match(line)
        if m is not None:
            yield _Rec(int(m.group(1)), m.group(3), m.group(4), line)
            continue
        try:
            rec = json.loads(line)
            yield _Rec(int(rec["t_ns"]), str(rec["type"]), str(rec["op_id"]), line)
        except (ValueError, KeyError, TypeError):
            if line.strip():
                stats.bad_lines += 1


ReadResult = Callable[[str, str], tuple[Outcome, Any]]


def _read_result(name: str) -> ReadResult:
    """The `read_result` of the protocol a worker log names (imported only when a log
    holds undecoded reads: the protocols import this module)."""
    from .protocols import protocol

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

    def invoke(self, e: list[Any], offset: int) -> _Rec:
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
        return _Rec(t, "invoke", op_id, line)

    def complete(self, e: list[Any], offset: int) -> _Rec:
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
        return _Rec(t, typ, op_id, line)


def _records_v2(lines: Iterable[str], header: str, stats: MergeStats) -> Iterator[_Rec]:
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
    for rec in _records(path, MergeStats()):
        yield json.loads(rec.line)


def merge_histories(
    inputs: Sequence[Path], out: Path, *, end_t_ns: int | None = None
) -> MergeStats:
    """Merge per-worker history files into `out` in `t_ns` order (streaming k-way merge).

    Each input keeps its own order (an invoke always precedes its completion). An
    invoke that has no completion when its file ends (the worker was killed) is closed
    with an `info` record marked `"synthetic": true` at `end_t_ns` (or the last time
    seen), so every invoke in the result has exactly one completion. Written to a
    temporary file and renamed, so `out` is either complete or absent.
    """
    stats = MergeStats(files=len(inputs))
    open_ops: dict[str, str] = {}
    last_t = 0
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", buffering=1 << 20) as w:
        streams = [_records(p, stats) for p in inputs]
        for rec in heapq.merge(*streams, key=lambda r: r.t_ns):
            if rec.type == "invoke":
                if rec.op_id in open_ops:
                    stats.bad_lines += 1
                    continue
                open_ops[rec.op_id] = rec.line
                stats.operations += 1
            elif rec.type in COMPLETIONS:
                if open_ops.pop(rec.op_id, None) is None:
                    stats.bad_lines += 1  # a completion without its invoke
                    continue
                stats.by_type[rec.type] += 1
            else:
                stats.bad_lines += 1
                continue
            w.write(rec.line)
            stats.records += 1
            last_t = max(last_t, rec.t_ns)
        t_end = max(last_t, end_t_ns or 0)
        for line in open_ops.values():
            inv = json.loads(line)
            closing = {
                "t_ns": t_end,
                "mono_ns": None,
                "type": "info",
                "op_id": inv["op_id"],
                "process": inv.get("process"),
                "worker": inv.get("worker"),
                "persona": inv.get("persona"),
                "account": inv.get("account"),
                "op": inv.get("op"),
                "result": None,
                "error": "no completion recorded: the worker stopped before the operation ended",
                "latency_ms": None,
                "synthetic": True,
            }
            w.write(json.dumps(closing, separators=(",", ":")) + "\n")
            stats.records += 1
            stats.closed_at_end += 1
            stats.by_type["info"] += 1
    os.replace(tmp, out)
    return stats


# ------------------------------------------------------------------------- checking


@dataclass
class HistoryCheck:
    """Result of `check_history`: counts and the problems found (the first 50 kept)."""

    records: int = 0
    operations: int = 0
    by_type: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("ok", "fail", "info"), 0)
    )
    by_op: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < 50:
            self.problems.append(text)


_INVOKE_FIELDS = (
    "t_ns",
    "mono_ns",
    "op_id",
    "process",
    "worker",
    "persona",
    "account",
    "op",
    "args",
)
_DONE_FIELDS = ("t_ns", "op_id", "process", "worker", "op", "result", "error")


def check_history(path: Path) -> HistoryCheck:
    """Verify a merged history: every line a record; `t_ns` never decreases; every
    invoke has exactly one later completion of the same process and op; a process has
    one operation in flight at a time and is never reused after `info`; every `ok`
    write carries an id (tx_hash, order_id or nonce). Streams the file."""
    chk = HistoryCheck()
    open_ops: dict[str, dict[str, Any]] = {}
    busy: dict[str, str] = {}  # process -> op_id in flight
    retired: set[str] = set()  # processes that saw info
    seen_ids: set[str] = set()
    last_t = -1
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
            except ValueError:
                chk.problem(f"line {n}: not JSON")
                continue
            chk.records += 1
            typ = rec.get("type")
            t = rec.get("t_ns")
            if not isinstance(t, int):
                chk.problem(f"line {n}: t_ns missing")
                continue
            if t < last_t:
                chk.problem(f"line {n}: t_ns {t} before the previous record's {last_t}")
            last_t = max(last_t, t)
            op_id = str(rec.get("op_id"))
            proc = rec.get("process")
            if typ == "invoke":
                missing = [k for k in _INVOKE_FIELDS if k not in rec]
                if missing:
                    chk.problem(f"line {n}: invoke without {', '.join(missing)}")
                if op_id in seen_ids:
                    chk.problem(f"line {n}: op_id {op_id} invoked twice")
                    continue
                seen_ids.add(op_id)
                if proc in retired:
                    chk.problem(f"line {n}: process {proc} reused after an info")
                if proc in busy:
                    chk.problem(f"line {n}: process {proc} already has {busy[proc]} in flight")
                busy[proc] = op_id
                open_ops[op_id] = rec
                chk.operations += 1
            elif typ in COMPLETIONS:
                missing = [k for k in _DONE_FIELDS if k not in rec]
                if missing:
                    chk.problem(f"line {n}: {typ} without {', '.join(missing)}")
                inv = open_ops.pop(op_id, None)
                if inv is None:
                    what = "completed twice" if op_id in seen_ids else "never invoked"
                    chk.problem(f"line {n}: {typ} for {op_id}, which was {what}")
                    continue
                if inv.get("process") != proc or inv.get("op") != rec.get("op"):
                    chk.problem(f"line {n}: {op_id} completed by another process or op")
                busy.pop(str(inv.get("process")), None)
                if typ == "info":
                    retired.add(proc)
                if (
                    typ == "ok"
                    and rec.get("op") in WRITE_OPS
                    and write_id(rec.get("result")) is None
                ):
                    chk.problem(
                        f"line {n}: ok {rec.get('op')} {op_id} without tx_hash/order_id/nonce"
                    )
                chk.by_type[typ] += 1
                per = chk.by_op.setdefault(
                    str(rec.get("op")), dict.fromkeys(("ok", "fail", "info"), 0)
                )
                per[typ] += 1
            else:
                chk.problem(f"line {n}: unknown type {typ!r}")
    for op_id in open_ops:
        chk.problem(f"{op_id}: invoked but never completed")
    return chk
