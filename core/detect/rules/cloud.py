"""EXO-only facts: stale PreviousRecipientTypeDetails on mail users.

docs/exchange-facts.md#stale-previousrecipienttypedetails: a MailUser whose PreviousRecipientTypeDetails names a mailbox type carries
stale pointers to a former cloud mailbox; only Set-User -PermanentlyClearPreviousMailboxInfo
clears it, irreversibly, so the action is a gated runbook. "None" or empty is not a finding.
"""
from __future__ import annotations

from ...model import MAILBOX_TYPES
from ..engine import BOTH, DetectContext, Hits, rule


@rule(
    "PREVIOUS_MAILBOX_INFO",
    "high",
    action="clear-previous-mailbox-info",
    blocks=BOTH,
    summary="A MailUser still carries PreviousRecipientTypeDetails of a former cloud mailbox",
)
def previous_mailbox_info(ctx: DetectContext) -> Hits:
    """RecipientTypeDetails MailUser with PreviousRecipientTypeDetails in MAILBOX_TYPES."""
    prev = ctx.exo_text("PreviousRecipientTypeDetails")
    mask = ctx.exo_in("RecipientTypeDetails", ("MailUser",)) & ctx.exo_in("PreviousRecipientTypeDetails", MAILBOX_TYPES)
    explanation = (
        "MailUser keeps PreviousRecipientTypeDetails ",
        prev,
        " of a former cloud mailbox; clear it (irreversible) before re-licensing",
    )
    return ctx.hits(
        mask,
        explanation,
        evidence=["RecipientTypeDetails", "PreviousRecipientTypeDetails", "ExchangeGuid", "IsDirSynced"],
    )
