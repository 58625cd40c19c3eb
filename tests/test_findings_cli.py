"""`exocm findings` end to end on the embedded sandbox: formats, filters, exit codes, reports."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from cli_support import private_env, run
from exocm.core.csvio import read_csv, read_csv_text
from exocm.core.detect.engine import FINDING_COLUMNS
from exocm.core.detect.report import ReportMeta, render_html, summarise
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.onprem_export import write_onprem_csv

SIZE, SEED = 600, 7
SANDBOX = ["--sandbox", "--size", str(SIZE), "--seed", str(SEED)]


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def planted() -> dict[str, list[str]]:
    return generate_tenant(SIZE, SEED).planted()


def _run(*args: str) -> tuple[int, str, str]:
    return run("findings", *args)


def test_json_has_summary_then_findings_with_the_documented_keys_and_equals_planted(planted):
    code, out, err = _run(*SANDBOX, "--format", "json")
    assert code == 1  # critical/high findings exist; default --fail-on high
    assert "SANDBOX" in err
    doc = json.loads(out)
    assert list(doc)[:2] == ["summary", "findings"]
    assert doc["summary"]["total"] == len(doc["findings"])
    for f in doc["findings"]:
        assert list(f) == list(FINDING_COLUMNS)
        assert isinstance(f["evidence"], dict) and f["explanation"]
    by_code: dict[str, set[str]] = {}
    for f in doc["findings"]:
        by_code.setdefault(f["code"], set()).add(f["ExternalDirectoryObjectId"])
    for c, ids in planted.items():
        assert by_code.get(c, set()) == set(ids), c
    assert doc["summary"]["by_code"]["DUAL_MAILBOX"]["count"] == len(planted["DUAL_MAILBOX"]) > 0
    assert doc["summary"]["onprem_matched"] > 0


def test_table_prints_the_summary_by_code_and_severity_before_the_rows():
    code, out, _ = _run(*SANDBOX)
    assert code == 1
    lines = out.splitlines()
    assert lines[1].startswith("# by severity: critical")
    summary_at = next(i for i, ln in enumerate(lines) if ln.startswith("CODE"))
    rows_at = next(i for i, ln in enumerate(lines) if ln.startswith("SEVERITY"))
    assert summary_at < rows_at
    assert any(ln.startswith("critical  DUAL_MAILBOX") for ln in lines[rows_at:])


def test_filters_and_fail_on_decide_the_exit_code():
    code, out, _ = _run(*SANDBOX, "--format", "json", "--code", "ALREADY_CLOUD_MANAGED,NOT_DIRSYNCED")
    doc = json.loads(out)
    assert {f["code"] for f in doc["findings"]} == {"ALREADY_CLOUD_MANAGED", "NOT_DIRSYNCED"}
    assert code == 0  # info findings only: nothing at or above high
    code, _, _ = _run(*SANDBOX, "--format", "json", "--code", "ALREADY_CLOUD_MANAGED", "--fail-on", "info")
    assert code == 1
    code, out, _ = _run(*SANDBOX, "--format", "json", "--severity", "high")
    assert {f["severity"] for f in json.loads(out)["findings"]} == {"critical", "high"}
    assert code == 1
    code, _, _ = _run(*SANDBOX, "--fail-on", "critical", "--code", "EXCHANGEGUID_MISMATCH")
    assert code == 0


def test_unknown_code_is_a_usage_error():
    code, _, err = _run(*SANDBOX, "--code", "NOPE")
    assert code == 2 and "unknown code" in err


def test_csv_output_is_an_excel_csv_with_the_finding_columns(tmp_path: Path):
    out_file = tmp_path / "findings.csv"
    code, _, err = _run(*SANDBOX, "--format", "csv", "--out", str(out_file))
    assert code == 1 and "wrote" in err
    assert out_file.read_bytes().startswith(b"\xef\xbb\xbf")
    frame, bad = read_csv(out_file)
    assert bad == [] and tuple(frame.columns) == FINDING_COLUMNS
    assert all(json.loads(e) is not None for e in frame["evidence"])
    code, out, _ = _run(*SANDBOX, "--format", "csv")
    assert not out.startswith("\ufeff")  # stdout: no BOM
    assert tuple(read_csv_text(out).frame.columns) == FINDING_COLUMNS


def test_onprem_csv_in_another_export_style_gives_the_same_findings(tmp_path: Path):
    path = tmp_path / "onprem-semicolon.csv"
    write_onprem_csv(generate_tenant(SIZE, SEED), path, variant="semicolon")
    _, own, _ = _run(*SANDBOX, "--format", "json")
    code, given, err = _run(*SANDBOX, "--format", "json", "--onprem-csv", str(path))
    assert code == 1
    key = lambda doc: sorted((f["code"], f["ExternalDirectoryObjectId"]) for f in doc["findings"])  # noqa: E731
    assert key(json.loads(given)) == key(json.loads(own))


def test_onprem_file_that_cannot_be_used_is_one_error_line(tmp_path: Path):
    path = tmp_path / "wrong.csv"
    path.write_text("Name,Title\nx,y\n", encoding="utf-8")
    code, _, err = _run(*SANDBOX, "--onprem-csv", str(path))
    assert code == 2
    assert "RecipientTypeDetails" in err and "Traceback" not in err


def test_bad_rows_in_the_onprem_file_are_reported_not_dropped_silently(tmp_path: Path):
    path = tmp_path / "onprem.csv"
    write_onprem_csv(generate_tenant(SIZE, SEED), path, variant="notype")
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    lines.insert(3, '"broken","row"\r\n')
    path.write_text("".join(lines), encoding="utf-8-sig")
    code, out, err = _run(*SANDBOX, "--format", "json", "--onprem-csv", str(path))
    assert "on-prem line 4 skipped" in err
    assert any("on-prem line 4 skipped" in n for n in json.loads(out)["meta"]["notes"])


def test_html_report_is_one_self_contained_file(tmp_path: Path):
    out_file = tmp_path / "findings.html"
    code, _, _ = _run(*SANDBOX, "--format", "html", "--out", str(out_file))
    assert code == 1
    text = out_file.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<svg" in text and "<script>" in text and 'class="sortable"' in text
    assert "SANDBOX" in text
    # nothing is loaded from elsewhere: no external src/href, a CSP that forbids it
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "default-src 'none'" in text


def test_html_escapes_every_value():
    hostile = "<script>alert(1)</script>"
    findings = pd.DataFrame(
        [
            {
                "code": "DUAL_MAILBOX",
                "severity": "critical",
                "ExternalDirectoryObjectId": "x\"><img src=x onerror=alert(1)>",
                "UserPrincipalName": hostile,
                "explanation": f"bad {hostile}",
                "evidence": {"onprem.UserPrincipalName": hostile},
                "action": "a&b",
            }
        ]
    )
    html = render_html(findings, summarise(findings), ReportMeta(tenant=hostile, generated_at=datetime.now(UTC)))
    assert hostile not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&amp;b" in html
