"""Prerequisite checks as data for the faces: the summary, exit decision, and table / JSON / CSV /
HTML renderings (the HTML in the shell the findings report uses: detect/html_shell.py)."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...csvio import to_csv_text
from ..engine import SEVERITY_RANK
from ..html_shell import e, html_document, iso
from ..tenant_report import document_tenant, tenant_set_page
from .model import RESULTS, Check

CSV_COLUMNS = ("code", "title", "result", "severity", "evidence", "fix", "details")


@dataclass
class ReadinessMeta:
    """Where the checks ran, for report headers."""

    tenant: str = ""
    label: str = ""
    scope: str = "flip"
    sandbox: bool = False
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    onprem_source: str = ""
    elapsed_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"tenant": self.tenant, "label": self.label, "scope": self.scope, "sandbox": self.sandbox,
                "generated_at": iso(self.generated_at), "onprem_source": self.onprem_source,
                "elapsed_s": None if self.elapsed_s is None else round(self.elapsed_s, 3), "notes": list(self.notes)}


def summarise(checks: Sequence[Check], scope: str) -> dict[str, Any]:
    """Counts per result, the verdict (go: nothing failed or unknown at high or worse), the scope."""
    by_result = {r: sum(1 for c in checks if c.result == r) for r in RESULTS}
    blocking = [c.code for c in checks if c.result in ("fail", "unknown") and SEVERITY_RANK[c.severity]
                <= SEVERITY_RANK["high"]]
    return {"scope": scope, "total": len(checks), "by_result": by_result,
            "verdict": "no-go" if blocking else "go", "blocking": blocking}


def fails(checks: Sequence[Check], fail_on: str) -> bool:
    """True when a check that did not pass is at `fail_on` severity or worse (the command exits 1)."""
    limit = SEVERITY_RANK[fail_on.lower()]
    return any(c.result != "pass" and SEVERITY_RANK[c.severity] <= limit for c in checks)


def render_json(checks: Sequence[Check], summary: dict[str, Any], meta: ReadinessMeta | None = None) -> str:
    """`{"summary": {...}, "checks": [{code, title, result, severity, evidence, fix}]}` (+ "meta")."""
    doc: dict[str, Any] = {"summary": summary, "checks": [c.as_dict() for c in checks]}
    if meta is not None:
        doc["meta"] = meta.as_dict()
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def render_csv(checks: Sequence[Check]) -> str:
    """CSV text (no BOM; --out adds it): one row per check, details joined with ' | ', formulas escaped."""
    import pandas as pd

    rows = [{**c.as_dict(), "details": " | ".join(c.details)} for c in checks]
    return to_csv_text(pd.DataFrame(rows, columns=list(CSV_COLUMNS)), list(CSV_COLUMNS))


_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "unknown": "????"}


def render_text(checks: Sequence[Check], summary: dict[str, Any], *, label: str) -> str:
    """Plain text: the verdict, then one block per check (result, code, evidence, fix, details)."""
    res = summary["by_result"]
    lines = [f"# {label}: readiness ({summary['scope']}) -- {summary['verdict'].upper()}: "
             + ", ".join(f"{r} {res[r]}" for r in RESULTS)]
    for c in checks:
        lines.append(f"{_MARK[c.result]}  {c.code:<26} {c.severity:<8} {c.title}")
        lines.append(f"      evidence: {c.evidence}")
        if c.fix and c.result != "pass":
            lines.append(f"      fix: {c.fix}")
        for d in c.details[:10]:
            lines.append(f"        - {d}")
    return "\n".join(lines) + "\n"


def render_html(checks: Sequence[Check], summary: dict[str, Any], meta: ReadinessMeta | None = None) -> str:
    """One self-contained page: verdict, counts per result, a sortable table of the checks."""
    meta = meta or ReadinessMeta()
    title = f"exocm readiness ({meta.scope}) - {meta.label or meta.tenant or 'tenant'}"
    head = [f"tenant <b>{e(meta.tenant)}</b>", f"generated {e(iso(meta.generated_at))}",
            f"on-prem data: {e(meta.onprem_source or 'none')}"]
    if meta.sandbox:
        head.insert(0, '<span class="sandbox">SANDBOX</span>')
    res = summary["by_result"]
    notes = ("<details class=\"notes\"><summary>Notes (" + str(len(meta.notes)) + ")</summary><ul>"
             + "".join(f"<li>{e(n)}</li>" for n in meta.notes) + "</ul></details>") if meta.notes else ""
    body = (f"<p class=\"verdict\"><b>{e(summary['verdict'].upper())}</b> &middot; "
            + ", ".join(f'<span class="res {r}">{r}</span> {int(res[r])}' for r in RESULTS) + "</p>"
            + notes + checks_table_html([c.as_dict() for c in checks]))
    return html_document(title, head, body)


def checks_table_html(checks: Sequence[Mapping[str, Any]]) -> str:
    """The sortable table of checks (as `Check.as_dict` gives them) of the HTML reports."""
    rows = []
    for c in checks:
        result, severity, details = str(c["result"]), str(c["severity"]), c.get("details") or ()
        listed = ("<ol>" + "".join(f"<li>{e(d)}</li>" for d in details) + "</ol>") if details else ""
        rows.append(
            f'<tr data-code="{e(c["code"])}"><td data-key="{RESULTS.index(result) if result in RESULTS else 9}">'
            f'<span class="res {e(result)}">{e(result)}</span></td>'
            f'<td data-key="{SEVERITY_RANK.get(severity, 9)}"><span class="sev {e(severity)}">{e(severity)}'
            f"</span></td><td><b>{e(c['code'])}</b><br>{e(c['title'])}</td><td>{e(c['evidence'])}{listed}</td>"
            f"<td>{e(c['fix'] if result != 'pass' else '')}</td></tr>")
    return ('<table class="sortable"><thead><tr><th>Result</th><th>Severity</th><th>Check</th>'
            "<th>Evidence</th><th>Fix</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


# --- a tenant set in one file (each tenant's --format json document, or its failure, by profile) ---

#: Columns of the tenant-set CSV: where a check ran, then the check.
TENANT_SET_CSV_COLUMNS = ("profile", "tenant", "verdict", *CSV_COLUMNS)


def render_tenant_set_csv(documents: Mapping[str, Mapping[str, Any]]) -> str:
    """CSV text (no BOM): every check of every tenant, with its profile, tenant and that tenant's
    verdict; a failed tenant has no rows (its error is in the summary printed on stderr)."""
    rows: list[dict[str, Any]] = []
    for profile, document in documents.items():
        verdict = str((document.get("summary") or {}).get("verdict", ""))
        for check in document.get("checks") or ():
            rows.append({"profile": profile, "tenant": document_tenant(document), "verdict": verdict, **check,
                         "details": " | ".join(check.get("details") or ())})
    return to_csv_text(rows, list(TENANT_SET_CSV_COLUMNS))


def render_tenant_set_html(documents: Mapping[str, Mapping[str, Any]]) -> str:
    """One self-contained page: a row per tenant (verdict, counts per result and what blocks, or
    its error), then a section per tenant with its checks."""
    scope = next((str(d["summary"].get("scope") or "flip") for d in documents.values()
                  if isinstance(d.get("summary"), Mapping)), "flip")  # one --scope for the whole set

    def tenant(document: Mapping[str, Any]) -> tuple[str, str]:
        summary = document.get("summary") or {}
        verdict = str(summary.get("verdict", ""))
        by_result = summary.get("by_result") or {}
        cells = (f"<td><span class=\"res {'pass' if verdict == 'go' else 'fail'}\">{e(verdict.upper())}</span></td>"
                 + "".join(f"<td>{int(by_result.get(r, 0))}</td>" for r in RESULTS)
                 + f"<td>{e(', '.join(summary.get('blocking') or ()))}</td>")
        return cells, checks_table_html(document.get("checks") or [])

    return tenant_set_page(f"exocm readiness ({scope}) - tenant set", documents,
                           ("Profile", "Tenant", "Verdict", *RESULTS, "Blocking / error"), tenant)
