"""`exocm plan --onprem-csv`: the on-prem file's skipped rows and notes are reported, as `findings` does."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import private_env, run
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.onprem_export import write_onprem_csv

SIZE, SEED = 300, 5
SANDBOX = ["--sandbox", "--size", str(SIZE), "--seed", str(SEED)]


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_env(monkeypatch, tmp_path)


def test_plan_reports_bad_onprem_rows_by_line_and_still_writes_the_plan(tmp_path: Path) -> None:
    path = tmp_path / "onprem.csv"
    write_onprem_csv(generate_tenant(SIZE, SEED), path, variant="notype")
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    lines.insert(3, '"broken","row"\r\n')
    path.write_text("".join(lines), encoding="utf-8-sig")
    out = tmp_path / "plan.json"
    code, _, err = run("plan", *SANDBOX, "--set-cloud-managed", "true", "--all-dirsynced",
                       "--onprem-csv", str(path), "-o", str(out))
    assert code == 0, err
    assert "on-prem line 4 skipped" in err
    assert "Traceback" not in err
    assert json.loads(out.read_text(encoding="utf-8"))["rows"]


def test_plan_with_an_unusable_onprem_file_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("Name,Title\nx,y\n", encoding="utf-8")
    code, _, err = run("plan", *SANDBOX, "--set-cloud-managed", "true", "--all-dirsynced",
                       "--onprem-csv", str(path), "-o", str(tmp_path / "plan.json"))
    assert code == 2
    assert "RecipientTypeDetails" in err and "Traceback" not in err
    assert not (tmp_path / "plan.json").exists()
