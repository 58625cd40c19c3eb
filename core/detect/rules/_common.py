"""Small vectorised helpers the rule modules share."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..engine import DetectContext


def line_series(ctx: DetectContext) -> pd.Series:
    """The on-prem source line (CSV line or record position) matched to each EXO recipient."""
    pos = ctx._op_pos
    if ctx.onprem is None:
        return pd.Series(None, index=ctx.inventory.index, dtype="object")
    labels = pd.api.extensions.take(ctx.onprem.index.to_numpy(dtype=object), pos, allow_fill=True)
    return pd.Series(labels, index=ctx.inventory.index, dtype="object")



def match_evidence(ctx: DetectContext, columns: Mapping[str, Any]) -> dict[str, Any]:
    """Evidence of a rule over matched pairs: how the pair was matched, the on-prem line, then `columns`."""
    return {"matched_on": ctx.op_join, "onprem.line": line_series(ctx), **columns}
