"""A run directory can be published: the admin token and the API keys never appear in
clear in any of its files (logs, audit export, history, reports included).

The property holds first because nothing writes them (services do not log their
environment; keys travel in request headers only), then because everything the
harness writes passes through the Redactor (unit-tested in tests/unit/core). This test
fails as soon as any component starts writing a secret into the record."""

from __future__ import annotations

from pathlib import Path

import pytest
from l2chaos.runner import RunOptions, run_scenario
from l2chaos.stacks.perpdex.common.keys import KeyRing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLAGSHIP = (
    Path(__file__).resolve().parents[3] / "scenarios" / "paradex-2026-01-19-db-restart-race.yaml"
)
TOKEN = "test-admin-token-0123456789abcdef"


def test_no_secret_in_the_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("l2chaos.runner.secrets.token_urlsafe", lambda _n: TOKEN)
    monkeypatch.chdir(tmp_path)  # a relative out dir, like the CLI's default `runs`
    result = run_scenario(
        FLAGSHIP,
        RunOptions(
            out_dir=Path("runs"),
            progress=False,
            profile="hardened",
            sets=[
                "duration=20s",
                "timeline[0].at=8s",
                "load.users=6",
                "stack.settings.accounts=40",
                "sometimes=[]",
            ],
        ),
    )
    assert result.run_dir is not None
    assert result.exit_code == 0, result.summary or result.error
    assert result.run_dir.is_absolute()
    assert result.run_dir.parent == tmp_path / "runs"
    keys = KeyRing(1604710, TOKEN)
    secrets = [TOKEN, keys.relayer_key(), *(keys.api_key(a) for a in range(1, 46))]
    files = [p for p in result.run_dir.rglob("*") if p.is_file()]
    assert len(files) > 20
    leaks = [
        (str(p.relative_to(result.run_dir)), s[:8])
        for p in files
        for s in secrets
        if s in p.read_text(encoding="utf-8", errors="replace")
    ]
    assert leaks == []
    assert "***" in (result.run_dir / "load" / "load-plan.json").read_text()
