"""The built-in runbooks (docs/exchange-facts.md#dual-mailboxes, issue 8):

- `dual-mailbox-keep-onprem`: keep the on-prem mailbox. Remove the Exchange license (Graph:
  direct assignment or cloud licensing group; a synced group on-prem over PSRP when allowed,
  else a manual step), wait for EXO to show a MailUser with PreviousRecipientTypeDetails
  UserMailbox, gate, `Set-User -PermanentlyClearPreviousMailboxInfo` (irreversible), wait for
  the MailUser to point at the on-prem mailbox (its ExchangeGuid), give the license back,
  verify the dual mailbox is gone.
- `dual-mailbox-keep-cloud`: keep the cloud mailbox. Gate, on-prem `Disable-Mailbox`,
  `Enable-RemoteMailbox`, the old LegacyExchangeDN as an X500 proxy (and the old addresses),
  `Set-RemoteMailbox -ExchangeGuid <EXO mailbox's>`, verify after sync.
- `clear-previous-mailbox-info`: for MailUsers whose PreviousRecipientTypeDetails is a
  mailbox type: gate, clear, verify.

Identities: every EXO and Graph call uses the object's ExternalDirectoryObjectId (the run's
key); on-prem calls use the AD object's Guid recorded at the start (the UPN only to find it).
"""
from __future__ import annotations

from typing import Any, Final

from ..bridge.errors import InvalidInput
from ..model import MAILBOX_TYPES
from . import reads
from .engine import Check, Runbook, Step, StepContext

#: Poll interval and timeout of waits for a sync (Entra Connect's default cycle is 30 min).
SYNC_POLL_S: Final = 60.0
SYNC_TIMEOUT_S: Final = 2 * 3600.0
ROUTING_SUFFIX: Final = ".mail.onmicrosoft.com"


# ----------------------------------------------------------------------------- shared checks
def _onprem_id(ctx: StepContext) -> str:
    onprem = ctx.facts.get("onprem") or {}
    return str(onprem.get("Guid") or ctx.obj.upn or ctx.obj.identity)


def _dual_mailbox(ctx: StepContext) -> Check:
    """The finding still holds: EXO dir-synced mailbox + on-prem local mailbox, different ExchangeGuids."""
    user = reads.exo_user(ctx.exo, ctx.obj.key)
    if user is None:
        return Check(False, "the object is gone from Exchange Online")
    rtd = str(user.get("RecipientTypeDetails") or "")
    if rtd not in MAILBOX_TYPES:
        return Check(False, f"EXO shows {rtd}, not a mailbox: no dual mailbox", {"exo.RecipientTypeDetails": rtd})
    if user.get("IsDirSynced") is False:
        return Check(False, "the EXO mailbox is cloud-only (IsDirSynced False): not a hybrid dual mailbox")
    local = reads.onprem_mailbox(ctx.onprem, ctx.obj.upn or ctx.obj.identity)
    if local is None:
        return Check(False, "no mailbox on the Exchange server for this user: no dual mailbox",
                     {"exo.RecipientTypeDetails": rtd})
    exo_rec = reads.exo_recipient(ctx.exo, ctx.obj.key) or {}
    observed = {"exo.RecipientTypeDetails": rtd, "exo.ExchangeGuid": reads.guid(exo_rec.get("ExchangeGuid")),
                "onprem.RecipientTypeDetails": local.get("RecipientTypeDetails"),
                "onprem.ExchangeGuid": reads.guid(local.get("ExchangeGuid"))}
    if observed["exo.ExchangeGuid"] == observed["onprem.ExchangeGuid"]:
        return Check(False, "both sides have the same ExchangeGuid: not a dual mailbox", observed)
    return Check(True, f"on-prem {local.get('RecipientTypeDetails')} and EXO {rtd} both exist", observed)


def _record_dual_state(ctx: StepContext) -> dict[str, Any]:
    """Record both mailboxes' state (kept in the run for later steps and the audit log)."""
    exo_rec = reads.exo_recipient(ctx.exo, ctx.obj.key)
    local = reads.onprem_mailbox(ctx.onprem, ctx.obj.upn or ctx.obj.identity)
    if exo_rec is None or local is None:
        raise InvalidInput("one of the two mailboxes disappeared while recording their state")
    user = reads.onprem_user(ctx.onprem, str(local.get("Guid") or ctx.obj.upn))
    ctx.facts["exo"] = {
        "RecipientTypeDetails": exo_rec.get("RecipientTypeDetails"),
        "ExchangeGuid": reads.guid(exo_rec.get("ExchangeGuid")),
        "LegacyExchangeDN": exo_rec.get("LegacyExchangeDN") or "",
        "PrimarySmtpAddress": exo_rec.get("PrimarySmtpAddress") or "",
        "EmailAddresses": reads.proxies(exo_rec),
    }
    ctx.facts["onprem"] = {
        "Guid": reads.guid(local.get("Guid")),
        "SamAccountName": (user or local).get("SamAccountName") or "",
        "Alias": local.get("Alias") or "",
        "RecipientTypeDetails": local.get("RecipientTypeDetails"),
        "ExchangeGuid": reads.guid(local.get("ExchangeGuid")),
        "LegacyExchangeDN": local.get("LegacyExchangeDN") or "",
        "PrimarySmtpAddress": local.get("PrimarySmtpAddress") or "",
        "EmailAddresses": reads.proxies(local),
    }
    return {"exo": ctx.facts["exo"], "onprem": ctx.facts["onprem"]}


def _state_recorded(*keys: str) -> Any:
    def verify(ctx: StepContext) -> Check:
        missing = [k for k in keys if not ctx.facts.get(k)]
        return Check(not missing, "recorded" if not missing else f"not recorded: {', '.join(missing)}")

    return verify


def _user_types(ctx: StepContext) -> tuple[str, str | None, dict[str, Any]] | None:
    """The object's RecipientTypeDetails, PreviousRecipientTypeDetails and both as observed; None when gone."""
    user = reads.exo_user(ctx.exo, ctx.obj.key)
    if user is None:
        return None
    rtd = str(user.get("RecipientTypeDetails") or "")
    prev = reads.previous_type(user)
    return rtd, prev, {"RecipientTypeDetails": rtd, "PreviousRecipientTypeDetails": prev or "None"}


_GONE: Final = Check(False, "the object is gone from Exchange Online")


def _cleared_user(ctx: StepContext) -> Check:
    """PreviousRecipientTypeDetails no longer names a mailbox, and the object is not a mailbox."""
    types = _user_types(ctx)
    if types is None:
        return _GONE
    rtd, prev, observed = types
    if rtd in MAILBOX_TYPES:
        return Check(False, f"EXO shows a {rtd}", observed)
    if prev in MAILBOX_TYPES:
        return Check(False, f"PreviousRecipientTypeDetails is still {prev}", observed)
    return Check(True, "PreviousRecipientTypeDetails cleared", observed)


def _has_previous_info(ctx: StepContext) -> Check:
    """A MailUser (or User) whose PreviousRecipientTypeDetails is a mailbox type."""
    types = _user_types(ctx)
    if types is None:
        return _GONE
    rtd, prev, observed = types
    if rtd not in ("MailUser", "User"):
        return Check(False, f"EXO shows {rtd}, not a MailUser", observed)
    if prev not in MAILBOX_TYPES:
        return Check(False, f"PreviousRecipientTypeDetails is {prev or 'None'}: nothing to clear", observed)
    return Check(True, f"{rtd} with PreviousRecipientTypeDetails {prev}", observed)


def _clear(ctx: StepContext) -> dict[str, Any]:
    """Set-User -PermanentlyClearPreviousMailboxInfo (IRREVERSIBLE; only after the gate)."""
    ctx.exo.invoke("Set-User", {"Identity": ctx.obj.key, "PermanentlyClearPreviousMailboxInfo": True,
                                "Confirm": False})
    return {"cmdlet": "Set-User -PermanentlyClearPreviousMailboxInfo"}


def _clear_gate_text(count: int, tenant: str) -> str:
    return (f"This permanently destroys the cloud mailbox content of {count} user(s) in tenant {tenant} "
            "(Set-User -PermanentlyClearPreviousMailboxInfo cannot be undone).")


# ----------------------------------------------------------------------------- licenses
def _sources(ctx: StepContext) -> reads.LicenseSources:
    return reads.exchange_license_sources(ctx.graph, ctx.obj.key)


def _record_licenses(ctx: StepContext) -> dict[str, Any]:
    facts = _record_dual_state(ctx)
    ctx.facts["licenses"] = _sources(ctx).to_json()
    return {**facts, "licenses": ctx.facts["licenses"]}


def _synced_groups(ctx: StepContext) -> list[dict[str, str]]:
    return list((ctx.facts.get("licenses") or {}).get("synced_groups") or [])


def _needs_manual_groups(ctx: StepContext) -> bool:
    return bool(_synced_groups(ctx)) and not ctx.services.onprem_group_changes


def _sam(ctx: StepContext) -> str:
    return str((ctx.facts.get("onprem") or {}).get("SamAccountName") or "")


def _unlicensed(ctx: StepContext) -> Check:
    """No Exchange license reaches the user from what this step removes."""
    now = _sources(ctx)
    remaining: dict[str, Any] = {"direct": now.direct, "cloud_groups": [g["name"] for g in now.cloud_groups]}
    left = bool(now.direct or now.cloud_groups)
    if ctx.services.onprem_group_changes:
        sam = _sam(ctx).lower()
        still = [g["name"] for g in _synced_groups(ctx) if sam in reads.ad_group_members(ctx.onprem, g["name"])]
        remaining["onprem_groups"] = still
        left = left or bool(still)
    return Check(not left, "no Exchange license assigned" if not left else "licenses remain", remaining)


def _remove_license(ctx: StepContext) -> dict[str, Any]:
    """Remove what is still there: direct SKUs, cloud group memberships, synced groups on-prem if allowed."""
    now = _sources(ctx)
    done: dict[str, Any] = {"removed_direct": [], "left_cloud_groups": [], "left_onprem_groups": []}
    if now.direct:
        ctx.graph.assign_license(ctx.obj.key, remove=list(now.direct))
        done["removed_direct"] = list(now.direct)
    for group in now.cloud_groups:
        ctx.graph.remove_group_member(group["id"], ctx.obj.key)
        done["left_cloud_groups"].append(group["name"])
    if ctx.services.onprem_group_changes:
        sam = _sam(ctx)
        for group in _synced_groups(ctx):
            if sam.lower() in reads.ad_group_members(ctx.onprem, group["name"]):
                # AD -Identity takes the group's name here (the sandbox's AD resolves names too).
                ctx.onprem.invoke("Remove-ADGroupMember", {"Identity": group["name"], "Members": [sam],
                                                           "Confirm": False})
                done["left_onprem_groups"].append(group["name"])
    return done


def _left_synced_groups(ctx: StepContext) -> Check:
    """Entra no longer lists the user in its synced licensing groups (the on-prem change has synced)."""
    ids = reads.graph_group_ids(ctx.graph, ctx.obj.key)
    still = [g["name"] for g in _synced_groups(ctx) if g["id"].lower() in ids]
    return Check(not still, "removed from the synced licensing groups" if not still
                 else f"still a member of {', '.join(still)} in Entra", {"member_of": still})


def _rejoined_synced_groups(ctx: StepContext) -> Check:
    ids = reads.graph_group_ids(ctx.graph, ctx.obj.key)
    missing = [g["name"] for g in _synced_groups(ctx) if g["id"].lower() not in ids]
    return Check(not missing, "back in the synced licensing groups" if not missing
                 else f"not yet a member of {', '.join(missing)} in Entra", {"missing": missing})


def _leave_instructions(ctx: StepContext) -> str:
    sam = _sam(ctx)
    names = ", ".join(g["name"] for g in _synced_groups(ctx))
    cmds = "; ".join(f"Remove-ADGroupMember -Identity '{g['name']}' -Members '{sam}' -Confirm:$false"
                     for g in _synced_groups(ctx))
    return (f"In on-prem Active Directory remove {sam} from the synced licensing group(s) {names} ({cmds}), "
            "then let Entra Connect sync (or run Start-ADSyncSyncCycle -PolicyType Delta). "
            "The step passes when Entra no longer lists the membership.")


def _rejoin_instructions(ctx: StepContext) -> str:
    sam = _sam(ctx)
    names = ", ".join(g["name"] for g in _synced_groups(ctx))
    cmds = "; ".join(f"Add-ADGroupMember -Identity '{g['name']}' -Members '{sam}'" for g in _synced_groups(ctx))
    return (f"In on-prem Active Directory add {sam} back to {names} ({cmds}), then let Entra Connect sync. "
            "The step passes when Entra lists the membership again.")


def _mail_user_with_previous(ctx: StepContext) -> Check:
    """EXO shows MailUser with PreviousRecipientTypeDetails UserMailbox (the cloud mailbox is disconnected)."""
    user = reads.exo_user(ctx.exo, ctx.obj.key)
    if user is None:
        return Check(False, "the object is gone from Exchange Online")
    rtd = str(user.get("RecipientTypeDetails") or "")
    prev = reads.previous_type(user)
    observed = {"RecipientTypeDetails": rtd, "PreviousRecipientTypeDetails": prev or "None"}
    if rtd == "MailUser" and prev in MAILBOX_TYPES:
        return Check(True, f"MailUser with PreviousRecipientTypeDetails {prev}", observed)
    return Check(False, f"EXO shows {rtd} (PreviousRecipientTypeDetails {prev or 'None'}); waiting for sync",
                 observed)


def _points_onprem(ctx: StepContext) -> Check:
    """The MailUser carries the on-prem mailbox's ExchangeGuid (sync brought it over)."""
    want = (ctx.facts.get("onprem") or {}).get("ExchangeGuid")
    rec = reads.exo_recipient(ctx.exo, ctx.obj.key)
    if rec is None:
        return Check(False, "EXO shows no mail-enabled object yet")
    rtd = str(rec.get("RecipientTypeDetails") or "")
    got = reads.guid(rec.get("ExchangeGuid"))
    observed = {"RecipientTypeDetails": rtd, "ExchangeGuid": got, "onprem.ExchangeGuid": want}
    if rtd == "MailUser" and got == want and not reads.has_previous_mailbox(rec):
        return Check(True, "MailUser points at the on-prem mailbox", observed)
    return Check(False, f"EXO shows {rtd} with ExchangeGuid {got}; waiting for the on-prem one ({want})", observed)


def _safe_to_relicense(ctx: StepContext) -> Check:
    check = _points_onprem(ctx)
    return Check(check.ok, "no stale cloud mailbox left to reconnect" if check.ok else check.detail, check.observed)


def _licensed_again(ctx: StepContext) -> Check:
    recorded = ctx.facts.get("licenses") or {}
    direct = reads.direct_skus(ctx.graph, ctx.obj.key)
    ids = reads.graph_group_ids(ctx.graph, ctx.obj.key)
    missing = [s for s in recorded.get("direct") or [] if s.lower() not in direct]
    missing += [g["name"] for g in recorded.get("cloud_groups") or [] if g["id"].lower() not in ids]
    if ctx.services.onprem_group_changes:
        sam = _sam(ctx).lower()
        missing += [g["name"] for g in _synced_groups(ctx) if sam not in reads.ad_group_members(ctx.onprem, g["name"])]
    return Check(not missing, "licenses restored" if not missing else f"not restored yet: {', '.join(missing)}",
                 {"missing": missing})


def _restore_license(ctx: StepContext) -> dict[str, Any]:
    recorded = ctx.facts.get("licenses") or {}
    direct = reads.direct_skus(ctx.graph, ctx.obj.key)
    ids = reads.graph_group_ids(ctx.graph, ctx.obj.key)
    done: dict[str, Any] = {"added_direct": [], "joined_cloud_groups": [], "joined_onprem_groups": []}
    add = [s for s in recorded.get("direct") or [] if s.lower() not in direct]
    if add:
        ctx.graph.assign_license(ctx.obj.key, add=add)
        done["added_direct"] = add
    for group in recorded.get("cloud_groups") or []:
        if group["id"].lower() not in ids:
            ctx.graph.add_group_member(group["id"], ctx.obj.key)
            done["joined_cloud_groups"].append(group["name"])
    if ctx.services.onprem_group_changes:
        sam = _sam(ctx)
        for group in _synced_groups(ctx):
            if sam.lower() not in reads.ad_group_members(ctx.onprem, group["name"]):
                ctx.onprem.invoke("Add-ADGroupMember", {"Identity": group["name"], "Members": [sam]})
                done["joined_onprem_groups"].append(group["name"])
    return done


def _dual_gone_keep_onprem(ctx: StepContext) -> Check:
    """The finding is gone: EXO is a MailUser pointing at the on-prem mailbox, on-prem keeps its mailbox."""
    check = _points_onprem(ctx)
    if not check.ok:
        return check
    local = reads.onprem_mailbox(ctx.onprem, _onprem_id(ctx))
    if local is None:
        return Check(False, "the on-prem mailbox is gone", check.observed)
    recorded = reads.LicenseSources(**(ctx.facts.get("licenses") or {}))
    if not recorded.empty and _sources(ctx).empty:
        # The license must be effective in Entra again (a synced group needs a sync), and EXO must
        # still show the MailUser afterwards: no new cloud mailbox was provisioned.
        return Check(False, "the license has not reached Entra yet (waiting for sync)", check.observed)
    return Check(True, "one mailbox left (on-prem); EXO MailUser points at it, licensed", check.observed)


def _always(ctx: StepContext) -> Check:
    return Check(True)


KEEP_ONPREM = Runbook(
    name="dual-mailbox-keep-onprem",
    title="Dual mailbox: keep the on-prem mailbox",
    description="Remove the Exchange license, wait for EXO to disconnect the cloud mailbox, clear the previous "
                "mailbox info (IRREVERSIBLE, gated), wait for the MailUser to point on-prem, license again.",
    fixes=("DUAL_MAILBOX",),
    requires=frozenset({"graph", "onprem"}),
    steps=(
        Step("check-finding", "Check the dual mailbox still exists", precondition=_dual_mailbox,
             skip_when_unmet=True),
        Step("record-state", "Record both mailboxes and the licenses", action=_record_licenses,
             verify=_state_recorded("exo", "onprem", "licenses"), writes=False),
        Step("remove-license", "Remove the Exchange license (Graph; on-prem groups over PSRP when allowed)",
             precondition=_always, action=_remove_license, verify=_unlicensed),
        Step("leave-synced-groups", "Remove the user from on-prem synced licensing groups", kind="manual",
             verify=_left_synced_groups, applies=_needs_manual_groups, instructions=_leave_instructions),
        Step("wait-mailuser", "Wait until EXO shows a MailUser with PreviousRecipientTypeDetails UserMailbox",
             kind="wait_until", verify=_mail_user_with_previous, interval_s=SYNC_POLL_S, timeout_s=SYNC_TIMEOUT_S),
        Step("confirm-clear", "Confirm: permanently destroy the cloud mailbox content", kind="gate",
             gate_text=_clear_gate_text, irreversible=True),
        Step("clear-previous-info", "Set-User -PermanentlyClearPreviousMailboxInfo",
             precondition=_has_previous_info, action=_clear, verify=_cleared_user, irreversible=True),
        Step("wait-onprem-pointer", "Wait for sync: the MailUser points at the on-prem mailbox", kind="wait_until",
             verify=_points_onprem, interval_s=SYNC_POLL_S, timeout_s=SYNC_TIMEOUT_S),
        Step("restore-license", "Give the license back", precondition=_safe_to_relicense,
             action=_restore_license, verify=_licensed_again),
        Step("rejoin-synced-groups", "Add the user back to on-prem synced licensing groups", kind="manual",
             verify=_rejoined_synced_groups, applies=_needs_manual_groups, instructions=_rejoin_instructions),
        Step("verify-fixed", "Verify the dual mailbox is gone", kind="wait_until", verify=_dual_gone_keep_onprem,
             interval_s=SYNC_POLL_S, timeout_s=SYNC_TIMEOUT_S),
    ),
)


# ----------------------------------------------------------------------------- keep the cloud mailbox
def _routing_address(ctx: StepContext) -> str:
    for source in ("onprem", "exo"):
        for proxy in (ctx.facts.get(source) or {}).get("EmailAddresses") or []:
            prefix, _, address = str(proxy).partition(":")
            if prefix.lower() == "smtp" and address.lower().endswith(ROUTING_SUFFIX):
                return address
    return ""


def _record_cloud_state(ctx: StepContext) -> dict[str, Any]:
    facts = _record_dual_state(ctx)
    routing = _routing_address(ctx)
    if not routing:
        raise InvalidInput(f"no hybrid routing address (*{ROUTING_SUFFIX}) among the user's addresses; "
                           "add one on-prem, then run again")
    ctx.facts["routing"] = routing
    return {**facts, "routing": routing}


def _disable_gate_text(count: int, tenant: str) -> str:
    return (f"This disconnects the on-prem mailbox of {count} user(s) in tenant {tenant} (Disable-Mailbox); "
            "its content is not moved to the cloud mailbox, and mail goes to Exchange Online from now on.")


def _onprem_rtd(ctx: StepContext) -> tuple[str, dict[str, Any]]:
    user = reads.onprem_user(ctx.onprem, _onprem_id(ctx))
    rtd = str((user or {}).get("RecipientTypeDetails") or "")
    return rtd, {"onprem.RecipientTypeDetails": rtd}


def _onprem_has_mailbox(ctx: StepContext) -> Check:
    rtd, observed = _onprem_rtd(ctx)
    return Check(rtd in reads.LOCAL_MAILBOX_TYPES, f"on-prem shows {rtd or 'nothing'}", observed)


def _onprem_mailbox_disabled(ctx: StepContext) -> Check:
    rtd, observed = _onprem_rtd(ctx)
    if not rtd:
        return Check(False, "the on-prem user is gone", observed)
    return Check(rtd not in reads.LOCAL_MAILBOX_TYPES, f"on-prem shows {rtd}", observed)


def _disable_mailbox(ctx: StepContext) -> dict[str, Any]:
    ctx.onprem.invoke("Disable-Mailbox", {"Identity": _onprem_id(ctx), "Confirm": False})
    return {"cmdlet": "Disable-Mailbox"}


def _onprem_plain_user(ctx: StepContext) -> Check:
    rtd, observed = _onprem_rtd(ctx)
    return Check(rtd == "User", f"on-prem shows {rtd or 'nothing'}", observed)


def _onprem_is_remote(ctx: StepContext) -> Check:
    rtd, observed = _onprem_rtd(ctx)
    return Check(rtd in reads.REMOTE_MAILBOX_TYPES, f"on-prem shows {rtd or 'nothing'}", observed)


def _enable_remote(ctx: StepContext) -> dict[str, Any]:
    onprem = ctx.facts.get("onprem") or {}
    params: dict[str, Any] = {"Identity": _onprem_id(ctx), "RemoteRoutingAddress": ctx.facts["routing"]}
    if onprem.get("Alias"):
        params["Alias"] = onprem["Alias"]
    if onprem.get("PrimarySmtpAddress"):
        params["PrimarySmtpAddress"] = onprem["PrimarySmtpAddress"]
    ctx.onprem.invoke("Enable-RemoteMailbox", params)
    return {"cmdlet": "Enable-RemoteMailbox", "RemoteRoutingAddress": ctx.facts["routing"]}


def _wanted_addresses(ctx: StepContext) -> list[str]:
    """X500:<old on-prem LegacyExchangeDN> plus the old secondary addresses (the primary is set already)."""
    onprem = ctx.facts.get("onprem") or {}
    out = [f"X500:{onprem['LegacyExchangeDN']}"] if onprem.get("LegacyExchangeDN") else []
    out += [p if not p.startswith("SMTP:") else "smtp:" + p[5:] for p in onprem.get("EmailAddresses") or []]
    return out


def _missing_addresses(ctx: StepContext) -> tuple[list[str], dict[str, Any] | None]:
    remote = reads.onprem_remote_mailbox(ctx.onprem, _onprem_id(ctx))
    if remote is None:
        return _wanted_addresses(ctx), None
    have = {p.lower() for p in reads.proxies(remote)}
    return [a for a in _wanted_addresses(ctx) if a.lower() not in have], remote


def _addresses_in_place(ctx: StepContext) -> Check:
    missing, remote = _missing_addresses(ctx)
    if remote is None:
        return Check(False, "no remote mailbox on-prem")
    return Check(not missing, "X500 and old addresses present" if not missing else f"missing {', '.join(missing)}",
                 {"missing": missing})


def _add_addresses(ctx: StepContext) -> dict[str, Any]:
    missing, _ = _missing_addresses(ctx)
    if missing:
        ctx.onprem.invoke("Set-RemoteMailbox", {"Identity": _onprem_id(ctx), "EmailAddresses": {"Add": missing}})
    return {"added": missing}


def _remote_guid_matches(ctx: StepContext) -> Check:
    remote = reads.onprem_remote_mailbox(ctx.onprem, _onprem_id(ctx))
    want = (ctx.facts.get("exo") or {}).get("ExchangeGuid")
    got = reads.guid((remote or {}).get("ExchangeGuid"))
    observed = {"onprem.ExchangeGuid": got, "exo.ExchangeGuid": want}
    return Check(remote is not None and got == want, f"on-prem ExchangeGuid {got}", observed)


def _set_guid(ctx: StepContext) -> dict[str, Any]:
    want = (ctx.facts.get("exo") or {}).get("ExchangeGuid")
    ctx.onprem.invoke("Set-RemoteMailbox", {"Identity": _onprem_id(ctx), "ExchangeGuid": want})
    return {"ExchangeGuid": want}


def _dual_gone_keep_cloud(ctx: StepContext) -> Check:
    """After sync: EXO keeps its mailbox (same ExchangeGuid) with the X500; on-prem is a matching RemoteMailbox."""
    exo = ctx.facts.get("exo") or {}
    onprem = ctx.facts.get("onprem") or {}
    rec = reads.exo_recipient(ctx.exo, ctx.obj.key)
    if rec is None:
        return Check(False, "the EXO mailbox is gone")
    rtd = str(rec.get("RecipientTypeDetails") or "")
    got = reads.guid(rec.get("ExchangeGuid"))
    x500 = f"X500:{onprem.get('LegacyExchangeDN')}" if onprem.get("LegacyExchangeDN") else ""
    observed = {"exo.RecipientTypeDetails": rtd, "exo.ExchangeGuid": got, "exo.has_x500": bool(x500) and
                reads.has_proxy(rec, x500)}
    if rtd not in MAILBOX_TYPES or got != exo.get("ExchangeGuid"):
        return Check(False, f"EXO shows {rtd} with ExchangeGuid {got}", observed)
    if x500 and not reads.has_proxy(rec, x500):
        return Check(False, "the X500 address has not synced to EXO yet", observed)
    remote = _remote_guid_matches(ctx)
    if not remote.ok:
        return Check(False, "on-prem is not a matching remote mailbox", {**observed, **(remote.observed or {})})
    return Check(True, "one mailbox left (EXO); on-prem is its remote mailbox", observed)


KEEP_CLOUD = Runbook(
    name="dual-mailbox-keep-cloud",
    title="Dual mailbox: keep the cloud mailbox",
    description="Disable the on-prem mailbox (gated), make the user a remote mailbox, keep the old LegacyExchangeDN "
                "as X500, stamp the EXO mailbox's ExchangeGuid on-prem, verify after sync.",
    fixes=("DUAL_MAILBOX",),
    requires=frozenset({"onprem"}),
    steps=(
        Step("check-finding", "Check the dual mailbox still exists", precondition=_dual_mailbox,
             skip_when_unmet=True),
        Step("record-state", "Record both mailboxes", action=_record_cloud_state,
             verify=_state_recorded("exo", "onprem", "routing"), writes=False),
        Step("confirm-disable", "Confirm: disconnect the on-prem mailbox", kind="gate", gate_text=_disable_gate_text),
        Step("disable-onprem-mailbox", "Disable-Mailbox on-prem", precondition=_onprem_has_mailbox,
             action=_disable_mailbox, verify=_onprem_mailbox_disabled),
        Step("enable-remote-mailbox", "Enable-RemoteMailbox on-prem", precondition=_onprem_plain_user,
             action=_enable_remote, verify=_onprem_is_remote),
        Step("add-x500", "Add the old LegacyExchangeDN as X500 (and the old addresses)",
             precondition=_onprem_is_remote, action=_add_addresses, verify=_addresses_in_place),
        Step("set-exchange-guid", "Set-RemoteMailbox -ExchangeGuid to the EXO mailbox's",
             precondition=_onprem_is_remote, action=_set_guid, verify=_remote_guid_matches),
        Step("verify-fixed", "Verify after sync: one mailbox, in EXO", kind="wait_until",
             verify=_dual_gone_keep_cloud, interval_s=SYNC_POLL_S, timeout_s=SYNC_TIMEOUT_S),
    ),
)


# ----------------------------------------------------------------------------- clear previous mailbox info
def _record_previous(ctx: StepContext) -> dict[str, Any]:
    user = reads.exo_user(ctx.exo, ctx.obj.key) or {}
    rec = reads.exo_recipient(ctx.exo, ctx.obj.key) or {}
    ctx.facts["exo"] = {"RecipientTypeDetails": user.get("RecipientTypeDetails"),
                        "PreviousRecipientTypeDetails": reads.previous_type(user),
                        "ExchangeGuid": reads.guid(rec.get("ExchangeGuid"))}
    return dict(ctx.facts["exo"])


CLEAR_PREVIOUS = Runbook(
    name="clear-previous-mailbox-info",
    title="Clear stale PreviousRecipientTypeDetails",
    description="For MailUsers still pointing at a former cloud mailbox: confirm (IRREVERSIBLE), "
                "Set-User -PermanentlyClearPreviousMailboxInfo, verify.",
    fixes=("PREVIOUS_MAILBOX_INFO",),
    steps=(
        Step("check-finding", "Check the MailUser still has previous mailbox info", precondition=_has_previous_info,
             skip_when_unmet=True),
        Step("record-state", "Record the MailUser", action=_record_previous, verify=_state_recorded("exo"),
             writes=False),
        Step("confirm-clear", "Confirm: permanently destroy the former cloud mailbox content", kind="gate",
             gate_text=_clear_gate_text, irreversible=True),
        Step("clear-previous-info", "Set-User -PermanentlyClearPreviousMailboxInfo", precondition=_has_previous_info,
             action=_clear, verify=_cleared_user, irreversible=True),
        Step("verify-fixed", "Verify the previous mailbox info is gone", kind="wait_until", verify=_cleared_user,
             interval_s=SYNC_POLL_S, timeout_s=SYNC_TIMEOUT_S),
    ),
)

RUNBOOKS: Final[dict[str, Runbook]] = {r.name: r for r in (KEEP_ONPREM, KEEP_CLOUD, CLEAR_PREVIOUS)}


def get_runbook(name: str) -> Runbook:
    """The built-in runbook called `name`; KeyError lists the known ones."""
    try:
        return RUNBOOKS[name.strip().lower()]
    except KeyError:
        raise KeyError(f"unknown runbook {name!r}; known: {', '.join(RUNBOOKS)}") from None


def runbooks_for_finding(code: str) -> list[Runbook]:
    """The runbooks that fix findings of `code` (the first is the recommended one)."""
    return [r for r in RUNBOOKS.values() if code.upper() in r.fixes]
