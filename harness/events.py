"""Lifecycle events of a run: typed hooks that the progress display, the report and
user plug-ins listen to, in the style of Locust's `events`.

    from l2chaos.events import Events

    def register(events: Events) -> None:   # entry point in the group l2chaos.listeners
        @events.fault_injected.add_listener
        def on_inject(*, action: FaultAction, **kwargs: object) -> None:
            print("injected", action.name, "at block", action.block)

A hook is fired with keyword arguments only (its `fire` has the signature the hook's
spec below gives, and mypy checks both sides); a listener takes `**kwargs` too, so a
later version may add arguments. Listeners run on the thread that fires: the runner's
for the run's phases, the fault's own thread for fault actions, the probe thread for
samples. Keep them short.

A listener that raises never stops the run nor the other listeners: the error is kept
(`Events.problems`), goes to run.json's `problems`, and the run exits 3. So does a
thread of the run that dies of an exception (`report_thread_deaths`).
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Generic, ParamSpec

if TYPE_CHECKING:
    from .backends.base import RunningStack
    from .invariants.check import CheckOutcome
    from .load.plan import LoadPlan
    from .load.runner import LoadResult
    from .probe import Sample
    from .rundir.faults import FaultAction
    from .scenario import Scenario

__all__ = ["EventHook", "Events", "Problems", "report_thread_deaths"]

P = ParamSpec("P")


class Problems:
    """What went wrong beside the verdict (exit 3), collected from any thread."""

    def __init__(self) -> None:
        self._items: list[str] = []
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        with self._lock:
            self._items.append(text)

    def extend(self, texts: list[str]) -> None:
        with self._lock:
            self._items.extend(texts)

    def items(self) -> list[str]:
        with self._lock:
            return list(self._items)


class EventHook(Generic[P]):
    """Listeners of one event, called in the order they were added."""

    def __init__(self, name: str, spec: Callable[P, None], problems: Problems) -> None:
        self.name = name
        self.__doc__ = spec.__doc__
        self._listeners: list[Callable[P, object]] = []
        self._problems = problems
        self._lock = threading.Lock()

    def add_listener(self, listener: Callable[P, object]) -> Callable[P, object]:
        """Add `listener` (usable as a decorator: returns it unchanged)."""
        with self._lock:
            self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[P, object]) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def fire(self, *args: P.args, **kwargs: P.kwargs) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(*args, **kwargs)
            except Exception as exc:  # recorded: the run goes on and exits 3
                where = getattr(listener, "__qualname__", repr(listener))
                self._problems.add(
                    f"listener {where} of {self.name} raised {type(exc).__name__}: {exc}"
                )


# The hooks' signatures (what `fire` takes and every listener gets).


def _run_started(*, run_id: str, run_dir: Path, scenario: Scenario, backend: str) -> None:
    """The run directory exists and the scenario is written; nothing is up yet."""


def _stack_ready(*, stack: RunningStack, versions: dict[str, str]) -> None:
    """Every service is up and ready, behind its proxies."""


def _baseline_passed(*, sample: Sample, t0_ns: int) -> None:
    """The stack was healthy before the first fault; `t0_ns` is time zero of the run."""


def _fault_action(*, action: FaultAction) -> None:
    """A fault entry acted (as recorded in faults.jsonl; `action.ok` false when it failed)."""


def _load_started(*, plan: LoadPlan) -> None:
    """Locust started with this plan."""


def _load_stopped(*, result: LoadResult) -> None:
    """Locust stopped (by itself or at the wind-down) and the history is merged."""


def _probe_sample(*, sample: Sample) -> None:
    """One probe sample (every 250 ms by default), as written to probes.jsonl."""


def _verdict(*, run_dir: Path, outcome: CheckOutcome) -> None:
    """The run was checked (or gets no verdict: `outcome` says why); reports listen."""


def _run_finished(*, run_dir: Path, exit_code: int, error: str | None) -> None:
    """The run is over: the stack is down and run.json final."""


class Events:
    """Every hook of one run. `problems` collects the listeners that raised."""

    def __init__(self, problems: Problems | None = None) -> None:
        self.problems = problems if problems is not None else Problems()
        p = self.problems
        self.run_started = EventHook("run_started", _run_started, p)
        self.stack_ready = EventHook("stack_ready", _stack_ready, p)
        self.baseline_passed = EventHook("baseline_passed", _baseline_passed, p)
        self.fault_injected = EventHook("fault_injected", _fault_action, p)
        self.fault_healed = EventHook("fault_healed", _fault_action, p)
        self.load_started = EventHook("load_started", _load_started, p)
        self.load_stopped = EventHook("load_stopped", _load_stopped, p)
        self.probe_sample = EventHook("probe_sample", _probe_sample, p)
        self.verdict = EventHook("verdict", _verdict, p)
        self.run_finished = EventHook("run_finished", _run_finished, p)

    def fault_acted(self, action: FaultAction) -> None:
        """Fire fault_injected or fault_healed for a timeline action (notes fire none)."""
        if action.action == "inject":
            self.fault_injected.fire(action=action)
        elif action.action == "heal":
            self.fault_healed.fire(action=action)


@contextlib.contextmanager
def report_thread_deaths(problems: Problems) -> Iterator[None]:
    """While inside: an uncaught exception that ends any thread (a probe loop, a
    nemesis, a fault's own thread) is a problem of the run, and still printed."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            name = args.thread.name if args.thread is not None else "a thread"
            last = traceback.extract_tb(args.exc_traceback)[-1:] if args.exc_traceback else []
            where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
            problems.add(f"thread {name} died of {args.exc_type.__name__}: {args.exc_value}{where}")
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous
