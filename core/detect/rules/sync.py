"""On-prem vs EXO over time: recent on-prem edits and writeback attributes that disagree.

Facts (docs/exchange-facts.md#wait-a-sync-cycle-plus-24-hours): wait one sync cycle plus 24 h after an on-prem change before flipping,
or the last on-prem edit may be lost. The writeback attributes (CustomAttribute1-15,
ExtensionCustomAttribute1-5, EmailAddresses, PrimarySmtpAddress, recipient type) are what the
flip hands to EXO; if on-prem and EXO disagree now, a flip freezes the EXO values and the
next writeback overwrites the on-prem ones (and a flip back does the opposite).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...inventory.onprem import REMOTE_TYPES
from ...memory import release_unused_memory
from ...model import CUSTOM_ATTRIBUTES, EXTENSION_CUSTOM_ATTRIBUTES
from ...values import json_value
from ..engine import FLIP_TO_CLOUD, NONE, SETTLE_TIME, DetectContext, Hits, rule
from ._common import line_at

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
_TEXT_ATTRIBUTES = frozenset({*CUSTOM_ATTRIBUTES, "PrimarySmtpAddress"})
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
        return ctx.no_hits()
    wait = ctx.sync_interval + SETTLE_TIME
    when = pd.to_datetime(ctx.op_col("WhenChanged"), utc=True)
    cutoff = pd.Timestamp(ctx.now) - wait
    flip_target = ctx.exo_flip_type & ctx.exo_bool("IsDirSynced")
    mask = flip_target & ctx.matched & when.notna() & (when >= cutoff)
    safe = when + wait
    # a numpy mask: np.asarray over a Series with the inventory's str index builds that index's hash
    # table (numpy probes __array_struct__, which pandas looks up among the labels), 30 MB kept at 300k
    rows = mask.to_numpy(dtype=bool)
    hit_when, hit_safe = when[rows], safe[rows]
    explanation = (
        "Changed on-prem at "
        + hit_when.dt.strftime("%Y-%m-%d %H:%M UTC")
        + "; flip after "
        + hit_safe.dt.strftime("%Y-%m-%d %H:%M UTC")
        + " (one sync cycle + 24 h)"
    )
    return ctx.hits(
        mask,
        explanation,
        evidence={
            "onprem.line": line_at(ctx),
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
    back would overwrite is listed by the undo plan instead. Values the on-prem export did not
    carry (a missing column, NA) are unknown and never count as a difference.
    """
    pair = (
        ctx.op_in("RecipientTypeDetails", REMOTE_TYPES) & ctx.exo_is_mailbox & ~ctx.exo_bool("IsExchangeCloudManaged")
    ).to_numpy()
    return _drift_hits(ctx, np.flatnonzero(pair), DRIFT_ATTRIBUTES,
                       lambda names: "On-prem and EXO disagree on " + ", ".join(names) + "; a flip keeps the EXO values")


@rule(
    "CLOUD_EDITS_NOT_WRITTEN_BACK",
    "medium",
    action="review-writeback",
    blocks=NONE,
    needs_onprem=True,
    needs_writeback=True,
    summary="A cloud-managed mailbox holds cloud edits that will never reach AD (no writeback for them)",
)
def cloud_edits_not_written_back(ctx: DetectContext) -> Hits:
    """Cloud-managed, dir-synced mailboxes whose EXO values differ from on-prem in attributes that
    Cloud Sync does not write back: all of them when writeback is off, else those outside its list
    (docs/exchange-facts.md#writeback-to-ad). A flip back would lose them.
    """
    writeback = ctx.writeback
    assert writeback is not None  # needs_writeback: the engine skips this rule otherwise
    attrs = tuple(a for a in DRIFT_ATTRIBUTES if not writeback.reaches_ad(a))
    pair = (
        ctx.op_in("RecipientTypeDetails", REMOTE_TYPES) & ctx.exo_is_mailbox & ctx.exo_bool("IsExchangeCloudManaged")
    ).to_numpy()
    why = "writeback to AD is off" if not writeback.configured else "outside Cloud Sync's writeback list"
    return _drift_hits(ctx, np.flatnonzero(pair), attrs,
                       lambda names: "Cloud edits of " + ", ".join(names) + f" never reach AD ({why}); "
                                     "a flip back would overwrite them")


def _drift_hits(ctx: DetectContext, pos: np.ndarray, attributes: tuple[str, ...],
                explain: Callable[[list[str]], str]) -> Hits:
    """Pairs at `pos` whose on-prem and EXO values differ in any of `attributes` (evidence: both values)."""
    if len(pos) == 0 or not attributes:
        return ctx.no_hits()
    onprem = ctx.onprem
    assert onprem is not None  # needs_onprem: the engine skips this rule without on-prem data
    diffs: dict[str, np.ndarray] = {}
    op_idx = pa.array(ctx._op_pos[pos])
    exo_idx = pa.array(pos)
    for attr in attributes:
        if not ctx.has_onprem_column(attr) or attr not in ctx.inventory.columns:
            continue
        if attr in _TEXT_ATTRIBUTES:
            d = _text_differs(onprem[attr], ctx.inventory[attr], op_idx, exo_idx, lower=attr == "PrimarySmtpAddress")
        elif attr in _MULTI:
            a = onprem[attr].to_numpy(dtype=object)[ctx._op_pos[pos]]
            b = ctx.inventory[attr].to_numpy(dtype=object)[pos]
            known = np.asarray(~pd.isna(a), dtype=bool)
            d = _multi_differs(a, b, known, proxies=attr == "EmailAddresses")
        else:  # RecipientTypeDetails: RemoteXMailbox on-prem stands for XMailbox in EXO
            op = ctx.op_col_at(attr, pos)
            known = op.notna().to_numpy()
            mapped = _map_values(op, _REMOTE_TO_EXO)
            exo = ctx.inventory[attr].iloc[pos].fillna("").astype("str").to_numpy(dtype=object)
            d = known & (mapped != exo)
        if d.any():
            diffs[attr] = d
        release_unused_memory()  # each attribute's copies, before the next one's
    if not diffs:
        return ctx.no_hits()
    attrs = list(diffs)
    matrix = np.column_stack([diffs[a] for a in attrs])
    any_diff = matrix.any(axis=1)
    hit_pos = pos[any_diff]
    labels = ctx.inventory.index[hit_pos]
    names = [[attrs[j] for j in np.flatnonzero(row)] for row in matrix[any_diff]]
    op_values = {a: ctx.op_col_at(a, hit_pos).to_numpy(dtype=object) for a in diffs}
    exo_values = {a: ctx.inventory[a].iloc[hit_pos].to_numpy(dtype=object) for a in diffs}
    evidence = [
        {a: {"onprem": json_value(op_values[a][i]), "cloud": json_value(exo_values[a][i])} for a in changed}
        for i, changed in enumerate(names)
    ]
    explanation = pd.Series(
        [explain(n) for n in names],
        index=labels,
        dtype="str",
    )
    mask = np.zeros(len(ctx.inventory), dtype=bool)
    mask[hit_pos] = True
    hits = ctx.hits(mask, explanation)
    return Hits(hits.ids, hits.explanation, pd.Series(evidence, index=labels, dtype="object"))


def _as_arrow(s: pd.Series) -> pa.Array:
    arr = pa.array(s.array) if isinstance(s.dtype, pd.StringDtype) else pa.array(s.astype("str").array)
    out: pa.Array = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return out


def _text_differs(op_col: pd.Series, exo_col: pd.Series, op_idx: pa.Array, exo_idx: pa.Array, *, lower: bool) -> np.ndarray:
    """Text attribute compare in pyarrow: on-prem NA is unknown (never a difference); None == ''."""
    a = pc.take(_as_arrow(op_col), op_idx)
    b = pc.take(_as_arrow(exo_col), exo_idx)
    known = pc.is_valid(a)
    a, b = pc.fill_null(a, ""), pc.fill_null(b, "")
    if lower:
        a, b = pc.utf8_lower(a), pc.utf8_lower(b)
    d = np.asarray(pc.and_(known, pc.not_equal(a, b)).to_numpy(zero_copy_only=False), dtype=bool)
    if d.any():  # whitespace-only differences are not drift
        idx = pa.array(np.flatnonzero(d))
        sa = pc.utf8_trim_whitespace(pc.take(a, idx))
        sb = pc.utf8_trim_whitespace(pc.take(b, idx))
        d[np.flatnonzero(d)] = np.asarray(pc.not_equal(sa, sb).to_numpy(zero_copy_only=False), dtype=bool)
    return d


def _map_values(s: pd.Series, mapping: dict[str, str]) -> np.ndarray:
    """``s.map(mapping)`` through factorize (each distinct value looked up once); '' where unmapped."""
    codes, uniques = pd.factorize(s)
    table = np.array([mapping.get(str(u), "") for u in uniques] + [""], dtype=object)
    return np.asarray(table[np.where(codes >= 0, codes, len(uniques))], dtype=object)


def _multi_differs(a: np.ndarray, b: np.ndarray, known: np.ndarray, *, proxies: bool) -> np.ndarray:
    """Set comparison of multi-valued cells: exact tuple equality first (C loop), sets only where that differs."""
    maybe = known & np.asarray(a != b, dtype=bool)  # numpy compares object elements (tuples) in C
    out = np.zeros(len(a), dtype=bool)
    if maybe.any():
        idx = np.flatnonzero(maybe)
        out[idx] = [_canon(a[i], proxies) != _canon(b[i], proxies) for i in idx]
    return out


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
