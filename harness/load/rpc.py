"""One JSON-RPC 2.0 request through Locust's HTTP session, judged for the history and
reported to Locust's statistics (used by the evm and starknet protocols and by the
perpdex reader's starknet_* calls). Imports neither Locust nor gevent.

`post` judges transport and HTTP status as `classify_http` does; with HTTP 200 the body
is judged by `classify` (default `classify_strict`: an error object is `fail`), and
anything but `ok` is marked a failure in Locust's statistics too (Locust alone would
count an HTTP 200 a success).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .history import Outcome, classify_http, classify_rpc, describe_error, parse_json

__all__ = ["RpcReply", "classify_strict", "post"]


def classify_strict(body: Any) -> Outcome:
    """A JSON-RPC answer with HTTP 200: `ok` with a result, `fail` with an error object
    (the node answered and did not do it), `info` when it is not a JSON-RPC answer."""
    return classify_rpc(body, server_errors_unknown=False)


@dataclass(frozen=True)
class RpcReply:
    outcome: Outcome
    body: Any  # the parsed JSON body (None when there was none)

    @property
    def result(self) -> Any:
        return self.body.get("result") if isinstance(self.body, Mapping) else None


def post(
    session: Any,
    url: str,
    name: str,
    body: Any,
    *,
    classify: Callable[[Any], Outcome] = classify_strict,
    headers: Mapping[str, str] | None = None,
) -> RpcReply:
    """One JSON-RPC request through Locust's session, judged and reported to Locust."""
    with session.request(
        "POST", url, name=name, json=body, headers=dict(headers or {}), catch_response=True
    ) as resp:
        status = resp.status_code or 0
        parsed: Any = None
        cut: Exception | None = None
        if status:
            try:
                parsed = parse_json(resp.content)
            except Exception as broken:  # the body was cut short: the connection broke
                cut = broken
        if cut is not None:
            outcome = Outcome("info", f"response cut short: {describe_error(cut)}")
        elif 200 <= status < 300:
            outcome = classify(parsed)
            if outcome.type != "ok":
                resp.failure(outcome.error or outcome.type)
        else:
            err = getattr(resp, "error", None)
            outcome = classify_http(status, err if isinstance(err, BaseException) else None, parsed)
    return RpcReply(outcome, parsed)
