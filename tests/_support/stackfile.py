"""A small stack file for the tests of stack files and of the scenarios that use one:
db (PostgreSQL), api and web, linked api -> db and web -> api, with a switch, two
profiles and a setting. Tests change it by `str.replace`; errors name its lines."""

from __future__ import annotations

import textwrap
from pathlib import Path

MINI_STACK = """\
name: mini
services:
  db:
    postgres: {database: app, user: app}
  api:
    command: ["{python}", "-m", "app", "--port", "{port}"]
    port: 8000
    health: /health
    env: {DB: "postgresql://app@{link:api->db}/app"}
    depends_on: [db]
  web:
    command: ["{python}", "-m", "web"]
    port: 8001
    env: {API: "http://{link:web->api}"}
    depends_on: [api]
links: ["api -> db", "web->api"]
switches: {gate: {help: a gate}}
profiles: {open: {gate: false}, closed: {gate: true}}
default_profile: closed
settings:
  tick: {kind: duration, default: 250ms, env: TICK_MS}
"""


def stack_file(tmp_path: Path, text: str = MINI_STACK) -> Path:
    """`text` written as tmp_path/stack.yaml."""
    p = tmp_path / "stack.yaml"
    p.write_text(textwrap.dedent(text))
    return p
