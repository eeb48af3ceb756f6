"""Runs one scenario end to end and returns its exit code.

    validate → stack up (every link behind Toxiproxy) → baseline check → probes, load and
    the fault timeline from t0 → at the end (or on abort) heal everything → stop load →
    stop probes → audit export → stack down (always) → check invariants → reports

Each part registers its wind-down in an ExitStack as it comes up, so the teardown
undoes exactly what was up, in reverse order, whatever ended the run. The run's
lifecycle events (l2chaos.events) feed the progress display, the reports and
plug-ins; a failed wind-down step, a listener that raised or a thread that died is a
problem of the run (run.json `problems`, exit 3). SIGINT/SIGTERM raise
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import httpx

from .accounts import read_accounts
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
from .events import Events, Problems, report_thread_deaths
from .eventsource import EventPoller
from .hooks import HttpHookClient
from .jsonrpc import RpcCallError
from .probe import ProbeLoop, Prober, baseline_check
from .progress import Progress
from .registry import listeners as listener_plugins
from .rundir import RunDir, RunInfo
from .rundir.scenario import SCENARIO_JSON
from .safety import Trust
from .scenario import FaultUse, Scenario, load_scenario
from .signals import ChainHeights, EventFeed, ProbeEvents, Signals
from .stackspec import render
from .timeline import Timeline
from .triggers import AtBlock, OnEvent

if TYPE_CHECKING:
    from .backends.platform import Platform
    from .invariants.check import CheckOutcome
    from .load import LoadRunner

__all__ = [
    "RunOptions",
    "RunResult",
    "backend_for",
    "check_platform",
    "run_loaded",
    "run_scenario",
]


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
    # Called with the run's Events before it starts, like the l2chaos.listeners plug-ins.
    listeners: Sequence[Callable[[Events], object]] = ()


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
    """The orchestrator on the platform `--backend` (else the scenario) names, once
    `check_platform` accepts it."""
    from .backends import platform_for
    from .backends.orchestrator import StackOrchestrator

    chosen = platform_for(choice or scenario.backend, scenario.stack.spec)
    check_platform(scenario, chosen)
    return StackOrchestrator(chosen)


def check_platform(scenario: Scenario, chosen: type[Platform]) -> None:
    """ScenarioError when a fault of the timeline (a nemesis: one it may draw) needs a
    control the platform lacks (`Fault.needs_backend` against `Platform.capabilities`)."""
    for use in scenario.timeline:
        missing = use.fault.platform_needs() - chosen.capabilities
        if missing:
            can = ", ".join(sorted(chosen.capabilities)) or "none of them"
            raise ScenarioError(
                f"{use.name} needs a platform that can {' and '.join(sorted(missing))} a "
                f"service; platform {chosen.name!r} can: {can} (l2chaos list platforms)",
                file=scenario.path,
                line=use.line,
                field=f"timeline[{use.index}].fault",
            )


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
    """One run. `execute` reads top to bottom: start the record, bring the parts up in
    order (each registers how it winds down), run to the end, wind down in reverse
    order, check, finish. The parts live in an ExitStack, so an abort anywhere winds
    down exactly what was brought up."""

    def __init__(self, scenario: Scenario, opts: RunOptions) -> None:
        self.sc = scenario
        self.opts = opts
        self.backend = backend_for(scenario, opts.backend)
        self.run_dir = RunDir.create(opts.out_dir, scenario.name, scenario.profile)
        self.admin_token = secrets.token_urlsafe(24)
        self.run_dir.redactor.add(self.admin_token)
        self.problems = Problems()
        self.events = Events(self.problems)
        self.progress = Progress(
            opts.stream,
            scenario.name,
            scenario.profile,
            scenario.duration_ns,
            enabled=opts.progress,
        )
        self.progress.listen(self.events)
        self.events.verdict.add_listener(_write_reports)
        for register in [*listener_plugins().values(), *opts.listeners]:
            register(self.events)
        self.signals = _SignalGuard()
        self.reached_end = False

    # ------------------------------------------------------------------ the run

    def execute(self) -> RunResult:
        self._start_record()
        self.events.run_started.fire(
            run_id=self.run_dir.run_id,
            run_dir=self.run_dir.path,
            scenario=self.sc,
            backend=self.backend.name,
        )
        exit_code, error = self._play()
        if exit_code is not None:
            result = self._aborted(exit_code, error)
        else:
            self.run_dir.update_run(phase="finished")
            try:
                result = self._check()
            except KeyboardInterrupt:  # Ctrl-C while checking: the record stays whole
                error = "interrupted while checking; `l2chaos check` gives the verdict later"
                result = self._result(EXIT_INTERRUPTED, error=error)
        return self._finish(result)

    def _start_record(self) -> None:
        rd = self.run_dir
        rd.write_json(SCENARIO_JSON, self.sc.resolved().to_json())
        if self.sc.path is not None and self.sc.path.is_file():  # what `l2chaos shrink` replays
            (rd.path / "scenario.source.yaml").write_bytes(self.sc.path.read_bytes())
        rd.write_run(
            RunInfo(
                run_id=rd.run_id,
                scenario=self.sc.name,
                profile=self.sc.profile,
                backend=self.backend.name,
                seed=self.sc.seed,
                time_scale=self.sc.time_scale,
                duration_ns=self.sc.duration_ns,
                started_t_ns=time.time_ns(),
                phase="starting",
                versions=_versions(None),
                pid=os.getpid(),
            )
        )

    def _play(self) -> tuple[int | None, str | None]:
        """Up, run, wind down. (exit code, error) of an aborted run, else (None, None)."""
        try:
            with _signals_raise_interrupted() as signals, report_thread_deaths(self.problems):
                self.signals = signals
                with contextlib.ExitStack() as parts:
                    try:
                        self._up_and_run(parts)
                    finally:  # the parts wind down as the ExitStack closes
                        signals.defer()
                        self.run_dir.update_run(phase="winding down")
            if signals.fired is not None:
                return EXIT_INTERRUPTED, signals.message
        except Interrupted as exc:
            return EXIT_INTERRUPTED, str(exc)
        except InputError as exc:  # found only once the stack was up (a block already passed)
            return EXIT_BAD_INPUT, str(exc)
        except HarnessError as exc:
            return exc.exit_code, str(exc)
        except Exception as exc:  # a bug: recorded like any abort, never left as "running"
            self._keep_traceback()
            return EXIT_HARNESS_BROKE, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self.run_dir.close()
        return None, None

    def _up_and_run(self, parts: contextlib.ExitStack) -> None:
        rd, spec = self.run_dir, self.sc.stack.spec
        stack = self._stack_up(parts)
        hooks = parts.enter_context(
            contextlib.closing(HttpHookClient(spec.hooks, stack.direct_url, stack.admin_token))
        )
        accounts = self._fetch_accounts(stack)

        self.progress.phase("baseline")
        prober = parts.enter_context(contextlib.closing(Prober(spec, stack, run_dir=rd.path)))
        parts.callback(self._step, "recording the chain", self._record_chain, prober)
        probes_log = rd.jsonl("probes.jsonl")
        base = baseline_check(prober, probes_log, timeout_s=self.opts.baseline_timeout_s)
        check_blocks_ahead(self.sc, base.block_height)
        heights = ChainHeights(prober.block_height)
        heights.observe(base.block_height, base.mono_ns)
        poller = self._event_poller(stack)
        load = self._prepare_load(stack, accounts)
        try:
            t0_ns, t0_mono = time.time_ns(), time.monotonic_ns()
            rd.update_run(
                phase="running",
                t0_ns=t0_ns,
                t0_mono_ns=t0_mono,
                baseline_block=base.block_height,
            )
            self.events.baseline_passed.fire(sample=base, t0_ns=t0_ns)
            probe = ProbeLoop(prober, probes_log)
            probe.subscribe(lambda sample: heights.observe(sample.block_height, sample.mono_ns))
            probe.subscribe(lambda sample: self.events.probe_sample.fire(sample=sample))
            feed = self._event_feed(t0_ns, probe, poller)
            probe.start()
            parts.callback(self._step, "stopping probes", self._stop_probes, probe, poller)
        finally:  # registered here so the load stops before the probes do
            if load is not None:
                parts.callback(self._step, "stopping load", self._stop_load, load)
        timeline = Timeline(
            self.sc.timeline,
            self._fault_contexts(stack, hooks, accounts),
            rd.jsonl("faults.jsonl"),
            t0_mono,
            Signals(heights, feed, base.block_height),
            on_action=self.events.fault_acted,
        )
        timeline.start()  # before the load, whose start takes seconds
        parts.callback(self._step, "healing faults", self._heal_all, timeline)
        if load is not None:
            load.t0_ns = t0_ns
            load.start()
            self.events.load_started.fire(plan=load.plan)
        self.progress.phase("running")
        self._wait_for_end(t0_mono, load)
        self.reached_end = True

    # ------------------------------------------------------------------ parts

    def _stack_up(self, parts: contextlib.ExitStack) -> RunningStack:
        """The stack, with what its wind-down needs: the audit export, the hold of
        --keep-up, and (last of all) the stack going down."""
        rd = self.run_dir
        self.progress.phase("starting stack")
        stack = self.backend.up(
            self.sc.stack,
            run_id=rd.run_id,
            run_dir=rd.path,
            env={"L2CHAOS_ADMIN_TOKEN": self.admin_token},
        )
        parts.callback(self._stack_down, stack)
        if self.opts.keep_up:
            parts.callback(self._hold_up, stack)
        parts.callback(self._step, "exporting audit", self._export_audit, stack)
        versions = _versions(stack)
        rd.update_run(phase="stack up", stack=stack.describe(), versions=versions)
        self.events.stack_ready.fire(stack=stack, versions=versions)
        return stack

    def _step(self, label: str, step: Callable[..., object], *args: Any) -> None:
        """One step of the wind-down: a failure is a problem (exit 3), never a reason to
        skip the steps after it."""
        self.progress.phase(label)
        try:
            step(*args)
        except Exception as exc:
            self.problems.add(f"{label}: {exc}")
            self.progress.line(f"{label} failed: {exc}")

    def _stack_down(self, stack: RunningStack) -> None:
        self.progress.phase("stopping stack")
        rd = self.run_dir
        try:
            self.backend.down(stack)
        finally:
            self.problems.extend([f"teardown: {p}" for p in stack.teardown_problems])
            rd.redact_files(p for p in (rd.path / "logs").glob("*") if p.is_file())
            rd.update_run(ended_t_ns=time.time_ns(), problems=self.problems.items())

    def _heal_all(self, timeline: Timeline) -> None:
        timeline.heal_all()
        self.problems.extend([f"fault {e}" for e in timeline.errors()])
        if self.reached_end:  # an aborted run says why it stopped instead
            self.problems.extend([f"fault {e}" for e in timeline.missed()])

    def _stop_load(self, load: LoadRunner) -> None:
        self.events.load_stopped.fire(result=load.stop())

    def _stop_probes(self, probe: ProbeLoop, poller: EventPoller | None) -> None:
        if poller is not None:
            poller.stop()
        probe.stop()
        problem = probe.problem()
        if problem is not None:
            self.problems.add(problem)

    def _wanted_events(self) -> list[str]:
        return sorted({u.trigger.event for u in self.sc.timeline if isinstance(u.trigger, OnEvent)})

    def _event_poller(self, stack: RunningStack) -> EventPoller | None:
        """The stack's event stream, primed (what is already there never fires), when a
        trigger waits for one of its events."""
        source = self.sc.stack.spec.events
        wanted = [n for n in self._wanted_events() if source is not None and n in source.names()]
        if source is None or not wanted:
            return None
        url = stack.direct_url(source.service, source.path)
        poller = EventPoller(source, url, wanted)
        try:
            poller.prime()
        except (httpx.HTTPError, ValueError) as exc:
            poller.stop()
            raise StackError(f"could not read the stack's event stream at {url}: {exc}") from exc
        return poller

    def _event_feed(
        self, t0_ns: int, probe: ProbeLoop, poller: EventPoller | None
    ) -> EventFeed | None:
        """Events for the triggers: the stream's (started here) and the probes'."""
        wanted = self._wanted_events()
        if not wanted:
            return None
        feed = EventFeed(t0_ns, wanted)
        probe.subscribe(ProbeEvents(feed))
        if poller is not None:
            poller.start(feed)
        return feed

    def _fetch_accounts(self, stack: RunningStack) -> list[dict[str, Any]]:
        accounts = read_accounts(stack, self.admin_token)
        self.run_dir.redactor.add(*(str(a.get("api_key", "")) for a in accounts))
        return accounts

    def _endpoints(self, stack: RunningStack) -> dict[str, str]:
        return {role: stack.client_url(svc) for role, svc in self.sc.stack.spec.load.items()}

    def _prepare_load(
        self, stack: RunningStack, accounts: list[dict[str, Any]]
    ) -> LoadRunner | None:
        """Before t0: the load protocol's set-up (evm: funding the users' keys takes a
        few blocks), so the faults' schedule does not wait for it."""
        if self.sc.load is None:
            return None  # no `load:`: no Locust at all
        from .load import LoadRunner

        load = LoadRunner(
            self.sc.load,
            endpoints=self._endpoints(stack),
            accounts=accounts,
            seed=self.sc.seed,
            run_dir=self.run_dir.path,
            duration_s=self.sc.duration_ns / 1e9,
            t0_ns=time.time_ns(),
            allow_targets=tuple(self.opts.allow_targets),
            run_id=self.run_dir.run_id,
            options=self.sc.stack.spec.load_options,
        )
        try:
            load.prepare()
        except BaseException:
            load.stop()
            raise
        return load

    def _fault_contexts(
        self, stack: RunningStack, hooks: HttpHookClient, accounts: list[dict[str, Any]]
    ) -> Callable[[FaultUse, Any], Any]:
        """What each timeline entry acts through (its own seeded random draws)."""
        from l2chaos.faults.base import FaultContext

        def context(use: FaultUse, note: Any) -> FaultContext:
            return FaultContext(
                stack=stack,
                links=stack.links,
                control=stack.control,
                hooks=hooks,
                rng=random.Random(f"{self.sc.seed}:{use.index}"),
                time_scale=self.sc.time_scale,
                note=note,
                endpoints=self._endpoints(stack),
                accounts=accounts,
            )

        return context

    def _wait_for_end(self, t0_mono: int, load: LoadRunner | None) -> None:
        end = t0_mono + self.sc.duration_ns
        while True:
            now = time.monotonic_ns()
            if now >= end:
                return
            if load is not None and not load.alive() and now < end - 2_000_000_000:
                raise HarnessError(
                    "the load generator stopped before the end of the run; see load/locust.log"
                )
            self.progress.tick(now - t0_mono)
            time.sleep(min(0.5, (end - now) / 1e9))

    def _hold_up(self, stack: RunningStack) -> None:
        self.progress.line("--keep-up: the stack stays up until Ctrl-C")
        for svc in stack.services:
            self.progress.line(f"  {svc}: {stack.direct_url(svc)}")
        self.progress.line(f"  admin token: {self.admin_token}")
        self.signals.hold()

    def _record_chain(self, prober: Prober) -> None:
        """The node's final canonical chain into chain/blocks.jsonl (stacks with a
        `chain` probe; see l2chaos.chainrecord)."""
        chain = prober.chain
        if chain is None:
            return
        try:
            n = chain.scan()
        except RpcCallError as exc:
            raise StackError(f"could not read the final chain from the node: {exc}") from None
        self.progress.line(f"chain record: {n} canonical blocks, {chain.reorgs} reorg(s) seen")

    def _export_audit(self, stack: RunningStack) -> None:
        spec = self.sc.stack.spec
        if spec.audit is None:
            self.progress.line(
                "the stack has no audit export; checkers that need it report not_applicable"
            )
            return
        values = stack.template_values(out=self.run_dir.path / "audit")
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

    def _keep_traceback(self) -> None:
        path = self.run_dir.path / "harness-traceback.txt"
        with contextlib.suppress(OSError):
            path.write_text(self.run_dir.redactor.text(traceback.format_exc()), encoding="utf-8")

    # ------------------------------------------------------------------ verdict

    def _result(self, code: int, *, summary: str = "", error: str | None = None) -> RunResult:
        return RunResult(code, self.sc.name, self.sc.profile, self.run_dir.path, summary, error)

    def _aborted(self, exit_code: int, error: str | None) -> RunResult:
        """No verdict; still result.json and junit.xml (exit 3 in them), so a CI job that
        publishes reports shows what broke."""
        from .invariants.check import check_run

        rd = self.run_dir
        rd.update_run(phase="aborted", error=error, exit_code=exit_code, ended_t_ns=time.time_ns())
        try:
            outcome = check_run(rd.path)
        except Exception as exc:  # the abort's own error is what matters; note this one
            rd.update_run(report_error=str(exc))
        else:
            self.events.verdict.fire(run_dir=rd.path, outcome=outcome)
        return self._result(exit_code, error=error)

    def _check(self) -> RunResult:
        from .invariants.check import check_run
        from .report import render_summary

        rd = self.run_dir
        self.progress.phase("checking")
        outcome = check_run(rd.path)
        self.events.verdict.fire(run_dir=rd.path, outcome=outcome)
        self.progress.done()
        rd.update_run(phase="checked", exit_code=int(outcome.exit_code))
        return self._result(int(outcome.exit_code), summary=render_summary(outcome, rd.path))

    def _finish(self, result: RunResult) -> RunResult:
        """run_finished; then whatever broke beside the verdict (a wind-down step, a
        listener, a thread) makes it exit 3, in run.json too."""
        self.events.run_finished.fire(
            run_dir=self.run_dir.path, exit_code=result.exit_code, error=result.error
        )
        problems = self.problems.items()
        if not problems:
            return result
        if result.summary:
            result.summary += "\nThe harness or the stack broke during the run (exit 3):\n"
            result.summary += "\n".join(f"  - {p}" for p in problems)
        if result.exit_code in (0, 1):
            result.exit_code = EXIT_HARNESS_BROKE
        self.run_dir.update_run(problems=problems, exit_code=result.exit_code)
        return result


def _write_reports(*, run_dir: Path, outcome: CheckOutcome, **_: object) -> None:
    """The reports listen to the verdict."""
    from .report import write_reports

    write_reports(run_dir, outcome)


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
