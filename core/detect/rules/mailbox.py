"""Where does the mailbox live: dual mailboxes, on-prem mailboxes, ExchangeGuid, ambiguous joins.

Facts (docs/exchange-facts.md#dual-mailboxes): a dual mailbox is an on-prem mailbox (Get-Mailbox on the Exchange
server, not a RemoteMailbox) plus an EXO mailbox for the same person. A healthy hybrid pair is
an on-prem RemoteMailbox whose ExchangeGuid equals the EXO mailbox's; an empty or zero GUID
on-prem, or a different one, breaks moves and the pairing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...inventory.onprem import LOCAL_MAILBOX_TYPES, REMOTE_TYPES
from ...model import EMPTY_GUID
from ...values import json_value
from ..engine import BOTH, DetectContext, Hits, rule
from ._common import match_evidence


@rule(
    "DUAL_MAILBOX",
    "critical",
    action="dual-mailbox-keep-onprem",
    blocks=BOTH,
    needs_onprem=True,
    summary="A mailbox on the Exchange server and one in EXO for the same person",
)
def dual_mailbox(ctx: DetectContext) -> Hits:
    """On-prem local mailbox (not Remote*) matched to an EXO mailbox."""
    op_rtd = ctx.op_col("RecipientTypeDetails")
    mask = ctx.op_in("RecipientTypeDetails", LOCAL_MAILBOX_TYPES) & ctx.exo_is_mailbox
    explanation = (
        "On-prem ",
        op_rtd,
        " and EXO ",
        ctx.exo_text("RecipientTypeDetails"),
        " both exist for this person (matched on ",
        ctx.op_join,
        "); mail splits between them",
    )
    return ctx.hits(
        mask,
        explanation,
        evidence=match_evidence(ctx, {
            "onprem.UserPrincipalName": ctx.op_at("UserPrincipalName"),
            "onprem.RecipientTypeDetails": op_rtd,
            "onprem.ExchangeGuid": ctx.op_at("ExchangeGuid"),
            "exo.RecipientTypeDetails": ctx.exo_text("RecipientTypeDetails"),
            "exo.ExchangeGuid": ctx.exo_text_at("ExchangeGuid"),
        }),
    )


@rule(
    "ONPREM_MAILBOX_PRESENT",
    "info",
    action="move-mailbox-first",
    blocks=BOTH,
    needs_onprem=True,
    summary="The mailbox still lives on the Exchange server; the flip applies only to EXO mailboxes",
)
def onprem_mailbox_present(ctx: DetectContext) -> Hits:
    """On-prem local mailbox whose EXO object is not a mailbox (a mail user pointing on-prem)."""
    op_rtd = ctx.op_col("RecipientTypeDetails")
    mask = ctx.op_in("RecipientTypeDetails", LOCAL_MAILBOX_TYPES) & ~ctx.exo_is_mailbox
    explanation = (
        "Mailbox is on the Exchange server (on-prem ", op_rtd, ", EXO ", ctx.exo_text("RecipientTypeDetails"),
        "); move it to EXO before a flip",
    )
    return ctx.hits(
        mask,
        explanation,
        evidence=match_evidence(ctx, {
            "onprem.RecipientTypeDetails": op_rtd,
            "exo.RecipientTypeDetails": ctx.exo_text("RecipientTypeDetails"),
        }),
    )


@rule(
    "EXCHANGEGUID_MISMATCH",
    "high",
    action="fix-remote-exchangeguid",
    blocks=BOTH,
    needs_onprem=True,
    summary="On-prem RemoteMailbox ExchangeGuid is empty/zero or differs from the EXO mailbox's",
)
def exchangeguid_mismatch(ctx: DetectContext) -> Hits:
    """RemoteMailbox on-prem, mailbox in EXO, ExchangeGuid not equal (case-insensitive)."""
    if not ctx.has_onprem_column("ExchangeGuid"):
        return ctx.no_hits()
    pair = (ctx.op_in("RecipientTypeDetails", REMOTE_TYPES) & ctx.exo_is_mailbox).to_numpy()
    pos = np.flatnonzero(pair)
    # exact equality settles almost every pair; only the rest is normalised (case, braces, zero GUID)
    suspect = pos[_raw_differs(ctx, "ExchangeGuid", pos)]
    op_guid = _guid(ctx.op_col_at("ExchangeGuid", suspect).fillna(""))
    exo_guid = _guid(_exo_at(ctx, "ExchangeGuid", suspect))
    empty = ((op_guid == "") | (op_guid == EMPTY_GUID)).to_numpy(dtype=bool)
    bad = (exo_guid != "").to_numpy(dtype=bool) & (empty | (op_guid != exo_guid).to_numpy(dtype=bool))
    hit_pos, hit_empty = suspect[bad], empty[bad]
    labels = ctx.inventory.index[hit_pos]
    op_rtd = ctx.op_col_at("RecipientTypeDetails", hit_pos).astype("str").to_numpy(dtype=object)
    explanation = pd.Series(
        [
            f"ExchangeGuid of {rtd} " + ("is empty on-prem" if e else "differs between on-prem and EXO")
            + "; set the on-prem RemoteMailbox to the EXO mailbox's GUID"
            for rtd, e in zip(op_rtd, hit_empty, strict=True)
        ],
        index=labels,
        dtype="str",
    )
    mask = np.zeros(len(ctx.inventory), dtype=bool)
    mask[hit_pos] = True
    return ctx.hits(
        mask,
        explanation,
        evidence=match_evidence(ctx, {
            "onprem.ExchangeGuid": ctx.op_at("ExchangeGuid"),
            "exo.ExchangeGuid": ctx.inventory["ExchangeGuid"],
        }),
    )


#: Pairs compared at a time: two 300,000-row copies of a GUID column would be alive at once otherwise.
_BLOCK = 1 << 16


def _raw_differs(ctx: DetectContext, col: str, pos: np.ndarray) -> np.ndarray:
    """Mask over ``pos``: the on-prem and EXO values of ``col`` differ as they are (NA as '')."""
    parts = [np.zeros(0, dtype=bool)]
    for start in range(0, len(pos), _BLOCK):
        block = pos[start : start + _BLOCK]
        op_raw = ctx.op_col_at(col, block).fillna("")
        exo_raw = _exo_at(ctx, col, block)
        parts.append((op_raw.astype("str") != exo_raw.astype("str")).to_numpy(dtype=bool))
    return np.concatenate(parts)


def _exo_at(ctx: DetectContext, col: str, positions: np.ndarray) -> pd.Series:
    """The inventory's ``col`` at ``positions`` (RangeIndex, NA -> ''); all '' when the column is absent."""
    if col not in ctx.inventory.columns:
        return pd.Series("", index=pd.RangeIndex(len(positions)))
    return ctx.inventory[col].iloc[positions].reset_index(drop=True).fillna("")


def _guid(s: pd.Series) -> pd.Series:
    return s.astype("str").str.strip().str.lower().str.strip("{}")


@rule(
    "AMBIGUOUS_MATCH",
    "high",
    action="resolve-ambiguous-match",
    blocks=BOTH,
    needs_onprem=True,
    summary="An on-prem object could be several EXO recipients (shared address, duplicate UPN): not guessed",
)
def ambiguous_match(ctx: DetectContext) -> Hits:
    """One row per (on-prem line, candidate EXO recipient) the join refused to guess."""
    amb = ctx.match.ambiguous
    if amb.empty:
        return ctx.no_hits()
    amb = amb[amb["ExternalDirectoryObjectId"].isin(ctx.ids)]
    idx = pd.Index(amb["ExternalDirectoryObjectId"].astype("str"))
    if ctx.onprem is not None and len(amb):
        op = ctx.onprem.loc[amb["line"].to_numpy()]
        op_upn = op["UserPrincipalName"].fillna("").astype("str").to_numpy()
        op_smtp = op["PrimarySmtpAddress"].fillna("").astype("str").to_numpy()
    else:
        op_upn = op_smtp = np.array([], dtype=object)
    who = pd.Series(op_upn, dtype="str").where(pd.Series(op_upn) != "", pd.Series(op_smtp, dtype="str"))
    explanation = pd.Series(
        ("On-prem " + who + " could be this or another EXO recipient (" + amb["via"].astype("str").to_numpy() + ")")
        .to_numpy(),
        index=idx,
        dtype="str",
    )
    evidence = pd.Series(
        [
            {
                "onprem.line": json_value(line),
                "onprem.UserPrincipalName": u,
                "onprem.PrimarySmtpAddress": s,
                "candidates": list(c),
                "addresses": list(a),
                "reason": v,
            }
            for line, u, s, c, a, v in zip(
                amb["line"], op_upn, op_smtp, amb["candidates"], amb["addresses"], amb["via"], strict=True
            )
        ],
        index=idx,
        dtype="object",
    )
    return Hits(idx, explanation, evidence)
