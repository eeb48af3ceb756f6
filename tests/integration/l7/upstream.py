"""A small upstream for the proxy tests: echoes JSON-RPC calls, answers plain bodies
with their size, and `/big` with `n` bytes. `python upstream.py PORT`."""

from __future__ import annotations

import json
import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    if request.path == "/big":
        return web.Response(body=b"x" * int(request.query["n"]))
    try:
        doc = json.loads(body)
    except ValueError:
        return web.Response(
            text=f"plain {len(body)} {request.headers.get('X-Test', '')}",
            headers={"X-Upstream": "yes"},
            status=202,
        )

    def answer(call: dict[str, object]) -> dict[str, object]:
        return {"jsonrpc": "2.0", "id": call.get("id"), "result": {"echo": call.get("params")}}

    out = [answer(c) for c in doc] if isinstance(doc, list) else answer(doc)
    return web.json_response(out)


if __name__ == "__main__":
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
