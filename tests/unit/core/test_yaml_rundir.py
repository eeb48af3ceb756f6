from __future__ import annotations

import json
from pathlib import Path

import pytest
from l2chaos.errors import InputError
from l2chaos.rundir import Redactor, RunDir
from l2chaos.yamlsrc import LocDict, LocList, load_yaml, load_yaml_text


def test_lines_are_kept_for_keys_and_items() -> None:
    doc = load_yaml_text("a: 1\nb:\n  - x\n  - {c: 2}\n", "f.yaml")
    assert isinstance(doc, LocDict)
    assert doc.line_of("a") == 1
    assert doc.line_of("b") == 2
    items = doc["b"]
    assert isinstance(items, LocList)
    assert items.line_of(0) == 3
    assert items.line_of(1) == 4
    assert items[1].line_of("c") == 4


def test_duplicate_keys_and_bad_files() -> None:
    with pytest.raises(InputError, match=r"f.yaml:2: duplicate key 'a' \(first on line 1\)"):
        load_yaml_text("a: 1\na: 2\n", "f.yaml")
    with pytest.raises(InputError, match=r"nope\.yaml: file not found"):
        load_yaml("nope.yaml")


def test_redactor_masks_registered_secrets_and_secret_keys() -> None:
    r = Redactor()
    r.add("s3cr3t-token-value", "short")  # too short to register safely
    assert r.text("Bearer s3cr3t-token-value!") == "Bearer ***!"
    assert r.value({"api_key": "abc", "note": "x s3cr3t-token-value", "n": 1}) == {
        "api_key": "***",
        "note": "x ***",
        "n": 1,
    }
    assert r.text("short") == "short"


def test_rundir_writes_redacted_json_and_jsonl(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "demo", "vulnerable")
    assert rd.path.name.endswith(rd.run_id)
    assert "demo-vulnerable" in rd.run_id
    assert {p.name for p in rd.path.iterdir()} == {"logs", "audit", "history", "load"}
    rd.redactor.add("tok-123456789")
    rd.write_json("run.json", {"admin_token": "tok-123456789", "x": "tok-123456789"})
    rd.update_json("run.json", phase="done")
    w = rd.jsonl("faults.jsonl")
    w.write({"msg": "called with tok-123456789"})
    w.write({"n": 2})
    rd.close()
    data = json.loads((rd.path / "run.json").read_text())
    assert data == {"admin_token": "***", "x": "***", "phase": "done"}
    lines = (rd.path / "faults.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"msg": "called with ***"}, {"n": 2}]
    log = rd.path / "logs" / "svc.log"
    log.write_text("token=tok-123456789\n")
    rd.redact_files([log])
    assert log.read_text() == "token=***\n"
