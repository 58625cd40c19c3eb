"""The journal: append-only JSON Lines that readers never choke on."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from exocm.cli.main import cli
from exocm.core.csvio import read_csv
from exocm.core.execute.journal import (
    JournalError,
    JournalWriter,
    journals_for_plan,
    list_journals,
    plan_history,
    read_journal,
    require_header,
    verified_identities,
)
from exocm.core.execute.report import REPORT_COLUMNS, report_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _writer(directory: Path, digest: str = "d" * 64, run_id: str | None = None) -> JournalWriter:
    return JournalWriter.create(plan_digest=digest, tenant="contoso", actor="app:123 (local t@h)",
                                tool_version="0", directory=directory, run_id=run_id,
                                extra={"operation": "set-cloud-managed", "value": True})


def _row(identity: str, status: str = "verified") -> dict[str, object]:
    return {"type": "row", "identity": identity, "status": status, "before": False, "after": True,
            "target": True, "backup": {"CustomAttribute1": "x"}, "error": None, "reason": ""}


def test_header_names_plan_tenant_run_and_actor_and_every_record_carries_the_run_id(tmp_path: Path) -> None:
    with _writer(tmp_path) as journal:
        journal.append([_row("a"), _row("b", "failed")])
        journal.append([_row("c")])
    contents = read_journal(journal.path)
    header = require_header(contents)
    assert {"plan_digest", "tenant", "run_id", "actor", "started_at", "tool_version"} <= set(header)
    assert header["actor"].startswith("app:123")
    assert [r["seq"] for r in contents.rows()] == [1, 2, 3]
    assert {r["run_id"] for r in contents.records} == {header["run_id"]}
    assert [r["verified"] for r in contents.rows()] == [True, False, True]  # the per-row flag, docs/architecture.md#journal
    assert journal.fsyncs == 3  # the header, then one per group commit
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"


def test_a_torn_last_line_and_garbage_lines_are_skipped_with_a_warning_never_fatal(tmp_path: Path) -> None:
    with _writer(tmp_path) as journal:
        journal.append([_row("a"), _row("b")])
    with journal.path.open("ab") as fh:
        fh.write(b"this is not json\n\x00\xff\xfe\n[1, 2]\n")
        fh.write(json.dumps(_row("c")).encode()[:-1] + b"\n")  # valid JSON? no: cut
        fh.write(b'{"type": "row", "identity": "d", "status": "ver')  # torn: no newline
    contents = read_journal(journal.path)
    assert [r["identity"] for r in contents.rows()] == ["a", "b"]
    assert any("torn" in w for w in contents.warnings)
    assert sum("not a journal record" in w for w in contents.warnings) == 4
    assert verified_identities("d" * 64, tmp_path) == {"a", "b"}


def test_a_file_without_header_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"type": "row", "identity": "a", "status": "verified"}\n', encoding="utf-8")
    with pytest.raises(JournalError, match="not an exocm journal"):
        require_header(read_journal(path))
    with pytest.raises(JournalError, match="does not exist"):
        read_journal(tmp_path / "missing.jsonl")
    out = CliRunner().invoke(cli, ["report", str(path)])
    assert out.exit_code == 2 and "not an exocm journal" in out.output


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.binary(max_size=400))
def test_any_bytes_after_valid_records_never_break_reading(tmp_path: Path, tail: bytes) -> None:
    folder = tmp_path / f"j{abs(hash(tail)) % 10**9}"
    with _writer(folder) as journal:
        journal.append([_row("a"), _row("b")])
    with journal.path.open("ab") as fh:
        fh.write(tail)
    contents = read_journal(journal.path)
    assert [r["identity"] for r in contents.rows()][:2] == ["a", "b"]
    report_frame([journal.path])


def test_plan_history_folds_every_run_of_a_plan_and_keeps_verified_rows_verified(tmp_path: Path) -> None:
    digest = "e" * 64
    with _writer(tmp_path, digest, run_id="20300101T000000Z-aaaa") as first:
        first.append([{"type": "intent", "identity": "a", "before": False, "target": True, "backup": {}}])
        first.append([_row("b", "failed")])
    with _writer(tmp_path, digest, run_id="20300101T000100Z-bbbb") as second:
        second.append([_row("a"), _row("b")])
    with _writer(tmp_path, "f" * 64) as other:
        other.append([_row("z")])
    assert journals_for_plan(digest, tmp_path) == [first.path, second.path]
    history = plan_history(digest, tmp_path)
    assert set(history.verified) == {"a", "b"}
    assert history.open_intents() == {}
    assert [j.plan_digest for j in list_journals(tmp_path)].count(digest) == 2


def test_concurrent_appends_never_interleave_lines(tmp_path: Path) -> None:
    journal = _writer(tmp_path)

    def work(n: int) -> None:
        for i in range(50):
            journal.append([_row(f"{n}-{i}"), _row(f"{n}-{i}-x", "stale")])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    lines = journal.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 6 * 50 * 2
    seqs = [json.loads(line)["seq"] for line in lines[1:]]
    assert sorted(seqs) == list(range(1, 601))


def test_report_lists_outcomes_like_the_peers_results_csv_and_flags_unsettled_writes(tmp_path: Path) -> None:
    with _writer(tmp_path) as journal:
        journal.append([_row("a"), {**_row("b", "failed"), "error": "=cmd|' /C calc'!A0"}])
        journal.append([{"type": "intent", "identity": "c", "before": False, "target": True, "backup": {}}])
    frame, warnings = report_frame([journal.path])
    assert list(frame.columns)[:8] == ["Timestamp", "Row", "Identity", "Mode", "Result", "Reason", "Before", "After"]
    assert list(frame.columns) == list(REPORT_COLUMNS)
    assert frame.set_index("Identity")["Result"].to_dict() == {"a": "verified", "b": "failed", "c": "unknown"}
    out_csv = tmp_path / "report.csv"
    result = CliRunner().invoke(cli, ["report", str(journal.path), "--format", "csv", "--out", str(out_csv)])
    assert result.exit_code == 0, result.output
    raw = out_csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel's UTF-8 BOM
    assert b"\"'=cmd|" in raw  # a formula cell is escaped for Excel
    back = read_csv(out_csv).frame
    assert back.set_index("Identity").loc["b", "Error"] == "=cmd|' /C calc'!A0"
    as_json = CliRunner().invoke(cli, ["report", str(journal.path), "--format", "json"])
    assert json.loads(as_json.output)["counts"] == {"failed": 1, "unknown": 1, "verified": 1}
