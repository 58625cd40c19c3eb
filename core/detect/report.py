"""Findings as data for the faces: filters, the summary, and CSV / JSON / HTML renderings.

The HTML report is one self-contained file an admin can attach to a change ticket: counts per
code as an inline SVG bar chart, a table sortable by clicking a header (a few lines of inline
JavaScript), the evidence of every row, and nothing loaded from anywhere else (a
Content-Security-Policy forbids it). Every value is HTML-escaped.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ..csvio import to_csv_text
from .engine import (
    FINDING_COLUMNS,
    RULES,
    SEVERITIES,
    SEVERITY_RANK,
    DetectResult,
    severity_at_least,
)
from .html_shell import e as _e
from .html_shell import html_document
from .html_shell import iso as _iso

__all__ = [
    "ReportMeta",
    "fails",
    "filter_findings",
    "findings_records",
    "render_csv",
    "render_html",
    "render_json",
    "summarise",
]


@dataclass
class ReportMeta:
    """Where the findings came from, for report headers."""

    tenant: str = ""
    label: str = ""
    sandbox: bool = False
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    inventory_at: datetime | None = None
    onprem_source: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "tenant": self.tenant,
            "label": self.label,
            "sandbox": self.sandbox,
            "generated_at": _iso(self.generated_at),
            "inventory_at": _iso(self.inventory_at) if self.inventory_at else None,
            "onprem_source": self.onprem_source,
            "notes": list(self.notes),
        }


def filter_findings(
    findings: pd.DataFrame, *, severity: str | None = None, codes: Iterable[str] | None = None
) -> pd.DataFrame:
    """Findings at ``severity`` or worse, and (if given) only the ``codes`` named (case-insensitive)."""
    mask = pd.Series(True, index=findings.index)
    if severity:
        mask &= severity_at_least(findings["severity"], severity.lower())
    wanted = {c.strip().upper() for c in codes or () if c.strip()}
    if wanted:
        mask &= findings["code"].isin(wanted)
    return findings[mask]


def fails(findings: pd.DataFrame, fail_on: str) -> bool:
    """True if any finding is at ``fail_on`` severity or worse (the command then exits 1)."""
    return bool(severity_at_least(findings["severity"], fail_on.lower()).any()) if len(findings) else False


def summarise(findings: pd.DataFrame, result: DetectResult | None = None) -> dict[str, Any]:
    """Counts by severity and by code (every registered code listed, zero when none), plus context."""
    by_sev = findings["severity"].value_counts()
    by_code = findings.groupby("code").size() if len(findings) else pd.Series(dtype="int64")
    codes: dict[str, dict[str, Any]] = {}
    for code, r in sorted(RULES.items(), key=lambda kv: (SEVERITY_RANK[kv[1].severity], kv[0])):
        codes[code] = {
            "severity": r.severity,
            "count": int(by_code.get(code, 0)),
            "summary": r.summary,
            "action": r.action,
        }
    out: dict[str, Any] = {
        "total": int(len(findings)),
        "by_severity": {s: int(by_sev.get(s, 0)) for s in SEVERITIES},
        "by_code": codes,
    }
    if result is not None:
        if result.not_checked:
            for code, why in result.not_checked.items():
                if code in codes:
                    codes[code]["not_checked"] = why
        out["not_checked"] = dict(result.not_checked)
        out["recipients"] = result.recipients
        out["onprem_rows"] = result.onprem_rows
        out["onprem_matched"] = int(len(result.match.pairs))
        out["onprem_unmatched"] = int(len(result.match.unmatched))
        out["onprem_ambiguous"] = int(result.match.ambiguous["line"].nunique()) if len(result.match.ambiguous) else 0
        if len(result.match.pairs):
            joins = result.match.pairs["join"].value_counts()
            out["onprem_matched_by"] = {str(k): int(v) for k, v in joins.items()}
    return out


def findings_records(findings: pd.DataFrame) -> list[dict[str, Any]]:
    """The findings as plain dicts with exactly FINDING_COLUMNS (evidence stays a dict)."""
    cols = list(FINDING_COLUMNS)
    frame = findings[cols].astype("object").where(findings[cols].notna(), None)
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    for r in records:
        if r["evidence"] is None:
            r["evidence"] = {}
    return records


def findings_document(findings: pd.DataFrame, summary: Mapping[str, Any],
                      meta: ReportMeta | None = None) -> dict[str, Any]:
    """The `findings --format json` document as plain JSON data (what render_json prints, parsed)."""
    doc: dict[str, Any] = {"summary": dict(summary), "findings": findings_records(findings)}
    if meta is not None:
        doc["meta"] = meta.as_dict()
    # one pass through the C encoder (no indent) turns every value into what the printed JSON holds
    data: dict[str, Any] = json.loads(json.dumps(doc, ensure_ascii=False, default=str))
    return data


def render_json(findings: pd.DataFrame, summary: Mapping[str, Any], meta: ReportMeta | None = None) -> str:
    """``{"summary": {...}, "findings": [{code, severity, ExternalDirectoryObjectId, ...}]}`` (+ "meta")."""
    doc: dict[str, Any] = {"summary": dict(summary), "findings": findings_records(findings)}
    if meta is not None:
        doc["meta"] = meta.as_dict()
    return json.dumps(doc, ensure_ascii=False, default=str, indent=1) + "\n"


def render_csv(findings: pd.DataFrame) -> str:
    """CSV text (no BOM; write_csv/--out adds it): FINDING_COLUMNS, evidence as JSON, formulas escaped."""
    return to_csv_text(findings, list(FINDING_COLUMNS))


# ----------------------------------------------------------------------------- HTML

_COLORS = {"critical": "#8b0000", "high": "#d9480f", "medium": "#e6a700", "low": "#4a7ab5", "info": "#777777"}



def _bar_chart(summary: Mapping[str, Any]) -> str:
    """Counts per code as an inline SVG (one bar per code, coloured by severity)."""
    codes = [(c, v) for c, v in summary.get("by_code", {}).items()]
    if not codes:
        return ""
    top = max([v["count"] for _, v in codes] + [1])
    row_h, label_w, bar_w = 22, 260, 420
    height = row_h * len(codes) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Findings per code" '
        f'width="{label_w + bar_w + 80}" height="{height}" font-size="12" font-family="system-ui,sans-serif">'
    ]
    for i, (code, v) in enumerate(codes):
        y = 4 + i * row_h
        w = 0 if v["count"] == 0 else max(2, round(bar_w * v["count"] / top))
        color = _COLORS.get(str(v["severity"]), "#777")
        note = " (not checked)" if "not_checked" in v else ""
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{_e(code)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{w}" height="{row_h - 6}" fill="{color}">'
            f"<title>{_e(code)}: {v['count']} ({_e(v['severity'])}){_e(note)}</title></rect>"
        )
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 14}">{v["count"]}{_e(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _evidence_text(evidence: Any) -> str:
    if not evidence:
        return ""
    return json.dumps(evidence, ensure_ascii=False, default=str, indent=1, sort_keys=False)


def render_html(findings: pd.DataFrame, summary: Mapping[str, Any], meta: ReportMeta | None = None) -> str:
    """One self-contained HTML page: header, bar chart, counts by severity, sortable findings table."""
    meta = meta or ReportMeta()
    title = f"exocm findings - {meta.label or meta.tenant or 'tenant'}"
    sev_counts = summary.get("by_severity", {})
    head_bits = [f"tenant <b>{_e(meta.tenant)}</b>"]
    if meta.sandbox:
        head_bits.insert(0, '<span class="sandbox">SANDBOX</span>')
    head_bits.append(f"generated {_e(_iso(meta.generated_at))}")
    if meta.inventory_at:
        head_bits.append(f"inventory from {_e(_iso(meta.inventory_at))}")
    head_bits.append(f"on-prem data: {_e(meta.onprem_source or 'none')}")
    sev_line = ", ".join(f"{_e(s)}: {int(sev_counts.get(s, 0))}" for s in SEVERITIES)
    notes = list(meta.notes)
    for code, why in (summary.get("not_checked") or {}).items():
        notes.append(f"{code} not checked: {why}")
    notes_html = (
        '<details class="notes"><summary>Notes (' + str(len(notes)) + ")</summary><ul>"
        + "".join(f"<li>{_e(n)}</li>" for n in notes)
        + "</ul></details>"
        if notes
        else ""
    )
    body = (
        f"<p><b>{int(summary.get('total', len(findings)))}</b> findings ({sev_line})</p>"
        f"{_bar_chart(summary)}{notes_html}{findings_table_html(findings_records(findings))}"
    )
    return html_document(title, head_bits, body)


def findings_table_html(records: Sequence[Mapping[str, Any]]) -> str:
    """The sortable findings table of the HTML reports, from findings records (findings_records)."""
    rows: list[str] = []
    for rec in records:
        sev = str(rec["severity"])
        rows.append(
            "<tr>"
            f'<td data-key="{SEVERITY_RANK.get(sev, 9)}"><span class="sev {_e(sev)}">{_e(sev)}</span></td>'
            f"<td>{_e(rec['code'])}</td>"
            f"<td>{_e(rec['UserPrincipalName'])}</td>"
            f"<td>{_e(rec['ExternalDirectoryObjectId'])}</td>"
            f"<td>{_e(rec['explanation'])}</td>"
            f"<td>{_e(rec['action'])}</td>"
            f'<td class="ev">{_e(_evidence_text(rec["evidence"]))}</td>'
            "</tr>"
        )
    header_cells = "".join(
        f"<th>{_e(h)}</th>"
        for h in ("Severity", "Code", "UserPrincipalName", "ExternalDirectoryObjectId", "Explanation", "Action", "Evidence")
    )
    return (f'<table class="sortable"><thead><tr>{header_cells}</tr></thead><tbody>' + "".join(rows)
            + "</tbody></table>")


def summary_table(summary: Mapping[str, Any]) -> Sequence[tuple[str, str, int, str]]:
    """(code, severity, count, summary-or-not-checked) rows, worst severity first, for the faces."""
    out: list[tuple[str, str, int, str]] = []
    for code, v in summary.get("by_code", {}).items():
        text = f"not checked: {v['not_checked']}" if "not_checked" in v else str(v["summary"])
        out.append((code, str(v["severity"]), int(v["count"]), text))
    return out
