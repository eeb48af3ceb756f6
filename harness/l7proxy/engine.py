"""The proxy's decisions, without the network: which rules hit which calls of one
request, what is forwarded, what is answered locally, and how the answer is rewritten.

`LinkState` holds a link's active rules. `Exchange(link, verb, path, body)` is one HTTP
request: `before()` draws every matching rule (in rule order, each call of a batch on
its own) and says what to forward or answer; `after(status, body)` rewrites the upstream
answer. Each rule that matched a call leaves one `Decision` (hit or pass), with the
call's JSON-RPC id and method (or the HTTP verb and path), for the decision log.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .jsonpath import JsonPath
from .messages import RpcBody, dumps, error_response, parse_json, parse_rpc, response_id
from .rules import Corrupt, Delay, DropResponse, Error, Rule, StaleHead, Status

__all__ = [
    "ActiveRule",
    "After",
    "Before",
    "Decision",
    "Exchange",
    "HeadSnapshot",
    "LinkState",
]

_PIN_TAGS = ("latest", "pending")


@dataclass
class HeadSnapshot:
    """The head a stale_head rule answers from (taken when the rule was added)."""

    flavor: str  # evm | starknet
    height: int
    hash_and_number: dict[str, Any] | None = None

    def number(self) -> Any:
        return hex(self.height) if self.flavor == "evm" else self.height

    def pin(self) -> Any:
        return hex(self.height) if self.flavor == "evm" else {"block_number": self.height}

    def to_json(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "height": self.height}


class ActiveRule:
    """A rule in force on a link: its own random stream, counters and snapshot."""

    def __init__(self, rule: Rule, snapshot: HeadSnapshot | None = None) -> None:
        self.rule = rule
        self.rng = random.Random(rule.seed)
        self.snapshot = snapshot
        self.matched = 0
        self.hits = 0
        self.paths: list[tuple[JsonPath, Any]] = (
            rule.action.paths() if isinstance(rule.action, Corrupt) else []
        )

    def draw(self) -> bool:
        self.matched += 1
        p = self.rule.probability
        hit = p >= 1.0 or (p > 0.0 and self.rng.random() < p)
        self.hits += hit
        return hit

    def delay_s(self) -> float:
        action = self.rule.action
        assert isinstance(action, Delay)
        return action.draw_s(self.rng.random() if action.jitter_ms else 0.5)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"matched": self.matched, "hit": self.hits}
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot.to_json()
        return out


class LinkState:
    """A link's rules (in the order they were added) and its request counter."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rules: dict[str, ActiveRule] = {}
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def active(self) -> list[ActiveRule]:
        return list(self.rules.values())


@dataclass
class Decision:
    rule: ActiveRule
    call: dict[str, Any]
    hit: bool
    effect: str
    details: dict[str, Any] = field(default_factory=dict)
    mono_ns: int = field(default_factory=time.monotonic_ns)
    t_ns: int = field(default_factory=time.time_ns)

    def to_json(self, link: str, req: int) -> dict[str, Any]:
        return {
            "t_ns": self.t_ns,
            "mono_ns": self.mono_ns,
            "link": link,
            "req": req,
            "rule": self.rule.rule.id,
            "fault": self.rule.rule.label,
            "action": f"{self.rule.rule.family}.{self.rule.rule.action.kind}",
            "hit": self.hit,
            "effect": self.effect,
            "call": self.call,
            **({"details": self.details} if self.details else {}),
        }


@dataclass
class Before:
    """What to do with the request: answer locally (`status` set) or forward `body`."""

    body: bytes
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    identity: bool = False  # ask the upstream for an uncompressed answer (we rewrite it)

    @property
    def local(self) -> bool:
        return self.status is not None


@dataclass
class After:
    body: bytes
    delay_s: float = 0.0
    drop: str | None = None  # drop | cut
    changed: bool = False


@dataclass
class _CallPlan:
    call: dict[str, Any]
    desc: dict[str, Any]
    local: dict[str, Any] | None = None
    error_after: Error | None = None
    corrupt: list[ActiveRule] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


class Exchange:
    """One request through a link (see the module docstring)."""

    def __init__(self, link: LinkState, verb: str, path: str, body: bytes) -> None:
        self.link = link
        self.req = link.next_seq()
        self.verb = verb
        self.path = path
        self.body = body
        self.decisions: list[Decision] = []
        self._rules = link.active()
        self._rpc: RpcBody | None = None
        self._plans: list[_CallPlan] = []
        self._http_corrupt: list[Decision] = []
        self._delay_before = 0.0
        self._delay_after = 0.0
        self._drop: tuple[str, list[Decision]] | None = None

    # ------------------------------------------------------------ before

    def before(self) -> Before:
        if not self._rules:
            return Before(self.body)
        http_call = {"verb": self.verb, "path": self.path}
        for ar in self._rules:
            if ar.rule.family == "http" and ar.rule.match.request(self.verb, self.path):
                answer = self._http_rule(ar, http_call)
                if answer is not None:
                    return answer
        body = self.body
        if any(ar.rule.family == "rpc" for ar in self._rules):
            self._rpc = parse_rpc(body)
        if self._rpc is not None:
            body_or_answer = self._rpc_before(self._rpc)
            if isinstance(body_or_answer, Before):
                return body_or_answer
            body = body_or_answer
        body = self._http_corrupt_request(body)
        needs_answer = bool(self._http_corrupt) or any(
            p.error_after or p.corrupt or (p.local and self._rpc and self._rpc.batch)
            for p in self._plans
        )
        return Before(body, delay_s=self._delay_before, identity=needs_answer)

    def _decide(
        self, ar: ActiveRule, call: dict[str, Any], effect: str, **details: Any
    ) -> Decision | None:
        hit = ar.draw()
        d = Decision(ar, call, hit, effect if hit else "pass", details if hit else {})
        self.decisions.append(d)
        return d if hit else None

    def _delay(self, ar: ActiveRule, call: dict[str, Any]) -> None:
        action = ar.rule.action
        assert isinstance(action, Delay)
        d = self._decide(ar, call, "delayed")
        if d is None:
            return
        s = ar.delay_s()
        d.details = {"delay_ms": round(s * 1000, 3), "when": action.when}
        if action.when == "before":
            self._delay_before = max(self._delay_before, s)
        else:
            self._delay_after = max(self._delay_after, s)

    def _http_rule(self, ar: ActiveRule, call: dict[str, Any]) -> Before | None:
        action = ar.rule.action
        if isinstance(action, Delay):
            self._delay(ar, call)
        elif isinstance(action, Status):
            if self._decide(ar, call, "status", status=action.status) is not None:
                headers = {"Content-Type": "text/plain; charset=utf-8"}
                if action.retry_after_s is not None:
                    headers["Retry-After"] = str(action.retry_after_s)
                body = action.body.encode() if action.body else b""
                return Before(
                    body, status=action.status, headers=headers, delay_s=self._delay_before
                )
        elif isinstance(action, DropResponse):
            d = self._decide(ar, call, action.mode)
            if d is not None and self._drop is None:
                self._drop = (action.mode, [d])
        elif isinstance(action, Corrupt):
            d = self._decide(ar, call, "corrupted")
            if d is not None:
                self._http_corrupt.append(d)
        return None

    def _http_corrupt_request(self, body: bytes) -> bytes:
        todo = [d for d in self._http_corrupt if _corrupt_of(d).target == "request"]
        if not todo:
            return body
        self._http_corrupt = [d for d in self._http_corrupt if d not in todo]
        doc = parse_json(body)
        if doc is None:
            for d in todo:
                d.effect, d.details = "no_effect", {"reason": "request body is not JSON"}
            return body
        for d in todo:
            d.details = {"fields_set": _apply(d.rule, doc)}
        return dumps(doc)

    def _rpc_before(self, rpc: RpcBody) -> bytes | Before:
        changed = False
        for call in rpc.calls:
            plan = _CallPlan(call, {"id": call.get("id"), "method": call["method"]})
            self._plans.append(plan)
            for ar in self._rules:
                if ar.rule.family == "rpc" and ar.rule.match.method(call["method"]):
                    changed |= self._rpc_rule(ar, plan)
        forward = [p.call for p in self._plans if p.local is None]
        if not forward:
            answers = [p.local for p in self._plans if p.local is not None and "id" in p.call]
            body = dumps(answers if rpc.batch else answers[0]) if answers else b""
            return Before(
                body,
                status=200,
                headers={"Content-Type": "application/json"},
                delay_s=self._delay_before,
            )
        if not changed:
            return self.body
        return rpc.encode(forward)

    def _rpc_rule(self, ar: ActiveRule, plan: _CallPlan) -> bool:
        """Apply one rule to one call; True when the forwarded request changed."""
        action, call, desc = ar.rule.action, plan.call, plan.desc
        if isinstance(action, Delay):
            self._delay(ar, desc)
            return False
        if isinstance(action, Error):
            d = self._decide(ar, desc, f"error_{action.when}", code=action.code)
            if d is None:
                return False
            if action.when == "before" and plan.local is None:
                plan.local = error_response(call, action.code, action.message)
                return True
            plan.error_after = plan.error_after or action
            return False
        if isinstance(action, DropResponse):
            d = self._decide(ar, desc, action.mode)
            if d is not None and self._drop is None:
                self._drop = (action.mode, [d])
            return False
        if isinstance(action, StaleHead):
            return self._stale(ar, plan)
        if isinstance(action, Corrupt):
            d = self._decide(ar, desc, "corrupted")
            if d is None:
                return False
            if action.target == "request":
                n = _apply(ar, call)
                d.details = {"fields_set": n}
                return n > 0
            plan.corrupt.append(ar)
            plan.decisions.append(d)
        return False

    def _stale(self, ar: ActiveRule, plan: _CallPlan) -> bool:
        snap = ar.snapshot
        if snap is None:
            return False
        method = plan.call["method"]
        if method.endswith("_blockNumber"):
            d = self._decide(ar, plan.desc, "stale_answer", height=snap.height)
            if d is not None and plan.local is None:
                plan.local = {"jsonrpc": "2.0", "id": plan.call.get("id"), "result": snap.number()}
                return True
            return False
        if method == "starknet_blockHashAndNumber" and snap.hash_and_number is not None:
            d = self._decide(ar, plan.desc, "stale_answer", height=snap.height)
            if d is not None and plan.local is None:
                plan.local = {
                    "jsonrpc": "2.0",
                    "id": plan.call.get("id"),
                    "result": snap.hash_and_number,
                }
                return True
            return False
        d = self._decide(ar, plan.desc, "pinned", height=snap.height)
        if d is None:
            return False
        pinned = _pin(plan.call, snap)
        if not pinned:
            d.effect = "no_effect"
            d.details = {"reason": "no latest/pending block parameter"}
        return pinned

    # ------------------------------------------------------------ after

    def after(self, body: bytes) -> After:
        out = After(body, delay_s=self._delay_after)
        if self._drop is not None:
            out.drop = self._drop[0]
            return out
        if self._rpc is not None and self._plans:
            new = self._rpc_after(self._rpc, body)
            if new is not None:
                out.body, out.changed = new, True
        if self._http_corrupt:
            doc = parse_json(out.body)
            for d in self._http_corrupt:
                if doc is None:
                    d.effect, d.details = "no_effect", {"reason": "answer is not JSON"}
                else:
                    d.details = {"fields_set": _apply(d.rule, doc)}
            if doc is not None:
                out.body, out.changed = dumps(doc), True
        return out

    def _rpc_after(self, rpc: RpcBody, body: bytes) -> bytes | None:
        work = any(p.error_after or p.corrupt for p in self._plans)
        mixed = rpc.batch and any(p.local for p in self._plans)
        if not (work or mixed):
            return None
        doc = parse_json(body)
        answers = doc if isinstance(doc, list) else [doc] if isinstance(doc, dict) else None
        if answers is None:
            for p in self._plans:
                for d in p.decisions:
                    d.effect, d.details = "no_effect", {"reason": "answer is not JSON-RPC"}
            return None
        by_id = {repr(response_id(a)): a for a in answers if isinstance(a, dict)}
        composed: list[Any] = []
        for p in self._plans:
            if p.local is not None:
                composed.append(p.local)
                continue
            answer = by_id.pop(repr(p.call.get("id")), None)
            if answer is None:
                continue
            if p.error_after is not None:
                answer = error_response(p.call, p.error_after.code, p.error_after.message)
            for ar, d in zip(p.corrupt, p.decisions, strict=True):
                d.details = {"fields_set": _apply(ar, answer)}
            composed.append(answer)
        composed.extend(by_id.values())  # answers we could not place stay in the body
        if not rpc.batch:
            return dumps(composed[0]) if composed else body
        return dumps(composed)

    def upstream_failed(self, reason: str) -> None:
        """The upstream gave no answer: after-phase hits had nothing to act on."""
        for d in self._after_decisions():
            d.effect, d.details = "no_effect", {"reason": reason}

    def _after_decisions(self) -> Iterator[Decision]:
        yield from self._http_corrupt
        for p in self._plans:
            yield from p.decisions


def _corrupt_of(d: Decision) -> Corrupt:
    action = d.rule.rule.action
    assert isinstance(action, Corrupt)
    return action


def _apply(ar: ActiveRule, doc: Any) -> int:
    return sum(path.assign(doc, value) for path, value in ar.paths)


def _pin(call: dict[str, Any], snap: HeadSnapshot) -> bool:
    """Replace latest/pending block tags among a call's params by the snapshot's head."""
    params = call.get("params")
    n = 0
    if isinstance(params, list):
        for i, v in enumerate(params):
            if v in _PIN_TAGS:
                params[i] = snap.pin()
                n += 1
    elif isinstance(params, dict):
        for k, v in params.items():
            if v in _PIN_TAGS:
                params[k] = snap.pin()
                n += 1
    if not params and snap.flavor == "starknet" and call["method"].startswith("starknet_getBlock"):
        call["params"] = {"block_id": snap.pin()}
        n += 1
    return n > 0
