"""audit/header.json: the audit export's scales, market parameters, system accounts,
switches and formulas (docs/architecture.md, "Audit export"). `RunRecord.header` reads
it once; a header of the wrong shape is a `RecordError` naming the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import RecordError

__all__ = ["HEADER", "AuditHeader"]

HEADER = "audit/header.json"


@dataclass(frozen=True)
class AuditHeader:
    """audit/header.json: scales, market parameters, system accounts, switches; `raw`
    the whole object (the value-flow checkers read its `formulas`)."""

    stack: str
    quote_decimals: int
    funding_index_scale: int
    markets: dict[str, dict[str, int]]
    system_accounts: dict[str, int]
    switches: dict[str, object]
    raw: dict[str, object]

    def account(self, role: str) -> int | None:
        return self.system_accounts.get(role)

    def market(self, name: str) -> dict[str, int] | None:
        return self.markets.get(name)

    @classmethod
    def from_json(cls, raw: object, file: Path) -> AuditHeader:
        if not isinstance(raw, dict):
            raise RecordError("expected a JSON object", file=file)
        scales = _object(raw.get("scales"), "scales", file)
        markets = _object(raw.get("markets"), "markets", file)
        accounts = _object(raw.get("system_accounts"), "system_accounts", file)
        return cls(
            stack=str(raw.get("stack", "")),
            quote_decimals=_int(scales.get("quote_decimals", 6), "scales.quote_decimals", file),
            funding_index_scale=_int(
                scales.get("funding_index_scale", 1_000_000), "scales.funding_index_scale", file
            ),
            markets={
                name: {
                    k: _int(v, f"markets.{name}.{k}", file)
                    for k, v in _object(params, f"markets.{name}", file).items()
                }
                for name, params in markets.items()
            },
            system_accounts={k: _int(v, f"system_accounts.{k}", file) for k, v in accounts.items()},
            switches=_object(raw.get("switches"), "switches", file),
            raw=raw,
        )


def _object(v: object, what: str, file: Path) -> dict[str, object]:
    """`v`, a JSON object (an empty one when absent)."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise RecordError(f"{what}: expected an object, got {type(v).__name__}", file=file)
    return v


def _int(v: object, what: str, file: Path) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise RecordError(f"{what}: expected an integer, got {v!r}", file=file)
