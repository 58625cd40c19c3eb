"""Where does the mailbox live: dual mailboxes, on-prem mailboxes, ExchangeGuid, ambiguous joins.

Facts (DESIGN section 1): a dual mailbox is an on-prem mailbox (Get-Mailbox on the Exchange
server, not a RemoteMailbox) plus an EXO mailbox for the same person. A healthy hybrid pair is
an on-prem RemoteMailbox whose ExchangeGuid equals the EXO mailbox's; an empty or zero GUID
on-prem, or a different one, breaks moves and the pairing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..detect import BOTH, DetectContext, Hits, rule
from ..model import EMPTY_GUID
from ..onprem import LOCAL_MAILBOX_TYPES, REMOTE_TYPES
from ._common import join_text, line_series


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
    op_rtd = ctx.op_text("RecipientTypeDetails")
    mask = ctx.matched & op_rtd.isin(LOCAL_MAILBOX_TYPES) & ctx.exo_is_mailbox
    explanation = join_text(
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
        evidence={
            "matched_on": ctx.op_join,
            "onprem.line": line_series(ctx),
            "onprem.UserPrincipalName": ctx.op_text("UserPrincipalName"),
            "onprem.RecipientTypeDetails": op_rtd,
            "onprem.ExchangeGuid": ctx.op_text("ExchangeGuid"),
            "exo.RecipientTypeDetails": ctx.exo_text("RecipientTypeDetails"),
            "exo.ExchangeGuid": ctx.exo_text("ExchangeGuid"),
        },
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
    op_rtd = ctx.op_text("RecipientTypeDetails")
    mask = ctx.matched & op_rtd.isin(LOCAL_MAILBOX_TYPES) & ~ctx.exo_is_mailbox
    explanation = join_text(
        "Mailbox is on the Exchange server (on-prem ", op_rtd, ", EXO ", ctx.exo_text("RecipientTypeDetails"),
        "); move it to EXO before a flip",
    )
    return ctx.hits(
        mask,
        explanation,
        evidence={
            "matched_on": ctx.op_join,
            "onprem.line": line_series(ctx),
            "onprem.RecipientTypeDetails": op_rtd,
            "exo.RecipientTypeDetails": ctx.exo_text("RecipientTypeDetails"),
        },
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
        return ctx.hits(pd.Series(False, index=ctx.inventory.index), "")
    op_rtd = ctx.op_text("RecipientTypeDetails")
    op_guid = ctx.op_text("ExchangeGuid").fillna("").str.lower().str.strip("{}")
    exo_guid = ctx.exo_text("ExchangeGuid").str.lower().str.strip("{}")
    empty = (op_guid == "") | (op_guid == EMPTY_GUID)
    pair = ctx.matched & op_rtd.isin(REMOTE_TYPES) & ctx.exo_is_mailbox & (exo_guid != "")
    mask = pair & (empty | (op_guid != exo_guid))
    reason = pd.Series(
        np.where(empty, "is empty on-prem", "differs between on-prem and EXO"), index=ctx.inventory.index, dtype="str"
    )
    explanation = join_text(
        "ExchangeGuid of ", op_rtd, " ", reason, "; set the on-prem RemoteMailbox to the EXO mailbox's GUID"
    )
    return ctx.hits(
        mask,
        explanation,
        evidence={
            "matched_on": ctx.op_join,
            "onprem.line": line_series(ctx),
            "onprem.ExchangeGuid": ctx.op_text("ExchangeGuid"),
            "exo.ExchangeGuid": ctx.exo_text("ExchangeGuid"),
        },
    )


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
                "onprem.line": _plain(line),
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


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v
