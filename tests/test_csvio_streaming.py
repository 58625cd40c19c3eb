"""read_csv streams UTF-8 files in blocks: whatever falls on a block boundary, the result is the
whole-text route's (read_csv_text over the decoded file), bad rows, notes and parser included."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from exocm.core import csvio
from exocm.core.csvio import decode_bytes, read_csv, read_csv_text

FILES = {
    "crlf-bom-type-line": '\ufeff#TYPE Selected.Mailbox\r\n"A","B"\r\n"1","x"\r\n"2","y"\r\n',
    "no-final-line-break": "A,B\n1,x\n2,y",
    "trailing-blank-lines": "A,B\n1,x\n2,y\n\n\r\n\n",
    "blank-line-inside": "A,B\n1,x\n\n2,y\n",
    "spaces-only-line-inside": "A,B\n1,x\n \t\n2,y\n",
    "last-line-only-spaces": "A,B\n1,x\n  ",
    "last-line-only-spaces-then-cr": "A,B\n1,x\n \r",
    "quote-inside-a-field": 'A,B\n1,x"y\n2,z\n',
    "newline-inside-quotes": 'A,B\n1,"two\nlines"\n2,z\n',
    "unterminated-quote-at-end": 'A\n1\n"\n',
    "wrong-field-count": "A,B\n1,x\n2\n3,z\n",
    "semicolons-and-sep-line": 'sep=;\r\nA;B\r\n1;"a;b"\r\n',
    "non-ascii": "A,B\n\u00e9t\u00e9,\u20ac\n\U0001f600,x\n",
    "long-line": "A,B\n" + "v" * 100 + ",x\n1,y\n",
    "header-only": "A,B\n",
    "nul": "A,B\n1,x\x00\n",
}


def _via_text(path: Path) -> csvio.CsvRead:
    text, encoding, notes = decode_bytes(path.read_bytes())
    return read_csv_text(text, _encoding=encoding, _notes=notes)


@pytest.mark.parametrize("block", [1, 2, 3, 7, 16, 1 << 24])
@pytest.mark.parametrize("name", sorted(FILES))
def test_streamed_file_reads_as_its_whole_text(name: str, block: int, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvio, "_STREAM_BLOCK", block)
    path = tmp_path / "f.csv"
    path.write_bytes(FILES[name].encode("utf-8"))
    got, want = read_csv(path), _via_text(path)
    pd.testing.assert_frame_equal(got.frame, want.frame)
    assert got.bad_rows == want.bad_rows
    assert got.frame.attrs == want.frame.attrs


def test_a_clean_file_is_parsed_by_pyarrow_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(("\ufeffA,B\r\n" + "".join(f"{i},x{i}\r\n" for i in range(1000))).encode("utf-8"))
    read = read_csv(path)
    assert read.frame.attrs["csv_format"] == {"encoding": "utf-8 (BOM)", "delimiter": ",", "type_line": None,
                                              "has_header": True, "header": "header on line 1", "parser": "pyarrow"}
    assert list(read.frame.index[:2]) == [2, 3] and read.frame["B"].iloc[-1] == "x999"
