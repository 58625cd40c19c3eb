"""Small vectorised helpers the rule modules share."""
from __future__ import annotations

import pandas as pd

from ..engine import DetectContext


def line_series(ctx: DetectContext) -> pd.Series:
    """The on-prem source line (CSV line or record position) matched to each EXO recipient."""
    pos = ctx._op_pos
    if ctx.onprem is None:
        return pd.Series(None, index=ctx.inventory.index, dtype="object")
    labels = pd.api.extensions.take(ctx.onprem.index.to_numpy(dtype=object), pos, allow_fill=True)
    return pd.Series(labels, index=ctx.inventory.index, dtype="object")

