"""A tenant set's findings in one file, for an MSP's ticket or spreadsheet: CSV (one row per
finding, its profile and tenant first) and HTML (one row per tenant, then each tenant's findings).

Both read each tenant's findings document (`report.findings_document`: summary, findings, meta) or
its failure ({"error": ..., "status": ...}), keyed by profile, as `--format json` prints them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..csvio import to_csv_text
from .engine import FINDING_COLUMNS, SEVERITIES
from .html_shell import e, html_document
from .report import findings_table_html

#: Columns of the tenant-set CSV: where a finding is, then the finding itself.
TENANT_SET_CSV_COLUMNS = ("profile", "tenant", *FINDING_COLUMNS)


def document_tenant(document: Mapping[str, Any]) -> str:
    """The tenant id a command's JSON document names in its meta ('' when it has none: a failure)."""
    meta = document.get("meta")
    return str(meta.get("tenant", "")) if isinstance(meta, Mapping) else ""


def tenant_set_findings_csv(documents: Mapping[str, Mapping[str, Any]]) -> str:
    """CSV text (no BOM): every finding of every tenant, with its profile and tenant; a failed
    tenant has no rows (its error is in the summary the command prints on stderr)."""
    rows: list[dict[str, Any]] = []
    for profile, document in documents.items():
        tenant = document_tenant(document)
        for finding in document.get("findings") or ():
            rows.append({"profile": profile, "tenant": tenant, **finding})
    return to_csv_text(rows, list(TENANT_SET_CSV_COLUMNS))


def tenant_set_findings_html(documents: Mapping[str, Mapping[str, Any]]) -> str:
    """One self-contained page: a row per tenant (counts by severity, or its error), then a section
    per tenant with its findings table."""

    def tenant(document: Mapping[str, Any]) -> tuple[str, str]:
        summary = document.get("summary") or {}
        by_severity = summary.get("by_severity") or {}
        total = int(summary.get("total", len(document.get("findings") or ())))
        cells = (f"<td data-key=\"{total}\">{total}</td>"
                 + "".join(f"<td>{int(by_severity.get(s, 0))}</td>" for s in SEVERITIES) + "<td></td>")
        return cells, findings_table_html(document.get("findings") or [])

    return tenant_set_page("exocm findings - tenant set", documents,
                           ("Profile", "Tenant", "Findings", *SEVERITIES, "Error"), tenant)


def tenant_set_page(title: str, documents: Mapping[str, Mapping[str, Any]], columns: Sequence[str],
                    tenant: Callable[[Mapping[str, Any]], tuple[str, str]]) -> str:
    """A tenant-set page (findings, readiness): how many tenants (and failed), SANDBOX when any is
    one, a sortable row per tenant under `columns` (profile, tenant id, then the cells `tenant(document)`
    gives, or a failed tenant's status and error), then a section per tenant with the table it gives."""
    rows: list[str] = []
    sections: list[str] = []
    for k, (profile, document) in enumerate(documents.items()):
        tenant_id = document_tenant(document)
        if "error" in document:
            rows.append(f"<tr><td>{e(profile)}</td><td>{e(tenant_id)}</td><td><span class=\"res fail\">"
                        f"{e(document.get('status', 'error'))}</span></td>" + "<td></td>" * (len(columns) - 4)
                        + f"<td>{e(document['error'])}</td></tr>")
            continue
        cells, table = tenant(document)
        rows.append(f"<tr><td><a href=\"#t{k}\">{e(profile)}</a></td><td>{e(tenant_id)}</td>{cells}</tr>")
        sections.append(f"<h2 id=\"t{k}\">{e(profile)} <small>{e(tenant_id)}</small></h2>{table}")
    failed = sum(1 for d in documents.values() if "error" in d)
    head = [f"{len(documents)} tenants" + (f", {failed} failed" if failed else "")]
    if any(isinstance(d.get("meta"), Mapping) and d["meta"].get("sandbox") for d in documents.values()):
        head.insert(0, '<span class="sandbox">SANDBOX</span>')
    header = "".join(f"<th>{e(h)}</th>" for h in columns)
    body = (f'<table class="sortable"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            + "".join(sections))
    return html_document(title, head, body)
