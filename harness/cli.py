"""The `l2chaos` command.

    l2chaos run SCENARIO... [--backend local|docker|auto] [--profile NAME]... [--seed N]
                [--duration D] [--time-scale X] [--workers N] [--users N]
                [--set KEY=VALUE]... [--keep-up] [--out DIR] [--allow-exec]
                [--allow-target HOST]...
    l2chaos validate SCENARIO... [--set KEY=VALUE]... [--profile NAME] [--allow-exec]
                [--allow-target HOST]... [--backend local|docker|auto]
    l2chaos list faults|invariants|scenarios|stacks|protocols|platforms [--markdown]
    l2chaos check RUN_DIR
    l2chaos report RUN_DIR
    l2chaos shrink RUN_DIR [--max-runs N] [--max-time D] [--retries N] [--invariant NAME]...
                [--scenario FILE] [--backend local|docker|auto] [--allow-exec]
                [--allow-target HOST]...
    l2chaos stack up|down|status STACK [--backend local|docker|auto] [--profile NAME]
                [--set KEY=VALUE]...
    l2chaos images build [--offline]
    l2chaos gc

Exit codes: 0 the expectation of the profile that ran is met, 1 it is not, 2 bad input,
3 the harness or the stack broke, 130 interrupted. Bad input prints one line
``FILE:LINE: FIELD: problem`` and never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

from .errors import (
    EXIT_BAD_INPUT,
    EXIT_EXPECTATION_FAILED,
    EXIT_HARNESS_BROKE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    InputError,
    Interrupted,
    L2ChaosError,
    UsageError,
)
from .safety import Trust

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"l2chaos: error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _scale(text: str) -> float:
    from .scenario import MAX_TIME_SCALE, MIN_TIME_SCALE

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.25, got {text!r}") from None
    if not MIN_TIME_SCALE <= value <= MAX_TIME_SCALE:
        raise argparse.ArgumentTypeError(
            f"expected a number from {MIN_TIME_SCALE:g} to {MAX_TIME_SCALE:g}, got {text!r}"
        )
    return value


def _out_dir(text: str) -> Path:
    """--out: a folder that exists or can be made (checked before anything starts)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"{text!r} is not a folder; expected where run directories go", field="--out"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot make the folder {text!r} ({exc.strerror}); expected where run directories go",
            field="--out",
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into {text!r}", field="--out")
    return path


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="l2chaos", description="Chaos-testing harness for Layer-2 DeFi exchange stacks."
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run scenarios and print the verdict")
    run.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    run.add_argument("--backend", choices=("auto", "local", "docker"))
    run.add_argument(
        "--profile", action="append", default=[], help="stack profile; repeat to run each"
    )
    run.add_argument("--seed", type=_positive_int)
    run.add_argument("--duration", help="run length, e.g. 2m (overrides the scenario's)")
    run.add_argument("--time-scale", type=_scale, help="shrink every scheduled time, e.g. 0.25")
    run.add_argument("--workers", type=_positive_int, help="Locust workers (0: one process)")
    run.add_argument("--users", type=_positive_int, help="simulated traders")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a field"
    )
    run.add_argument("--keep-up", action="store_true", help="keep the stack up after the run")
    run.add_argument("--out", default="runs", help="where run directories go (default: runs)")
    _trust_flags(run)
    run.add_argument("--no-progress", action="store_true", help="no live progress display")

    val = sub.add_parser("validate", help="validate scenarios without running them")
    val.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    val.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    val.add_argument("--profile")
    val.add_argument(
        "--backend", help="check the faults against this platform (default: the scenario's)"
    )
    _trust_flags(val)

    ls = sub.add_parser(
        "list", help="list faults, invariants, scenarios, stacks, load protocols or platforms"
    )
    ls.add_argument(
        "what", choices=("faults", "invariants", "scenarios", "stacks", "protocols", "platforms")
    )
    ls.add_argument("--markdown", action="store_true", help="print the reference as Markdown")

    check = sub.add_parser("check", help="re-check a finished run offline")
    check.add_argument("run_dir", metavar="RUN_DIR")
    rep = sub.add_parser(
        "report", help="print the summary of a checked run and rewrite its reports"
    )
    rep.add_argument("run_dir", metavar="RUN_DIR")

    shr = sub.add_parser(
        "shrink", help="shrink a failed run's faults to a minimal scenario that still fails"
    )
    shr.add_argument("run_dir", metavar="RUN_DIR")
    shr.add_argument("--max-runs", type=_positive_int, default=30, help="runs at most (30)")
    shr.add_argument("--max-time", type=_duration_s, default=3600.0, help="time at most (1h)")
    shr.add_argument(
        "--retries", type=_positive_int, default=1, help="runs more of a candidate that passed (1)"
    )
    shr.add_argument(
        "--invariant", action="append", default=[], help="the invariant to keep failing"
    )
    shr.add_argument("--scenario", help="the scenario file, when the run has no copy of it")
    shr.add_argument("--backend", choices=("auto", "local", "docker"))
    shr.add_argument("--no-progress", action="store_true")
    _trust_flags(shr)

    stack = sub.add_parser("stack", help="bring a stack up or down by hand")
    stack.add_argument("action", choices=("up", "down", "status"))
    stack.add_argument("stack", metavar="STACK")
    stack.add_argument("--backend", default="local", help="platform for `up` (default local)")
    stack.add_argument("--profile")
    stack.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    stack.add_argument("--seed", type=_positive_int, default=1)

    img = sub.add_parser("images", help="build the docker images")
    img.add_argument("action", choices=("build",))
    img.add_argument(
        "--offline", action="store_true", help="no registry: base image from debootstrap"
    )
    img.add_argument("--stack", default="perpdex")

    sub.add_parser("gc", help="remove leftovers of killed runs")
    return p


def _trust_flags(p: argparse.ArgumentParser) -> None:
    """What a scenario may do beyond the default (docs/security.md)."""
    p.add_argument(
        "--allow-exec",
        action="store_true",
        help="let the scenario run commands on this host (exec.command)",
    )
    p.add_argument(
        "--allow-target",
        action="append",
        default=[],
        metavar="HOST",
        help="a non-loopback host that is yours (load endpoints, the Locust master's bind address)",
    )


def _trust(args: argparse.Namespace) -> Trust:
    return Trust(allow_exec=args.allow_exec, allow_targets=tuple(args.allow_target))


def _duration_s(text: str) -> float:
    from .durations import parse_duration

    try:
        ns = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if ns <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return ns / 1e9


def _cmd_shrink(args: argparse.Namespace) -> int:
    from .shrink import ShrinkOptions, shrink_run

    opts = ShrinkOptions(
        max_runs=args.max_runs,
        max_time_s=args.max_time,
        retries=args.retries,
        invariants=tuple(args.invariant),
        scenario_file=Path(args.scenario) if args.scenario else None,
        backend=args.backend,
        allow_exec=args.allow_exec,
        allow_targets=tuple(args.allow_target),
        progress=not args.no_progress,
    )
    result = shrink_run(Path(args.run_dir), opts)
    print(result.summary, flush=True)
    return result.exit_code


def _overrides(args: argparse.Namespace) -> list[str]:
    sets = list(args.set)
    if args.seed is not None:
        sets.append(f"seed={args.seed}")
    if args.duration is not None:
        sets.append(f"duration={args.duration}")
    if args.workers is not None:
        sets.append(f"load.workers={args.workers}")
    if args.users is not None:
        sets.append(f"load.users={args.users}")
    return sets


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import RunOptions, run_loaded
    from .scenario import load_scenario

    profiles: list[str | None] = list(args.profile) or [None]
    sets = _overrides(args)
    # Validate everything before anything starts.
    planned = [
        load_scenario(path, sets, profile=prof, time_scale=args.time_scale, trust=_trust(args))
        for path in args.scenarios
        for prof in profiles
    ]
    opts = RunOptions(
        backend=args.backend,
        out_dir=_out_dir(args.out),
        keep_up=args.keep_up,
        allow_targets=tuple(args.allow_target),
        allow_exec=args.allow_exec,
        progress=not args.no_progress,
    )
    codes: list[tuple[str, int]] = []
    for scenario in planned:
        result = run_loaded(scenario, opts)
        label = scenario.name + (f" [{scenario.profile}]" if scenario.profile else "")
        if result.summary:
            print(result.summary, flush=True)
        if result.error:
            sys.stderr.write(f"l2chaos: {label}: {result.error}\n")
            if result.run_dir is not None:
                sys.stderr.write(f"l2chaos: the record (no verdict) is in {result.run_dir}\n")
        codes.append((label, result.exit_code))
        if result.exit_code == EXIT_INTERRUPTED:
            break
    if len(codes) > 1:
        print("\nruns:")
        for label, code in codes:
            print(f"  {_EXIT_WORDS.get(code, str(code)):<22} {label}")
    return _worst(c for _, c in codes)


_EXIT_WORDS = {
    EXIT_OK: "expectation met",
    EXIT_EXPECTATION_FAILED: "expectation NOT met",
    EXIT_HARNESS_BROKE: "harness/stack broke",
    EXIT_INTERRUPTED: "interrupted",
}


def _worst(codes: Iterable[int]) -> int:
    seen = set(codes)
    for code in (EXIT_INTERRUPTED, EXIT_HARNESS_BROKE, EXIT_EXPECTATION_FAILED):
        if code in seen:
            return code
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from .backends import platform_for
    from .runner import check_platform
    from .scenario import load_scenario

    for path in args.scenarios:
        sc = load_scenario(path, args.set, profile=args.profile, trust=_trust(args))
        check_platform(sc, platform_for(args.backend or sc.backend, sc.stack.spec))
        print(f"{path}: ok ({sc.name}: {len(sc.timeline)} faults, {len(sc.invariants)} invariants)")
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    from . import catalogue

    text = {
        "faults": catalogue.faults_text,
        "invariants": catalogue.invariants_text,
        "scenarios": catalogue.scenarios_text,
        "stacks": catalogue.stacks_text,
        "protocols": catalogue.protocols_text,
        "platforms": catalogue.platforms_text,
    }[args.what](markdown=args.markdown)
    sys.stdout.write(text)
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    from .invariants.check import check_run
    from .report import render_summary, write_reports

    run_dir = Path(args.run_dir)
    if not (run_dir / "scenario.resolved.json").is_file():
        raise UsageError(
            f"{run_dir} is not a run directory (no scenario.resolved.json)", field="RUN_DIR"
        )
    outcome = check_run(run_dir)
    write_reports(run_dir, outcome)
    print(render_summary(outcome, run_dir))
    return int(outcome.exit_code)


def _cmd_stack(args: argparse.Namespace) -> int:
    from . import stackhold

    if args.action == "up":
        return stackhold.up(
            args.stack, profile=args.profile, sets=args.set, seed=args.seed, backend=args.backend
        )
    if args.action == "down":
        return stackhold.down(args.stack)
    return stackhold.status(args.stack)


def _cmd_images(args: argparse.Namespace) -> int:
    from .backends import images

    return images.build_cli(stack=args.stack, offline=args.offline)


def _cmd_gc(_: argparse.Namespace) -> int:
    from .backends import gc_all

    removed = gc_all()
    for line in removed:
        print(line)
    print(f"gc: removed {len(removed)} leftover(s)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "run": _cmd_run,
        "validate": _cmd_validate,
        "list": _cmd_list,
        "check": _cmd_check,
        "report": _cmd_check,
        "shrink": _cmd_shrink,
        "stack": _cmd_stack,
        "images": _cmd_images,
        "gc": _cmd_gc,
    }
    try:
        return handlers[args.command](args)
    except InputError as exc:
        sys.stderr.write(f"l2chaos: {exc}\n")
        return EXIT_BAD_INPUT
    except Interrupted as exc:
        sys.stderr.write(f"l2chaos: {exc}\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("l2chaos: interrupted\n")
        return EXIT_INTERRUPTED
    except L2ChaosError as exc:
        sys.stderr.write(f"l2chaos: {exc}\n")
        return exc.exit_code
    except Exception:
        if os.environ.get("L2CHAOS_DEBUG"):
            traceback.print_exc()
        else:
            kind, value, _ = sys.exc_info()
            sys.stderr.write(
                f"l2chaos: internal error: {kind.__name__ if kind else 'error'}: {value}\n"
                "(a bug in l2chaos: run with L2CHAOS_DEBUG=1 for the traceback and report it)\n"
            )
        return EXIT_HARNESS_BROKE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
