"""Configuration from environment variables only, read once at start-up.

Every service builds one frozen config object in `main` with these helpers and passes
it down; nothing reads the environment at import time. A bad value raises
`ConfigError` naming the variable and what is allowed; `run_main` turns it into one
log line and exit code 2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Common",
    "ConfigError",
    "env_bool",
    "env_int",
    "env_json",
    "env_str",
    "env_url",
]


class ConfigError(Exception):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    v = env.get(name, default)
    if v is None or v == "":
        if default is not None:
            return default
        raise ConfigError(name, "is required")
    return v


def env_int(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    min: int | None = None,
    max: int | None = None,
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        v = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if (min is not None and v < min) or (max is not None and v > max):
        parts = ([f">= {min}"] if min is not None else []) + (
            [f"<= {max}"] if max is not None else []
        )
        bounds = " and ".join(parts)
        raise ConfigError(name, f"expected an integer {bounds}, got {v}")
    return v


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"expected 1/0 or true/false, got {raw!r}")


def env_json(env: Mapping[str, str], name: str, default: Any) -> Any:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(name, f"expected JSON: {exc}") from None


def env_url(env: Mapping[str, str], name: str) -> str:
    """A base URL: `host:port` gets http:// in front; no trailing slash."""
    v = env_str(env, name)
    if "://" not in v:
        v = "http://" + v
    return v.rstrip("/")


@dataclass(frozen=True)
class Common:
    """What every service reads: where to listen, the run's token, seed and switches."""

    service: str
    host: str
    port: int
    admin_token: str | None
    seed: int
    run_id: str
    switches: Mapping[str, bool]
    data_dir: str

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str]) -> Common:
        raw = env_json(env, "L2CHAOS_SWITCHES", {})
        if not isinstance(raw, dict) or not all(isinstance(v, bool) for v in raw.values()):
            raise ConfigError("L2CHAOS_SWITCHES", "expected a JSON object of true/false values")
        token = env.get("L2CHAOS_ADMIN_TOKEN") or None
        if not env.get("PERPDEX_PORT"):
            raise ConfigError("PERPDEX_PORT", "is required (the port to listen on)")
        return cls(
            service=service,
            host=env_str(env, "PERPDEX_HOST", "127.0.0.1"),
            port=env_int(env, "PERPDEX_PORT", 0, min=1, max=65535),
            admin_token=token,
            seed=env_int(env, "L2CHAOS_SEED", 0),
            run_id=env_str(env, "L2CHAOS_RUN_ID", "manual"),
            switches={str(k): bool(v) for k, v in raw.items()},
            data_dir=env_str(env, "PERPDEX_DATA_DIR", os.getcwd()),
        )
