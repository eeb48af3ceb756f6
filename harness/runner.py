"""Runs one scenario end to end and returns its exit code.

    validate → stack up (every link behind Toxiproxy) → baseline check → probes, load and
    the fault timeline from t0 → at the end (or on abort) heal everything → stop load →
    audit export → stack down (always) → check invariants → write reports

Teardown is guaranteed: the stack goes down in a `finally`, SIGINT/SIGTERM raise
`Interrupted` in the main thread while the run is under way; during the wind-down a
signal is only noted (and later ones ignored), so the teardown completes, and the run
then ends as interrupted all the same (exit 130, in run.json and result.json alike).
The backends keep marker files for `l2chaos gc`. A run that ends any other way than
`checked` gets no verdict: run.json says `aborted` with the error (a bug included), and
`check_run` refuses a verdict to a run whose run.json never reached `finished`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import httpx

from .backends.base import Backend, RunningStack
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_HARNESS_BROKE,
    EXIT_INTERRUPTED,
    HarnessError,
    InputError,
    Interrupted,
    ScenarioError,
    StackError,
)
from .eventsource import EventPoller
from .hooks import HttpHookClient
from .jsonrpc import RpcCallError
from .probe import ProbeLoop, Prober, baseline_check
from .progress import Progress
from .rundir import RunDir
from .safety import Trust
from .scenario import FaultUse, Scenario, load_scenario
from .signals import ChainHeights, EventFeed, ProbeEvents, Signals
from .stackspec import render
from .timeline import Timeline
from .triggers import AtBlock, OnEvent

__all__ = ["RunOptions", "RunResult", "backend_for", "run_loaded", "run_scenario"]


@dataclass
class RunOptions:
    """How to run: everything the CLI's `run` flags can change."""

    backend: str | None = None
    profile: str | None = None
    sets: Sequence[str] = ()
    time_scale: float | None = None
    out_dir: Path = Path("runs")
    keep_up: bool = False
    allow_targets: Sequence[str] = ()
    allow_exec: bool = False
    progress: bool = True
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    baseline_timeout_s: float = 60.0


@dataclass
class RunResult:
    exit_code: int
    scenario: str
    profile: str | None
    run_dir: Path | None
    summary: str = ""
    error: str | None = None


def run_scenario(path: str | Path, options: RunOptions | None = None) -> RunResult:
    """Validate and run one scenario file. Bad input raises InputError (exit 2)."""
    opts = options or RunOptions()
    trust = Trust(allow_exec=opts.allow_exec, allow_targets=tuple(opts.allow_targets))
    scenario = load_scenario(
        path, opts.sets, profile=opts.profile, time_scale=opts.time_scale, trust=trust
    )
    return run_loaded(scenario, opts)


def backend_for(scenario: Scenario, choice: str | None) -> Backend:
    """The orchestrator on the platform `--backend` (else the scenario) names."""
    from .backends import backend

    return backend(choice or scenario.backend, scenario.stack.spec)


def _versions(stack: RunningStack | None) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("l2chaos", "locust"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    if stack is not None:
        with contextlib.suppress(Exception):
            out.update(stack.versions())
    return out


class _SignalGuard:
    """SIGINT/SIGTERM: the first raises Interrupted while the run is under way; once
    `defer()` was called (the wind-down) it is only noted, and later ones are ignored,
    so the teardown completes. `fired` names the signal that came, if any."""

    def __init__(self) -> None:
        self.fired: str | None = None
        self._deferred = False

    def defer(self) -> None:
        self._deferred = True

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.fired is not None:
            return
        self.fired = signal.Signals(signum).name
        if not self._deferred:
            raise Interrupted(f"interrupted by {self.fired}; tearing down")

    def hold(self) -> None:
        """Block until a signal comes and consume it (--keep-up: Ctrl-C ends the hold,
        which is not an interruption). A signal that came before is kept, no hold."""
        if self.fired is not None:
            return
        while self.fired is None:
            time.sleep(0.2)
        self.fired = None

    @property
    def message(self) -> str:
        return f"interrupted by {self.fired} during the wind-down; the teardown completed"


@contextlib.contextmanager
def _signals_raise_interrupted() -> Iterator[_SignalGuard]:
    guard = _SignalGuard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    old = {s: signal.signal(s, guard.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield guard
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _Run:
    """State of one run; `execute` drives it."""

    def __init__(self, scenario: Scenario, opts: RunOptions) -> None:
        self.sc = scenario
        self.opts = opts
        self.backend = backend_for(scenario, opts.backend)
        self.run_dir = RunDir.create(opts.out_dir, scenario.name, scenario.profile)
        self.admin_token = secrets.token_urlsafe(24)
        self.run_dir.redactor.add(self.admin_token)
        self.progress = Progress(
            opts.stream,
            scenario.name,
            scenario.profile,
            scenario.duration_ns,
            enabled=opts.progress,
        )
        self.stack: RunningStack | None = None
        self.timeline: Timeline | None = None
        self.events: EventPoller | None = None
        self.probe: ProbeLoop | None = None
        self.prober: Prober | None = None
        self.load: Any = None
        self.hooks: HttpHookClient | None = None
        self.accounts: list[dict[str, Any]] = []
        self.t0_ns = 0
        self.t0_mono = 0
        self.problems: list[str] = []
        self.reached_end = False
        self.signals = _SignalGuard()

    # ------------------------------------------------------------------ phases

    def execute(self) -> RunResult:
        rd = self.run_dir
        rd.write_json("scenario.resolved.json", self.sc.resolved_json())
        if self.sc.path is not None and self.sc.path.is_file():  # what `l2chaos shrink` replays
            (rd.path / "scenario.source.yaml").write_bytes(self.sc.path.read_bytes())
        rd.write_json(
            "run.json",
            {
                "run_id": rd.run_id,
                "scenario": self.sc.name,
                "profile": self.sc.profile,
                "backend": self.backend.name,
                "seed": self.sc.seed,
                "time_scale": self.sc.time_scale,
                "duration_ns": self.sc.duration_ns,
                "started_t_ns": time.time_ns(),
                "phase": "starting",
                "versions": _versions(None),
                "pid": os.getpid(),
            },
        )
        self.progress.line(
            f"run {rd.run_id} on the {self.backend.name} backend; record in {rd.path}"
        )
        exit_code: int | None = None
        error: str | None = None
        try:
            with _signals_raise_interrupted() as signals:
                self.signals = signals
                try:
                    self._up_and_run()
                finally:
                    signals.defer()
                    self._wind_down()
            if signals.fired is not None:
                exit_code, error = EXIT_INTERRUPTED, signals.message
        except Interrupted as exc:
            exit_code, error = EXIT_INTERRUPTED, str(exc)
        except InputError as exc:  # found only once the stack was up (a block already passed)
            exit_code, error = EXIT_BAD_INPUT, str(exc)
        except HarnessError as exc:
            exit_code, error = exc.exit_code, str(exc)
        except Exception as exc:  # a bug: recorded like any abort, never left as "running"
            exit_code, error = EXIT_HARNESS_BROKE, f"internal error: {type(exc).__name__}: {exc}"
            self._keep_traceback()
        finally:
            rd.close()
        if exit_code is not None:
            rd.update_json(
                "run.json",
                phase="aborted",
                error=error,
                exit_code=exit_code,
                ended_t_ns=time.time_ns(),
            )
            self._report_aborted()
            return RunResult(exit_code, self.sc.name, self.sc.profile, rd.path, error=error)
        rd.update_json("run.json", phase="finished")
        try:
            return self._check()
        except KeyboardInterrupt:  # Ctrl-C while checking: the record stays whole (finished)
            error = "interrupted while checking; `l2chaos check` gives the verdict later"
            return RunResult(EXIT_INTERRUPTED, self.sc.name, self.sc.profile, rd.path, error=error)

    def _keep_traceback(self) -> None:
        path = self.run_dir.path / "harness-traceback.txt"
        with contextlib.suppress(OSError):
            path.write_text(self.run_dir.redactor.text(traceback.format_exc()), encoding="utf-8")

    def _report_aborted(self) -> None:
        """An aborted run still gets result.json and junit.xml (no verdict, exit 3 in
        them), so a CI job that publishes reports shows what broke."""
        from .invariants import check_run
        from .report import write_reports

        try:
            write_reports(self.run_dir.path, check_run(self.run_dir.path))
        except Exception as exc:  # the abort's own error is what matters; note this one
            self.run_dir.update_json("run.json", report_error=str(exc))

    def _up_and_run(self) -> None:
        rd = self.run_dir
        self.progress.phase("starting stack")
        self.stack = self.backend.up(
            self.sc.stack,
            run_id=rd.run_id,
            run_dir=rd.path,
            env={"L2CHAOS_ADMIN_TOKEN": self.admin_token},
        )
        rd.update_json(
            "run.json",
            phase="stack up",
            stack=self.stack.describe(),
            versions=_versions(self.stack),
        )
        self.progress.line(
            "versions: " + ", ".join(f"{k} {v}" for k, v in _versions(self.stack).items())
        )
        spec = self.sc.stack.spec
        self.hooks = HttpHookClient(spec.hooks, self.stack.direct_url, self.stack.admin_token)
        self.accounts = self._fetch_accounts()

        self.progress.phase("baseline")
        self.prober = Prober(spec, self.stack, run_dir=rd.path)
        probes_log = rd.jsonl("probes.jsonl")
        base = baseline_check(self.prober, probes_log, timeout_s=self.opts.baseline_timeout_s)
        check_blocks_ahead(self.sc, base.block_height)
        heights = ChainHeights(self.prober.block_height)
        heights.observe(base.block_height, base.mono_ns)
        self.events = self._event_poller()

        self._prepare_load()
        self.t0_ns, self.t0_mono = time.time_ns(), time.monotonic_ns()
        rd.update_json(
            "run.json",
            phase="running",
            t0_ns=self.t0_ns,
            t0_mono_ns=self.t0_mono,
            baseline_block=base.block_height,
        )
        self.probe = ProbeLoop(self.prober, probes_log)
        self.probe.subscribe(lambda sample: heights.observe(sample.block_height, sample.mono_ns))
        signals = Signals(heights, self._event_feed(), base.block_height)
        self.probe.start()
        self.timeline = Timeline(
            self.sc.timeline,
            self._fault_context,
            rd.jsonl("faults.jsonl"),
            self.t0_mono,
            signals,
        )
        self.timeline.start()  # before the load, whose start takes seconds
        self._start_load()
        self.progress.phase("running")
        self._wait_for_end()
        self.reached_end = True

    def _wanted_events(self) -> list[str]:
        return sorted({u.trigger.event for u in self.sc.timeline if isinstance(u.trigger, OnEvent)})

    def _event_poller(self) -> EventPoller | None:
        """The stack's event stream, primed (what is already there never fires), when a
        trigger waits for one of its events."""
        assert self.stack is not None
        source = self.sc.stack.spec.events
        wanted = [n for n in self._wanted_events() if source is not None and n in source.names()]
        if source is None or not wanted:
            return None
        url = self.stack.direct_url(source.service, source.path)
        poller = EventPoller(source, url, wanted)
        try:
            poller.prime()
        except (httpx.HTTPError, ValueError) as exc:
            poller.stop()
            raise StackError(f"could not read the stack's event stream at {url}: {exc}") from exc
        return poller

    def _event_feed(self) -> EventFeed | None:
        """Events for the triggers: the stream's (started here) and the probes'."""
        wanted = self._wanted_events()
        if not wanted:
            return None
        feed = EventFeed(self.t0_ns, wanted)
        assert self.probe is not None
        self.probe.subscribe(ProbeEvents(feed))
        if self.events is not None:
            self.events.start(feed)
        return feed

    def _fetch_accounts(self) -> list[dict[str, Any]]:
        assert self.stack is not None
        acc = self.sc.stack.spec.accounts
        if acc is None:
            return []
        url = self.stack.direct_url(acc["service"], acc["path"])
        try:
            resp = httpx.get(
                url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=30
            )
            resp.raise_for_status()
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise StackError(f"could not read the stack's accounts from {url}: {exc}") from exc
        if isinstance(data, Mapping):
            data = data.get("accounts", [])
        if not isinstance(data, list):
            raise StackError(f"{url} did not return a list of accounts")
        self.run_dir.redactor.add(
            *(str(a.get("api_key", "")) for a in data if isinstance(a, Mapping))
        )
        return [dict(a) for a in data if isinstance(a, Mapping)]

    def _endpoints(self) -> dict[str, str]:
        assert self.stack is not None
        return {role: self.stack.client_url(svc) for role, svc in self.sc.stack.spec.load.items()}

    def _prepare_load(self) -> None:
        """Before t0: the load protocol's set-up (evm: funding the users' keys takes a
        few blocks), so the faults' schedule does not wait for it."""
        if self.sc.load is None:
            return  # no `load:`: no Locust at all
        from .load import LoadRunner

        self.load = LoadRunner(
            self.sc.load,
            endpoints=self._endpoints(),
            accounts=self.accounts,
            seed=self.sc.seed,
            run_dir=self.run_dir.path,
            duration_s=self.sc.duration_ns / 1e9,
            t0_ns=time.time_ns(),
            allow_targets=tuple(self.opts.allow_targets),
            run_id=self.run_dir.run_id,
            options=self.sc.stack.spec.load_options,
        )
        self.load.prepare()

    def _start_load(self) -> None:
        if self.load is not None:
            self.load.t0_ns = self.t0_ns
            self.load.start()

    def _fault_context(self, use: FaultUse, note: Any) -> Any:
        from l2chaos.faults.base import FaultContext

        assert self.stack is not None
        assert self.hooks is not None
        return FaultContext(
            stack=self.stack,
            links=self.stack.links,
            control=self.stack.control,
            hooks=self.hooks,
            rng=random.Random(f"{self.sc.seed}:{use.index}"),
            time_scale=self.sc.time_scale,
            note=note,
            endpoints=self._endpoints(),
            accounts=self.accounts,
        )

    def _wait_for_end(self) -> None:
        end = self.t0_mono + self.sc.duration_ns
        while True:
            now = time.monotonic_ns()
            if now >= end:
                return
            if self.load is not None and not self.load.alive() and now < end - 2_000_000_000:
                raise HarnessError(
                    "the load generator stopped before the end of the run; see load/locust.log"
                )
            active = self.timeline.active() if self.timeline is not None else []
            self.progress.tick(now - self.t0_mono, active, self.probe.last if self.probe else None)
            time.sleep(min(0.5, (end - now) / 1e9))

    def _wind_down(self) -> None:
        """Heal, stop load and probes, export the audit, bring the stack down: always."""
        rd = self.run_dir
        rd.update_json("run.json", phase="winding down")
        steps: list[tuple[str, Any]] = [
            ("healing faults", lambda: self.timeline.heal_all() if self.timeline else None),
            ("stopping load", lambda: self.load.stop() if self.load is not None else None),
            ("stopping probes", self._stop_probes),
            ("recording the chain", self._record_chain),
            ("exporting audit", self._export_audit),
        ]
        for label, step in steps:
            self.progress.phase(label)
            try:
                step()
            except Exception as exc:  # one failed step must not skip the teardown
                self.problems.append(f"{label}: {exc}")
                self.progress.line(f"{label} failed: {exc}")
        if self.timeline is not None:
            self.problems.extend(f"fault {e}" for e in self.timeline.errors())
            if self.reached_end:  # an aborted run says why it stopped instead
                self.problems.extend(f"fault {e}" for e in self.timeline.missed())
        probe_problem = self.probe.problem() if self.probe is not None else None
        if probe_problem is not None:
            self.problems.append(probe_problem)
        if self.opts.keep_up and self.stack is not None:
            self._hold_up()
        self.progress.phase("stopping stack")
        try:
            if self.stack is not None:
                self.backend.down(self.stack)
        finally:
            if self.stack is not None:
                self.problems.extend(f"teardown: {p}" for p in self.stack.teardown_problems)
            for closer in (self.prober, self.hooks):
                if closer is not None:
                    with contextlib.suppress(Exception):
                        closer.close()
            rd.redact_files(p for p in (rd.path / "logs").glob("*") if p.is_file())
            rd.update_json("run.json", ended_t_ns=time.time_ns(), problems=self.problems)

    def _stop_probes(self) -> None:
        if self.events is not None:
            self.events.stop()
        if self.probe is not None:
            self.probe.stop()

    def _hold_up(self) -> None:
        assert self.stack is not None
        self.progress.line("--keep-up: the stack stays up until Ctrl-C")
        for svc in self.stack.services:
            self.progress.line(f"  {svc}: {self.stack.direct_url(svc)}")
        self.progress.line(f"  admin token: {self.admin_token}")
        self.signals.hold()

    def _record_chain(self) -> None:
        """The node's final canonical chain into chain/blocks.jsonl (stacks with a
        `chain` probe; see l2chaos.chainrecord)."""
        chain = self.prober.chain if self.prober is not None else None
        if chain is None or self.stack is None:
            return
        try:
            n = chain.scan()
        except RpcCallError as exc:
            raise StackError(f"could not read the final chain from the node: {exc}") from None
        self.progress.line(f"chain record: {n} canonical blocks, {chain.reorgs} reorg(s) seen")

    def _export_audit(self) -> None:
        if self.stack is None:
            return
        spec = self.sc.stack.spec
        if spec.audit is None:
            self.progress.line(
                "the stack has no audit export; checkers that need it report not_applicable"
            )
            return
        values = self.stack.template_values(out=self.run_dir.path / "audit")
        argv = [render(part, values) for part in spec.audit]
        env = dict(os.environ, L2CHAOS_ADMIN_TOKEN=self.admin_token)
        log = self.run_dir.path / "logs" / "audit-export.log"
        with log.open("w") as fh:
            done = subprocess.run(
                argv, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=600, check=False,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"audit export exited {done.returncode}; see {log}")
        self.run_dir.redact_files(p for p in (self.run_dir.path / "audit").glob("*") if p.is_file())

    # ------------------------------------------------------------------ verdict

    def _check(self) -> RunResult:
        from .invariants import check_run
        from .report import render_summary, write_reports

        rd = self.run_dir
        self.progress.phase("checking")
        outcome = check_run(rd.path)
        write_reports(rd.path, outcome)
        summary = render_summary(outcome, rd.path)
        code = int(outcome.exit_code)
        if self.problems:
            summary += "\nThe harness or the stack broke during the run (exit 3):\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
            code = EXIT_HARNESS_BROKE
        rd.update_json("run.json", phase="checked", exit_code=code)
        self.progress.done()
        return RunResult(code, self.sc.name, self.sc.profile, rd.path, summary=summary)


def check_blocks_ahead(scenario: Scenario, baseline: int | None) -> None:
    """An absolute `{block: N}` at or below the height the run starts from can never
    fire: bad input, found once the chain's height is known."""
    for use in scenario.timeline:
        trig = use.trigger
        if (
            isinstance(trig, AtBlock)
            and not trig.relative
            and baseline is not None
            and trig.block <= baseline
        ):
            raise ScenarioError(
                f"block {trig.block} is at or below the chain's height when the run started "
                f"({baseline}), so it can never fire; use {{block: +N}} for N blocks after that",
                file=str(scenario.path) if scenario.path else scenario.name,
                line=trig.line or use.line,
                field=f"timeline[{use.index}].at.block",
            )


def run_loaded(scenario: Scenario, options: RunOptions | None = None) -> RunResult:
    """Run an already validated scenario. Harness failures become exit code 3."""
    return _Run(scenario, options or RunOptions()).execute()
