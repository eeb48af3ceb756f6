"""A tiny real HTTP service for the docker backend tests (standard library only).

    GET  /ready /health    200 "ok"
    GET  /boot             a token made at start (changes when the process restarts)
    GET  /via?path=P       GET P on $TINY_UPSTREAM (a link address: through Toxiproxy)
    GET  /db               a PostgreSQL startup handshake with $TINY_DB (a link address):
                           200 "ok <server_version>" when the server accepts the user
    GET  /data             count of calls so far, kept in a file under $TINY_DATA
    POST /echo             the request body

`--mode crash` (or TINY_MODE=crash) exits with code 3 at once, after a line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import struct
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def pg_handshake(hostport: str, user: str, database: str) -> str:
    """'ok <version>' when the server answers the startup message with AuthenticationOk."""
    host, _, port = hostport.rpartition(":")
    body = b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in (("user", user), ("database", database))
    )
    body += b"\0"
    msg = struct.pack("!ii", len(body) + 8, 196608) + body
    with socket.create_connection((host, int(port)), timeout=3) as s:
        s.sendall(msg)
        version = "?"
        buf = b""
        while True:
            while len(buf) < 5:
                chunk = s.recv(4096)
                if not chunk:
                    return "closed by the server"
                buf += chunk
            kind, length = buf[:1], struct.unpack("!i", buf[1:5])[0]
            while len(buf) < 1 + length:
                chunk = s.recv(4096)
                if not chunk:
                    return "closed by the server"
                buf += chunk
            payload, buf = buf[5 : 1 + length], buf[1 + length :]
            if kind == b"E":
                return "error " + payload.decode(errors="replace").replace("\0", " ").strip()
            if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                return "asks for a password"
            if kind == b"S":
                name, value = payload.split(b"\0")[:2]
                if name == b"server_version":
                    version = value.decode()
            if kind == b"Z":
                s.sendall(b"X\0\0\0\4")
                return f"ok {version}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="tiny")
    ap.add_argument("--mode", default=os.environ.get("TINY_MODE", "normal"))
    args = ap.parse_args()
    if args.mode == "crash":
        print(f"{args.name}: crashing on purpose", file=sys.stderr, flush=True)
        sys.exit(3)
    boot = secrets.token_hex(8)
    print(f"{args.name}: listening on {args.port}, boot {boot}", flush=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

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
                self._send(200, b"ok")
            elif url.path == "/boot":
                self._send(200, boot.encode())
            elif url.path == "/via":
                target = f"http://{os.environ['TINY_UPSTREAM']}{q.get('path', ['/ready'])[0]}"
                try:
                    with urllib.request.urlopen(target, timeout=3) as resp:
                        self._send(200, resp.read())
                except Exception as exc:
                    self._send(502, f"{type(exc).__name__}: {exc}".encode())
            elif url.path == "/db":
                try:
                    res = pg_handshake(
                        os.environ["TINY_DB"],
                        os.environ.get("TINY_DB_USER", "postgres"),
                        os.environ.get("TINY_DB_NAME", "postgres"),
                    )
                except OSError as exc:
                    res = f"{type(exc).__name__}: {exc}"
                self._send(200 if res.startswith("ok") else 502, res.encode())
            elif url.path == "/data":
                path = os.path.join(os.environ.get("TINY_DATA", "/tmp"), "count")
                try:
                    with open(path) as f:
                        n = int(f.read() or "0")
                except FileNotFoundError:
                    n = 0
                with open(path, "w") as f:
                    f.write(str(n + 1))
                self._send(200, str(n + 1).encode())
            else:
                self._send(404, b"no such path")

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            self._send(200 if self.path == "/echo" else 404, body)

    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
