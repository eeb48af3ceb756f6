"""A tiny real HTTP service for the backend and fault tests (stdlib only, plus asyncpg).

    GET  /ready /health       200 "ok"
    GET  /pid                 this process's pid
    GET  /bytes?n=N           N bytes of "x"
    POST /echo                the request body
    GET  /via?path=P          GET P on $TINY_UPSTREAM (a link address), answer its body
    GET  /db                  SELECT 1 over $TINY_DB (a link address to Postgres)

`--mode crash` exits with code 3 at once; `--mode unready` answers /ready with 503.
HTTP/1.1 requests keep the connection alive; after an HTTP/1.0 request the server
closes the connection (the tests rely on that to see a close).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="tiny")
    ap.add_argument("--mode", default="normal", choices=("normal", "crash", "unready"))
    args = ap.parse_args()
    if args.mode == "crash":
        print(f"{args.name}: crashing on purpose", flush=True)
        sys.exit(3)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive for 1.1 clients; 1.0 requests are closed
        wbufsize = 1 << 16  # one write per answer (flushed after each request): no Nagle stall

        def log_message(self, format: str, *a: object) -> None:
            pass

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            q = parse_qs(url.query)
            if url.path in ("/ready", "/health"):
                if url.path == "/ready" and args.mode == "unready":
                    self._send(503, b"not ready on purpose")
                else:
                    self._send(200, b"ok")
            elif url.path == "/pid":
                self._send(200, str(os.getpid()).encode())
            elif url.path == "/bytes":
                self._send(200, b"x" * int(q.get("n", ["0"])[0]))
            elif url.path == "/via":
                target = f"http://{os.environ['TINY_UPSTREAM']}{q['path'][0]}"
                try:
                    with urllib.request.urlopen(target, timeout=5) as resp:
                        self._send(200, resp.read())
                except OSError as exc:
                    self._send(502, str(exc).encode())
            elif url.path == "/db":
                try:
                    self._send(200, str(asyncio.run(_select_one())).encode())
                except Exception as exc:
                    self._send(502, f"{type(exc).__name__}: {exc}".encode())
            else:
                self._send(404, b"no such path")

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", "0"))
            self._send(200, self.rfile.read(n))

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"{args.name}: listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


async def _select_one() -> int:
    import asyncpg

    conn = await asyncpg.connect(os.environ["TINY_DB"], timeout=5)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
