"""scripts/Export-ExocmOnPrem.ps1 writes exactly the columns and cell formats the loader reads.

No PowerShell on these machines: the script is checked statically, and a CSV in the exact
shape it writes (Export-Csv -NoTypeInformation -Encoding UTF8 in Windows PowerShell 5.1) is
read back through the loader.
"""
from __future__ import annotations

import re
from pathlib import Path

from exocm.core.inventory.onprem import load_onprem_csv
from exocm.core.model import ONPREM_COLUMNS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "Export-ExocmOnPrem.ps1"


def _text() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def test_script_has_comment_based_help():
    text = _text()
    assert text.lstrip().startswith("<#")
    for keyword in (".SYNOPSIS", ".DESCRIPTION", ".PARAMETER Path", ".PARAMETER IncludeEntraObjectId", ".EXAMPLE", ".NOTES"):
        assert keyword in text, keyword


def test_script_reads_both_cmdlets_unlimited_and_exports_utf8_without_type_line():
    text = _text()
    assert "ResultSize = 'Unlimited'" in text
    assert re.search(r"Get-Mailbox @common", text) and re.search(r"Get-RemoteMailbox @common", text)
    assert "Export-Csv -Path $Path -NoTypeInformation -Encoding UTF8" in text


def test_script_columns_are_onprem_columns_in_order():
    text = _text()
    body = text[text.index("function ConvertTo-ExocmRow"):]
    names: list[str] = []
    for m in re.finditer(r"^\s+(\w+)\s+=|\$row\[['\"](\w+)(\$i)?['\"]\]", body, re.M):
        name = m.group(1) or m.group(2)
        if m.group(3):
            rng = range(1, 16) if name == "CustomAttribute" else range(1, 6)
            names.extend(f"{name}{i}" for i in rng)
        elif name not in names:
            names.append(name)
    names = [n for n in names if n in ONPREM_COLUMNS]
    assert names == list(ONPREM_COLUMNS)


def test_script_cell_formats():
    text = _text()
    assert "-join ';'" in text  # EmailAddresses / ExtensionCustomAttribute joined with ';'
    assert "ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ'" in text  # WhenChanged ISO 8601 UTC
    assert "-replace '^User_', ''" in text  # msDS-ExternalDirectoryObjectId prefix dropped


def test_a_file_shaped_like_the_scripts_output_loads_cleanly(tmp_path: Path):
    header = ",".join(f'"{c}"' for c in ONPREM_COLUMNS)
    values = {c: "" for c in ONPREM_COLUMNS}
    values.update(
        UserPrincipalName="ann@contoso.com", PrimarySmtpAddress="ann@contoso.com", Alias="ann",
        RecipientTypeDetails="RemoteUserMailbox", ExchangeGuid="5c1f0a4e-8d0b-4a59-9a3c-2f1e0c9d7b11",
        EmailAddresses="SMTP:ann@contoso.com;smtp:ann@contoso.mail.onmicrosoft.com",
        WhenChanged="2026-02-03T04:05:06Z", ExtensionCustomAttribute1="a;b",
        DistinguishedName="CN=Ann,OU=Users,DC=contoso,DC=com", OrganizationalUnit="contoso.com/Users",
    )
    row = ",".join(f'"{values[c]}"' for c in ONPREM_COLUMNS)
    path = tmp_path / "exocm-onprem.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (header + "\r\n" + row + "\r\n").encode("utf-8"))
    data = load_onprem_csv(path)
    assert data.bad_rows == [] and data.notes == []
    rec = data.frame.iloc[0]
    assert rec["EmailAddresses"] == ("SMTP:ann@contoso.com", "smtp:ann@contoso.mail.onmicrosoft.com")
    assert rec["ExtensionCustomAttribute1"] == ("a", "b")
    assert rec["WhenChanged"].isoformat() == "2026-02-03T04:05:06+00:00"
    assert data.columns_present == frozenset(ONPREM_COLUMNS)
