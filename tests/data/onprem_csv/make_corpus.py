"""Writes the on-prem CSV corpus: one set of records in every format Export-Csv (or Excel) produces.

Run from the repository root: ``python tests/data/onprem_csv/make_corpus.py``. The files are
committed; this script documents how each was made. Every file parses to the same records
(tests/test_csvio_corpus.py). Byte layouts follow what PowerShell writes:
- Windows PowerShell 5.1 Export-Csv: ``#TYPE`` line unless -NoTypeInformation, every field in
  double quotes, CRLF, -Encoding UTF8 = UTF-8 *with* BOM, Unicode = UTF-16 LE with BOM,
  BigEndianUnicode = UTF-16 BE with BOM, Default = ANSI code page (cp1252 here);
  -UseCulture uses the culture's list separator (';' in de-DE, fr-FR ...).
- PowerShell 7 Export-Csv: no ``#TYPE`` line, UTF-8 *without* BOM, quotes everywhere unless
  -UseQuotes AsNeeded.
- Excel "CSV (semicolon)" may start with a ``sep=;`` line.
- DateTime properties exported without formatting use the culture's format and no zone.
"""
from __future__ import annotations

import codecs
from pathlib import Path

HERE = Path(__file__).parent

COLUMNS = [
    "UserPrincipalName", "PrimarySmtpAddress", "Alias", "RecipientTypeDetails", "ExchangeGuid", "ArchiveGuid",
    "LegacyExchangeDN", "EmailAddresses", "WhenChanged",
    *(f"CustomAttribute{i}" for i in range(1, 16)),
    *(f"ExtensionCustomAttribute{i}" for i in range(1, 6)),
    "DistinguishedName", "OrganizationalUnit", "ExternalDirectoryObjectId",
]

X500 = "X500:/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=jmueller"
X400 = "X400:c=US;a= ;p=Contoso;o=Exchange;s=Mueller;g=Jens;"

# (values by column; EmailAddresses / ExtensionCustomAttribute as lists; WhenChanged as (Y, M, D, h, m, s))
RECORDS = [
    {
        "UserPrincipalName": "jens.mueller@contoso.com", "PrimarySmtpAddress": "Jens.Mueller@contoso.com",
        "Alias": "jmueller", "RecipientTypeDetails": "UserMailbox",
        "ExchangeGuid": "5c1f0a4e-8d0b-4a59-9a3c-2f1e0c9d7b11", "ArchiveGuid": "00000000-0000-0000-0000-000000000000",
        "LegacyExchangeDN": "/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=jmueller",
        "EmailAddresses": ["SMTP:Jens.Mueller@contoso.com", "smtp:jmueller@contoso.mail.onmicrosoft.com", X500, X400],
        "WhenChanged": (2024, 5, 1, 14, 34, 56),
        "CustomAttribute1": "Sales, EMEA", "CustomAttribute2": "Jürgen's \"team\"",
        "ExtensionCustomAttribute1": ["Cost Center 12", "Project X"],
        "DistinguishedName": "CN=Jens Müller,OU=Sales,DC=contoso,DC=com", "OrganizationalUnit": "contoso.com/Sales",
        "ExternalDirectoryObjectId": "",
    },
    {
        "UserPrincipalName": "ana.lopez@contoso.com", "PrimarySmtpAddress": "ana.lopez@contoso.com",
        "Alias": "alopez", "RecipientTypeDetails": "RemoteUserMailbox",
        "ExchangeGuid": "8e2b6c1a-1f3d-4e5a-b6c7-d8e9f0a1b2c3", "ArchiveGuid": "",
        "LegacyExchangeDN": "/o=Contoso/ou=External (FYDIBOHF25SPDLT)/cn=Recipients/cn=alopez",
        "EmailAddresses": ["SMTP:ana.lopez@contoso.com", "smtp:alopez@contoso.mail.onmicrosoft.com"],
        "WhenChanged": (2024, 12, 24, 8, 5, 0),
        "CustomAttribute5": "line one\nline two",
        "DistinguishedName": "CN=Ana López,OU=Remote,DC=contoso,DC=com", "OrganizationalUnit": "contoso.com/Remote",
        "ExternalDirectoryObjectId": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    },
    {
        "UserPrincipalName": "room.paris@contoso.com", "PrimarySmtpAddress": "room.paris@contoso.com",
        "Alias": "room.paris", "RecipientTypeDetails": "RemoteRoomMailbox",
        "ExchangeGuid": "00000000-0000-0000-0000-000000000000", "ArchiveGuid": "",
        "LegacyExchangeDN": "", "EmailAddresses": ["SMTP:room.paris@contoso.com"],
        "WhenChanged": (2023, 1, 2, 23, 59, 59), "CustomAttribute15": "=HYPERLINK(\"x\")",
        "DistinguishedName": "CN=Room Paris,OU=Rooms,DC=contoso,DC=com", "OrganizationalUnit": "contoso.com/Rooms",
        "ExternalDirectoryObjectId": "",
    },
    {
        "UserPrincipalName": "shared.hr@contoso.com", "PrimarySmtpAddress": "hr@contoso.com",
        "Alias": "hr", "RecipientTypeDetails": "RemoteSharedMailbox",
        "ExchangeGuid": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "ArchiveGuid": "",
        "LegacyExchangeDN": "", "EmailAddresses": ["SMTP:hr@contoso.com", "smtp:shared.hr@contoso.com", "SIP:hr@contoso.com"],
        "WhenChanged": (2024, 2, 29, 0, 0, 1), "ExtensionCustomAttribute5": ["a", "b", "c"],
        "DistinguishedName": "CN=Shared HR,OU=Shared,DC=contoso,DC=com", "OrganizationalUnit": "contoso.com/Shared",
        "ExternalDirectoryObjectId": "",
    },
]

MULTI = {"EmailAddresses", *(f"ExtensionCustomAttribute{i}" for i in range(1, 6))}


def when(record: dict, style: str) -> str:
    y, mo, d, h, mi, s = record["WhenChanged"]
    if style == "iso":
        return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z"
    if style == "en-US":
        h12 = h % 12 or 12
        return f"{mo}/{d}/{y} {h12}:{mi:02d}:{s:02d} {'AM' if h < 12 else 'PM'}"
    if style == "de-DE":
        return f"{d:02d}.{mo:02d}.{y:04d} {h:02d}:{mi:02d}:{s:02d}"
    raise ValueError(style)


def cells(record: dict, join: str, date_style: str) -> list[str]:
    out = []
    for c in COLUMNS:
        v = record.get(c, "")
        if c == "WhenChanged":
            v = when(record, date_style)
        elif c == "EmailAddresses":
            v = join.join(v)
        elif c in MULTI:  # ExtensionCustomAttribute values may hold spaces: never space-joined
            v = (join if join.strip() else ";").join(v) if v else ""
        out.append(v)
    return out


def quote(v: str) -> str:
    return '"' + v.replace('"', '""') + '"'


def as_needed(v: str, delim: str) -> str:
    return quote(v) if any(ch in v for ch in (delim, '"', "\n", "\r")) else v


def text(*, delim: str = ",", typeline: bool = False, join: str = ";", date_style: str = "iso",
         quoting: str = "all", newline: str = "\r\n", sep_line: bool = False) -> str:
    q = quote if quoting == "all" else (lambda v: as_needed(v, delim))
    lines = []
    if sep_line:
        lines.append(f"sep={delim}")
    if typeline:
        lines.append("#TYPE Selected.Microsoft.Exchange.Data.Directory.Management.Mailbox")
    lines.append(delim.join(q(c) for c in COLUMNS))
    for r in RECORDS:
        # a quoted newline inside a field stays as written (PowerShell writes the raw LF)
        lines.append(delim.join(q(v) for v in cells(r, join, date_style)))
    return newline.join(lines) + newline


VARIANTS: dict[str, bytes] = {
    # Export-ExocmOnPrem.ps1 in Windows PowerShell 5.1: -NoTypeInformation -Encoding UTF8
    "script-ps51.csv": codecs.BOM_UTF8 + text().encode("utf-8"),
    # Export-Csv in 5.1 without -NoTypeInformation: #TYPE line, UTF-8 BOM
    "type-line-utf8bom.csv": codecs.BOM_UTF8 + text(typeline=True).encode("utf-8"),
    # PowerShell 7 default: utf8NoBOM, no #TYPE, LF on Linux
    "ps7-utf8-nobom-lf.csv": text(newline="\n").encode("utf-8"),
    # -Encoding Unicode (UTF-16 LE with BOM), with #TYPE
    "utf16le-bom.csv": codecs.BOM_UTF16_LE + text(typeline=True).encode("utf-16-le"),
    # -Encoding BigEndianUnicode
    "utf16be-bom.csv": codecs.BOM_UTF16_BE + text().encode("utf-16-be"),
    # -UseCulture in de-DE: ';' delimiter, dates as dd.MM.yyyy HH:mm:ss, proxies joined with '|'
    "semicolon-de-DE.csv": codecs.BOM_UTF8 + text(delim=";", date_style="de-DE", join="|").encode("utf-8"),
    # Excel 'CSV (semicolon)' with a sep= hint line
    "excel-sep-line.csv": codecs.BOM_UTF8 + text(delim=";", sep_line=True).encode("utf-8"),
    # -Delimiter "`t"
    "tab.csv": text(delim="\t").encode("utf-8"),
    # PS 7 -UseQuotes AsNeeded, en-US dates, proxies interpolated "$($_.EmailAddresses)" (space-joined)
    "asneeded-en-US-space.csv": text(quoting="asneeded", date_style="en-US", join=" ").encode("utf-8"),
    # -Encoding Default in Windows PowerShell 5.1 (ANSI code page 1252)
    "ansi-cp1252.csv": text(typeline=True).encode("cp1252"),
    # a crashed copy: NUL padding after the last line
    "nul-padding.csv": codecs.BOM_UTF8 + text().encode("utf-8") + b"\x00" * 64,
}


def main() -> None:
    for name, data in VARIANTS.items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(VARIANTS)} files to {HERE}")


if __name__ == "__main__":
    main()
