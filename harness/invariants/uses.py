"""The scenario's `invariants:` section: which checkers run, with which parameters.

    invariants:
      - no_zero_price_liquidations          # a name: default parameters
      - liquidations_justified: {band: 0.05}
      - recoverability: {rto: 30s}

Each item is a checker name, or a one-key mapping of name to parameters (or null).
Without the section every registered checker runs with its defaults. Unknown names
and bad parameters are `ScenarioError`s naming the file, line and field, and what
is allowed (`l2chaos list invariants`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from l2chaos.params import JsonValue, Where, bind, to_json
from l2chaos.registry import checkers as checker_registry

__all__ = ["InvariantUse", "parse_invariants"]


@dataclass(frozen=True)
class InvariantUse:
    """One checker to run and its bound parameters (an instance of its model)."""

    name: str
    params: object

    def to_json(self) -> dict[str, JsonValue]:
        return {"name": self.name, "params": to_json(self.params)}


def _use(name: str, given: object, where: Where) -> InvariantUse:
    return InvariantUse(name, bind(checker_registry()[name].params_model(), given, where))


def _unknown(name: object, known: Sequence[str]) -> str:
    return f"unknown invariant {name!r}; known: {', '.join(known)} (see l2chaos list invariants)"


def parse_invariants(section: object, where: Where) -> list[InvariantUse]:
    """Validate the `invariants:` section; None means every registered checker."""
    registry = checker_registry()
    known = list(registry)
    if section is None:
        return [_use(n, None, where.child(n)) for n in known]
    if not isinstance(section, Sequence) or isinstance(section, (str, bytes)):
        raise where.error(
            "expected a list of invariant names or {name: {parameters}} mappings, "
            f"got {section!r}"
        )
    if not section:
        raise where.error(f"expected at least one invariant; known: {', '.join(known)}")
    out: list[InvariantUse] = []
    seen: set[str] = set()
    for i, item in enumerate(section):
        w = where.child(i)
        given: object
        if isinstance(item, str):
            name, given = item, None
        elif isinstance(item, Mapping) and len(item) == 1:
            name, given = next(iter(item.items()))
            if given is not None and not isinstance(given, Mapping):
                raise w.child(name).error(
                    f"expected a mapping of parameters (or nothing), got {given!r}", item, name
                )
        else:
            raise w.error(
                f"expected an invariant name or a one-key mapping {{name: {{parameters}}}}, got {item!r}",
                section,
                i,
            )
        if name not in registry:
            raise w.error(_unknown(name, known), section, i)
        if name in seen:
            raise w.error(f"invariant {name!r} is listed twice", section, i)
        seen.add(name)
        out.append(_use(name, given, w.child(name)))
    return out
