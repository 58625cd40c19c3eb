"""The sync cycle: dual mailboxes are born and fixed the way docs/exchange-facts.md#dual-mailboxes says they are."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from exocm.sandbox.errors import CmdletError
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.licensing import E3
from exocm.sandbox.objects import AdUser, ExoRecipient
from exocm.sandbox.tenant import Tenant


class Clock:
    """A settable tenant clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def t(clock: Clock) -> Tenant:
    return generate_tenant(400, 21, clock=clock)


def _new_hire(t: Tenant) -> tuple[AdUser, ExoRecipient]:
    """A synced on-prem user without Exchange attributes and without a license (EXO: User)."""
    r = next(r for r in t.exo.values() if r.rtd == "User" and r.dir_synced
             and not t.has_exchange_license(t.entra_users[r.edoid]))
    a = t.ad_for(r)
    assert a is not None and a.rtd is None
    return a, r


def _get_user(t: Tenant, ident: str) -> dict[str, object]:
    return t.invoke("Get-User", {"Identity": ident})[0]


def test_fresh_tenant_is_in_sync(t: Tenant) -> None:
    before = t.planted()
    stats = t.run_sync_cycle()
    assert stats["created"] == stats["provisioned"] == stats["deprovisioned"] == stats["exo_updated"] == 0
    assert t.planted() == before


def test_full_sync_repairs_only_attribute_drift(t: Tenant) -> None:
    before = t.planted()
    t.run_sync_cycle(full=True)
    after = t.planted()
    assert after["ATTRIBUTE_DRIFT"] == [] and before["ATTRIBUTE_DRIFT"]
    assert {k: v for k, v in after.items() if k != "ATTRIBUTE_DRIFT"} == \
        {k: v for k, v in before.items() if k != "ATTRIBUTE_DRIFT"}


def test_license_before_exchange_guid_births_a_dual_mailbox(t: Tenant) -> None:
    a, r = _new_hire(t)
    t.graph_assign_license(r.edoid, E3.sku_id)
    assert t.run_sync_cycle()["provisioned"] == 1
    cloud = t.invoke("Get-Mailbox", {"Identity": r.edoid})[0]
    assert cloud["RecipientTypeDetails"] == "UserMailbox"
    # Later the on-prem admin creates the mailbox on-prem too.
    local = t.invoke("Enable-Mailbox", {"Identity": a.sam}, side="onprem")[0]
    t.run_sync_cycle()
    assert r.edoid in t.planted()["DUAL_MAILBOX"]
    assert t.invoke("Get-Mailbox", {"Identity": r.edoid})[0]["ExchangeGuid"] == cloud["ExchangeGuid"]
    assert local["ExchangeGuid"] != cloud["ExchangeGuid"]


def test_exchange_guid_synced_first_means_no_cloud_mailbox(t: Tenant) -> None:
    a, r = _new_hire(t)
    t.invoke("Enable-Mailbox", {"Identity": a.guid}, side="onprem")
    t.run_sync_cycle()
    t.graph_assign_license(r.edoid, E3.sku_id)
    t.run_sync_cycle()
    assert _get_user(t, r.edoid)["RecipientTypeDetails"] == "MailUser"
    assert r.edoid not in t.planted()["DUAL_MAILBOX"]


def _dual_with_license(t: Tenant) -> ExoRecipient:
    """A planted dual mailbox (licensed directly, through a cloud group or a synced group)."""
    return t.exo[t.planted()["DUAL_MAILBOX"][0]]


def _remove_license(t: Tenant, r: ExoRecipient) -> None:
    """Remove every license the way a runbook would: Graph for direct and cloud-group ones,
    on-prem Remove-ADGroupMember for synced licensing groups."""
    u = t.entra_users[r.edoid]
    for sku in list(u.licenses):
        t.graph_remove_license(r.edoid, sku)
    for gid in list(u.groups):
        g = t.entra_groups[gid]
        if not g.licenses:
            continue
        if g.sync_enabled:
            t.invoke("Remove-ADGroupMember", {"Identity": g.display_name, "Members": u.ad_guid}, side="onprem")
        else:
            t.graph_remove_group_member(gid, r.edoid)


def test_removing_the_license_turns_the_cloud_mailbox_into_a_mail_user_with_previous_info(t: Tenant) -> None:
    r = _dual_with_license(t)
    _remove_license(t, r)
    assert _get_user(t, r.edoid)["RecipientTypeDetails"] == "UserMailbox"  # nothing happens before a sync
    assert t.run_sync_cycle()["deprovisioned"] == 1
    user = _get_user(t, r.edoid)
    assert user["RecipientTypeDetails"] == "MailUser" and user["PreviousRecipientTypeDetails"] == "UserMailbox"
    assert r.edoid in t.planted()["PREVIOUS_MAILBOX_INFO"] and r.edoid not in t.planted()["DUAL_MAILBOX"]


def test_keep_onprem_fix_end_to_end(t: Tenant) -> None:
    r = _dual_with_license(t)
    a = t.ad_for(r)
    assert a is not None
    skus = set(t.licensed_skus(t.entra_users[r.edoid]))
    _remove_license(t, r)
    t.run_sync_cycle()
    t.invoke("Set-User", {"Identity": r.edoid, "PermanentlyClearPreviousMailboxInfo": True})
    t.run_sync_cycle()
    mu = t.invoke("Get-MailUser", {"Identity": r.edoid})[0]
    assert mu["ExchangeGuid"] == a.exchange_guid and mu["PreviousRecipientTypeDetails"] == "None"
    for sku in skus:
        t.graph_assign_license(r.edoid, sku)
    t.run_sync_cycle()
    assert _get_user(t, r.edoid)["RecipientTypeDetails"] == "MailUser"  # no new cloud mailbox
    truth = t.planted()
    assert all(r.edoid not in v for k, v in truth.items() if k != "RECENT_ONPREM_CHANGE")


def test_relicensing_before_clearing_reconnects_the_cloud_mailbox(t: Tenant) -> None:
    r = _dual_with_license(t)
    guid = r.exchange_guid
    _remove_license(t, r)
    t.run_sync_cycle()
    t.graph_assign_license(r.edoid, E3.sku_id)
    assert t.run_sync_cycle()["reconnected"] == 1
    back = t.invoke("Get-Mailbox", {"Identity": r.edoid})[0]
    assert back["ExchangeGuid"] == guid and r.edoid in t.planted()["DUAL_MAILBOX"]


def test_keep_cloud_fix_end_to_end(t: Tenant) -> None:
    edoid = t.planted()["DUAL_MAILBOX"][0]
    r = t.exo[edoid]
    a = t.ad_for(r)
    assert a is not None
    old_ldn = a.legacy_dn
    t.invoke("Disable-Mailbox", {"Identity": a.guid, "Confirm": False}, side="onprem")
    t.invoke("Enable-RemoteMailbox", {"Identity": a.guid, "RemoteRoutingAddress": f"{a.sam}@{t.routing_domain}"},
             side="onprem")
    t.invoke("Set-RemoteMailbox", {"Identity": a.guid, "EmailAddresses": {"Add": [f"X500:{old_ldn}"]}}, side="onprem")
    t.invoke("Set-RemoteMailbox", {"Identity": a.guid, "ExchangeGuid": r.exchange_guid}, side="onprem")
    t.run_sync_cycle()
    truth = t.planted()
    for code in ("DUAL_MAILBOX", "EXCHANGEGUID_MISMATCH", "ATTRIBUTE_DRIFT"):
        assert edoid not in truth[code], code
    assert edoid in truth["RECENT_ONPREM_CHANGE"]  # just edited on-prem: wait before flipping
    assert f"X500:{old_ldn}" in t.invoke("Get-Mailbox", {"Identity": edoid})[0]["EmailAddresses"]


def test_recent_change_window_is_sync_interval_plus_24h(t: Tenant, clock: Clock) -> None:
    a = next(x for x in t.ad_users.values() if x.rtd == "RemoteUserMailbox")
    t.invoke("Set-RemoteMailbox", {"Identity": a.guid, "CustomAttribute9": "edited"}, side="onprem")
    t.run_sync_cycle()
    assert a.entra_id in t.planted()["RECENT_ONPREM_CHANGE"]
    clock.advance(hours=24, minutes=29)
    assert a.entra_id in t.planted()["RECENT_ONPREM_CHANGE"]
    clock.advance(minutes=2)
    assert a.entra_id not in t.planted()["RECENT_ONPREM_CHANGE"]


def test_onprem_edit_flows_unless_cloud_managed_then_writeback(t: Tenant) -> None:
    mbx = [r for r in t.exo.values() if r.rtd == "UserMailbox" and r.dir_synced and not r.cloud_managed
           and (a := t.ad_for(r)) is not None and a.rtd == "RemoteUserMailbox"]
    plain, managed = mbx[0], mbx[1]
    t.invoke("Set-Mailbox", {"Identity": managed.edoid, "IsExchangeCloudManaged": True})
    for r in (plain, managed):
        t.invoke("Set-RemoteMailbox", {"Identity": r.upn, "CustomAttribute3": "from-onprem"}, side="onprem")
    t.run_sync_cycle()
    assert t.invoke("Get-Mailbox", {"Identity": plain.edoid})[0]["CustomAttribute3"] == "from-onprem"
    assert t.invoke("Get-Mailbox", {"Identity": managed.edoid})[0]["CustomAttribute3"] != "from-onprem"
    # Cloud edits of the cloud-managed mailbox go back to AD.
    t.invoke("Set-Mailbox", {"Identity": managed.edoid, "CustomAttribute3": "from-cloud"})
    assert t.run_sync_cycle()["written_back"] == 1
    assert t.invoke("Get-RemoteMailbox", {"Identity": managed.upn}, side="onprem")[0]["CustomAttribute3"] == \
        "from-cloud"


def test_flip_back_makes_the_next_sync_overwrite_cloud_values(t: Tenant) -> None:
    r = next(r for r in t.exo.values() if r.rtd == "UserMailbox" and r.dir_synced and not r.cloud_managed
             and (a := t.ad_for(r)) is not None and a.rtd == "RemoteUserMailbox")
    a = t.ad_for(r)
    assert a is not None
    t.invoke("Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": True})
    t.invoke("Set-RemoteMailbox", {"Identity": a.guid, "CustomAttribute4": "onprem-value"}, side="onprem")
    t.run_sync_cycle()  # cloud-managed: the on-prem edit does not flow...
    t.invoke("Set-Mailbox", {"Identity": r.edoid, "CustomAttribute4": "cloud-value"})
    t.invoke("Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": False})  # ...flip back before writeback
    t.run_sync_cycle()
    assert t.invoke("Get-Mailbox", {"Identity": r.edoid})[0]["CustomAttribute4"] == "onprem-value"


def test_synced_licensing_group_membership_is_removed_on_prem(t: Tenant) -> None:
    group = next(g for g in t.ad_groups.values() if t.entra_groups[g.entra_id or ""].licenses)
    eg = t.entra_groups[group.entra_id or ""]
    member = next(m for m in sorted(group.members)
                  if t.exo[t.ad_users[m].entra_id or ""].rtd == "UserMailbox"
                  and not t.entra_users[t.ad_users[m].entra_id or ""].licenses
                  and len(t.entra_users[t.ad_users[m].entra_id or ""].groups) == 1)
    a = t.ad_users[member]
    assert t.graph_group(eg.id)["onPremisesSyncEnabled"] is True
    with pytest.raises(CmdletError) as info:
        t.graph_remove_group_member(eg.id, a.entra_id or "")
    assert info.value.http_status == 400 and "on-premises mastered" in info.value.message
    assert a.sam in {m["SamAccountName"] for m in t.invoke("Get-ADGroupMember", {"Identity": group.name},
                                                              side="onprem")}
    t.invoke("Remove-ADGroupMember", {"Identity": group.name, "Members": [a.sam], "Confirm": False}, side="onprem")
    t.run_sync_cycle()
    assert a.entra_id not in {m["id"] for m in t.graph_group_members(eg.id)}
    assert _get_user(t, a.upn)["PreviousRecipientTypeDetails"] == "UserMailbox"


def test_graph_license_views(t: Tenant) -> None:
    r = next(r for r in t.exo.values() if r.rtd == "UserMailbox" and t.entra_users[r.edoid].groups)
    u = t.graph_get_user(r.upn)
    assert u["id"] == r.edoid and u["assignedLicenses"]
    assert any(s["assignedByGroup"] for s in u["licenseAssignmentStates"])
    details = t.graph_license_details(r.edoid)
    assert details and all(d["servicePlans"] for d in details)
    inherited = next(s["skuId"] for s in u["licenseAssignmentStates"] if s["assignedByGroup"])
    with pytest.raises(CmdletError) as info:
        t.graph_remove_license(r.edoid, inherited)
    assert "inherited from a group" in info.value.message
    with pytest.raises(CmdletError) as info:
        t.graph_get_user("00000000-0000-0000-0000-000000000001")
    assert info.value.http_status == 404
