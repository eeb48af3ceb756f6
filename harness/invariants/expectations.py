"""The scenario's `expect:` section, per stack profile, and whether a run met it.

    expect:
      vulnerable: {violated: [no_zero_price_liquidations, liquidations_justified]}
      hardened: {all_hold: true}

- `violated: [names]`: met when every listed invariant failed with at least one
  violation (a vacuous failure, one that checked nothing, has caught nothing and does
  not count; nor does `not_applicable`). The other invariants are reported, not judged.
- `all_hold: true`: met when every invariant passed. `not_applicable` never satisfies
  it: a pass needs evidence, so a scenario for a stack without an audit export lists
  only the invariants that stack can feed.
- no entry for the profile that ran (or no `expect:` at all): the same as `all_hold`.

In every case each `sometimes:` rule that applies must hold. Exit codes: 0 met, 1 not
met, 3 the harness broke (a checker could not read the record, or the run itself
broke); 2 (bad input) is raised before checking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from l2chaos.errors import EXIT_EXPECTATION_FAILED, EXIT_HARNESS_BROKE, EXIT_OK
from l2chaos.params import Where
from l2chaos.rundir.json_types import JsonObject, JsonValue, as_list

from .base import Verdict

__all__ = ["Expectation", "ExpectationResult", "Role", "evaluate", "parse_expect"]

Role = Literal["must_hold", "must_be_violated", "reported"]


@dataclass(frozen=True)
class Expectation:
    """What one profile expects: listed invariants violated, or all holding."""

    violated: tuple[str, ...] = ()
    all_hold: bool = False

    def to_json(self) -> JsonObject:
        return {"violated": list(self.violated)} if self.violated else {"all_hold": True}

    @classmethod
    def from_json(cls, data: Mapping[str, JsonValue]) -> Expectation:
        violated = tuple(str(n) for n in as_list(data.get("violated")))
        return cls(violated=violated) if violated else cls(all_hold=True)

    def text(self) -> str:
        if self.violated:
            return "violated: " + ", ".join(self.violated)
        return "all invariants hold"


def parse_expect(
    section: object, where: Where, invariant_names: Sequence[str], profiles: Sequence[str]
) -> dict[str, Expectation]:
    """Validate `expect:` (profile → expectation) against the scenario's invariants and
    the stack's profiles."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise where.error(
            "expected a mapping of profile: {violated: [invariants]} or {all_hold: true}, "
            f"got {section!r}"
        )
    out: dict[str, Expectation] = {}
    for profile, value in section.items():
        w = where.child(profile)
        if profile not in profiles:
            raise w.error(
                f"unknown profile {profile!r}; the stack's profiles: {', '.join(profiles)}",
                section,
                profile,
            )
        if not isinstance(value, Mapping) or len(value) != 1:
            raise w.error(
                f"expected exactly one of {{violated: [invariants]}} or {{all_hold: true}}, got {value!r}",
                section,
                profile,
            )
        key, v = next(iter(value.items()))
        if key == "all_hold":
            if v is not True:
                raise w.child(key).error(
                    f"expected true (use violated: [...] to expect failures), got {v!r}",
                    value,
                    key,
                )
            out[profile] = Expectation(all_hold=True)
        elif key == "violated":
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, Sequence) or not v or not all(isinstance(n, str) for n in v):
                raise w.child(key).error(
                    f"expected a non-empty list of invariant names, got {v!r}", value, key
                )
            for n in v:
                if n not in invariant_names:
                    raise w.child(key).error(
                        f"{n!r} is not among this scenario's invariants; allowed: "
                        f"{', '.join(invariant_names)}",
                        value,
                        key,
                    )
            if len(set(v)) != len(v):
                raise w.child(key).error(f"an invariant is listed twice: {list(v)!r}", value, key)
            out[profile] = Expectation(violated=tuple(v))
        else:
            raise w.child(key).error(
                f"unknown key {key!r}; allowed: violated, all_hold", value, key
            )
    return out


@dataclass
class ExpectationResult:
    """Whether the run met its expectation, and the role and outcome of each verdict."""

    profile: str | None
    expectation: Expectation | None
    met: bool
    exit_code: int
    text: str
    roles: dict[str, Role] = field(default_factory=dict)
    # Per verdict: did it do what the expectation asked of it?
    satisfied: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    harness_error: str | None = None

    def to_json(self) -> JsonObject:
        return {
            "profile": self.profile,
            "expect": self.expectation.to_json() if self.expectation else None,
            "text": self.text,
            "met": self.met,
            "exit_code": self.exit_code,
            "roles": self.roles,
            "satisfied": self.satisfied,
            "problems": self.problems,
            "harness_error": self.harness_error,
        }


def caught(v: Verdict) -> bool:
    """An invariant counts as violated when it failed with evidence."""
    return v.status == "fail" and v.total_violations > 0


def evaluate(
    expectation: Expectation | None,
    profile: str | None,
    verdicts: Sequence[Verdict],
    sometimes: Verdict | None,
    harness_error: str | None = None,
) -> ExpectationResult:
    roles: dict[str, Role] = {}
    satisfied: dict[str, bool] = {}
    problems: list[str] = []
    listed = set(expectation.violated) if expectation is not None else set()
    for v in verdicts:
        if v.name in listed:
            roles[v.name] = "must_be_violated"
            satisfied[v.name] = caught(v)
            if not satisfied[v.name]:
                why = {
                    "pass": "it held",
                    "not_applicable": f"it was not applicable ({v.reason})",
                    "error": f"it could not check ({v.reason})",
                }.get(v.status, f"it failed without a violation ({v.reason})")
                problems.append(f"{v.name} was expected to be violated, but {why}")
        elif listed:
            roles[v.name] = "reported"
            satisfied[v.name] = True
        else:
            roles[v.name] = "must_hold"
            satisfied[v.name] = v.status == "pass"
            if not satisfied[v.name]:
                why = {
                    "fail": (
                        f"{v.total_violations} violation(s)" if v.total_violations else v.reason
                    ),
                    "not_applicable": f"not applicable ({v.reason}), which never counts as holding",
                    "error": f"could not check ({v.reason})",
                }.get(v.status, v.status)
                problems.append(f"{v.name} must hold: {why}")
    if sometimes is not None:
        roles[sometimes.name] = "must_hold"
        satisfied[sometimes.name] = sometimes.status == "pass"
        if not satisfied[sometimes.name]:
            problems.append(
                f"sometimes: {sometimes.total_violations} rule(s) did not hold"
                + (f" ({sometimes.violations[0].message})" if sometimes.violations else "")
            )
    for name in listed - {v.name for v in verdicts}:
        roles[name] = "must_be_violated"
        satisfied[name] = False
        problems.append(f"{name} was expected to be violated, but it did not run")
    errors = [v for v in verdicts if v.status == "error"]
    met = not problems
    if expectation is None:
        text = f"every invariant holds (no expect for profile {profile})"
    elif expectation.violated:
        text = f"{profile}: violated {', '.join(expectation.violated)}"
    else:
        text = f"{profile}: all invariants hold"
    if harness_error is not None or errors:
        code = EXIT_HARNESS_BROKE
        if harness_error is None:
            harness_error = "; ".join(f"{v.name}: {v.reason}" for v in errors)
        met = False
    else:
        code = EXIT_OK if met else EXIT_EXPECTATION_FAILED
    return ExpectationResult(
        profile=profile,
        expectation=expectation,
        met=met,
        exit_code=code,
        text=text,
        roles=roles,
        satisfied=satisfied,
        problems=problems,
        harness_error=harness_error,
    )
