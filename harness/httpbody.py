"""What the harness's HTTP clients (Toxiproxy, the L7 proxy, stack hooks) read from an
answer: its body as JSON when it is JSON (else text, None when empty), and the error an
error answer names."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["answer_body", "error_detail"]


def answer_body(resp: httpx.Response) -> Any:
    """The decoded JSON body; the text when it is not JSON; None when there is none."""
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


def error_detail(resp: httpx.Response) -> str:
    """The `error` field of a JSON error body, else the body's text."""
    try:
        return str(resp.json().get("error", resp.text))
    except (ValueError, AttributeError):
        return resp.text
