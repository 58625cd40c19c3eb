"""On-prem vs EXO over time: recent on-prem edits and writeback attributes that disagree.

Facts (DESIGN section 1): wait one sync cycle plus 24 h after an on-prem change before flipping,
or the last on-prem edit may be lost. The writeback attributes (CustomAttribute1-15,
ExtensionCustomAttribute1-5, EmailAddresses, PrimarySmtpAddress, recipient type) are what the
flip hands to EXO; if on-prem and EXO disagree now, a flip freezes the EXO values and the
next writeback overwrites the on-prem ones (and a flip back does the opposite).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..detect import FLIP_TO_CLOUD, SETTLE_TIME, DetectContext, Hits, rule
from ..model import CUSTOM_ATTRIBUTES, EXTENSION_CUSTOM_ATTRIBUTES
from ..onprem import REMOTE_TYPES
from ._common import join_text, line_series

#: Writeback attributes compared between on-prem and EXO (HiddenFromAddressListsEnabled is
#: not in the on-prem export, so it is not compared).
DRIFT_ATTRIBUTES: tuple[str, ...] = (
    *CUSTOM_ATTRIBUTES,
    *EXTENSION_CUSTOM_ATTRIBUTES,
    "EmailAddresses",
    "PrimarySmtpAddress",
    "RecipientTypeDetails",
)
_MULTI = frozenset({*EXTENSION_CUSTOM_ATTRIBUTES, "EmailAddresses"})
#: Proxy types EXO adds by itself and never writes back (SharePoint's SPO: address).
IGNORED_PROXY_TYPES: frozenset[str] = frozenset({"spo"})
_REMOTE_TO_EXO = {
    "RemoteUserMailbox": "UserMailbox",
    "RemoteSharedMailbox": "SharedMailbox",
    "RemoteRoomMailbox": "RoomMailbox",
    "RemoteEquipmentMailbox": "EquipmentMailbox",
}


@rule(
    "RECENT_ONPREM_CHANGE",
    "medium",
    action="wait-for-sync",
    blocks=FLIP_TO_CLOUD,
    needs_onprem=True,
    summary="Changed on-prem within one sync cycle + 24 h: a flip now may lose that edit",
)
def recent_onprem_change(ctx: DetectContext) -> Hits:
    """Dir-synced EXO mailbox of a flip type whose on-prem row changed at or after now - (interval + 24 h)."""
    if not ctx.has_onprem_column("WhenChanged"):
        return ctx.hits(pd.Series(False, index=ctx.inventory.index), "")
    wait = ctx.sync_interval + SETTLE_TIME
    when = pd.to_datetime(ctx.op["WhenChanged"], utc=True)
    cutoff = pd.Timestamp(ctx.now) - wait
    flip_target = ctx.exo_flip_type & ctx.exo_bool("IsDirSynced")
    mask = ctx.matched & flip_target & when.notna() & (when >= cutoff)
    safe = when + wait
    explanation = join_text(
        "Changed on-prem at ",
        when.dt.strftime("%Y-%m-%d %H:%M UTC"),
        "; flip after ",
        safe.dt.strftime("%Y-%m-%d %H:%M UTC"),
        " (one sync cycle + 24 h)",
    )
    return ctx.hits(
        mask,
        explanation,
        evidence={
            "onprem.line": line_series(ctx),
            "onprem.WhenChanged": when,
            "safe_after": safe,
            "now": pd.Series(pd.Timestamp(ctx.now), index=ctx.inventory.index),
        },
    )


@rule(
    "ATTRIBUTE_DRIFT",
    "medium",
    action="review-attribute-drift",
    blocks=FLIP_TO_CLOUD,
    needs_onprem=True,
    summary="Writeback attributes differ between the on-prem RemoteMailbox and the EXO mailbox",
)
def attribute_drift(ctx: DetectContext) -> Hits:
    """Compare DRIFT_ATTRIBUTES for RemoteMailbox <-> EXO mailbox pairs; evidence shows both values.

    Only mailboxes whose on-prem side is still the source of authority (not cloud-managed):
    for a cloud-managed mailbox EXO is the source and on-prem lags by design; what a flip
    back would overwrite is listed by the undo plan instead.
    """
    op_rtd = ctx.op_text("RecipientTypeDetails")
    pair = (
        ctx.matched & op_rtd.isin(REMOTE_TYPES) & ctx.exo_is_mailbox & ~ctx.exo_bool("IsExchangeCloudManaged")
    ).to_numpy()
    diffs: dict[str, np.ndarray] = {}
    for attr in DRIFT_ATTRIBUTES:
        if not ctx.has_onprem_column(attr) or attr not in ctx.inventory.columns:
            continue
        op = ctx.op[attr]
        known = op.notna().to_numpy() & pair
        if not known.any():
            continue
        exo = ctx.inventory[attr]
        if attr in _MULTI:
            d = _multi_differs(op, exo, known, proxies=attr == "EmailAddresses")
        elif attr == "RecipientTypeDetails":
            d = known & (op.astype("str").map(_REMOTE_TO_EXO).fillna("").to_numpy() != ctx.exo_text(attr).to_numpy())
        else:
            a = op.fillna("").astype("str").str.strip()
            b = exo.fillna("").astype("str").str.strip()
            if attr == "PrimarySmtpAddress":
                a, b = a.str.lower(), b.str.lower()
            d = known & (a.to_numpy() != b.to_numpy())
        if d.any():
            diffs[attr] = d
    if not diffs:
        return ctx.hits(pd.Series(False, index=ctx.inventory.index), "")
    table = pd.DataFrame(diffs, index=ctx.inventory.index)
    mask = table.any(axis=1)
    rows = table[mask]
    names = [[c for c, v in zip(rows.columns, r, strict=True) if v] for r in rows.itertuples(index=False)]
    evidence: list[dict[str, Any]] = []
    for (label, _), changed in zip(rows.iterrows(), names, strict=True):
        evidence.append(
            {
                a: {"onprem": _plain(ctx.op.at[label, a]), "cloud": _plain(ctx.inventory.at[label, a])}
                for a in changed
            }
        )
    listed = pd.Series([", ".join(n) for n in names], index=rows.index, dtype="str")
    explanation = "On-prem and EXO disagree on " + listed + "; a flip keeps the EXO values"
    hits = ctx.hits(mask, explanation.reindex(ctx.inventory.index).fillna(""))
    return Hits(hits.ids, hits.explanation, pd.Series(evidence, index=rows.index, dtype="object"))


def _multi_differs(op: pd.Series, exo: pd.Series, known: np.ndarray, *, proxies: bool) -> np.ndarray:
    """Set comparison of multi-valued cells; a cheap joined-string pass first, sets only where it differs."""
    a = _joined(op)
    b = _joined(exo)
    maybe = known & (a.to_numpy() != b.to_numpy())
    out = np.zeros(len(op), dtype=bool)
    if maybe.any():
        pos = np.flatnonzero(maybe)
        out[pos] = [
            _canon(x, proxies) != _canon(y, proxies)
            for x, y in zip(op.iloc[pos], exo.iloc[pos], strict=True)
        ]
    return out


def _joined(s: pd.Series) -> pd.Series:
    if s.dtype == object:
        return s.str.join("\x1f").fillna("").astype("str")
    return s.fillna("").astype("str")


def _canon(value: Any, proxies: bool) -> frozenset[str]:
    """Order-insensitive form; proxy addresses compare case-insensitively except the SMTP:/smtp: primary mark."""
    if value is None or (isinstance(value, float) and value != value):
        items: list[str] = []
    elif isinstance(value, str):
        items = [p.strip() for p in value.replace("|", ";").split(";") if p.strip()] if not proxies else [value]
    else:
        items = [str(v).strip() for v in value if str(v).strip()]
    if not proxies:
        return frozenset(items)
    out = set()
    for p in items:
        prefix, _, addr = p.partition(":")
        if not addr:
            prefix, addr = "smtp", prefix
        if prefix.lower() in IGNORED_PROXY_TYPES:
            continue
        if prefix.lower() == "x400":
            addr = addr.rstrip(";")
        out.add(("SMTP" if prefix == "SMTP" else prefix.lower()) + ":" + addr.lower())
    return frozenset(out)


def _plain(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [str(x) for x in v]
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return None
    return v.item() if isinstance(v, np.generic) else v
