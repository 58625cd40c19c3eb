"""CSV in and out, the way admins' files really look.

Reading accepts anything PowerShell's ``Export-Csv`` (5.1 or 7) or Excel writes: a ``#TYPE``
first line or not, an Excel ``sep=;`` hint line, UTF-8 with or without BOM, UTF-16 LE/BE
("Unicode"/"BigEndianUnicode") and UTF-32 with BOM, ANSI (cp1252) as a last resort, ``,`` or
``;`` or tab or ``|`` delimiters, quoted fields holding delimiters and newlines, stray NUL
characters, empty or duplicate header names, and files with no header at all. Rows that cannot
be parsed are reported with their line number and skipped; the run goes on and nothing is
dropped without a report.

Parsing is done by the standard library's C ``csv`` module (strict mode, so a stray quote is an
error, not a silently merged row). Only two things around it are our own, and why:

* the delimiter is read from the header line and confirmed by field-count consistency over
  the next lines; ``csv.Sniffer`` guesses from value frequencies, and a comma file whose cells
  hold ``;``-joined proxy addresses fools it;
* the recovery after a bad record restarts parsing on the line after the record's first line,
  so an unbalanced quote cannot swallow the rest of the file into one field.

Writing is for Excel: UTF-8 with BOM, every field quoted (as ``Export-Csv`` does), CRLF,
cells that start with ``= + - @`` (or tab/CR) prefixed with ``'`` so Excel does not run them
as formulas, and an atomic replace (temp file, fsync, rename).
"""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from .files import write_atomic
from .memory import release_unused_memory
from .values import is_guid

__all__ = [
    "BadRow",
    "CsvRead",
    "SplitRule",
    "decode_bytes",
    "format_cell",
    "is_dotnet_type_name",
    "read_csv",
    "read_csv_text",
    "split_multi",
    "to_csv_text",
    "write_csv",
]

#: Delimiters tried when none is given, in order of preference on a tie.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
#: Rows per Arrow-backed chunk while reading.
_CHUNK_ROWS = 20_000
#: How many physical lines the delimiter check looks at.
_SNIFF_LINES = 50
#: Characters that make Excel treat a cell as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class BadRow:
    """A record that was skipped: its first physical line (1-based), why, and its text (truncated)."""

    line: int
    reason: str
    text: str = ""


class CsvRead(NamedTuple):
    """What ``read_csv`` returns: a DataFrame of str and the skipped rows.

    The frame's index is the 1-based line number where each record starts (``line``), so
    callers can report problems by line. ``frame.attrs["csv_format"]`` holds the detected
    encoding, delimiter, header and ``#TYPE`` line; ``frame.attrs["csv_notes"]`` lists
    non-fatal repairs (NULs removed, header names renamed), each one line for the user.
    """

    frame: pd.DataFrame
    bad_rows: list[BadRow]


# ----------------------------------------------------------------------------- decoding

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_bytes(data: bytes) -> tuple[str, str, list[str]]:
    """Decode a CSV file's bytes the way Import-Csv does: by BOM, else UTF-8.

    Returns ``(text, encoding, notes)``. Without a BOM, UTF-16 is recognised by its NUL
    pattern, and a file that is not valid UTF-8 is read as Windows ANSI (cp1252), which is
    what Windows PowerShell 5.1 writes with ``-Encoding Default``; that fallback is noted.
    """
    notes: list[str] = []
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                return body.decode(encoding), encoding + " (BOM)", notes
            except UnicodeDecodeError as exc:
                notes.append(f"file is not valid {encoding} at byte {exc.start}; undecodable bytes replaced")
                return body.decode(encoding, errors="replace"), encoding + " (BOM)", notes
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        notes.append(f"file has no byte-order mark but looks like {utf16}; read as {utf16}")
        return data.decode(utf16, errors="replace"), utf16, notes
    try:
        return data.decode("utf-8"), "utf-8", notes
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    notes.append("file is not UTF-8; read as Windows ANSI (cp1252): re-export with -Encoding UTF8 if names look wrong")
    return text, "cp1252", notes


def _utf16_without_bom(data: bytes) -> str | None:
    """Guess UTF-16 without BOM from NUL bytes in every other position (ASCII-heavy text)."""
    sample = data[:4096]
    if len(sample) < 4 or sample.count(0) < len(sample) // 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


# ----------------------------------------------------------------------------- reading


def read_csv(
    path: str | os.PathLike[str],
    *,
    delimiter: str | None = None,
    header: bool | None = None,
    known_columns: Iterable[str] | None = None,
    undo_formula_escape: bool = True,
    engine: Literal["auto", "careful"] = "auto",
) -> CsvRead:
    """Read any Export-Csv style file into ``(DataFrame of str, bad rows)``.

    ``delimiter`` None = detect; ``header`` None = detect (the first row is a header unless
    ``known_columns`` is given and none of its cells is a known column, or, without
    ``known_columns``, a cell looks like data: an address, a GUID or a number). Headerless
    files get columns ``H1..Hn``. ``engine="auto"`` parses clean files with pyarrow's C++
    reader and everything else with the careful row-by-row parser; ``"careful"`` forces the
    latter (both give the same frame on a clean file). ``undo_formula_escape`` strips the ``'`` that
    :func:`write_csv` puts before ``= + - @``, so our own files read back unchanged.
    """
    settled = False
    if engine == "auto":
        fast, settled = _fast_from_file(Path(path), delimiter, header, known_columns, undo_formula_escape)
        if fast is not None:
            return fast
    data = Path(path).read_bytes()
    text, encoding, notes = decode_bytes(data)
    del data
    return read_csv_text(
        text,
        delimiter=delimiter,
        header=header,
        known_columns=known_columns,
        undo_formula_escape=undo_formula_escape,
        engine="careful" if settled else engine,
        _encoding=encoding,
        _notes=notes,
    )


#: Bytes per read while a file is checked and parsed without being held whole in memory.
_STREAM_BLOCK = 1 << 24
_BLANK_LINE = re.compile(rb"\n[ \t]*\r?\n")
_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")
_LINE_END = re.compile(rb"[ \t]*\r?\n")
_SPACES = re.compile(rb"[ \t]*")


@dataclass
class _Scan:
    """What one pass over a file's records found (see _scan_records)."""

    end: int = 0  # just after the last byte that is not CR or LF
    newlines: int = 0  # LFs before ``end``
    first_blank: int = -1  # offset of the first blank line's LF, -1 if none
    blank_last: bool = False  # the last line (before ``end``) is blank but for spaces or tabs
    clean: bool = True  # valid UTF-8 without NUL
    quoted: bool = False  # a quote inside a field
    has_text: bool = False  # something other than whitespace


def _fast_from_file(
    path: Path,
    delimiter: str | None,
    header: bool | None,
    known_columns: Iterable[str] | None,
    undo_formula_escape: bool,
) -> tuple[CsvRead | None, bool]:
    """The fast parser streaming a UTF-8 file, never holding it whole; ``(None, settled)`` when it cannot.

    Decoding a 200 MB file to str and encoding it back for pyarrow holds several copies of it at
    once (a str with one non-ASCII character takes two or four bytes per character). A file that
    is valid UTF-8 without NULs reads the same either way, so it is checked in blocks, then parsed
    by pyarrow from the file. ``settled`` is True when the file was such a file and the fast
    parser still declined: the text route would decline too, and goes straight to the careful parser.
    """
    with path.open("rb") as handle:
        head_bytes = handle.read(len(codecs.BOM_UTF8) + (1 << 20))
        body, encoding = 0, "utf-8"
        if head_bytes.startswith(codecs.BOM_UTF8):
            body, encoding = len(codecs.BOM_UTF8), "utf-8 (BOM)"
        elif any(head_bytes.startswith(bom) for bom, _ in _BOMS) or _utf16_without_bom(head_bytes) is not None:
            return None, False
        if head_bytes.startswith(codecs.BOM_UTF8, body):
            return None, False
        window = head_bytes[body:].decode("utf-8", errors="ignore")
        head = list(itertools.islice(io.StringIO(window, newline=""), _SNIFF_LINES + 3))
        if len(head_bytes) - body >= 1 << 20 and head:
            head = head[:-1]  # the last line read from the 1 MiB window may be cut off
        pos, type_line, delimiter = _preamble(head, delimiter)
        start = body + sum(len(x.encode("utf-8")) for x in head[:pos])
        preamble = head_bytes[body:start]
        if preamble.find(b"\x00") >= 0 or not _is_utf8(preamble):
            return None, False
        scan = _scan_records(handle, start, delimiter)
        if not scan.clean:
            return None, False
        if (len(delimiter) != 1 or delimiter == '"' or not scan.has_text or 0 <= scan.first_blank < scan.end
                or scan.blank_last):
            return None, True  # a blank line: the careful parser skips and counts it
        if scan.quoted:
            return None, True  # a quote inside a field: the careful parser reports it
        line_end = head_bytes.find(b"\n", start)
        first_line = head_bytes[start : line_end if line_end >= 0 else scan.end]
        if line_end < 0 and scan.end > len(head_bytes):
            return None, True  # a first line longer than the window: let the careful parser read it
        known = {c.lower() for c in known_columns} if known_columns is not None else None
        notes: list[str] = []
        handle.seek(start)
        fast = _arrow_frame(_Region(handle, scan.end - start), scan.newlines + 1, first_line, pos, delimiter,
                            header, known, notes)
    if fast is None:
        return None, True
    return _fast_result(fast, undo_formula_escape, encoding, delimiter, type_line, notes), True


def _scan_records(handle: io.BufferedReader, start: int, delimiter: str) -> _Scan:
    """One pass over the file from ``start`` in blocks cut after a line break: what _fast_frame checks."""
    scan = _Scan(end=start)
    quote = _quote_in_field(delimiter) if len(delimiter) == 1 and delimiter != '"' else None
    handle.seek(start)
    offset, carry, newlines = start, b"", 0
    while True:
        block = handle.read(_STREAM_BLOCK)
        data = carry + block
        cut = data.rfind(b"\n") + 1 if block else len(data)
        if cut:  # data[:cut]: whole lines (the rest waits for the next block)
            view = memoryview(data)[:cut]
            if data.find(b"\x00", 0, cut) >= 0 or not _is_utf8(view):
                scan.clean = False
                return scan
            scan.quoted = scan.quoted or bool(quote and _re2_search(view, quote))
            scan.has_text = scan.has_text or _NOT_SPACE.search(data, 0, cut) is not None
            if scan.first_blank < 0:
                # a blank line may start with the LF that ended the previous block's lines
                if offset > start and _LINE_END.match(data, 0, cut):
                    scan.first_blank = offset - 1
                else:
                    at = _re2_find(view, _BLANK_LINE.pattern.decode())
                    scan.first_blank = offset + at if at >= 0 else -1
            last = cut
            while last and data[last - 1] in b"\r\n":
                last -= 1
            count = data.count(b"\n", 0, cut)
            if last:
                scan.end = offset + last
                scan.newlines = newlines + count - data.count(b"\n", last, cut)
                # the last line only spaces or tabs: once the line break after it is counted, a blank line
                line = data.rfind(b"\n", 0, last) + 1
                scan.blank_last = (line > 0 or offset > start) and _SPACES.fullmatch(data, line, last) is not None
            newlines += count
            offset += cut
            del view
        carry = data[cut:]
        if not block:
            return scan


class _Region(io.RawIOBase):
    """``length`` bytes of ``handle`` from its current position, then one LF, as a file for pyarrow
    (the records as _fast_frame parses them: trailing blank lines dropped, one line break after)."""

    def __init__(self, handle: io.BufferedReader, length: int) -> None:
        super().__init__()
        self._handle = handle
        self._left = length
        self._tail = b"\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):  # full reads: pyarrow takes a short one for the end of the data
            if self._left > 0:
                got = self._handle.readinto(view[filled : filled + min(len(view) - filled, self._left)])
                self._left = self._left - got if got else 0
                filled += got
            elif self._tail:
                view[filled : filled + 1] = self._tail
                self._tail = b""
                filled += 1
            else:
                break
        return filled


def _is_utf8(data: bytes | memoryview) -> bool:
    """True if the bytes are valid UTF-8 (Arrow's validation over a zero-copy view: no decoded copy)."""
    try:
        _blob(data).cast(pa.large_string())
    except (pa.ArrowInvalid, UnicodeError):
        return False
    return True


def read_csv_text(
    text: str,
    *,
    delimiter: str | None = None,
    header: bool | None = None,
    known_columns: Iterable[str] | None = None,
    undo_formula_escape: bool = True,
    engine: Literal["auto", "careful"] = "auto",
    _encoding: str = "text",
    _notes: list[str] | None = None,
) -> CsvRead:
    """Like :func:`read_csv` for text already decoded."""
    notes = list(_notes or [])
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        text = _remove_nuls(text, notes)
    head = list(itertools.islice(io.StringIO(text[: 1 << 20], newline=""), _SNIFF_LINES + 3))
    if len(text) > 1 << 20 and head:
        head = head[:-1]  # the last line read from the 1 MiB window may be cut off
    pos, type_line, delimiter = _preamble(head, delimiter)
    known = {c.lower() for c in known_columns} if known_columns is not None else None
    fast = None
    if engine == "auto":
        raw = text[sum(len(x) for x in head[:pos]) :].rstrip("\r\n").encode("utf-8") + b"\n"
        fast = _fast_frame(raw, pos, delimiter, header, known, notes)
        del raw
    if fast is not None:
        return _fast_result(fast, undo_formula_escape, _encoding, delimiter, type_line, notes)
    lines = io.StringIO(text, newline="").readlines()
    return _careful(lines, pos, type_line, delimiter, header, known, undo_formula_escape, _encoding, notes)


def _preamble(head: list[str], delimiter: str | None) -> tuple[int, str | None, str]:
    """Skip leading blank lines, a #TYPE line and an Excel sep= line; decide the delimiter."""
    lines = head
    pos = 0
    while pos < len(lines) and not lines[pos].strip():
        pos += 1
    type_line = None
    if pos < len(lines) and lines[pos].startswith("#TYPE"):
        type_line = lines[pos].strip()
        pos += 1
    sep_hint = re.fullmatch(r'"?sep=(.)"?\s*', lines[pos]) if pos < len(lines) else None
    if sep_hint:
        delimiter = delimiter or sep_hint.group(1)
        pos += 1
    if delimiter is None:
        delimiter = _detect_delimiter(lines[pos : pos + _SNIFF_LINES])
    return pos, type_line, delimiter


def _fast_result(
    fast: pd.DataFrame, undo_formula_escape: bool, encoding: str, delimiter: str, type_line: str | None,
    notes: list[str],
) -> CsvRead:
    _finish(fast, undo_formula_escape)
    _attach(fast, encoding=encoding, delimiter=delimiter, type_line=type_line,
            has_header=bool(fast.attrs.pop("_has_header")), notes=notes)
    fast.attrs["csv_format"]["header"] = fast.attrs.pop("_header_note")
    fast.attrs["csv_format"]["parser"] = "pyarrow"
    return CsvRead(fast, [])


def _fast_frame(
    raw: bytes | memoryview, pos: int, delimiter: str, header: bool | None, known: set[str] | None, notes: list[str]
) -> pd.DataFrame | None:
    """pyarrow's C++ CSV reader for clean files; None (use the careful parser) at the first doubt.

    Clean means: no quote in the middle of a field (pyarrow would silently glue ``"x"y``), every
    row with the header's field count, and exactly one record per physical line (no blank lines,
    no newlines inside values), so line numbers are exact. Anything else goes to the careful
    parser, which reports and recovers row by row.
    """
    if len(delimiter) != 1 or delimiter == '"':
        return None
    # ``raw``: the records, without trailing blank lines, ending in one line break
    if not _NOT_SPACE.search(raw) or _BLANK_LINE.search(raw):
        return None  # a blank line: the careful parser skips and counts it
    if _re2_search(raw, _quote_in_field(delimiter)):
        return None  # a quote inside a field: the careful parser reports it
    return _arrow_frame(pa.py_buffer(raw), _count_newlines(raw), bytes(raw[: _find_newline(raw)]), pos, delimiter,
                        header, known, notes)


def _quote_in_field(delimiter: str) -> str:
    d = re.escape(delimiter)
    return rf'[^{d}"\r\n]"[^{d}"\r\n]'


def _arrow_frame(
    source: Any, physical: int, line1: bytes, pos: int, delimiter: str, header: bool | None,
    known: set[str] | None, notes: list[str],
) -> pd.DataFrame | None:
    """pyarrow's parse of records already checked clean (see _fast_frame); ``physical`` lines of them."""
    invalid: list[int] = []

    def on_invalid(row: Any) -> str:
        invalid.append(1)
        return "skip"

    try:
        first = next(csv.reader([line1.decode("utf-8")], delimiter=delimiter), [])
    except csv.Error:  # e.g. a bare CR (old Mac line ends) inside the first line
        return None
    if not first:
        return None
    names = [f"f{i}" for i in range(len(first))]
    try:
        table = pa_csv.read_csv(
            source,
            read_options=pa_csv.ReadOptions(autogenerate_column_names=True, use_threads=False, block_size=1 << 24),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, quote_char='"', double_quote=True, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=False, invalid_row_handler=on_invalid,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):
        return None
    if invalid or table.num_rows != physical or table.num_columns != len(names):
        return None
    row0 = [str(v) for v in table.slice(0, 1).to_pylist()[0].values()]
    has_header = header if header is not None else _looks_like_header(row0, known)
    if has_header:
        columns = _clean_header(row0, notes)
        table = table.slice(1)
        first_line = pos + 2
    else:
        columns = [f"H{i}" for i in range(1, len(row0) + 1)]
        first_line = pos + 1
    parts = table.columns
    del table
    frame = _compact(parts, columns).to_pandas()
    for col in frame.columns:
        if not isinstance(frame[col].dtype, pd.StringDtype):
            frame[col] = frame[col].astype("str")
    frame.index = pd.RangeIndex(first_line, first_line + len(frame), name="line")
    frame.attrs["_has_header"] = bool(has_header)
    frame.attrs["_header_note"] = f"header on line {pos + 1}" if has_header else "no header row; columns named H1..Hn"
    out: pd.DataFrame = frame
    return out


def _compact(parts: list[pa.ChunkedArray], names: list[str]) -> pa.Table:
    """A table of ``parts`` (emptied as it goes), each column as one chunk. The parser's per-block
    buffers of all columns lie side by side; once each column is contiguous, freeing one frees
    whole allocator pages."""
    for i, column in enumerate(parts):
        if column.num_chunks > 1:
            parts[i] = pa.chunked_array([column.combine_chunks()])
            del column
            release_unused_memory()
    table = pa.Table.from_arrays(parts, names=names)
    parts.clear()
    return table


def _blob(raw: bytes | memoryview) -> pa.Array:
    """``raw`` as a one-value Arrow binary array over the same memory (no copy)."""
    offsets = pa.py_buffer(np.array([0, len(raw)], dtype=np.int64))
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(raw)])


def _re2_search(raw: bytes | memoryview, pattern: str) -> bool:
    """True if ``pattern`` occurs in ``raw``: RE2 through pyarrow over a zero-copy view (linear time)."""
    return bool(pc.match_substring_regex(_blob(raw), pattern)[0].as_py())


def _re2_find(raw: bytes | memoryview, pattern: str) -> int:
    """Offset of the first match of ``pattern`` in ``raw`` (RE2, zero-copy), -1 if none."""
    return int(pc.find_substring_regex(_blob(raw), pattern)[0].as_py())


def _count_newlines(raw: bytes | memoryview) -> int:
    return int(pc.count_substring(_blob(raw), b"\n")[0].as_py())


def _find_newline(raw: bytes | memoryview) -> int:
    return int(pc.find_substring(_blob(raw), b"\n")[0].as_py())


def _finish(frame: pd.DataFrame, undo_formula_escape: bool) -> None:
    if undo_formula_escape and len(frame):
        for col in frame.columns:
            s = frame[col]
            if s.str.startswith("'").any():
                frame[col] = s.str.replace(r"^'(?=[=+\-@\t\r])", "", regex=True)


def _careful(
    lines: list[str],
    pos: int,
    type_line: str | None,
    delimiter: str,
    header: bool | None,
    known: set[str] | None,
    undo_formula_escape: bool,
    encoding: str,
    notes: list[str],
) -> CsvRead:
    """The csv-module parser with per-row reporting and recovery (see _parse_records)."""
    _encoding = encoding
    bad: list[BadRow] = []
    records = _parse_records(lines, pos, delimiter, bad)
    first = next(records, None)
    if first is None:
        frame = pd.DataFrame()
        frame.index.name = "line"
        _attach(frame, encoding=_encoding, delimiter=delimiter, type_line=type_line, has_header=False, notes=notes)
        return CsvRead(frame, bad)

    has_header = header if header is not None else _looks_like_header(first[0], known)
    if has_header:
        columns = _clean_header(first[0], notes)
        header_line = first[1]
        pending: list[tuple[list[str], int]] = []
    else:
        columns = [f"H{i}" for i in range(1, len(first[0]) + 1)]
        header_line = 0
        pending = [first]
    width = len(columns)

    # Rows become Arrow-backed frames chunk by chunk, so a 300,000-row file never holds all of
    # its cells as Python strings at once.
    chunks: list[pd.DataFrame] = []
    good_rows: list[list[str]] = []
    good_lines: list[int] = []
    for row, line in itertools.chain(pending, records):
        if len(row) == width:
            good_rows.append(row)
            good_lines.append(line)
            if len(good_rows) >= _CHUNK_ROWS:
                chunks.append(_chunk(good_rows, good_lines, columns))
                good_rows, good_lines = [], []
        else:
            bad.append(BadRow(line, f"{len(row)} fields where the header has {width}", _preview(row, delimiter)))
    bad.sort(key=lambda b: b.line)
    if good_rows or not chunks:
        chunks.append(_chunk(good_rows, good_lines, columns))
    frame = pd.concat(chunks) if len(chunks) > 1 else chunks[0]
    _finish(frame, undo_formula_escape)
    if header_line:
        notes_header = f"header on line {header_line}"
    else:
        notes_header = "no header row; columns named H1..Hn"
    _attach(frame, encoding=_encoding, delimiter=delimiter, type_line=type_line, has_header=bool(has_header), notes=notes)
    frame.attrs["csv_format"]["parser"] = "careful"
    frame.attrs["csv_format"]["header"] = notes_header
    return CsvRead(frame, bad)


def _chunk(rows: list[list[str]], lines: list[int], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns, dtype="str")
    frame.index = pd.Index(lines, name="line", dtype="int64")
    return frame


def _attach(
    frame: pd.DataFrame, *, encoding: str, delimiter: str, type_line: str | None, has_header: bool, notes: list[str]
) -> None:
    frame.attrs["csv_format"] = {
        "encoding": encoding,
        "delimiter": delimiter,
        "type_line": type_line,
        "has_header": has_header,
    }
    frame.attrs["csv_notes"] = list(notes)


def _remove_nuls(text: str, notes: list[str]) -> str:
    """Drop NUL characters (padding after a crash, or a mis-declared encoding) and say where."""
    lines_with_nul = [i + 1 for i, line in enumerate(text.split("\n")) if "\x00" in line]
    count = text.count("\x00")
    shown = ", ".join(str(n) for n in lines_with_nul[:10]) + (" ..." if len(lines_with_nul) > 10 else "")
    notes.append(f"removed {count} NUL character(s) on line(s) {shown}")
    return text.replace("\x00", "")


def _detect_delimiter(sample: Sequence[str]) -> str:
    """Pick the delimiter that splits the first line into the most fields, consistently.

    A candidate counts only if the most common field count over the sample's records equals
    the first line's count (so one stray ';' in a header does not win). Ties go to the
    earlier candidate in DELIMITERS; a one-column file is read with ','.
    """
    best, best_width = ",", 1
    text = "".join(sample)
    for cand in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=cand) if r]
        except csv.Error:
            continue
        if not rows:
            continue
        width = len(rows[0])
        counts: dict[int, int] = {}
        for r in rows[1:-1] or rows:  # the last sampled record may be cut off mid-record
            counts[len(r)] = counts.get(len(r), 0) + 1
        mode = max(counts.items(), key=lambda kv: kv[1])[0]
        if width > best_width and mode == width:
            best, best_width = cand, width
    return best


def _parse_records(lines: list[str], start: int, delimiter: str, bad: list[BadRow]) -> Iterator[tuple[list[str], int]]:
    """Parse records from ``lines[start:]``; yield each row with its 1-based first line number.

    A record the csv module rejects (bad quoting, end of file inside quotes) is reported and
    parsing restarts on the line after that record's first line, so the lines an unbalanced
    quote swallowed are read again as records of their own. A multi-line record with the
    wrong field count is treated the same way by the caller's width check plus this restart.
    """
    pos = start
    while pos < len(lines):
        reader = csv.reader(itertools.islice(lines, pos, None), delimiter=delimiter, strict=True)
        base = pos
        restart_at = None
        while True:
            before = reader.line_num
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                first = base + before
                last = base + reader.line_num - 1
                span = f"lines {first + 1}-{last + 1}" if last > first else f"line {first + 1}"
                bad.append(BadRow(first + 1, f"malformed CSV ({exc}) in {span}", lines[first].rstrip("\r\n")[:200]))
                restart_at = first + 1
                break
            first = base + before
            last = base + reader.line_num - 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line: Import-Csv skips these too
            if last > first and _swallowed_lines(row, delimiter):
                bad.append(
                    BadRow(
                        first + 1,
                        f"quoted field runs over lines {first + 1}-{last + 1} and holds whole rows "
                        "(unbalanced quote?); re-reading those lines",
                        lines[first].rstrip("\r\n")[:200],
                    )
                )
                restart_at = first + 1
                break
            yield row, first + 1
        if restart_at is None:
            break
        pos = restart_at


def _swallowed_lines(row: list[str], delimiter: str) -> bool:
    """True if a multi-line field itself contains several delimiter-rich lines.

    A real multi-line value (an address block, a note) has few delimiters per line; a field
    that an unbalanced quote stretched over whole records has about a record's worth on each.
    """
    for cell in row:
        if "\n" in cell or "\r" in cell:
            inner = cell.splitlines()
            if len(inner) >= 3 and sum(1 for ln in inner if ln.count(delimiter) >= max(2, len(row) - 1)) >= 2:
                return True
    return False


def _preview(row: list[str], delimiter: str) -> str:
    return delimiter.join(row)[:200]


def _looks_like_header(cells: list[str], known: set[str] | None) -> bool:
    if known is not None:
        return any(c.strip().lower() in known for c in cells)
    for cell in cells:
        c = cell.strip()
        if "@" in c or is_guid(c) or re.fullmatch(r"[-+]?\d+([.,]\d+)?", c):
            return False
    return True


def _clean_header(cells: list[str], notes: list[str]) -> list[str]:
    """Trim names, name empty ones H<position> (as Import-Csv does), suffix duplicates _2, _3."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(cells, start=1):
        name = raw.strip().lstrip("\ufeff")
        if not name:
            name = f"H{i}"
            notes.append(f"header column {i} has no name; named it {name}")
        key = name.lower()
        if key in seen:
            seen[key] += 1
            new = f"{name}_{seen[key]}"
            notes.append(f"header name {name!r} appears more than once; column {i} renamed {new!r}")
            name = new
            seen[new.lower()] = 1
        else:
            seen[key] = 1
        out.append(name)
    return out


# ----------------------------------------------------------------------------- multi-valued cells

SplitRule = Literal["proxy", "list", "words"]

# A proxy address starts with its type prefix: SMTP:, smtp:, X500:, X400:, SIP:, EUM:, SPO: ...
# X400 values contain ';' and X500 values contain spaces, so a separator only splits where
# the next element starts with such a prefix.
_PROXY_SPLIT = re.compile(r"[;|,\s]+(?=[A-Za-z][A-Za-z0-9]{0,15}:)")
# A cell that is simply ';'-joined: every piece prefixed, no '|', no X400 (its value holds ';'),
# spaces only inside X500 values (which hold no ':'). Such cells split on ';' alone.
_PLAIN_PIECE = r"(?:[Xx]500:[^;|:\s](?:[^;|:]*[^;|:\s])?|[A-Za-z][A-Za-z0-9]{0,15}:[^;\s|,]+)"
_PLAIN_PROXIES = rf"(?:{_PLAIN_PIECE};)*{_PLAIN_PIECE};?"
_SPLIT = {"list": re.compile(r"\s*[;|]\s*"), "words": re.compile(r"[;|\s]+")}
_DOTNET_TYPE = re.compile(r"^(System|Microsoft)\.[\w.`\[\], ]+$")


def split_multi(series: pd.Series, rule: SplitRule = "list", *, shared: Mapping[str, str] | None = None) -> pd.Series:
    """Split multi-valued cells into tuples of str (empty cell -> empty tuple; NA stays NA).

    Rules: ``proxy`` for proxy addresses joined by ``;``, ``|``, ``,`` or whitespace (X400
    values keep their ``;``, X500 values their spaces); ``list`` splits on ``;`` or ``|``
    (values may contain spaces, e.g. ExtensionCustomAttribute); ``words`` also on whitespace.
    ``shared`` (proxy rule): str objects to use for equal values instead of new ones.
    """
    if rule == "proxy":
        return _split_proxies(series, shared or {})
    na = series.isna().to_numpy()
    filled = series.where(~na, "").astype("str").str.strip()
    empty: tuple[str, ...] = ()
    values: list[tuple[str, ...] | None] = [empty] * len(series)
    todo = np.flatnonzero((filled != "").to_numpy())
    if len(todo):
        cells = filled.iloc[todo]
        pattern = _SPLIT[rule]
        single = ~cells.str.contains(pattern, regex=True).to_numpy()
        for i, cell in zip(todo[single], cells[single], strict=True):
            values[i] = (cell,)
        multi = todo[~single]
        for i, ps in zip(multi, cells[~single].str.split(pattern, regex=True), strict=True):
            values[i] = tuple(p for p in ps if p)
    for i in np.flatnonzero(na):
        values[i] = None
    return pd.Series(values, index=series.index, dtype="object", name=series.name)


#: Rows split at a time: the trimmed and filtered copies of a 300,000-row column would otherwise all
#: be alive while its tuples are made.
_SPLIT_ROWS = 1 << 15


def _split_proxies(series: pd.Series, shared: Mapping[str, str]) -> pd.Series:
    """split_multi's proxy rule, _SPLIT_ROWS at a time."""
    arr = pa.array(series.astype("str").array)
    empty: tuple[str, ...] = ()
    values: list[tuple[str, ...] | None] = []
    for start in range(0, len(arr), _SPLIT_ROWS):
        part = arr.slice(start, _SPLIT_ROWS)
        chunk = part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part
        out: list[tuple[str, ...] | None] = [empty] * len(chunk)
        cells = pc.utf8_trim_whitespace(chunk.fill_null(""))
        filled = np.asarray(pc.not_equal(cells, "").to_numpy(zero_copy_only=False), dtype=bool)
        todo = np.flatnonzero(filled)
        if len(todo):
            cells = cells.filter(pa.array(filled))
            # plain "type:addr;type:addr" cells (no spaces, '|', ',' or unprefixed pieces) split on ';'
            plain = _fullmatch_arrow(cells, _PLAIN_PROXIES)
            for i, parts in zip(todo[plain], _split_plain(cells.filter(pa.array(plain)), shared), strict=True):
                out[i] = parts
            rest = ~plain
            for i, cell in zip(todo[rest], cells.filter(pa.array(rest)).to_pylist(), strict=True):
                pieces = (_trim_proxy(p) for p in _PROXY_SPLIT.split(cell))
                out[i] = tuple(shared.get(t, t) for t in pieces if t)
        for i in np.flatnonzero(np.asarray(chunk.is_null().to_numpy(zero_copy_only=False), dtype=bool)):
            out[i] = None
        values.extend(out)
    return pd.Series(values, index=series.index, dtype="object", name=series.name)


def _split_plain(cells: pa.Array, shared: Mapping[str, str]) -> Iterator[tuple[str, ...]]:
    """Cells split on ';' without empty pieces, in order; by Arrow, so that the pieces are the only
    Python objects made (a list per cell, as ``str.split`` makes, would be garbage to collect)."""
    pieces = pc.split_pattern(cells, ";")
    offsets = pieces.offsets.to_pylist()
    flat = pieces.values.to_pylist()
    if shared:
        flat = [shared.get(p, p) for p in flat]
    for a, b in zip(offsets, offsets[1:], strict=False):
        t = tuple(flat[a:b])
        yield tuple(filter(None, t)) if "" in t else t


def _fullmatch_arrow(cells: pa.Array, pattern: str) -> np.ndarray:
    """Vectorised full regex match in pyarrow (RE2); pandas' own falls back to Python per cell."""
    hit = pc.match_substring_regex(cells, f"^(?:{pattern})$")
    return np.asarray(hit.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _trim_proxy(value: str) -> str:
    """Strip separators; an X400 address keeps Exchange's canonical trailing ';' (the split may eat it)."""
    value = value.strip(" \t\r\n|,")
    if value[:5].lower() == "x400:":
        return value.rstrip("; ") + ";"
    return value.rstrip(";").strip()


def is_dotnet_type_name(series: pd.Series) -> pd.Series:
    """Cells that hold a .NET type name instead of values (a collection exported without -join)."""
    return series.fillna("").astype("str").str.match(_DOTNET_TYPE)


# ----------------------------------------------------------------------------- writing


def format_cell(value: Any) -> str:
    """One cell as text: '' for a missing value (None, NaN, pandas' NA and NaT), True/False, ISO 8601 UTC
    for datetimes, ';' for lists."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""  # pandas' NA would otherwise print as the text "<NA>"
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, np.datetime64 | np.timedelta64) and np.isnat(value):
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            utc: datetime = value.astimezone(UTC).replace(tzinfo=None)
            return utc.isoformat() + "Z"
        return str(value.isoformat())
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return ";".join(format_cell(v) for v in items)
    if isinstance(value, Mapping):
        return json.dumps(value, default=str, sort_keys=True, ensure_ascii=False)
    return str(value)


#: C0/C1 control characters but tab, LF and CR: never part of an Exchange value, and raw in a CSV they
#: drive a terminal the file is printed to (ESC sequences: clear screen, OSC 8 links, OSC 52 clipboard).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _escape_formula(text: str) -> str:
    text = _CONTROL_CHARS.sub("\ufffd", text)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _rows_and_columns(
    rows: pd.DataFrame | Iterable[Mapping[str, Any]], columns: Sequence[str] | None
) -> tuple[list[str], Iterable[Sequence[Any]]]:
    if isinstance(rows, pd.DataFrame):
        cols = list(columns) if columns is not None else [str(c) for c in rows.columns]
        return cols, rows[cols].itertuples(index=False, name=None)
    materialised = list(rows)
    if columns is None:
        seen: dict[str, None] = {}
        for r in materialised:
            for k in r:
                seen.setdefault(k, None)
        cols = list(seen)
    else:
        cols = list(columns)
    return cols, ([r.get(c) for c in cols] for r in materialised)


def to_csv_text(
    rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    escape_formulas: bool = True,
) -> str:
    """Render rows (a DataFrame or dicts) as CSV text: all fields quoted, CRLF, no BOM."""
    cols, values = _rows_and_columns(rows, columns)
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(cols)
    for row in values:
        cells = [format_cell(v) for v in row]
        writer.writerow([_escape_formula(c) for c in cells] if escape_formulas else cells)
    return buf.getvalue()


def write_csv(
    rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    *,
    escape_formulas: bool = True,
) -> Path:
    """Write rows as a CSV for Excel (UTF-8 BOM, formula-escaped), atomically; returns the path."""
    text = to_csv_text(rows, columns, escape_formulas=escape_formulas)
    return write_text_atomic(path, "\ufeff" + text)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write text to a temp file next to ``path``, fsync it, then rename it over ``path`` (mode 0600)."""
    return write_atomic(path, text.encode(encoding))
