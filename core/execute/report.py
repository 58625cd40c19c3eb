"""Reports of apply runs: a journal as rows an admin can file with a change ticket.

The CSV follows the peers' results CSV (Timestamp, Row, Identity, Mode, Result, Reason,
Before, After), with DisplayName, UserPrincipalName, Error, Attempts and RunId after them.
A write whose intent was journaled but whose outcome was not (the run was killed) shows
as Result `unknown`: a resume of the plan reads it back.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import pandas as pd

from .journal import JournalContents, read_journal, require_header

REPORT_COLUMNS: Final = (
    "Timestamp", "Row", "Identity", "Mode", "Result", "Reason", "Before", "After",
    "DisplayName", "UserPrincipalName", "Error", "Attempts", "RunId",
)


def _mode(header: dict[str, Any], record: dict[str, Any]) -> str:
    operation = header.get("operation") or "set-cloud-managed"
    target = record.get("target", header.get("value"))
    if operation == "tenant-default":
        return f"TenantDefault={header.get('value')}"
    return f"IsExchangeCloudManaged={target}"


def _reason(record: dict[str, Any]) -> str:
    parts = [str(record.get(k)) for k in ("reason", "note") if record.get(k)]
    return "; ".join(parts)


def journal_rows(contents: JournalContents) -> list[dict[str, Any]]:
    """Report rows of one journal: every outcome, then the writes left without one (unknown)."""
    header = require_header(contents)
    rows: list[dict[str, Any]] = []
    settled: set[str] = set()
    open_intents: dict[str, dict[str, Any]] = {}
    for record in contents.records:
        kind = record.get("type")
        if kind == "intent":
            open_intents[str(record["identity"])] = record
        elif kind == "row":
            identity = str(record["identity"])
            settled.add(identity)
            open_intents.pop(identity, None)
            rows.append({
                "Timestamp": record.get("at"), "Row": record.get("seq"), "Identity": identity,
                "Mode": _mode(header, record), "Result": record.get("status"), "Reason": _reason(record),
                "Before": record.get("before"), "After": record.get("after"),
                "DisplayName": record.get("display_name"), "UserPrincipalName": record.get("upn"),
                "Error": record.get("error"), "Attempts": record.get("attempts"),
                "RunId": record.get("run_id"),
            })
    for identity, record in open_intents.items():
        rows.append({
            "Timestamp": record.get("at"), "Row": record.get("seq"), "Identity": identity,
            "Mode": _mode(header, record), "Result": "unknown",
            "Reason": "the run stopped after sending this write and before recording its outcome; "
                      "resume the plan to read it back",
            "Before": record.get("before"), "After": None, "DisplayName": None, "UserPrincipalName": None,
            "Error": None, "Attempts": None, "RunId": record.get("run_id"),
        })
    return rows


def report_frame(paths: Sequence[Path | str]) -> tuple[pd.DataFrame, list[str]]:
    """Report rows of one or more journals (in order), and the read warnings (torn lines...)."""
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for path in paths:
        contents = read_journal(Path(path))
        warnings.extend(contents.warnings)
        rows.extend(journal_rows(contents))
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS)), warnings


def summary(frame: pd.DataFrame) -> dict[str, int]:
    """Rows per Result."""
    if frame.empty:
        return {}
    counts = frame["Result"].astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}

