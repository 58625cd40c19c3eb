"""Small vectorised helpers the rule modules share."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..engine import AtRows, DetectContext


def line_at(ctx: DetectContext) -> AtRows:
    """Evidence: the on-prem source line (CSV line or record position) matched to each hit row."""

    def values(positions: np.ndarray) -> pd.Series:
        labels = np.full(len(positions), None, dtype=object)
        if ctx.onprem is not None:
            pos = ctx._op_pos[positions]
            found = pos >= 0
            labels[found] = ctx.onprem.index[pos[found]].to_numpy(dtype=object)
        return pd.Series(labels, dtype="object")

    return AtRows(values)


def match_evidence(ctx: DetectContext, columns: Mapping[str, Any]) -> dict[str, Any]:
    """Evidence of a rule over matched pairs: how the pair was matched, the on-prem line, then `columns`."""
    return {"matched_on": ctx.op_join, "onprem.line": line_at(ctx), **columns}
