"""Hostile input through the real command line: every case is exit code 2 with one line
naming the file, the line and the field, no traceback, and no hang.

The corpus is `inputs/*.yaml` (each file says what it expects on its first line:
``# expect: LINE FIELD | text``, ``-`` for none) plus inputs that cannot live in git
(a FIFO, a symlink loop, a NUL byte, a binary file, a file over the size cap) and
command-line flags. Every scenario goes through `l2chaos validate` and `l2chaos run`;
a run must refuse before anything starts. All commands run at once in a few worker
threads first (each with a subprocess timeout: a hang fails, it does not stall CI);
the tests then read the results.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._support.cli import l2chaos as run_l2chaos

INPUTS = Path(__file__).parent / "inputs"
TIMEOUT_S = 90  # a subprocess bound: a hang fails the case instead of stalling CI
_EXPECT = re.compile(r"# expect: (\S+) (\S+) \| (.+)")


@dataclass(frozen=True)
class Case:
    """One command and what its one-line message must say."""

    id: str
    args: tuple[str, ...]
    where: str  # the message's start: "FILE:LINE: FIELD: " (what is known)
    text: str


@dataclass(frozen=True)
class Outcome:
    code: int | None  # None: it hung (killed at the timeout)
    stdout: str
    stderr: str


def _where(file: Path | str, line: str = "-", field: str = "-") -> str:
    out = str(file) + ("" if line == "-" else f":{line}") + ": "
    return out + ("" if field == "-" else f"{field}: ")


def _corpus_cases(out: Path) -> Iterator[Case]:
    for path in sorted(INPUTS.glob("*.yaml")):
        m = _EXPECT.fullmatch(path.read_text(encoding="utf-8").splitlines()[0])
        assert m is not None, f"{path.name}: first line must be '# expect: LINE FIELD | text'"
        line, field, text = m.groups()
        where = _where(path, line, field)
        yield Case(f"validate-{path.stem}", ("validate", str(path)), where, text)
        yield Case(
            f"run-{path.stem}", ("run", str(path), "--out", str(out), "--no-progress"), where, text
        )


def _fifo(p: Path) -> None:
    os.mkfifo(p)  # opening it for reading would block until a writer comes


def _symlink_loop(p: Path) -> None:
    p.symlink_to(p.with_name(p.name + "-2"))
    p.with_name(p.name + "-2").symlink_to(p)


def _body(text: bytes) -> bytes:
    return b"name: made\nstack: perpdex\nduration: 30s\n" + text


# (id, how to make it, line of the problem or "-", what the message says)
MADE: tuple[tuple[str, Callable[[Path], object], str, str], ...] = (
    ("fifo", _fifo, "-", "not a regular file (a FIFO, socket or device)"),
    ("symlink-loop", _symlink_loop, "-", "cannot read it (Too many levels of symbolic links)"),
    ("directory", Path.mkdir, "-", "is a directory, expected a scenario"),
    ("nul-byte", lambda p: p.write_bytes(_body(b"x: a\x00b\n")), "4", "a NUL byte (U+0000)"),
    ("binary", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256))), "1",
     "not UTF-8 text (byte 0x89)"),
    ("latin-1", lambda p: p.write_bytes(_body(b"x: caf\xe9\n")), "4", "not UTF-8 text (byte 0xe9)"),
    ("over-size-cap", lambda p: p.write_bytes(_body(b"x: " + b"y" * (2 << 20))), "-",
     "larger than the 1024 KiB allowed"),
    ("nesting-50000", lambda p: p.write_bytes(_body(b"x: " + b"[" * 50_000 + b"]" * 50_000)), "4",
     "nested deeper than 64 levels"),
    ("nested-mappings", lambda p: p.write_bytes(_body(b"x: " + b"{a: " * 200 + b"1" + b"}" * 200)),
     "4", "nested deeper than 64 levels"),
)  # fmt: skip

# (id, arguments: {ok} a valid scenario, {out} the runs folder, {file} a plain file;
#  the message's start; what it says)
FLAGS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("run-out-is-a-file", ("run", "{ok}", "--out", "{file}"), "--out: ", "is not a folder"),
    ("validate-set-deep-list", ("validate", "{ok}", "--set", "description=" + "[" * 50_000),
     "{ok}: ", "nested deeper than 64 levels"),
    ("run-set-deep-list", ("run", "{ok}", "--out", "{out}", "--set", "x=" + "[" * 50_000 + "]" * 50_000),
     "{ok}: ", "nested deeper than 64 levels"),
    ("validate-set-huge-int", ("validate", "{ok}", "--set", "seed=" + "9" * 5000),
     "{ok}: ", "not a usable value"),
    ("run-set-unclosed", ("run", "{ok}", "--out", "{out}", "--set", "stack.settings.accounts=["),
     "{ok}: --set stack.settings.accounts: ", "invalid YAML: expected the node content"),
    ("run-seed-2-63", ("run", "{ok}", "--out", "{out}", "--seed", str(2**63)),
     "{ok}: --set seed: ", "integer out of range (at most 2^63-1 in size)"),
    ("run-users-over-cap", ("run", "{ok}", "--out", "{out}", "--users", str(10**9)),
     "{ok}: load.users: ", "<= 100000), got 1000000000"),
    ("run-time-scale-tiny", ("run", "{ok}", "--time-scale", "1e-300"), "",
     "argument --time-scale: expected a number from 0.01 to 100"),
    ("stack-up-set-unclosed", ("stack", "up", "perpdex", "--set", "settings.accounts=["), "",
     "--set settings.accounts: invalid YAML: expected the node content"),
)  # fmt: skip


def _made_cases(tmp: Path, out: Path) -> Iterator[Case]:
    for id_, make, line, text in MADE:
        path = tmp / f"{id_}.yaml"
        make(path)
        where = _where(path, line)
        yield Case(f"validate-{id_}", ("validate", str(path)), where, text)
        yield Case(f"run-{id_}", ("run", str(path), "--out", str(out)), where, text)


def _flag_cases(tmp: Path, out: Path) -> Iterator[Case]:
    ok = tmp / "ok.yaml"
    ok.write_text("name: ok\nstack: perpdex\nduration: 30s\n")
    plain = tmp / "a-file"
    plain.write_text("not a folder\n")
    fill = {"ok": str(ok), "out": str(out), "file": str(plain)}
    for id_, args, where, text in FLAGS:
        yield Case(id_, tuple(a.format(**fill) for a in args), where.format(**fill), text)


def _all_cases(tmp: Path) -> list[Case]:
    out = tmp / "runs"
    return [*_corpus_cases(out), *_made_cases(tmp, out), *_flag_cases(tmp, out)]


def _ids() -> list[str]:
    stems = [p.stem for p in sorted(INPUTS.glob("*.yaml"))] + [m[0] for m in MADE]
    return [f"{cmd}-{s}" for s in stems for cmd in ("validate", "run")] + [f[0] for f in FLAGS]


def _l2chaos(args: tuple[str, ...], cwd: Path) -> Outcome:
    try:
        done = run_l2chaos(*args, cwd=cwd, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        return Outcome(None, str(exc.stdout or ""), str(exc.stderr or ""))
    return Outcome(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, tuple[Case, Outcome]]]:
    tmp = tmp_path_factory.mktemp("hostile")
    cases = _all_cases(tmp)
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda c: _l2chaos(c.args, tmp), cases))
    return tmp, {c.id: (c, o) for c, o in zip(cases, outcomes, strict=True)}


@pytest.mark.parametrize("case_id", _ids())
def test_hostile_input_exits_2_with_one_clear_line(
    hostile: tuple[Path, dict[str, tuple[Case, Outcome]]], case_id: str
) -> None:
    tmp, results = hostile
    case, outcome = results[case_id]
    assert outcome.code is not None, f"hung: {case.args[:2]} did not finish in {TIMEOUT_S}s"
    assert outcome.code == 2, (outcome.code, outcome.stderr[-2000:])
    assert "Traceback" not in outcome.stderr
    lines = [ln for ln in outcome.stderr.splitlines() if ln.startswith("l2chaos")]
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith(f"l2chaos: {case.where}"), (lines[0], case.where)
    assert case.text in lines[0], (lines[0], case.text)
    assert len(lines[0]) < 600, "one short line, not a dump"
    assert not (tmp / "runs").exists() or not any((tmp / "runs").iterdir()), "a run started"


def test_no_hostile_scenario_ran_its_command() -> None:
    assert not Path("/tmp/l2chaos-pwned").exists()


def test_nothing_of_a_referenced_system_file_is_echoed(
    hostile: tuple[Path, dict[str, tuple[Case, Outcome]]],
) -> None:
    _, results = hostile
    for case_id in ("validate-stack-ref-passwd", "validate-stack-ref-environ"):
        _, outcome = results[case_id]
        assert "root:" not in outcome.stderr
        assert "PATH=" not in outcome.stderr


def test_the_opt_in_flags_unlock_exactly_what_they_name(tmp_path: Path) -> None:
    exec_case = INPUTS / "exec-command.yaml"
    bind_case = INPUTS / "master-bind-any.yaml"
    assert _l2chaos(("validate", str(exec_case), "--allow-exec"), tmp_path).code == 0
    assert _l2chaos(("validate", str(exec_case), "--allow-target", "0.0.0.0"), tmp_path).code == 2
    assert _l2chaos(("validate", str(bind_case), "--allow-target", "0.0.0.0"), tmp_path).code == 0
    assert _l2chaos(("validate", str(bind_case), "--allow-exec"), tmp_path).code == 2


def test_a_utf8_byte_order_mark_is_not_an_error(tmp_path: Path) -> None:
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfname: bom\nstack: perpdex\nduration: 30s\n")
    done = _l2chaos(("validate", str(bom)), tmp_path)
    assert done.code == 0, done.stderr
    assert done.stdout.startswith(f"{bom}: ok (bom: 0 faults,")
