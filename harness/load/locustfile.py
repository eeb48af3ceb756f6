"""The Locust side of l2chaos load: one user class per persona of the plan's protocol.

Locust imports this file in its own process (never in the harness: gevent patches the
interpreter). Everything comes from the load-context file named by
``L2CHAOS_LOAD_CONTEXT``; a worker's index comes from ``L2CHAOS_LOAD_WORKER`` (0 for a
standalone run). At import the user classes are made, one per persona of the plan's
protocol (`Maker`, `Taker`, ... for perpdex; `Sender`, `Reader` for evm), so Locust
finds them by the names the runner passes; on `init` they get their exact counts
(`fixed_count`), a base URL and timeouts, and a process that runs users (standalone or
worker, not the master) opens its history file ``worker-<n>.jsonl`` and takes its
share of accounts.

Each user is a protocol `Driver` (its state and the calls it makes, each recorded);
its one task is one step, and its wait time is the think time the step chose. With
`load.rate` (open loop, `rate.py`) a step waits instead for an arrival of the worker's
`Pacer`; the master splits the rate among the workers with a custom message.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections import deque
from pathlib import Path
from typing import IO, Any

import gevent
from l2chaos.load.context import CONTEXT_ENV, HISTORY_DIR_ENV, WORKER_ENV, Account, LoadContext
from l2chaos.load.history import HistoryWriter
from l2chaos.load.ops import Stopping
from l2chaos.load.pacer import Pacer
from l2chaos.load.protocols import Driver, DriverArgs, TraderProtocol, protocol
from l2chaos.load.rate import SHARE_INTERVAL_S, split_shares
from l2chaos.load.runner import locust_class
from l2chaos.safety import ensure_allowed
from locust import FastHttpUser, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

log = logging.getLogger("l2chaos.load")

FLUSH_INTERVAL_S = 0.5
SHARE_MESSAGE = "l2chaos_rate_share"


def _run_tag(t0_ns: int) -> str:
    """A short tag unique to the run, so client ids never collide with another run's."""
    n = (t0_ns // 1_000_000) % (36**8)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(8):
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


class _Worker:
    """Per-process state shared by the users of one Locust worker."""

    def __init__(self, ctx: LoadContext, worker: int) -> None:
        self.ctx = ctx
        self.worker = worker
        if worker >= len(ctx.slices):
            raise ValueError(
                f"{WORKER_ENV}={worker} but the load context has accounts for "
                f"{len(ctx.slices)} workers (0..{len(ctx.slices) - 1})"
            )
        hdir = Path(os.environ.get(HISTORY_DIR_ENV) or ctx.history_dir)
        hdir.mkdir(parents=True, exist_ok=True)
        self.protocol: TraderProtocol = protocol(ctx.plan.protocol)
        self.history = HistoryWriter(
            hdir / f"worker-{worker}.jsonl",
            worker,
            write_ops=self.protocol.write_ops,
            protocol=ctx.plan.protocol,
        )
        # `quit` closes it; this writes what is buffered if the process ends otherwise
        # (an exception out of Locust, sys.exit): only SIGKILL loses the last 0.5 s
        atexit.register(self.history.close)
        self.trace: IO[str] | None = None
        if ctx.plan.trace_decisions and ctx.trace_dir:
            tdir = Path(ctx.trace_dir)
            tdir.mkdir(parents=True, exist_ok=True)
            tpath = tdir / f"worker-{worker}.jsonl"
            self.trace = open(tpath, "w", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        self.pool: deque[Account] = deque(ctx.slices[worker])
        self.next_uid = 0
        self.ordinals: dict[str, int] = {}
        self.run_tag = _run_tag(ctx.t0_ns)
        self.pacer: Pacer | None = None
        if ctx.plan.rate is not None:
            # until the master says otherwise, an equal share of the workers it expects
            share = 1 / ctx.plan.total_workers
            self.pacer = Pacer(ctx.plan.rate, ctx.t0_ns, share, hdir / f"rate-{worker}.jsonl")
        self._closed = False
        self._flusher = gevent.spawn(self._flush_loop)

    def _flush_loop(self) -> None:
        while not self._closed:  # ends at close(), with the Locust process
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def flush(self) -> None:
        self.history.flush()
        if self.pacer is not None:
            self.pacer.flush()
        if self.trace is not None:
            self.trace.flush()

    def close(self) -> None:
        self._closed = True
        self._flusher.kill(block=False)
        if self.pacer is not None:
            self.pacer.close()
        self.history.close()
        if self.trace is not None:
            self.trace.close()
            self.trace = None


_STATE: dict[str, Any] = {"ctx": None, "worker": None, "stopping": False}


def _stopping() -> bool:
    return bool(_STATE["stopping"])


def _configure(environment: Any) -> None:
    path = os.environ.get(CONTEXT_ENV)
    if not path:
        log.error("%s is not set: run Locust through l2chaos (see docs/load.md)", CONTEXT_ENV)
        sys.exit(2)
    ctx = LoadContext.read(path)
    for url in ctx.endpoints.values():
        ensure_allowed(url, allow=ctx.allow_targets, what="load")
    timeout_s = ctx.plan.request_timeout_ns / 1e9
    host = next(iter(ctx.endpoints.values()), None)
    for cls in PERSONA_CLASSES:
        p = ctx.plan.persona(cls.persona)
        cls.fixed_count = p.count
        cls.host = ctx.endpoints.get("ui", host)
        cls.network_timeout = timeout_s
        cls.connection_timeout = timeout_s
    _STATE["ctx"] = ctx
    if isinstance(environment.runner, MasterRunner):
        return  # the master runs no users and writes no history
    worker = int(os.environ.get(WORKER_ENV, "0"))
    _STATE["worker"] = w = _Worker(ctx, worker)
    if isinstance(environment.runner, WorkerRunner) and w.pacer is not None:
        environment.runner.register_message(SHARE_MESSAGE, _on_share)
    log.info(
        "l2chaos worker %d: %d accounts, history in %s",
        worker,
        len(ctx.slices[worker]),
        _STATE["worker"].history.path,
    )


def _on_init(environment: Any, **_kw: Any) -> None:
    try:
        _configure(environment)
    except Exception as exc:
        log.error("l2chaos load set-up failed: %s", exc)
        sys.exit(2)


def _on_share(msg: Any, **_kw: Any) -> None:
    """The master's split of the rate: this worker's share of it."""
    w: _Worker | None = _STATE["worker"]
    share = msg.data.get("share") if isinstance(msg.data, dict) else None
    if w is not None and w.pacer is not None and isinstance(share, (int, float)):
        w.pacer.share = float(share)


def _share_loop(runner: MasterRunner) -> None:
    """On the master: split the rate among the connected workers in proportion to the
    users each runs, again every SHARE_INTERVAL_S (a worker that joins or leaves moves
    its share to the others; one that misses heartbeats gets none)."""
    while True:
        clients = runner.clients.ready + runner.clients.spawning + runner.clients.running
        users = {c.id: sum(c.user_classes_count.values()) for c in clients}
        for client_id, share in split_shares(users).items():
            runner.send_message(SHARE_MESSAGE, {"share": share}, client_id=client_id)
        gevent.sleep(SHARE_INTERVAL_S)


def _on_test_start(environment: Any, **_kw: Any) -> None:
    _STATE["stopping"] = False
    w: _Worker | None = _STATE["worker"]
    if w is not None and w.pacer is not None:
        w.pacer.start()
    ctx: LoadContext | None = _STATE["ctx"]
    runner = environment.runner
    open_loop = ctx is not None and ctx.plan.rate is not None
    if open_loop and isinstance(runner, MasterRunner) and _STATE.get("sharer") is None:
        _STATE["sharer"] = gevent.spawn(_share_loop, runner)


def _on_test_stopping(**_kw: Any) -> None:
    # Locust may wake a sleeping user just before it kills it; no new operation may start
    # then, or the history fills with operations interrupted at birth.
    _STATE["stopping"] = True


def _on_test_stop(**_kw: Any) -> None:
    w = _STATE["worker"]
    if w is not None:
        w.flush()


def _on_quit(**_kw: Any) -> None:
    # `quit` fires after the runner has stopped every user, so nothing writes after this.
    sharer = _STATE.pop("sharer", None)
    if sharer is not None:
        sharer.kill(block=False)
    w = _STATE["worker"]
    if w is not None:
        w.close()
        _STATE["worker"] = None


events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
events.test_start.add_listener(_on_test_start)  # type: ignore[no-untyped-call]
events.test_stopping.add_listener(_on_test_stopping)  # type: ignore[no-untyped-call]
events.test_stop.add_listener(_on_test_stop)  # type: ignore[no-untyped-call]
events.quit.add_listener(_on_quit)  # type: ignore[no-untyped-call]


class PersonaUser(FastHttpUser):
    """A user of one persona: one account, one protocol driver, one step per task."""

    abstract = True
    persona: str = ""
    max_retries = 0  # a retried POST could place an order twice; the history must see one

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.driver: Driver | None = None
        self._think = 0.0

    def on_start(self) -> None:
        w: _Worker | None = _STATE["worker"]
        ctx: LoadContext | None = _STATE["ctx"]
        if w is None or ctx is None:
            raise StopUser()
        if not w.pool:
            log.error("worker %d has no free account for another %s user", w.worker, self.persona)
            raise StopUser()
        account = w.pool.popleft()
        uid = w.next_uid
        w.next_uid += 1
        ordinal = w.ordinals.get(self.persona, 0)
        w.ordinals[self.persona] = ordinal + 1
        self.driver = w.protocol.driver(
            DriverArgs(
                persona=self.persona,
                settings=ctx.plan.persona(self.persona).settings,
                session=self.client,
                history=w.history,
                account=account,
                endpoints=ctx.endpoints,
                data=ctx.data,
                seed=ctx.seed,
                worker=w.worker,
                uid=uid,
                ordinal=ordinal,
                run_tag=w.run_tag,
                trace=w.trace,
                stopping=_stopping,
            )
        )
        try:
            self.driver.start()
        except Stopping:
            raise StopUser() from None

    def on_stop(self) -> None:
        w: _Worker | None = _STATE["worker"]
        if self.driver is not None and w is not None:
            w.pool.append(self.driver.account)
            self.driver = None

    @task
    def act(self) -> None:
        if self.driver is None:
            return
        w: _Worker | None = _STATE["worker"]
        pacer = w.pacer if w is not None else None
        if pacer is not None and not pacer.take(_stopping):
            raise StopUser()
        try:
            think = self.driver.step()
        except Stopping:
            raise StopUser() from None
        self._think = 0.0 if pacer is not None else think  # open loop: the pacer paces

    def wait_time(self) -> float:
        return self._think


def _persona_classes() -> tuple[type[PersonaUser], ...]:
    """One user class per persona of the plan's protocol, named as the runner passes
    them on Locust's command line (`locust_class`). Without a load context (Locust
    started by hand) there are none, and `init` says why."""
    path = os.environ.get(CONTEXT_ENV)
    if not path:
        return ()
    try:
        names = list(protocol(LoadContext.read(path).plan.protocol).personas)
    except Exception as exc:
        log.error("l2chaos load set-up failed: %s", exc)
        return ()
    out: list[type[PersonaUser]] = []
    for name in names:
        cls = type(locust_class(name), (PersonaUser,), {"persona": name, "abstract": False})
        globals()[cls.__name__] = cls
        out.append(cls)
    return tuple(out)


PERSONA_CLASSES: tuple[type[PersonaUser], ...] = _persona_classes()
