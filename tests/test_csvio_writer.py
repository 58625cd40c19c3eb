"""write_csv: Excel-safe (BOM, formula cells escaped), atomic, and read back unchanged."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from exocm.core.csvio import read_csv, write_csv


def test_written_file_has_bom_crlf_all_fields_quoted_and_formulas_escaped(tmp_path: Path):
    p = write_csv(
        [{"A": "=cmd|' /C calc'!A0", "B": "+1", "C": "-2", "D": "@SUM(1)", "E": "\tx", "F": "safe"}], tmp_path / "o.csv"
    )
    raw = p.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw[3:].decode("utf-8")
    assert text.splitlines()[0] == '"A","B","C","D","E","F"'
    assert "\r\n" in text
    assert text.splitlines()[1] == "\"'=cmd|' /C calc'!A0\",\"'+1\",\"'-2\",\"'@SUM(1)\",\"'\tx\",\"safe\""


def test_values_are_formatted_the_way_powershell_admins_expect(tmp_path: Path):
    frame = pd.DataFrame(
        {
            "flag": [True, False],
            "when": [datetime(2024, 5, 1, 12, 0, tzinfo=UTC), None],
            "multi": [("SMTP:a@x", "smtp:b@x"), ()],
            "none": [None, float("nan")],
            "ev": [{"k": 1}, {}],
        }
    )
    p = write_csv(frame, tmp_path / "v.csv")
    rows, bad = read_csv(p)
    assert bad == []
    assert rows.iloc[0].tolist() == ["True", "2024-05-01T12:00:00Z", "SMTP:a@x;smtp:b@x", "", '{"k": 1}']
    assert rows.iloc[1].tolist() == ["False", "", "", "", "{}"]


def test_round_trip_through_our_reader_is_exact(tmp_path: Path):
    values = ["=1+1", "-5", "@x", "plain", "has, comma", 'has "quote"', "multi\nline", "ünï"]
    p = write_csv([{"v": v} for v in values], tmp_path / "r.csv")
    frame, bad = read_csv(p)
    assert bad == [] and list(frame["v"]) == values


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path):
    target = tmp_path / "out.csv"
    target.write_text("old", encoding="utf-8")
    write_csv([{"a": "1"}], target)
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path):
    target = tmp_path / "keep.csv"
    target.write_text("old", encoding="utf-8")

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    try:
        write_csv([{"a": Boom()}], target)
    except RuntimeError:
        pass
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(os.listdir(tmp_path)) == ["keep.csv"]
