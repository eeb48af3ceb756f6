"""report.html in real headless Chromium (Debian's `chromium`; `bash .ci/setup --tests`).

It renders; the DOM after load has one fault band per fault of the run and one row per
violation in the violation table; a screenshot is saved in the run directory."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from l2chaos.invariants.check import check_run
from l2chaos.invariants.simulate import generate_run
from l2chaos.report import write_reports

from tests._support.records import add_zero_price_liquidations

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is not installed: run `bash .ci/setup --tests`")


def _run(profile_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile_dir}",
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    run = tmp_path / "run"
    generate_run(run, ops=4_000, blocks=1_200, seed=11)
    add_zero_price_liquidations(run, [501, 502, 503], cash=5_000_000_000)
    outcome = check_run(run)
    write_reports(run, outcome)
    faults = len(outcome.faults)
    caught = {v.name: v.total_violations for v in outcome.all_verdicts() if v.total_violations}
    violations = sum(caught.values())
    assert faults == 5
    # 3 zero-price liquidations, each unjustified too; value_flows recomputes each one
    # and finds three things wrong with it (the judged snapshot, the price, the vault's take)
    assert caught == {
        "no_zero_price_liquidations": 3,
        "liquidations_justified": 3,
        "value_flows": 9,
    }

    report = (run / "report.html").as_uri()
    dom = _run(tmp_path / "profile-dom", "--dump-dom", report)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<svg" in html
    assert 'id="timeline-svg"' in html
    assert len(re.findall(r'<rect class="fault-band"', html)) == faults
    assert len(re.findall(r'<tr class="violation"', html)) == violations
    assert re.search(r'id="exit-code">1<', html)

    shot = run / "report.png"
    res = _run(tmp_path / "profile-shot", "--window-size=1280,2400", f"--screenshot={shot}", report)
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2400)
    assert len(data) > 50_000  # a rendered page, not a blank one
