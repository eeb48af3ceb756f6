"""JSON logs on stdout: one object per line with ts, level, service, msg, fields."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["JsonLog"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class JsonLog:
    def __init__(self, service: str, stream: TextIO | None = None, level: str = "info") -> None:
        self.service = service
        self._stream = stream if stream is not None else sys.stdout
        self._min = _LEVELS.get(level, 20)

    def log(self, level: str, msg: str, **fields: Any) -> None:
        if _LEVELS[level] < self._min:
            return
        now = time.time_ns()
        ts = datetime.fromtimestamp(now / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line = json.dumps(
            {
                "ts": ts,
                "t_ns": now,
                "level": level,
                "service": self.service,
                "msg": msg,
                "fields": fields,
            },
            default=str,
            separators=(",", ":"),
        )
        self._stream.write(line + "\n")
        self._stream.flush()

    def debug(self, msg: str, **fields: Any) -> None:
        self.log("debug", msg, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        self.log("info", msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self.log("warning", msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.log("error", msg, **fields)
