"""The run directory: where a run's record goes, and the redaction of its secrets.

Everything a checker needs is written here as the run goes (JSON and JSON lines,
flushed per record), so a killed run still leaves a record and `l2chaos check RUN_DIR`
re-checks a finished run offline. Secrets registered with `Redactor.add` (the admin
token, API keys) are replaced by ``***`` in everything written through this module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .run_info import RUN_JSON, RunInfo

__all__ = ["JsonlWriter", "Redactor", "RunDir", "RunInfo", "new_run_id"]

_SAFE = re.compile(r"[^a-z0-9._-]+")


def new_run_id(scenario: str) -> str:
    """`20260119T042754Z-<scenario>-<4 hex>`: sortable, unique, readable."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{_SAFE.sub('-', scenario.lower())[:60]}-{os.urandom(2).hex()}"


class Redactor:
    """Replaces registered secrets with *** in text and nested JSON values."""

    MASK = "***"
    _SECRET_KEYS = frozenset({"api_key", "admin_token", "token", "password", "authorization"})

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, *secrets: str) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s and len(s) >= 6)
            if self._secrets:
                alts = sorted((re.escape(s) for s in self._secrets), key=len, reverse=True)
                self._pattern = re.compile("|".join(alts))

    def text(self, s: str) -> str:
        pattern = self._pattern
        return pattern.sub(self.MASK, s) if pattern is not None else s

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, Mapping):
            return {
                k: (self.MASK if str(k).lower() in self._SECRET_KEYS and v[k] else self.value(v[k]))
                for k in v
            }
        if isinstance(v, (list, tuple)):
            return [self.value(x) for x in v]
        return v


class JsonlWriter:
    """Appends one JSON object per line, flushed, thread-safe, redacted."""

    def __init__(self, path: Path, redactor: Redactor) -> None:
        self.path = path
        self._redactor = redactor
        self._lock = threading.Lock()
        self._fh: TextIO | None = path.open("a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(self._redactor.value(record), separators=(",", ":"), default=str)
        with self._lock:
            if self._fh is None:
                return
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class RunDir:
    """A run's folder: `runs/<run_id>/` by default."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self.redactor = Redactor()
        self._writers: dict[str, JsonlWriter] = {}
        self._lock = threading.Lock()

    @classmethod
    def create(cls, out_dir: Path, scenario: str, suffix: str | None = None) -> RunDir:
        run_id = new_run_id(scenario if suffix is None else f"{scenario}-{suffix}")
        # Absolute: child processes (Locust, the audit export) run in other folders.
        path = out_dir.absolute() / run_id
        path.mkdir(parents=True, exist_ok=False)
        for sub in ("logs", "audit", "history", "load"):
            (path / sub).mkdir()
        return cls(path, run_id)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, data: Any) -> Path:
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(
            json.dumps(self.redactor.value(data), indent=2, default=str) + "\n", encoding="utf-8"
        )
        tmp.replace(target)  # never a half-written JSON file after a crash
        return target

    def update_json(self, name: str, **fields: Any) -> None:
        target = self.path / name
        data = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
        data.update(fields)
        self.write_json(name, data)

    def write_run(self, info: RunInfo) -> None:
        self.write_json(RUN_JSON, info.to_json())

    def read_run(self) -> RunInfo:
        target = self.path / RUN_JSON
        data = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
        return RunInfo.from_json(data, target)

    def update_run(self, **changes: Any) -> None:
        """Replace fields of run.json (a name RunInfo does not have is a TypeError)."""
        self.write_run(dataclasses.replace(self.read_run(), **changes))

    def jsonl(self, name: str) -> JsonlWriter:
        with self._lock:
            writer = self._writers.get(name)
            if writer is None:
                writer = self._writers[name] = JsonlWriter(self.path / name, self.redactor)
            return writer

    def redact_files(self, paths: Iterable[Path]) -> None:
        """Redact secrets from files written by other processes (service logs, audit)."""
        for p in paths:
            try:
                text = p.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            clean = self.redactor.text(text)
            if clean != text:
                p.write_text(clean, encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            for w in self._writers.values():
                w.close()
            self._writers.clear()


def now_ns() -> tuple[int, int]:
    """The shared time base: (UTC ns of this host, monotonic ns)."""
    return time.time_ns(), time.monotonic_ns()
