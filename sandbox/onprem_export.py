"""The sandbox's on-prem export: the CSV scripts/Export-ExocmOnPrem.ps1 writes, in PowerShell's
Export-Csv styles, so the whole detection flow runs without Windows.

Cell formats follow the script: multi-valued properties (EmailAddresses,
ExtensionCustomAttribute1-5) joined with ';' (Export-Csv itself would print a collection's type
name, so the script joins explicitly); GUIDs as plain strings; WhenChanged as
yyyy-MM-ddTHH:mm:ssZ (UTC). Export-Csv quotes every field and ends lines with CRLF (Windows
PowerShell 5.1 and PowerShell 7's default -UseQuotes Always).

Variants (what Export-Csv writes with each option set):
- "default":    `#TYPE System.Management.Automation.PSCustomObject` line, UTF-8 with BOM, ','
                (Windows PowerShell 5.1 `Export-Csv -Encoding UTF8`).
- "notype" / "script": no #TYPE line, UTF-8 with BOM, ',' (`-NoTypeInformation -Encoding UTF8`,
                exactly what Export-ExocmOnPrem.ps1 writes).
- "utf16":      #TYPE line, UTF-16 LE with BOM (`-Encoding Unicode`).
- "semicolon":  #TYPE line, UTF-8 with BOM, ';' (`-Delimiter ';'` or `-UseCulture` in many locales).
- "utf8-nobom": no #TYPE line, UTF-8 without BOM, ',' (PowerShell 7's defaults).
"""
from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exocm.sandbox.tenant import ONPREM_COLUMNS, Record, Tenant

TYPE_LINE = "#TYPE System.Management.Automation.PSCustomObject"
VARIANTS: dict[str, tuple[bool, str, str]] = {
    # name: (type line, encoding, delimiter)
    "default": (True, "utf-8-sig", ","),
    "notype": (False, "utf-8-sig", ","),
    "script": (False, "utf-8-sig", ","),
    "utf16": (True, "utf-16-le", ","),  # with a BOM (FF FE), as PowerShell's "Unicode"
    "semicolon": (True, "utf-8-sig", ";"),
    "utf8-nobom": (False, "utf-8", ","),
}
MULTI_SEPARATOR = ";"


def cell(value: Any) -> str:
    """One value as the export script renders it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, list | tuple):
        return MULTI_SEPARATOR.join(str(v) for v in value)
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def render_onprem_csv(rows: list[Record], *, variant: str = "default") -> str:
    """The CSV text (before encoding) for `rows` in `variant`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {sorted(VARIANTS)}")
    type_line, _, delim = VARIANTS[variant]
    lines: list[str] = []
    if type_line:
        lines.append(TYPE_LINE)
    lines.append(delim.join(_quote(c) for c in ONPREM_COLUMNS))
    for r in rows:
        lines.append(delim.join(_quote(cell(r.get(c))) for c in ONPREM_COLUMNS))
    return "\r\n".join(lines) + "\r\n"


def write_onprem_csv(tenant: Tenant, path: str | Path, *, variant: str = "default") -> int:
    """Write the tenant's on-prem Get-Mailbox + Get-RemoteMailbox export to `path` (atomically).

    Returns the number of data rows written.
    """
    rows = tenant.onprem_records()
    text = render_onprem_csv(rows, variant=variant)
    encoding = VARIANTS[variant][1]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if encoding == "utf-16-le":
                fh.write(b"\xff\xfe")
            fh.write(text.encode(encoding))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(rows)
