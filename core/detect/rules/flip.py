"""Facts about the flip itself: dir-sync, current state, supported types (docs/exchange-facts.md#which-mailboxes-it-applies-to).

IsExchangeCloudManaged applies to dir-synced user, shared, room and equipment mailboxes in EXO.
"""
from __future__ import annotations

from ..engine import BOTH, NONE, DetectContext, Hits, rule


@rule(
    "NOT_DIRSYNCED",
    "info",
    action="not-dirsynced",
    blocks=BOTH,
    summary="Cloud-only mailbox: there is no on-prem source of authority to move away from",
)
def not_dirsynced(ctx: DetectContext) -> Hits:
    """A mailbox of a flip type with IsDirSynced False."""
    mask = ctx.exo_flip_type & ~ctx.exo_bool("IsDirSynced")
    explanation = (ctx.exo_text("RecipientTypeDetails"), " is cloud-only (IsDirSynced False); the flip does not apply")
    return ctx.hits(mask, explanation, evidence=["RecipientTypeDetails", "IsDirSynced"])


@rule(
    "ALREADY_CLOUD_MANAGED",
    "info",
    action="already-cloud-managed",
    blocks=NONE,
    summary="Exchange attributes are already managed in EXO (IsExchangeCloudManaged True)",
)
def already_cloud_managed(ctx: DetectContext) -> Hits:
    """Dir-synced mailbox of a flip type with IsExchangeCloudManaged True."""
    mask = ctx.exo_flip_type & ctx.exo_bool("IsDirSynced") & ctx.exo_bool("IsExchangeCloudManaged")
    return ctx.hits(
        mask,
        "Exchange attributes are already cloud-managed; edit them in EXO",
        evidence=["IsExchangeCloudManaged", "IsDirSynced", "RecipientTypeDetails"],
    )


@rule(
    "UNSUPPORTED_TYPE",
    "info",
    action="unsupported-type",
    blocks=BOTH,
    summary="A mailbox type IsExchangeCloudManaged does not apply to",
)
def unsupported_type(ctx: DetectContext) -> Hits:
    """An EXO mailbox whose RecipientTypeDetails is not in FLIP_TYPES (e.g. LinkedMailbox)."""
    mask = ctx.exo_is_mailbox & ~ctx.exo_flip_type
    explanation = (
        ctx.exo_text("RecipientTypeDetails"), " is not a user, shared, room or equipment mailbox; the flip does not apply"
    )
    return ctx.hits(mask, explanation, evidence=["RecipientTypeDetails", "RecipientType"])
