"""Stack files: what services a stack has, how they are linked, and its profiles.

`load_stack(path)` reads and validates ``stacks/<name>/stack.yaml`` into a `StackSpec`;
`resolve_stack(ref, base)` finds one by registered name (entry point group
``l2chaos.stacks``) or by path. `StackRun` is a spec with a profile, switch overrides
and setting values chosen; backends render each service's command and environment
from it with `render`.

See docs/architecture.md ("Stack file") for the format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .durations import format_duration, parse_duration
from .errors import StackSpecError
from .eventsource import parse_events
from .yamlsrc import LocDict, line_of, load_yaml

__all__ = [
    "CLIENTS",
    "RESERVED_NAMES",
    "CommandReady",
    "HookSpec",
    "HttpReady",
    "JsonRpcReady",
    "LinkSpec",
    "NotAStackFile",
    "PostgresReady",
    "PostgresSpec",
    "ReadyCheck",
    "RunningReady",
    "ServiceSpec",
    "SettingSpec",
    "StackRun",
    "StackSpec",
    "TcpReady",
    "link_name",
    "load_stack",
    "parse_link",
    "render",
    "resolve_stack",
]

_NAME = re.compile(r"^[a-z][a-z0-9_-]*\Z")  # \Z: "$" would let a trailing newline in
_TEMPLATE = re.compile(r"\{([a-z_]+)(?::([^{}]+))?\}")
_LINK = re.compile(r"^\s*([a-z][a-z0-9_-]*)\s*->\s*([a-z][a-z0-9_-]*)\s*$")

TEMPLATE_KEYS = {
    "python": "the Python interpreter running l2chaos",
    "port": "the service's own listen port",
    "host": "the service's bind address",
    "link": "{link:a->b}: host:port of the proxy for link a->b (what a client must use)",
    "direct": "{direct:svc}: host:port of a service reached directly (harness-side only)",
    "direct_dsn": "{direct_dsn:db}: a PostgreSQL DSN for a postgres service, reached directly",
    "admin_token": "the run's admin token for chaos hooks",
    "seed": "the scenario seed",
    "run_id": "the run id",
    "data_dir": "a scratch folder for this service (also the working directory of its command)",
    "stack_dir": "the folder of the stack file (read-only on docker)",
    "switches": "the active switches as a JSON object",
    "out": "the output folder (audit command only)",
    "setting": "{setting:name}: a stack setting's value",
}
SETTING_KINDS = ("duration", "int", "float", "str", "bool", "json")
_SETTING_TEXT_MAX = 65_536  # a setting becomes an environment variable
CLIENTS = "clients"  # `clients -> svc`: the harness's own load and probes reach svc via a proxy
# names a service cannot take: the link pseudo-client and the orchestrator's own units
RESERVED_NAMES = frozenset({CLIENTS, "toxiproxy", "l7proxy"})


def link_name(client: str, server: str) -> str:
    return f"{client}->{server}"


def parse_link(text: str) -> tuple[str, str] | None:
    """`"a -> b"` → ("a", "b"); None when it is not a link."""
    m = _LINK.match(text) if isinstance(text, str) else None
    return (m.group(1), m.group(2)) if m else None


@dataclass(frozen=True)
class PostgresSpec:
    """A PostgreSQL service the backend provides (pgserver binaries locally, an image in docker)."""

    database: str
    user: str
    image: str = "postgres:16"


@dataclass(frozen=True)
class HttpReady:
    """Ready when ``GET path`` answers 200."""

    path: str


@dataclass(frozen=True)
class TcpReady:
    """Ready when the service's port accepts a connection and keeps it open."""


@dataclass(frozen=True)
class JsonRpcReady:
    """Ready when a JSON-RPC call succeeds and its result passes the predicate: equal to
    `result` when given (hex quantities compare as numbers) and, with `advances`, a
    quantity that grew between two calls of the method it names (a chain head that moves)."""

    method: str
    params: tuple[Any, ...] = ()
    path: str = "/"
    result: Any = None
    check_result: bool = False
    advances: str | None = None


@dataclass(frozen=True)
class CommandReady:
    """Ready when the command (rendered like the service's own, run on this host in the
    stack file's folder) exits 0."""

    command: tuple[str, ...]


@dataclass(frozen=True)
class PostgresReady:
    """Ready when PostgreSQL completes a startup handshake (a `postgres:` service)."""


@dataclass(frozen=True)
class RunningReady:
    """No port and no check: running counts as ready."""


ReadyCheck = HttpReady | TcpReady | JsonRpcReady | CommandReady | PostgresReady | RunningReady


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: tuple[str, ...] = ()
    image: str | None = None
    dockerfile: str | None = None
    port: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    health: str | None = None
    ready: str | None = None
    ready_timeout_ns: int = 30_000_000_000
    depends_on: tuple[str, ...] = ()
    postgres: PostgresSpec | None = None
    line: int | None = None
    readiness: ReadyCheck | None = None  # explicit `ready:` check; None: derived

    @property
    def ready_check(self) -> ReadyCheck:
        """The check `ready:` names, else: postgres handshake, the `health` path, a TCP
        connection to `port`, or running."""
        if self.readiness is not None:
            return self.readiness
        if self.postgres is not None:
            return PostgresReady()
        if self.health is not None:
            return HttpReady(self.health)
        return TcpReady() if self.port is not None else RunningReady()


LAYERS = ("tcp", "http")


@dataclass(frozen=True)
class LinkSpec:
    client: str
    server: str
    # tcp: Toxiproxy only; http: also the L7 proxy (message-level faults, docs/l7.md)
    layer: str = "tcp"

    @property
    def name(self) -> str:
        return link_name(self.client, self.server)

    @property
    def from_clients(self) -> bool:
        """A link from the harness's own clients (load, probes), not from a service."""
        return self.client == CLIENTS


@dataclass(frozen=True)
class HookSpec:
    """A chaos hook: REST (`method` `path`, the fault's body as JSON) or JSON-RPC
    (`jsonrpc` method at `path`, `params` templated from the fault's body, e.g.
    ``"{to_block:hex}"``; `head` names the method giving the head block number, so a
    body with `blocks_back` becomes `to_block`)."""

    name: str
    service: str
    path: str
    method: str = "POST"
    jsonrpc: str | None = None
    params: tuple[Any, ...] = ()
    head: str | None = None


@dataclass(frozen=True)
class SettingSpec:
    """A typed knob. `minimum`/`maximum` (nanoseconds for durations) bound what a scenario
    may set, so a value the stack cannot start with is refused at validation."""

    name: str
    kind: str
    default: Any
    env: str
    help: str = ""
    unit: str = ""  # for durations: the unit the env var is rendered in (ms or s)
    minimum: float | None = None
    maximum: float | None = None

    def render(self, value: Any) -> str:
        if self.kind == "duration":
            ns = int(value)
            return str(ns // 1_000_000) if self.unit == "ms" else f"{ns / 1e9:g}"
        if self.kind == "bool":
            return "1" if value else "0"
        if self.kind == "json" and not isinstance(value, str):  # a str is JSON already
            return json.dumps(value, separators=(",", ":"))
        return str(value)

    def allowed(self) -> str:
        """What a value must be, in words, for messages and `l2chaos list stacks`."""
        base = {
            "duration": "a duration such as 100ms"
            if self.minimum is not None
            else "a positive duration such as 100ms",
            "int": "an integer",
            "float": "a number",
            "str": "a string",
            "bool": "true or false",
            "json": "JSON (a list or mapping, or a string holding one)",
        }[self.kind]

        def shown(v: float) -> str:
            return format_duration(int(v)) if self.kind == "duration" else _number_text(v)

        bounds = [f">= {shown(self.minimum)}"] if self.minimum is not None else []
        bounds += [f"<= {shown(self.maximum)}"] if self.maximum is not None else []
        return base + (f" ({', '.join(bounds)})" if bounds else "")

    def coerce(self, value: Any) -> Any:
        """The value as the stack gets it, or ValueError saying what is allowed."""
        out = _SETTING_COERCE[self.kind](value)
        if out is None:
            raise ValueError(f"expected {self.allowed()}, got {_shown(value)}")
        lo = self.minimum
        if lo is None and self.kind == "duration":
            lo = 1  # a duration is positive unless the stack declares `min: 0s`
        if self.kind in ("duration", "int", "float") and (
            (lo is not None and out < lo) or (self.maximum is not None and out > self.maximum)
        ):
            raise ValueError(f"expected {self.allowed()}, got {_shown(value)}")
        if self.kind == "duration" and self.unit == "ms" and out % 1_000_000:
            raise ValueError(f"expected whole milliseconds (the stack reads ms), got {value!r}")
        return out


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _duration_value(value: Any) -> int | None:
    try:
        ns = parse_duration(value)
    except ValueError:
        return None
    return ns if ns >= 0 else None


def _number(value: Any, kinds: tuple[type, ...]) -> Any:
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    return value if ok and value == value and abs(value) != float("inf") else None


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > _SETTING_TEXT_MAX:
        return None
    # an environment variable cannot hold NUL, and control characters only hide things
    return None if any(ord(c) < 32 and c not in "\t\n" for c in value) else value


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        if _text(value) is None:
            return None
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if not isinstance(value, (list, dict)):
        return None
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return None
    return value


_SETTING_COERCE: dict[str, Any] = {
    "duration": _duration_value,
    "int": lambda v: _number(v, (int,)),
    "float": lambda v: _number(v, (int, float)),
    "str": _text,
    "bool": lambda v: v if isinstance(v, bool) else None,
    "json": _json_value,
}


@dataclass(frozen=True)
class StackSpec:
    name: str
    path: Path
    description: str
    services: Mapping[str, ServiceSpec]
    links: tuple[LinkSpec, ...]
    switches: Mapping[str, str]
    profiles: Mapping[str, Mapping[str, bool]]
    default_profile: str | None
    settings: Mapping[str, SettingSpec]
    hooks: Mapping[str, HookSpec]
    probes: Mapping[str, Mapping[str, Any]]
    accounts: Mapping[str, str] | None
    audit: tuple[str, ...] | None
    load: Mapping[str, str]
    # `load.protocol` (the scenario's default) and `load.options` (bound to its params)
    load_protocol: str | None = None
    load_options: Mapping[str, Any] = field(default_factory=dict)
    # service -> regex of a log line in which the service reports that its own
    # safeguard halted it; the named group `reason` is what the verdict quotes
    self_checks: Mapping[str, str] = field(default_factory=dict)
    events: Any = None  # l2chaos.eventsource.EventSourceSpec: the stack's event stream

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def link_names(self) -> list[str]:
        return [lk.name for lk in self.links]

    def link(self, name: str) -> LinkSpec | None:
        key = name.replace(" ", "")
        return next((lk for lk in self.links if lk.name == key), None)

    def links_of(self, service: str) -> list[LinkSpec]:
        return [lk for lk in self.links if service in (lk.client, lk.server)]

    def links_to(self, service: str) -> list[LinkSpec]:
        """Links whose server is `service` (what its clients connect through)."""
        return [lk for lk in self.links if lk.server == service]

    def client_link(self, service: str) -> LinkSpec | None:
        """The `clients -> service` link, if the stack file declares one."""
        return next((lk for lk in self.links_to(service) if lk.from_clients), None)

    def start_order(self) -> list[str]:
        """Services in an order where every dependency starts first (stable)."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in self.services[name].depends_on:
                visit(dep)
            order.append(name)

        for name in self.services:
            visit(name)
        return order

    def postgres_services(self) -> list[str]:
        return [n for n, s in self.services.items() if s.postgres is not None]


@dataclass(frozen=True)
class StackRun:
    """A stack with its profile and knobs chosen for one run."""

    spec: StackSpec
    profile: str | None
    switches: Mapping[str, bool]
    settings: Mapping[str, Any]
    seed: int

    def switches_json(self) -> str:
        return json.dumps(dict(sorted(self.switches.items())), separators=(",", ":"))

    def common_env(self, *, admin_token: str, run_id: str) -> dict[str, str]:
        env = {
            "L2CHAOS_SWITCHES": self.switches_json(),
            "L2CHAOS_ADMIN_TOKEN": admin_token,
            "L2CHAOS_SEED": str(self.seed),
            "L2CHAOS_RUN_ID": run_id,
        }
        for name, spec in self.spec.settings.items():
            env[spec.env] = spec.render(self.settings.get(name, spec.default))
        return env


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{key}`` and ``{key:arg}`` placeholders; `values` is keyed by "key" or "key:arg"."""

    def sub(m: re.Match[str]) -> str:
        key = m.group(1) if m.group(2) is None else f"{m.group(1)}:{m.group(2).replace(' ', '')}"
        if key not in values:
            raise KeyError(key)
        return values[key]

    return _TEMPLATE.sub(sub, template)


def placeholders(template: str) -> Iterator[tuple[str, str | None]]:
    for m in _TEMPLATE.finditer(template):
        yield m.group(1), m.group(2)


# ---------------------------------------------------------------------------- loading


class NotAStackFile(StackSpecError):
    """The file a stack reference names is not a stack file at all."""


class _Ctx:
    def __init__(self, file: str) -> None:
        self.file = file

    def err(
        self, field: str, problem: str, container: object = None, key: Any = None
    ) -> StackSpecError:
        return StackSpecError(problem, file=self.file, line=line_of(container, key), field=field)

    def mapping(self, value: Any, field: str, container: object, key: Any) -> LocDict:
        if not isinstance(value, dict):
            raise self.err(field, f"expected a mapping, got {value!r}", container, key)
        if not isinstance(value, LocDict):  # built in code, not read from YAML
            loc = LocDict(value)
            loc.line, loc.key_lines = 0, {}
            return loc
        return value

    def keys(
        self,
        d: LocDict,
        field: str,
        allowed: set[str],
        required: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        for k in d:
            if k not in allowed:
                raise self.err(
                    f"{field}.{k}" if field else k,
                    f"unknown key {k!r}; allowed: {', '.join(sorted(allowed))}",
                    d,
                    k,
                )
        for k in sorted(required):
            if k not in d:
                raise self.err(field or "(top level)", f"missing required key {k!r}", d)

    def string(self, d: LocDict, key: str, field: str, default: str | None = None) -> str | None:
        v = d.get(key, default)
        if v is not None and not isinstance(v, str):
            raise self.err(f"{field}.{key}", f"expected a string, got {v!r}", d, key)
        return v


_TOP_KEYS = {
    "name", "description", "switches", "profiles", "default_profile", "settings", "services",
    "links", "hooks", "probes", "accounts", "audit", "load", "self_checks", "events",
}  # fmt: skip
_SERVICE_KEYS = {
    "command", "image", "dockerfile", "port", "env", "health", "ready", "ready_timeout",
    "depends_on", "postgres",
}  # fmt: skip


def load_stack(path: str | Path) -> StackSpec:
    """Read and validate a stack file. Raises StackSpecError naming file, line and field."""
    p = Path(path)
    doc = load_yaml(p, what="a stack file (YAML)")
    ctx = _Ctx(str(p))
    if not isinstance(doc, LocDict) or "services" not in doc:
        # Said without quoting anything from it: a scenario may point anywhere.
        raise NotAStackFile(
            "not a stack file: expected a YAML mapping with name, services and links "
            "(docs/own-stack.md)",
            file=str(p),
        )
    ctx.keys(doc, "", _TOP_KEYS, {"name", "services"})
    name = ctx.string(doc, "name", "name") or ""
    if not _NAME.match(name):
        raise ctx.err(
            "name", f"expected a lower-case name like 'perpdex', got {name!r}", doc, "name"
        )
    services = _services(ctx, doc)
    links = _links(ctx, doc, services)
    switches, profiles, default_profile = _profiles(ctx, doc)
    settings = _settings(ctx, doc)
    hooks = _hooks(ctx, doc, services)
    spec = StackSpec(
        name=name,
        path=p.resolve(),
        description=ctx.string(doc, "description", "description", "") or "",
        services=services,
        links=links,
        switches=switches,
        profiles=profiles,
        default_profile=default_profile,
        settings=settings,
        hooks=hooks,
        probes=_probes(ctx, doc, services),
        accounts=_accounts(ctx, doc, services),
        audit=_command(ctx, doc, "audit", "audit"),
        load=_load_roles(ctx, doc, services),
        **_load_protocol(ctx, doc),
        self_checks=_self_checks(ctx, doc, services),
        events=parse_events(ctx, doc, list(services)),
    )
    _check_templates(ctx, doc, spec)
    _check_cycles(ctx, doc, spec)
    return spec


def _self_checks(ctx: _Ctx, d: LocDict, services: Mapping[str, Any]) -> dict[str, str]:
    if "self_checks" not in d:
        return {}
    m = ctx.mapping(d["self_checks"], "self_checks", d, "self_checks")
    out: dict[str, str] = {}
    for svc, pattern in m.items():
        where = f"self_checks.{svc}"
        if svc not in services:
            raise ctx.err(
                where, f"unknown service {svc!r}; services: {', '.join(services)}", m, svc
            )
        if not isinstance(pattern, str):
            raise ctx.err(where, f"expected a regular expression, got {pattern!r}", m, svc)
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise ctx.err(where, f"not a regular expression: {exc}", m, svc) from None
        if "reason" not in rx.groupindex:
            raise ctx.err(where, "the expression needs a named group (?P<reason>...)", m, svc)
        out[svc] = pattern
    return out


def _command(ctx: _Ctx, d: LocDict, key: str, field: str) -> tuple[str, ...] | None:
    if key not in d:
        return None
    v = d[key]
    if isinstance(v, dict):
        inner = ctx.mapping(v, field, d, key)
        ctx.keys(inner, field, {"command"}, {"command"})
        return _command(ctx, inner, "command", f"{field}.command")
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise ctx.err(field, f"expected a non-empty list of strings, got {v!r}", d, key)
    return tuple(v)


def _services(ctx: _Ctx, doc: LocDict) -> dict[str, ServiceSpec]:
    raw = ctx.mapping(doc["services"], "services", doc, "services")
    if not raw:
        raise ctx.err("services", "a stack needs at least one service", doc, "services")
    out: dict[str, ServiceSpec] = {}
    for name, body in raw.items():
        field = f"services.{name}"
        if not _NAME.match(name):
            raise ctx.err(
                field, f"service names are lower-case words like 'ui-api', got {name!r}", raw, name
            )
        if name in RESERVED_NAMES:
            raise ctx.err(
                field,
                f"{name!r} is reserved; reserved: {', '.join(sorted(RESERVED_NAMES))}",
                raw,
                name,
            )
        s = ctx.mapping(body, field, raw, name)
        ctx.keys(s, field, _SERVICE_KEYS)
        out[name] = _service(ctx, name, s, field)
    for name, svc in out.items():
        for dep in svc.depends_on:
            if dep not in out:
                raise ctx.err(
                    f"services.{name}.depends_on",
                    f"unknown service {dep!r}; services: {', '.join(out)}",
                    raw[name],
                    "depends_on",
                )
    return out


def _service(ctx: _Ctx, name: str, s: LocDict, field: str) -> ServiceSpec:
    postgres = None
    if "postgres" in s:
        pg = ctx.mapping(s["postgres"], f"{field}.postgres", s, "postgres")
        ctx.keys(pg, f"{field}.postgres", {"database", "user", "image"}, {"database", "user"})
        postgres = PostgresSpec(
            database=ctx.string(pg, "database", f"{field}.postgres") or "",
            user=ctx.string(pg, "user", f"{field}.postgres") or "",
            image=ctx.string(pg, "image", f"{field}.postgres", "postgres:16") or "postgres:16",
        )
    command = _command(ctx, s, "command", f"{field}.command") or ()
    image = ctx.string(s, "image", field)
    if postgres is None and not command and image is None:
        raise ctx.err(
            field,
            "a service needs `command` (local backend) and/or `image` (docker), or `postgres`",
            s,
        )
    port = s.get("port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
    ):
        raise ctx.err(f"{field}.port", f"expected a port number 1-65535, got {port!r}", s, "port")
    env_raw = ctx.mapping(s.get("env", {}), f"{field}.env", s, "env")
    env: dict[str, str] = {}
    for k, v in env_raw.items():
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ctx.err(f"{field}.env.{k}", f"expected a string, got {v!r}", env_raw, k)
        env[k] = str(v)
    deps = s.get("depends_on", [])
    if not isinstance(deps, list) or not all(isinstance(x, str) for x in deps):
        raise ctx.err(
            f"{field}.depends_on",
            f"expected a list of service names, got {deps!r}",
            s,
            "depends_on",
        )
    timeout_ns = _positive_duration(ctx, s, "ready_timeout", field) or 30_000_000_000
    health = ctx.string(s, "health", field)
    if health is not None and not health.startswith("/"):
        raise ctx.err(
            f"{field}.health",
            f"expected an HTTP path starting with '/', got {health!r}",
            s,
            "health",
        )
    readiness, ready_path, own_timeout = _readiness(ctx, s, f"{field}.ready")
    if own_timeout is not None:
        timeout_ns = own_timeout
    needs_port = health is not None or isinstance(readiness, (HttpReady, TcpReady, JsonRpcReady))
    if needs_port and port is None and postgres is None:
        raise ctx.err(field, "health and HTTP, TCP or JSON-RPC ready checks need `port`", s)
    return ServiceSpec(
        name=name,
        command=command,
        image=image,
        dockerfile=ctx.string(s, "dockerfile", field),
        port=port,
        env=env,
        health=health,
        ready=ready_path,
        ready_timeout_ns=timeout_ns,
        depends_on=tuple(deps),
        postgres=postgres,
        line=s.line,
        readiness=readiness,
    )


def _positive_duration(ctx: _Ctx, d: LocDict, key: str, field: str) -> int | None:
    """`d[key]` as a positive duration in ns; None when absent."""
    if key not in d:
        return None
    try:
        ns = parse_duration(d[key])
    except ValueError as exc:
        raise ctx.err(f"{field}.{key}", str(exc), d, key) from None
    if ns <= 0:
        raise ctx.err(f"{field}.{key}", "must be a positive duration", d, key)
    return ns


_READY_KINDS = ("http", "tcp", "jsonrpc", "command")
_READY_KEYS = {"timeout", *_READY_KINDS, "path", "params", "result", "advances"}


def _readiness(
    ctx: _Ctx, s: LocDict, field: str
) -> tuple[ReadyCheck | None, str | None, int | None]:
    """`ready:` → (check, its HTTP path if it is one, its own timeout in ns).

    Forms: ``/path`` (HTTP GET answering 200), ``{http: /path}``, ``{tcp: true}``,
    ``{jsonrpc: METHOD, params: [...], path: /, result: VALUE, advances: true|METHOD}``,
    ``{command: [...]}``; each mapping may add ``timeout: 30s``.
    """
    raw = s.get("ready")
    if raw is None:
        return None, None, None
    if isinstance(raw, str):
        if not raw.startswith("/"):
            raise ctx.err(
                field, f"expected an HTTP path starting with '/', got {raw!r}", s, "ready"
            )
        return HttpReady(raw), raw, None
    b = ctx.mapping(raw, field, s, "ready")
    ctx.keys(b, field, _READY_KEYS)
    kinds = [k for k in _READY_KINDS if k in b]
    if len(kinds) != 1:
        raise ctx.err(
            field,
            f"expected exactly one of {', '.join(_READY_KINDS)}, got {kinds or 'none'}",
            s,
            "ready",
        )
    kind = kinds[0]
    extra = sorted(
        set(b)
        - {"timeout", kind}
        - ({"path", "params", "result", "advances"} if kind == "jsonrpc" else set())
    )
    if extra:
        raise ctx.err(
            f"{field}.{extra[0]}", f"{extra[0]!r} belongs to a jsonrpc check only", b, extra[0]
        )
    timeout = _positive_duration(ctx, b, "timeout", field)
    check: ReadyCheck
    path = None
    if kind == "http":
        path = ctx.string(b, "http", field)
        if not path or not path.startswith("/"):
            raise ctx.err(
                f"{field}.http", f"expected an HTTP path starting with '/', got {path!r}", b, "http"
            )
        check = HttpReady(path)
    elif kind == "tcp":
        if b["tcp"] is not True:
            raise ctx.err(f"{field}.tcp", f"expected true, got {b['tcp']!r}", b, "tcp")
        check = TcpReady()
    elif kind == "command":
        check = CommandReady(_command(ctx, b, "command", f"{field}.command") or ())
    else:
        check = _jsonrpc_ready(ctx, b, field)
    return check, path, timeout


def _jsonrpc_ready(ctx: _Ctx, b: LocDict, field: str) -> JsonRpcReady:
    method = b["jsonrpc"]
    if not isinstance(method, str) or not method:
        raise ctx.err(f"{field}.jsonrpc", f"expected a method name, got {method!r}", b, "jsonrpc")
    params = b.get("params", [])
    if not isinstance(params, list):
        raise ctx.err(f"{field}.params", f"expected a list, got {params!r}", b, "params")
    path = ctx.string(b, "path", field, "/") or "/"
    if not path.startswith("/"):
        raise ctx.err(
            f"{field}.path", f"expected an HTTP path starting with '/', got {path!r}", b, "path"
        )
    raw_adv = b.get("advances", False)
    if not isinstance(raw_adv, (bool, str)) or raw_adv == "":
        raise ctx.err(
            f"{field}.advances",
            f"expected true (the method's own result) or a method name, got {raw_adv!r}",
            b,
            "advances",
        )
    advances = method if raw_adv is True else (raw_adv or None)
    if "result" not in b and not advances:
        raise ctx.err(
            field,
            "a jsonrpc check needs `result` (the value to wait for) and/or `advances: true`",
            b,
        )
    return JsonRpcReady(
        method=method,
        params=tuple(params),
        path=path,
        result=b.get("result"),
        check_result="result" in b,
        advances=advances,
    )


def _links(ctx: _Ctx, doc: LocDict, services: Mapping[str, ServiceSpec]) -> tuple[LinkSpec, ...]:
    raw = doc.get("links", [])
    if not isinstance(raw, list):
        raise ctx.err(
            "links", f"expected a list like ['sequencer -> db'], got {raw!r}", doc, "links"
        )
    out: list[LinkSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        field = f"links[{i}]"
        item, layer = _link_entry(ctx, entry, field, raw, i)
        parsed = parse_link(item)
        if parsed is None:
            raise ctx.err(field, f"expected 'client -> server', got {item!r}", raw, i)
        client, server = parsed
        for svc in (client, server):
            if svc not in services and not (svc == CLIENTS and svc == client):
                raise ctx.err(
                    field,
                    f"unknown service {svc!r}; services: {', '.join(services)} "
                    f"(or {CLIENTS!r} as the client: the harness's load and probes)",
                    raw,
                    i,
                )
        if client == server:
            raise ctx.err(field, "a link joins two different services", raw, i)
        if services[server].port is None and services[server].postgres is None:
            raise ctx.err(field, f"server {server!r} has no port to link to", raw, i)
        if layer == "http" and services[server].postgres is not None:
            raise ctx.err(
                field, f"layer http needs an HTTP server; {server!r} is PostgreSQL", raw, i
            )
        lk = LinkSpec(client, server, layer)
        if lk.name in seen:
            raise ctx.err(field, f"duplicate link {lk.name!r}", raw, i)
        seen.add(lk.name)
        out.append(lk)
    return tuple(out)


def _link_entry(ctx: _Ctx, entry: Any, field: str, raw: list[Any], i: int) -> tuple[Any, str]:
    """A link is ``a -> b`` or ``a -> b: {layer: http}``; returns (text, layer)."""
    if not isinstance(entry, dict):
        return entry, "tcp"
    if len(entry) != 1:
        raise ctx.err(field, f"expected 'client -> server: {{layer: http}}', got {entry!r}", raw, i)
    ((text, opts),) = entry.items()
    body = ctx.mapping(opts if opts is not None else {}, field, entry, text)
    ctx.keys(body, field, {"layer"})
    layer = body.get("layer", "tcp")
    if layer not in LAYERS:
        raise ctx.err(
            f"{field}.layer",
            f"expected one of {', '.join(LAYERS)} (http: an L7 proxy for message-level faults), "
            f"got {layer!r}",
            body,
            "layer",
        )
    return text, str(layer)


def _profiles(
    ctx: _Ctx, doc: LocDict
) -> tuple[dict[str, str], dict[str, dict[str, bool]], str | None]:
    sw_raw = ctx.mapping(doc.get("switches", {}), "switches", doc, "switches")
    switches: dict[str, str] = {}
    for k, v in sw_raw.items():
        body = ctx.mapping(v if v is not None else {}, f"switches.{k}", sw_raw, k)
        ctx.keys(body, f"switches.{k}", {"help"})
        switches[k] = str(body.get("help", ""))
    pr_raw = ctx.mapping(doc.get("profiles", {}), "profiles", doc, "profiles")
    profiles: dict[str, dict[str, bool]] = {}
    for pname, body in pr_raw.items():
        b = ctx.mapping(body, f"profiles.{pname}", pr_raw, pname)
        values: dict[str, bool] = {}
        for sw, val in b.items():
            if sw not in switches:
                raise ctx.err(
                    f"profiles.{pname}.{sw}",
                    f"unknown switch {sw!r}; switches: {', '.join(switches) or 'none declared'}",
                    b,
                    sw,
                )
            if not isinstance(val, bool):
                raise ctx.err(
                    f"profiles.{pname}.{sw}", f"expected true or false, got {val!r}", b, sw
                )
            values[sw] = val
        profiles[pname] = values
    default = ctx.string(doc, "default_profile", "default_profile")
    if default is not None and default not in profiles:
        raise ctx.err(
            "default_profile",
            f"unknown profile {default!r}; profiles: {', '.join(profiles)}",
            doc,
            "default_profile",
        )
    return switches, profiles, default


def _settings(ctx: _Ctx, doc: LocDict) -> dict[str, SettingSpec]:
    raw = ctx.mapping(doc.get("settings", {}), "settings", doc, "settings")
    out: dict[str, SettingSpec] = {}
    for name, body in raw.items():
        field = f"settings.{name}"
        b = ctx.mapping(body, field, raw, name)
        ctx.keys(
            b,
            field,
            {"kind", "default", "env", "help", "unit", "min", "max"},
            {"kind", "default", "env"},
        )
        kind = b["kind"]
        if kind not in SETTING_KINDS:
            raise ctx.err(
                f"{field}.kind",
                f"expected one of {', '.join(SETTING_KINDS)}, got {kind!r}",
                b,
                "kind",
            )
        unit = str(b.get("unit", "ms" if kind == "duration" else ""))
        bounds = [_setting_bound(ctx, b, key, kind, field) for key in ("min", "max")]
        spec = SettingSpec(
            name, kind, None, str(b["env"]), str(b.get("help", "")), unit, bounds[0], bounds[1]
        )
        try:
            default = spec.coerce(b["default"])
        except ValueError as exc:
            raise ctx.err(f"{field}.default", str(exc), b, "default") from None
        out[name] = SettingSpec(
            name, kind, default, spec.env, spec.help, unit, spec.minimum, spec.maximum
        )
    return out


def _setting_bound(ctx: _Ctx, b: LocDict, key: str, kind: str, field: str) -> float | None:
    if key not in b:
        return None
    raw = b[key]
    if kind not in ("duration", "int", "float"):
        raise ctx.err(f"{field}.{key}", f"a {kind} setting takes no {key}", b, key)
    value = _duration_value(raw) if kind == "duration" else _number(raw, (int, float))
    if value is None:
        what = "a duration" if kind == "duration" else "a number"
        raise ctx.err(f"{field}.{key}", f"expected {what}, got {_shown(raw)}", b, key)
    return value


def _hooks(ctx: _Ctx, doc: LocDict, services: Mapping[str, ServiceSpec]) -> dict[str, HookSpec]:
    raw = ctx.mapping(doc.get("hooks", {}), "hooks", doc, "hooks")
    out: dict[str, HookSpec] = {}
    for name, body in raw.items():
        field = f"hooks.{name}"
        b = ctx.mapping(body, field, raw, name)
        if "jsonrpc" in b:
            out[name] = _rpc_hook(ctx, name, b, field, services)
            continue
        ctx.keys(b, field, {"service", "path", "method"}, {"service", "path"})
        svc = ctx.string(b, "service", field) or ""
        _need_service(ctx, services, svc, f"{field}.service", b, "service")
        method = (ctx.string(b, "method", field, "POST") or "POST").upper()
        if method not in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            raise ctx.err(
                f"{field}.method", f"expected an HTTP method, got {method!r}", b, "method"
            )
        out[name] = HookSpec(name, svc, ctx.string(b, "path", field) or "/", method)
    return out


def _rpc_hook(
    ctx: _Ctx, name: str, b: LocDict, field: str, services: Mapping[str, ServiceSpec]
) -> HookSpec:
    ctx.keys(b, field, {"service", "jsonrpc", "params", "path", "head"}, {"service", "jsonrpc"})
    svc = ctx.string(b, "service", field) or ""
    _need_service(ctx, services, svc, f"{field}.service", b, "service")
    method = ctx.string(b, "jsonrpc", field) or ""
    if not method:
        raise ctx.err(f"{field}.jsonrpc", "expected a JSON-RPC method name", b, "jsonrpc")
    params = b.get("params", [])
    if not isinstance(params, list):
        raise ctx.err(f"{field}.params", f"expected a list, got {params!r}", b, "params")
    return HookSpec(
        name,
        svc,
        ctx.string(b, "path", field, "/") or "/",
        "POST",
        jsonrpc=method,
        params=tuple(params),
        head=ctx.string(b, "head", field),
    )


def _probes(
    ctx: _Ctx, doc: LocDict, services: Mapping[str, ServiceSpec]
) -> dict[str, dict[str, Any]]:
    raw = ctx.mapping(doc.get("probes", {}), "probes", doc, "probes")
    ctx.keys(raw, "probes", set(_PROBE_KEYS))
    out: dict[str, dict[str, Any]] = {}
    for name, body in raw.items():
        b = ctx.mapping(body, f"probes.{name}", raw, name)
        ctx.keys(b, f"probes.{name}", _PROBE_KEYS[name], {"service"})
        _need_service(ctx, services, b["service"], f"probes.{name}.service", b, "service")
        for key in ("timeout", "interval"):
            _positive_duration(ctx, b, key, f"probes.{name}")
        if name == "chain" and b.get("api", "evm") not in ("evm", "starknet"):
            raise ctx.err(
                "probes.chain.api", f"expected evm or starknet, got {b['api']!r}", b, "api"
            )
        out[name] = dict(b)
    return out


# Probes a stack may declare and their keys (timeout/interval: durations).
_PROBE_KEYS: Mapping[str, set[str]] = {
    "block_height": {"service", "jsonrpc", "path", "timeout"},
    "order": {"service", "path", "method", "timeout", "interval"},
    "chain": {"service", "api", "path", "timeout"},
}


def _accounts(
    ctx: _Ctx, doc: LocDict, services: Mapping[str, ServiceSpec]
) -> dict[str, str] | None:
    if "accounts" not in doc:
        return None
    b = ctx.mapping(doc["accounts"], "accounts", doc, "accounts")
    ctx.keys(b, "accounts", {"service", "path"}, {"service", "path"})
    _need_service(ctx, services, b["service"], "accounts.service", b, "service")
    return {"service": str(b["service"]), "path": str(b["path"])}


_LOAD_ROLES = ("ui", "rpc")


def _load_roles(ctx: _Ctx, doc: LocDict, services: Mapping[str, ServiceSpec]) -> dict[str, str]:
    b = ctx.mapping(doc.get("load", {}), "load", doc, "load")
    ctx.keys(b, "load", {*_LOAD_ROLES, "protocol", "options"})
    roles = {k: v for k, v in b.items() if k in _LOAD_ROLES}
    for role, svc in roles.items():
        _need_service(ctx, services, svc, f"load.{role}", b, role)
    return {str(k): str(v) for k, v in roles.items()}


def _load_protocol(ctx: _Ctx, doc: LocDict) -> dict[str, Any]:
    """`load.protocol` (a registered trader protocol) and its `load.options`."""
    from .load.protocols import protocol, protocol_names
    from .params import Where, bind_params

    b = ctx.mapping(doc.get("load", {}), "load", doc, "load")
    name = b.get("protocol")
    if name is None:
        if "options" in b:
            raise ctx.err("load.options", "options need a `protocol` to belong to", b, "options")
        return {}
    if not isinstance(name, str) or name not in protocol_names():
        raise ctx.err(
            "load.protocol",
            f"unknown load protocol {name!r}; known: {', '.join(protocol_names())}",
            b,
            "protocol",
        )
    raw = b.get("options")
    if raw is not None:
        ctx.mapping(raw, "load.options", b, "options")
    options = bind_params(protocol(name).options, raw, Where(ctx.file, "load.options"))
    return {"load_protocol": name, "load_options": options}


def _need_service(
    ctx: _Ctx,
    services: Mapping[str, ServiceSpec],
    name: Any,
    field: str,
    container: object,
    key: Any,
) -> None:
    if name not in services:
        raise ctx.err(
            field, f"unknown service {name!r}; services: {', '.join(services)}", container, key
        )


def _check_templates(ctx: _Ctx, doc: LocDict, spec: StackSpec) -> None:
    """Every placeholder must name something that exists, so a typo fails at load time."""

    def check(text: str, field: str, container: object, key: Any, *, audit: bool = False) -> None:
        for name, arg in placeholders(text):
            if name not in TEMPLATE_KEYS or (name == "out" and not audit):
                raise ctx.err(
                    field,
                    f"unknown placeholder {{{name}}}; allowed: {', '.join(sorted(TEMPLATE_KEYS))}",
                    container,
                    key,
                )
            if name == "link" and (arg is None or arg.replace(" ", "") not in spec.link_names):
                raise ctx.err(
                    field,
                    f"{{link:{arg}}} names no link; links: {', '.join(spec.link_names) or 'none'}",
                    container,
                    key,
                )
            if name in ("direct", "direct_dsn") and arg not in spec.services:
                raise ctx.err(field, f"{{{name}:{arg}}} names no service", container, key)
            if name == "direct_dsn" and arg is not None and spec.services[arg].postgres is None:
                raise ctx.err(
                    field,
                    f"{{direct_dsn:{arg}}}: {arg!r} is not a postgres service",
                    container,
                    key,
                )
            if name == "setting" and arg not in spec.settings:
                raise ctx.err(
                    field,
                    f"{{setting:{arg}}} names no setting; settings: {', '.join(spec.settings) or 'none'}",
                    container,
                    key,
                )

    raw_services = doc["services"]
    for name, svc in spec.services.items():
        body = raw_services[name]
        for i, part in enumerate(svc.command):
            check(part, f"services.{name}.command[{i}]", body, "command")
        for k, v in svc.env.items():
            check(v, f"services.{name}.env.{k}", body.get("env"), k)
        if isinstance(svc.readiness, CommandReady):
            for i, part in enumerate(svc.readiness.command):
                check(part, f"services.{name}.ready.command[{i}]", body, "ready")
    for i, part in enumerate(spec.audit or ()):
        check(part, f"audit[{i}]", doc, "audit", audit=True)


def _check_cycles(ctx: _Ctx, doc: LocDict, spec: StackSpec) -> None:
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name) :], name])
            raise ctx.err(
                f"services.{name}.depends_on", f"dependency cycle: {cycle}", doc["services"], name
            )
        state[name] = 1
        for dep in spec.services[name].depends_on:
            visit(dep, [*trail, name])
        state[name] = 2

    for name in spec.services:
        visit(name, [])


def resolve_stack(ref: str, base: Path | None = None) -> StackSpec:
    """A stack by registered name (``perpdex``) or by path to a stack file or folder."""
    from .registry import stack_files  # late: the registry imports plugins

    known = stack_files()
    if ref in known:
        return load_stack(known[ref])
    candidates = [Path(ref)]
    if base is not None:
        candidates.insert(0, base / ref)
    for c in candidates:
        if c.is_dir():
            if (c / "stack.yaml").exists():
                return load_stack(c / "stack.yaml")
            raise StackSpecError(f"{str(c)!r} is a folder without a stack.yaml")
        if c.exists():  # a file, or something that is not one: load_stack says which
            return load_stack(c)
    raise StackSpecError(
        f"unknown stack {ref!r}; registered stacks: {', '.join(sorted(known)) or 'none'}, or give a path"
    )
