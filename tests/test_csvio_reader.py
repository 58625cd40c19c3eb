"""read_csv: bad rows reported by line and skipped, nothing dropped silently, odd files read right."""
from __future__ import annotations

import codecs
from pathlib import Path

import pandas as pd
import pytest
from exocm.core.csvio import BadRow, decode_bytes, read_csv, read_csv_text, split_multi
from exocm.core.inventory.onprem import OnPremFormatError, load_onprem_csv


def _write(tmp_path: Path, data: bytes | str, name: str = "f.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def test_rows_with_wrong_field_counts_are_reported_with_line_numbers_and_skipped():
    text = '"A","B","C"\r\n"1","2","3"\r\n"4","5"\r\n"6","7","8","9"\r\n"10","11","12"\r\n'
    frame, bad = read_csv_text(text)
    assert list(frame["A"]) == ["1", "10"]
    assert list(frame.index) == [2, 5]  # the index is the source line
    assert [b.line for b in bad] == [3, 4]
    assert "2 fields where the header has 3" in bad[0].reason
    assert "4 fields" in bad[1].reason


def test_every_data_line_is_either_a_row_or_a_bad_row():
    lines = ['"A","B"'] + [f'"{i}","x"' if i % 7 else f'"{i}","x","extra"' for i in range(1, 60)]
    frame, bad = read_csv_text("\r\n".join(lines) + "\r\n")
    assert len(frame) + len(bad) == 59
    assert sorted(list(frame.index) + [b.line for b in bad]) == list(range(2, 61))


def test_unbalanced_quote_does_not_swallow_the_rows_after_it():
    text = 'A,B,C\n1,"broken,3\n4,5,6\n7,8,9\n10,11,12\n'
    frame, bad = read_csv_text(text)
    assert list(frame["A"]) == ["4", "7", "10"]
    assert [b.line for b in bad] == [2]
    assert "malformed" in bad[0].reason or "quoted field" in bad[0].reason


def test_stray_quote_after_a_quoted_field_is_a_bad_row():
    text = '"A","B"\n"x"y,"1"\n"ok","2"\n'
    frame, bad = read_csv_text(text)
    assert list(frame["A"]) == ["ok"]
    assert bad and bad[0].line == 2


def test_quoted_field_with_newline_keeps_the_line_number_of_its_first_line():
    text = '"A","B"\n"a","multi\nline"\n"b","x"\n'
    frame, bad = read_csv_text(text)
    assert bad == []
    assert frame.loc[2, "B"] == "multi\nline"
    assert list(frame.index) == [2, 4]


def test_duplicate_and_empty_headers_are_renamed_and_noted():
    frame, bad = read_csv_text("Alias,alias,,Alias\n1,2,3,4\n")
    assert list(frame.columns) == ["Alias", "alias_2", "H3", "Alias_3"]
    assert frame.iloc[0].tolist() == ["1", "2", "3", "4"]
    assert len(frame.attrs["csv_notes"]) == 3


def test_file_without_header_is_detected_from_its_data():
    frame, bad = read_csv_text("jdoe@contoso.com\nasmith@contoso.com\n")
    assert list(frame.columns) == ["H1"]
    assert list(frame["H1"]) == ["jdoe@contoso.com", "asmith@contoso.com"]
    # with known column names, a first row that names none of them is data too
    frame, _ = read_csv_text("jdoe\nasmith\n", known_columns=["Identity", "Alias"])
    assert list(frame["H1"]) == ["jdoe", "asmith"]
    frame, _ = read_csv_text("alias\njdoe\n", known_columns=["Identity", "Alias"])
    assert list(frame["alias"]) == ["jdoe"]


def test_delimiter_comes_from_the_header_not_from_semicolons_in_values():
    text = '"UPN","EmailAddresses","Alias"\n"a@x","smtp:a@x;smtp:b@x;smtp:c@x","a"\n"b@x","smtp:d@x;smtp:e@x","b"\n'
    frame, bad = read_csv_text(text)
    assert frame.attrs["csv_format"]["delimiter"] == ","
    assert list(frame.columns) == ["UPN", "EmailAddresses", "Alias"]
    frame, bad = read_csv_text("UPN;Note\na@x;hello, world\n")
    assert frame.attrs["csv_format"]["delimiter"] == ";"
    assert frame.iloc[0]["Note"] == "hello, world"


def test_nul_bytes_inside_values_are_removed_and_noted():
    frame, bad = read_csv_text('"A","B"\n"x\x00y","1"\n')
    assert frame.iloc[0]["A"] == "xy"
    assert any("NUL" in n and "line(s) 2" in n for n in frame.attrs["csv_notes"])


def test_utf16_without_bom_is_recognised():
    raw = '"A","B"\r\n"ä","1"\r\n'.encode("utf-16-le")
    text, enc, notes = decode_bytes(raw)
    assert enc == "utf-16-le" and text.startswith('"A"') and notes
    raw = '"A","B"\r\n"ä","1"\r\n'.encode("utf-16-be")
    assert decode_bytes(raw)[1] == "utf-16-be"


def test_utf32_bom_is_not_mistaken_for_utf16(tmp_path: Path):
    p = _write(tmp_path, codecs.BOM_UTF32_LE + '"A"\n"x@y"\n'.encode("utf-32-le"))
    frame, bad = read_csv(p)
    assert list(frame["A"]) == ["x@y"]


def test_blank_lines_are_skipped_and_an_empty_file_gives_an_empty_frame(tmp_path: Path):
    frame, bad = read_csv_text('\n\n"A"\n\n"1"\n\n')
    assert list(frame["A"]) == ["1"] and bad == []
    frame, bad = read_csv(_write(tmp_path, b""))
    assert frame.empty and bad == []


def test_formula_escape_written_by_exocm_is_undone_on_read():
    frame, _ = read_csv_text("A\n'=1+1\n'-5\n'x\n")
    assert list(frame["A"]) == ["=1+1", "-5", "'x"]
    frame, _ = read_csv_text("A\n'=1+1\n", undo_formula_escape=False)
    assert list(frame["A"]) == ["'=1+1"]


@pytest.mark.parametrize(
    ("cell", "rule", "want"),
    [
        ("SMTP:a@x;smtp:b@x", "proxy", ("SMTP:a@x", "smtp:b@x")),
        ("SMTP:a@x|smtp:b@x", "proxy", ("SMTP:a@x", "smtp:b@x")),
        ("SMTP:a@x smtp:b@x", "proxy", ("SMTP:a@x", "smtp:b@x")),
        ("SMTP:a@x, smtp:b@x", "proxy", ("SMTP:a@x", "smtp:b@x")),
        ("X500:/o=A B/cn=c d smtp:b@x", "proxy", ("X500:/o=A B/cn=c d", "smtp:b@x")),
        ("X400:c=US;a= ;p=P;s=S; SMTP:a@x", "proxy", ("X400:c=US;a= ;p=P;s=S;", "SMTP:a@x")),
        ("SMTP:a@x;", "proxy", ("SMTP:a@x",)),
        ("", "proxy", ()),
        ("Cost Center 12;Project X", "list", ("Cost Center 12", "Project X")),
        ("a | b", "list", ("a", "b")),
        ("a b;c", "words", ("a", "b", "c")),
    ],
)
def test_multi_valued_cells_split_per_column_rule(cell: str, rule: str, want: tuple[str, ...]):
    assert split_multi(pd.Series([cell], dtype="str"), rule).iloc[0] == want  # type: ignore[arg-type]


def test_split_multi_keeps_unknown_as_missing():
    out = split_multi(pd.Series(["a;b", None], dtype="object"), "list")
    assert out.iloc[0] == ("a", "b") and out.iloc[1] is None


def test_onprem_loader_refuses_a_file_it_cannot_join(tmp_path: Path):
    with pytest.raises(OnPremFormatError, match="RecipientTypeDetails"):
        load_onprem_csv(_write(tmp_path, "Name,Title\nx,y\n"))
    with pytest.raises(OnPremFormatError, match="names none of the expected columns"):
        load_onprem_csv(_write(tmp_path, "a@x.com,UserMailbox\n", "noheader.csv"))


def test_onprem_loader_reports_bad_rows_and_unexported_collections(tmp_path: Path):
    text = (
        '"UserPrincipalName","RecipientTypeDetails","EmailAddresses","ExchangeGuid"\r\n'
        '"a@x.com","UserMailbox","Microsoft.Exchange.Data.ProxyAddressCollection","{5C1F0A4E-8D0B-4A59-9A3C-2F1E0C9D7B11}"\r\n'
        '"b@x.com","RemoteUserMailbox"\r\n'
        '"c@x.com","remoteusermailbox","SMTP:c@x.com",""\r\n'
    )
    data = load_onprem_csv(_write(tmp_path, text))
    assert data.bad_rows == [BadRow(3, "2 fields where the header has 4", data.bad_rows[0].text)]
    f = data.frame
    assert f.loc[2, "EmailAddresses"] is None  # a type name is unknown, never "no addresses"
    assert any(".NET type name" in n for n in data.notes)
    assert f.loc[2, "ExchangeGuid"] == "5c1f0a4e-8d0b-4a59-9a3c-2f1e0c9d7b11"
    assert f.loc[4, "RecipientTypeDetails"] == "RemoteUserMailbox"
    assert f["CustomAttribute1"].isna().all()  # column not in the file: unknown
    assert "CustomAttribute1" not in data.columns_present


def test_onprem_loader_accepts_ad_attribute_names(tmp_path: Path):
    text = "UserPrincipalName,RecipientTypeDetails,proxyAddresses,extensionAttribute3,msDS-ExternalDirectoryObjectId\n"
    text += "a@x.com,RemoteUserMailbox,SMTP:a@x.com;smtp:b@x.com,blue,User_3F2504E0-4F89-41D3-9A0C-0305E82C3301\n"
    f = load_onprem_csv(_write(tmp_path, text)).frame
    row = f.iloc[0]
    assert row["EmailAddresses"] == ("SMTP:a@x.com", "smtp:b@x.com")
    assert row["CustomAttribute3"] == "blue"
    assert row["ExternalDirectoryObjectId"] == "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
