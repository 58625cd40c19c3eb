"""Fault campaign through the PSRP bridge, CI subset: a plan applied through the sandbox's WinRM
management host (a profile with `extra.exo_transport = "psrp"`) while the sandbox injects faults
into WSMan requests.

The promise, as for REST (test_reliability_faults.py): every row ends verified or failed with a
reason, the sandbox's state agrees with the journal for every row (wrong_state == 0), and no plan
row is missing from the journals (lost_journal_rows == 0). And the PSRP-specific one: a write
whose answer is unknown (a 503 on a WSMan request, the empty-message error after the write) is
resolved by reading the mailbox back, never by sending the write again blind: the sandbox's own
write log holds exactly one Set-Mailbox per plan row. The full campaign is
`python scripts/bench/faults.py --rows 5000 --bridge psrp --json OUT`.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROWS = 200


def _load_campaign() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench" / "faults.py"
    spec = importlib.util.spec_from_file_location("exocm_bench_faults", path)
    assert spec is not None and spec.loader is not None
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


campaign = _load_campaign()


def _writes_per_identity(log: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["operation"] == "Set-Mailbox" and entry["side"] == "exo":
            identity = str(entry["identity"]).lower()
            counts[identity] = counts.get(identity, 0) + 1
    return counts


def _row_notes(journals: Path) -> list[str]:
    records = [json.loads(line) for path in journals.glob("*.jsonl")
               for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [str(r.get("note") or "") for r in records if r.get("type") == "row"]


@pytest.mark.parametrize("kind", ["503", "applied-error"])
def test_psrp_apply_under_wsman_faults_ends_every_row_verified_and_never_writes_a_row_twice(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "writes.jsonl"
    monkeypatch.setenv("EXOCM_SANDBOX_WRITE_LOG", str(log))
    work = tmp_path / kind
    figures: dict[str, Any] = campaign.run_kind(kind, rows=ROWS, seed=13, max_runs=4, work=work, bridge="psrp")
    assert figures["bridge_kind"] == "psrp"
    assert figures["rows"] == ROWS
    assert figures["lost_journal_rows"] == 0, figures
    assert figures["wrong_state"] == 0, figures["wrong_examples"]
    assert figures["ended_without_reason"] == 0
    assert figures["verified"] + figures["failed_with_reason"] == ROWS, figures["final_statuses"]
    assert figures["verified"] == ROWS and figures["complete"], figures["run_errors"]
    assert figures["journal_lines_unreadable"] == 0, figures["journal_problems"]
    assert figures["faults_injected"].get(kind, 0) > 0, figures["faults_injected"]  # the fault really happened
    # unknown outcomes were resolved by reading back: one landed Set-Mailbox per row, none twice
    writes = _writes_per_identity(log)
    assert len(writes) == ROWS and set(writes.values()) == {1}, sorted(writes.items(), key=lambda kv: -kv[1])[:3]
    notes = _row_notes(work / "data" / "journals")
    assert any("read-back shows it applied" in n for n in notes)
    if kind == "applied-error":
        assert any("empty error message" in n for n in notes)  # classified AppliedUnknown, not a refusal
    else:
        assert figures["bridge"]["pools_opened"] > 1  # broken connections were replaced, not reused


def test_the_psrp_kinds_are_keyed_by_bridge_and_the_rest_keys_stay_bare(tmp_path: Path) -> None:
    assert campaign.figures_key("rest", "503") == "503"
    assert campaign.figures_key("psrp", "503") == "psrp:503"
    assert "429-storm" in campaign.KINDS and "429-storm" not in campaign.PSRP_KINDS
    with pytest.raises(ValueError, match="unknown PSRP fault kind"):
        campaign.run_kind("429-storm", rows=10, work=tmp_path / "x", bridge="psrp")
