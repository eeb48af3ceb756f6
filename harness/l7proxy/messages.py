"""JSON-RPC 2.0 messages as the proxy sees them: a body is a single call, a batch, or
not JSON-RPC at all (then it passes through untouched)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["RpcBody", "dumps", "error_response", "parse_json", "parse_rpc", "response_id"]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def parse_json(body: bytes) -> Any:
    """The JSON value of a body, or None when it is empty or not JSON."""
    start = body.lstrip()[:1]
    if start not in (b"{", b"["):
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _is_call(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("method"), str) and "jsonrpc" in obj


@dataclass
class RpcBody:
    """The calls of one request body; `batch` tells how the answer must be shaped."""

    batch: bool
    calls: list[dict[str, Any]]

    def encode(self, calls: list[dict[str, Any]]) -> bytes:
        return dumps(calls if self.batch else calls[0])


def parse_rpc(body: bytes) -> RpcBody | None:
    doc = parse_json(body)
    if _is_call(doc):
        return RpcBody(batch=False, calls=[doc])
    if isinstance(doc, list) and doc and all(_is_call(c) for c in doc):
        return RpcBody(batch=True, calls=list(doc))
    return None


def response_id(obj: Any) -> Any:
    return obj.get("id") if isinstance(obj, dict) else None


def error_response(call: dict[str, Any], code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": code, "message": message}}
