"""Jepsen-style operation history on the load side: recording and classifying.

Every client operation is an `invoke` record followed by exactly one completion:
`ok` (acknowledged; a write carries its id/hash), `fail` (definitely did not happen:
HTTP 4xx, a rejected receipt, a refused connection) or `info` (unknown: timeout,
connection reset, HTTP 5xx). A process that saw `info` is never reused. The format is
pinned in docs/architecture.md ("history.jsonl").

Each Locust worker writes its own worker log with `HistoryWriter`: compact entries in
batches, written when the buffer fills, when the caller flushes (every 0.5 s) and at the
end; the worker formats no record and may leave a read's answer undecoded (its outcome
decided at the merge, exactly as at request time). The formats, their readers, the
merge into history.jsonl and its check live with the run directory
(`l2chaos.rundir.worker_log`, `l2chaos.rundir.history`); they are re-exported here.
Nothing here imports Locust or gevent.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from time import monotonic_ns
from typing import Any

import orjson
from l2chaos.rundir.history import HistoryCheck, check_history, merge_histories
from l2chaos.rundir.operations import COMPLETIONS, READ_OPS, WRITE_OPS, Outcome, write_id
from l2chaos.rundir.worker_log import MergeStats, encode_batch, header_line, worker_records

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

_IDENT_CACHE_MAX = 10_000

# ------------------------------------------------------------------------- writing


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
        self._header: bytes | None = header_line(self.worker, protocol)

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
        seq = self._next
        self._next = seq + 1
        buf = self._buf
        buf.append(("i", seq, monotonic_ns(), ident, args or None, step))
        if len(buf) >= self._buffer_records:  # always, once closed: _drain refuses
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

    def settle(
        self,
        handle: OpHandle,
        outcome: Outcome,
        result: Mapping[str, Any] | None,
        retire: Callable[[], None],
    ) -> None:
        """Complete `handle` with `outcome`; after an `info` the caller's process may have
        a write in limbo, so `retire` gives it a new one."""
        self.complete(handle, outcome.type, result, outcome.error)
        if outcome.type == "info":
            retire()

    def interrupted(self, handle: OpHandle, exc: BaseException, retire: Callable[[], None]) -> None:
        """Complete `handle` as `info` for an operation cut short by `exc` (GreenletExit
        at stop, or a bug: never leave it open), then `retire` the process."""
        self.complete(handle, "info", None, f"interrupted: {type(exc).__name__}: {exc}")
        retire()

    def complete_raw(self, handle: OpHandle, body: str) -> None:
        """Record a read answered 2xx with its body undecoded: the merge decides its
        outcome and result with the protocol's `read_result` (ok with what it keeps of
        the body, or fail when the body is not JSON), as the caller would have."""
        self._done(handle, ("r", handle.seq, monotonic_ns(), body))

    def _done(self, handle: OpHandle, entry: tuple[Any, ...]) -> None:
        if handle.done:
            raise ValueError(f"operation w{self.worker}-{handle.seq} is already complete")
        buf = self._buf
        buf.append(entry)
        if len(buf) >= self._buffer_records:  # always, once closed: _drain refuses
            self._drain()
        handle.done = True

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _drain(self) -> None:
        if self._fd < 0:
            self._buf.clear()
            raise ValueError(f"history {self.path} is closed")
        if self._buf:
            data = encode_batch(self._buf)
            self._buf.clear()
            if self._header is not None:
                data, self._header = self._header + b"\n" + data, None
            self._write(data)

    def flush(self) -> None:
        """Write the buffered records to the file (the caller does this now and then;
        nothing once closed)."""
        if self._fd >= 0:
            self._drain()

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self._drain()
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1
                self._buffer_records = 0  # every later entry reaches _drain, which refuses


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


def classify_rpc(body: Any, *, server_errors_unknown: bool = True) -> Outcome:
    """Classify a JSON-RPC 2.0 response body that came with HTTP 200.

    An error object is `info` when it is an internal or server error (-32603,
    -32000..-32099: the node may have failed mid-way) and `fail` otherwise (parse error,
    invalid request or params, method not found, a definite application error). With
    `server_errors_unknown=False` every error object is `fail`.
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
    server_error = isinstance(code, int) and (code == -32603 or -32099 <= code <= -32000)
    if server_error and server_errors_unknown:
        return Outcome("info", text)
    return Outcome("fail", text)
