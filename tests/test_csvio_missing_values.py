"""A missing value is an empty CSV cell, whatever form pandas gives it (never the text "<NA>")."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from exocm.core.csvio import format_cell, read_csv, to_csv_text, write_csv


def test_every_missing_marker_is_an_empty_cell() -> None:
    for missing in (None, float("nan"), np.nan, pd.NA, pd.NaT, np.datetime64("NaT"), np.timedelta64("NaT")):
        assert format_cell(missing) == "", repr(missing)
    assert format_cell(("a", pd.NA, "b")) == "a;;b"  # a missing item inside a multi-valued cell


def test_a_frame_with_nullable_columns_writes_empty_cells_not_na_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "IsExchangeCloudManaged": pd.array([True, None], dtype="boolean"),
        "Count": pd.array([3, None], dtype="Int64"),
        "Name": pd.array(["Ann", None], dtype="string"),
        "When": pd.to_datetime(["2025-01-02T03:04:05Z", None], utc=True),
    })
    assert "<NA>" not in to_csv_text(frame)
    rows, bad = read_csv(write_csv(frame, tmp_path / "n.csv"))
    assert bad == []
    assert rows.iloc[0].tolist() == ["True", "3", "Ann", "2025-01-02T03:04:05Z"]
    assert rows.iloc[1].tolist() == ["", "", "", ""]
