"""Every Export-Csv / Excel format variant of the on-prem export parses to the same records."""
from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from exocm.core.inventory.onprem import load_onprem_csv
from exocm.core.model import ONPREM_COLUMNS

CORPUS = Path(__file__).parent / "data" / "onprem_csv"
FILES = sorted(CORPUS.glob("*.csv"))


def _corpus_module():
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _expected() -> pd.DataFrame:
    mod = _corpus_module()
    rows = []
    for rec in mod.RECORDS:
        row = {}
        for col in ONPREM_COLUMNS:
            v = rec.get(col, "")
            if col == "WhenChanged":
                v = pd.Timestamp(datetime(*rec["WhenChanged"], tzinfo=UTC))
            elif col == "WhenCreated" and col not in rec:
                v = pd.NaT  # exports made before the column existed: unknown, never ''
            elif col in mod.MULTI:
                v = tuple(v or ())
            elif col in ("ExchangeGuid", "ArchiveGuid", "ExternalDirectoryObjectId"):
                v = v.lower()
            row[col] = v
        rows.append(row)
    return pd.DataFrame(rows, columns=list(ONPREM_COLUMNS))


def test_corpus_covers_every_variant_the_issue_names():
    names = {p.name for p in FILES}
    assert len(FILES) >= 11
    for must in ("type-line-utf8bom.csv", "ps7-utf8-nobom-lf.csv", "utf16le-bom.csv", "utf16be-bom.csv",
                 "semicolon-de-DE.csv", "asneeded-en-US-space.csv", "ansi-cp1252.csv", "nul-padding.csv"):
        assert must in names


def test_corpus_files_are_what_make_corpus_writes():
    mod = _corpus_module()
    for name, data in mod.VARIANTS.items():
        assert (CORPUS / name).read_bytes() == data, name


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_variant_parses_to_the_same_records(path: Path):
    data = load_onprem_csv(path)
    assert data.bad_rows == []
    got = data.frame.reset_index(drop=True)
    want = _expected()
    assert list(got.columns) == list(ONPREM_COLUMNS)
    assert len(got) == len(want) == 4
    for col in ONPREM_COLUMNS:
        if col == "WhenChanged":
            assert list(got[col]) == list(want[col]), col
        else:
            assert [v for v in got[col]] == [v for v in want[col]], col


def test_variant_specific_repairs_are_reported_not_silent():
    notes = {p.name: load_onprem_csv(p).notes for p in FILES}
    assert any("cp1252" in n for n in notes["ansi-cp1252.csv"])
    assert any("NUL" in n for n in notes["nul-padding.csv"])
    assert any("de-DE" in n for n in notes["semicolon-de-DE.csv"])
    assert any("en-US" in n for n in notes["asneeded-en-US-space.csv"])
    assert notes["script-ps51.csv"] == []


def test_quoted_commas_newlines_and_quotes_survive():
    frame = load_onprem_csv(CORPUS / "utf16le-bom.csv").frame.reset_index(drop=True)
    assert frame.loc[0, "CustomAttribute1"] == "Sales, EMEA"
    assert frame.loc[0, "CustomAttribute2"] == 'Jürgen\'s "team"'
    assert frame.loc[1, "CustomAttribute5"] == "line one\nline two"
    # X400 keeps its ';' and X500 its spaces whichever way the list was joined
    for name in ("semicolon-de-DE.csv", "asneeded-en-US-space.csv", "script-ps51.csv"):
        proxies = load_onprem_csv(CORPUS / name).frame.iloc[0]["EmailAddresses"]
        assert "X400:c=US;a= ;p=Contoso;o=Exchange;s=Mueller;g=Jens;" in proxies
        assert any(p.startswith("X500:/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)") for p in proxies)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_fast_and_careful_parsers_agree(path: Path):
    from exocm.core.csvio import read_csv

    fast, bad_fast = read_csv(path)
    careful, bad_careful = read_csv(path, engine="careful")
    assert bad_fast == bad_careful
    pd.testing.assert_frame_equal(fast, careful)
    assert careful.attrs["csv_format"].pop("parser") == "careful"
    fast.attrs["csv_format"].pop("parser")
    assert fast.attrs == careful.attrs


def test_fast_and_careful_parsers_agree_on_a_sandbox_export(tmp_path: Path):
    from exocm.core.csvio import read_csv
    from exocm.sandbox.generator import generate_tenant
    from exocm.sandbox.onprem_export import write_onprem_csv

    path = tmp_path / "onprem.csv"
    write_onprem_csv(generate_tenant(1000, 3), path, variant="default")
    fast, _ = read_csv(path)
    careful, _ = read_csv(path, engine="careful")
    pd.testing.assert_frame_equal(fast, careful)
    assert fast.attrs["csv_format"]["parser"] == "pyarrow"
    assert len(fast) > 900
