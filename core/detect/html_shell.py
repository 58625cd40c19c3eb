"""The HTML shell every exocm report shares: one self-contained page (a Content-Security-Policy
forbids loading anything), the same styles, and tables sortable by clicking a header (a few
lines of inline JavaScript). Every value goes through `e` (HTML-escaped)."""
from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1b1b1b}
h1{font-size:20px;margin:0 0 4px} .meta{color:#555;margin-bottom:16px}
.sandbox{background:#ffd700;color:#000;font-weight:bold;padding:2px 6px;border-radius:3px}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0} th:after{content:" \\2195";color:#aaa}
td.ev{font-family:ui-monospace,Consolas,monospace;font-size:12px;white-space:pre-wrap;max-width:40em}
.sev{font-weight:bold;border-radius:3px;padding:1px 5px;color:#fff}
.critical{background:#8b0000}.high{background:#d9480f}.medium{background:#e6a700;color:#000}
.low{background:#4a7ab5}.info{background:#777}
.notes li{color:#555} summary{cursor:pointer;color:#245}
.res{font-weight:bold;border-radius:3px;padding:1px 5px;color:#fff}
.pass{background:#2b8a3e}.warn{background:#e6a700;color:#000}.fail{background:#c92a2a}.unknown{background:#777}
td ol,td ul{margin:4px 0;padding-left:20px}
"""

_JS = """
document.querySelectorAll("table.sortable th").forEach(function(th, col){
  th.addEventListener("click", function(){
    var table = th.closest("table"), body = table.tBodies[0];
    var asc = th.getAttribute("data-dir") !== "asc";
    table.querySelectorAll("th").forEach(function(h){ h.removeAttribute("data-dir"); });
    th.setAttribute("data-dir", asc ? "asc" : "desc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = a.cells[col].getAttribute("data-key") || a.cells[col].textContent;
      var y = b.cells[col].getAttribute("data-key") || b.cells[col].textContent;
      var c = x.localeCompare(y, undefined, {numeric: true});
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""



def e(value: Any) -> str:
    """HTML-escape a value (None -> '')."""
    return html.escape("" if value is None else str(value), quote=True)


def iso(ts: datetime) -> str:
    """UTC ISO 8601 with a Z."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def html_document(title: str, head_bits: Sequence[str], body: str) -> str:
    """The page: <title>, an <h1>, a meta line (`head_bits`, already escaped), `body`, the sort script."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{e(title)}</h1><div class=\"meta\">{' &middot; '.join(head_bits)}</div>"
        f"{body}<script>{_JS}</script></body></html>\n"
    )
