"""Flip readiness per recipient: ``ready``, ``blocked`` (with reasons) or ``already``.

This is where plans get their skip reasons. The type and state checks come straight from the
inventory (so readiness is right even when detection ran only some rules); everything else
comes from findings whose rule blocks the requested direction (``Rule.blocks``).

Precedence: a recipient the flip does not apply to (not a user/shared/room/equipment mailbox,
or not dir-synced) is ``blocked`` with that reason; one already in the target state is
``already`` (nothing to do, whatever else is true); otherwise any blocking reason makes it
``blocked``; otherwise ``ready``.
"""
from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from ..inventory.match import text_column
from ..model import FLIP_TYPES
from .engine import RULES, SEVERITY_RANK

__all__ = ["STATUSES", "flip_readiness", "readiness_counts"]

STATUSES: Final[tuple[str, ...]] = ("ready", "blocked", "already")


def _bool(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    s = frame[col]
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.fillna(False).to_numpy(dtype=bool)
    return s.astype("str").str.strip().str.lower().isin(("true", "1", "yes")).to_numpy()


def flip_readiness(inventory: pd.DataFrame, findings: pd.DataFrame, target: bool) -> pd.DataFrame:
    """Readiness of every inventory row for ``Set-Mailbox -IsExchangeCloudManaged <target>``.

    Returns a frame indexed like the inventory (ExternalDirectoryObjectId) with ``status`` in
    STATUSES and ``reasons``: a tuple of finding codes, worst severity first ('ALREADY_CLOUD_MANAGED'
    or 'ALREADY_SERVER_MANAGED' for ``already``).
    """
    ids = inventory.index.astype("str")
    rtd = text_column(inventory, "RecipientTypeDetails").str.strip()
    flip_type = rtd.isin(FLIP_TYPES).to_numpy()
    synced = _bool(inventory, "IsDirSynced")
    cloud = _bool(inventory, "IsExchangeCloudManaged")

    # Codes that block this direction, per recipient (from findings), plus the inventory's own.
    blocking = {code for code, r in RULES.items() if target in r.blocks}
    f = findings[findings["code"].isin(blocking) & (findings["ExternalDirectoryObjectId"] != "")]
    pairs = pd.DataFrame({"id": f["ExternalDirectoryObjectId"].astype("str"), "code": f["code"].astype("str")})
    own = [
        pd.DataFrame({"id": ids[~flip_type], "code": "UNSUPPORTED_TYPE"}),
        pd.DataFrame({"id": ids[flip_type & ~synced], "code": "NOT_DIRSYNCED"}),
    ]
    pairs = pd.concat([pairs, *own], ignore_index=True).drop_duplicates()
    pairs["rank"] = pairs["code"].map(lambda c: SEVERITY_RANK[RULES[c].severity] if c in RULES else 9)
    pairs = pairs.sort_values(["id", "rank", "code"], kind="stable")
    reasons = pairs.groupby("id", sort=False)["code"].agg(tuple)

    inapplicable = ~flip_type | ~synced
    already = (cloud if target else ~cloud) & ~inapplicable
    reason_col = pd.Series(reasons.reindex(ids).to_numpy(), index=inventory.index, dtype="object")
    blocked = reason_col.notna().to_numpy() & ~already
    status = np.where(already, "already", np.where(blocked, "blocked", "ready"))
    already_code = "ALREADY_CLOUD_MANAGED" if target else "ALREADY_SERVER_MANAGED"
    empty: tuple[str, ...] = ()
    reason_values = pd.Series([empty] * len(inventory), index=inventory.index, dtype="object")
    reason_values[blocked] = reason_col[blocked]
    reason_values[already] = pd.Series([(already_code,)] * int(already.sum()), dtype="object").to_numpy()
    out = pd.DataFrame(
        {"status": pd.Series(status, index=inventory.index, dtype="str"), "reasons": reason_values},
        index=inventory.index,
    )
    out.index.name = "ExternalDirectoryObjectId"
    return out


def readiness_counts(readiness: pd.DataFrame) -> dict[str, int]:
    """Counts per status (every status present, zero if none)."""
    counts = readiness["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in STATUSES}
