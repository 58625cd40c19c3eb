"""Every detection rule on small hand-built tenants: positive, negative and the edge cases."""
from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from detect_tenants import (
    LONG_AGO,
    NOW,
    Tenant,
    codes_for,
    eid,
    exo_mailbox,
    exo_mailuser,
    finding,
    guid,
    onprem,
)
from exocm.core.detect.engine import FINDING_COLUMNS, RULES, SEVERITIES, DetectContext, Hits, detect, rule
from exocm.core.model import EMPTY_GUID

# ----------------------------------------------------------------------------- DUAL_MAILBOX


def test_dual_mailbox_on_prem_usermailbox_plus_exo_mailbox_is_critical_and_says_which_join():
    t = Tenant([exo_mailbox("ann"), exo_mailbox("bob")], onprem=[onprem("ann", "UserMailbox"), onprem("bob")])
    r = t.run()
    assert codes_for(r, "DUAL_MAILBOX") == {eid("ann")}
    f = finding(r, "DUAL_MAILBOX", "ann")
    assert f["severity"] == "critical"
    assert f["UserPrincipalName"] == "ann@contoso.com"
    assert f["action"] == "dual-mailbox-keep-onprem"
    assert f["evidence"]["matched_on"] == "UserPrincipalName"
    assert f["evidence"]["onprem.RecipientTypeDetails"] == "UserMailbox"
    assert "matched on UserPrincipalName" in f["explanation"]


def test_remote_mailbox_on_prem_is_the_healthy_pair_not_a_dual_mailbox():
    t = Tenant([exo_mailbox("bob"), exo_mailbox("sh", "SharedMailbox")],
               onprem=[onprem("bob"), onprem("sh", "RemoteSharedMailbox")])
    assert t.run().findings.empty


def test_two_upn_spellings_differing_in_case_are_one_person():
    t = Tenant([exo_mailbox("ann", upn="Ann.Lee@Contoso.com")],
               onprem=[onprem("ann", "UserMailbox", upn="ann.lee@contoso.COM")])
    r = t.run()
    f = finding(r, "DUAL_MAILBOX", "ann")
    assert f["evidence"]["matched_on"] == "UserPrincipalName"
    assert codes_for(r, "AMBIGUOUS_MATCH") == set()


def test_external_directory_object_id_decides_over_a_different_upn():
    # on-prem UPN renamed, but the Entra object id (msDS-ExternalDirectoryObjectId) is present
    t = Tenant([exo_mailbox("ann"), exo_mailbox("bob")],
               onprem=[onprem("ann", "UserMailbox", upn="bob@contoso.com", ExternalDirectoryObjectId=eid("ann").upper())])
    r = t.run()
    assert codes_for(r, "DUAL_MAILBOX") == {eid("ann")}
    assert finding(r, "DUAL_MAILBOX", "ann")["evidence"]["matched_on"] == "ExternalDirectoryObjectId"


def test_primary_smtp_joins_when_upns_differ():
    t = Tenant([exo_mailbox("ann", upn="ann@contoso.onmicrosoft.com", PrimarySmtpAddress="Ann@Contoso.com",
                            EmailAddresses=["SMTP:Ann@Contoso.com"])],
               onprem=[onprem("ann", "UserMailbox", upn="ann@corp.local", PrimarySmtpAddress="ann@contoso.com",
                              EmailAddresses=["SMTP:ann@contoso.com"])])
    f = finding(t.run(), "DUAL_MAILBOX", "ann")
    assert f["evidence"]["matched_on"] == "PrimarySmtpAddress"


def test_a_proxy_address_alone_joins_when_only_one_person_holds_it():
    t = Tenant([exo_mailbox("ann", upn="ann@cloud.example", PrimarySmtpAddress="ann@cloud.example",
                            EmailAddresses=["SMTP:ann@cloud.example", "smtp:a.lee@contoso.com"])],
               onprem=[onprem("ann", "UserMailbox", upn="ann@corp.local", PrimarySmtpAddress="ann.lee@contoso.com",
                              EmailAddresses=["SMTP:ann.lee@contoso.com", "smtp:A.Lee@contoso.com"])])
    assert finding(t.run(), "DUAL_MAILBOX", "ann")["evidence"]["matched_on"] == "EmailAddresses"


def test_a_proxy_address_held_by_two_exo_people_is_ambiguous_never_a_match():
    shared = "smtp:sales@contoso.com"
    t = Tenant(
        [exo_mailbox("ann", EmailAddresses=["SMTP:ann@contoso.com", shared]),
         exo_mailbox("bob", EmailAddresses=["SMTP:bob@contoso.com", shared])],
        onprem=[onprem("old", "UserMailbox", upn="old@corp.local", PrimarySmtpAddress="old@corp.local",
                       EmailAddresses=["SMTP:old@corp.local", "smtp:SALES@contoso.com"])],
    )
    r = t.run()
    assert codes_for(r, "DUAL_MAILBOX") == set()
    assert codes_for(r, "AMBIGUOUS_MATCH") == {eid("ann"), eid("bob")}
    f = finding(r, "AMBIGUOUS_MATCH", "ann")
    assert f["severity"] == "high"
    assert f["evidence"]["candidates"] == sorted([eid("ann"), eid("bob")])
    assert "smtp:sales@contoso.com" in f["evidence"]["addresses"]


def test_a_proxy_address_held_by_two_onprem_people_proves_nothing():
    t = Tenant(
        [exo_mailbox("ann", upn="ann@cloud.example", PrimarySmtpAddress="ann@cloud.example",
                     EmailAddresses=["SMTP:ann@cloud.example", "smtp:team@contoso.com"])],
        onprem=[
            onprem("x1", "UserMailbox", upn="x1@corp.local", PrimarySmtpAddress="x1@corp.local",
                   EmailAddresses=["SMTP:x1@corp.local", "smtp:team@contoso.com"]),
            onprem("x2", "UserMailbox", upn="x2@corp.local", PrimarySmtpAddress="x2@corp.local",
                   EmailAddresses=["SMTP:x2@corp.local", "smtp:team@contoso.com"]),
        ],
    )
    r = t.run()
    assert codes_for(r, "DUAL_MAILBOX") == set()
    amb = r.findings[r.findings["code"] == "AMBIGUOUS_MATCH"]
    assert set(amb["ExternalDirectoryObjectId"]) == {eid("ann")}
    assert len(amb) == 2  # one per on-prem row that could be ann


def test_unique_primary_address_wins_over_a_shared_secondary_one():
    shared = "smtp:sales@contoso.com"
    t = Tenant(
        [exo_mailbox("ann", upn="ann@cloud.example", PrimarySmtpAddress="ann@contoso.com",
                     EmailAddresses=["SMTP:ann@contoso.com", shared]),
         exo_mailbox("bob", EmailAddresses=["SMTP:bob@contoso.com", shared])],
        onprem=[onprem("ann", "UserMailbox", upn="ann@corp.local", EmailAddresses=["SMTP:ann@contoso.com", shared],
                       PrimarySmtpAddress="ann@contoso.com")],
    )
    r = t.run()
    assert codes_for(r, "DUAL_MAILBOX") == {eid("ann")}
    assert codes_for(r, "AMBIGUOUS_MATCH") == set()


def test_two_onprem_rows_claiming_one_mailbox_keep_only_the_stronger_join():
    t = Tenant([exo_mailbox("ann")],
               onprem=[onprem("ann", "RemoteUserMailbox", ExternalDirectoryObjectId=eid("ann")),
                       onprem("ann", "UserMailbox")])  # same UPN, no object id: weaker
    r = t.run()
    assert codes_for(r, "DUAL_MAILBOX") == set()
    assert codes_for(r, "AMBIGUOUS_MATCH") == {eid("ann")}
    assert r.match.pairs.loc[eid("ann"), "join"] == "ExternalDirectoryObjectId"


# ----------------------------------------------------------------------------- ONPREM_MAILBOX_PRESENT


def test_onprem_mailbox_present_when_the_exo_side_is_a_mail_user():
    t = Tenant([], [exo_mailuser("ann"), exo_mailuser("bob")],
               onprem=[onprem("ann", "UserMailbox"), onprem("bob", "RemoteUserMailbox")])
    r = t.run()
    assert codes_for(r, "ONPREM_MAILBOX_PRESENT") == {eid("ann")}
    assert codes_for(r, "DUAL_MAILBOX") == set()


# ----------------------------------------------------------------------------- PREVIOUS_MAILBOX_INFO


def test_previous_mailbox_info_on_a_mail_user_with_a_mailbox_type():
    t = Tenant([], [exo_mailuser("ann", PreviousRecipientTypeDetails="UserMailbox"),
                    exo_mailuser("sam", PreviousRecipientTypeDetails="SharedMailbox"),
                    exo_mailuser("bob", PreviousRecipientTypeDetails="None"),
                    exo_mailuser("cid", PreviousRecipientTypeDetails=""),
                    exo_mailuser("dan", PreviousRecipientTypeDetails=None)],
               onprem=None)
    r = t.run()
    assert codes_for(r, "PREVIOUS_MAILBOX_INFO") == {eid("ann"), eid("sam")}
    f = finding(r, "PREVIOUS_MAILBOX_INFO", "ann")
    assert f["severity"] == "high" and f["action"] == "clear-previous-mailbox-info"
    assert f["evidence"]["PreviousRecipientTypeDetails"] == "UserMailbox"


def test_previous_type_on_a_mailbox_is_not_a_stale_mail_user():
    t = Tenant([exo_mailbox("ann", PreviousRecipientTypeDetails="UserMailbox")], onprem=None)
    assert codes_for(t.run(), "PREVIOUS_MAILBOX_INFO") == set()


# ----------------------------------------------------------------------------- EXCHANGEGUID_MISMATCH


@pytest.mark.parametrize("onprem_guid", ["", EMPTY_GUID, "11111111-2222-4333-8444-555555555555"])
def test_exchangeguid_empty_zero_or_different_on_the_remote_mailbox(onprem_guid: str):
    t = Tenant([exo_mailbox("ann")], onprem=[onprem("ann", ExchangeGuid=onprem_guid)])
    f = finding(t.run(), "EXCHANGEGUID_MISMATCH", "ann")
    assert f["severity"] == "high"
    assert f["evidence"]["onprem.ExchangeGuid"] == onprem_guid
    assert f["evidence"]["exo.ExchangeGuid"] == guid("ann")


def test_exchangeguid_equal_up_to_case_and_braces_is_fine():
    t = Tenant([exo_mailbox("ann")], onprem=[onprem("ann", ExchangeGuid="{" + guid("ann").upper() + "}")])
    assert codes_for(t.run(), "EXCHANGEGUID_MISMATCH") == set()


def test_exchangeguid_unknown_when_the_export_has_no_such_column():
    row = onprem("ann")
    del row["ExchangeGuid"]
    r = Tenant([exo_mailbox("ann")], onprem=[row]).run()
    assert codes_for(r, "EXCHANGEGUID_MISMATCH") == set()


# ----------------------------------------------------------------------------- NOT_DIRSYNCED / ALREADY / UNSUPPORTED


def test_not_dirsynced_only_for_cloud_only_mailboxes():
    t = Tenant([exo_mailbox("ann", IsDirSynced=False), exo_mailbox("bob")],
               [exo_mailuser("cid", IsDirSynced=False)], onprem=None)
    r = t.run()
    assert codes_for(r, "NOT_DIRSYNCED") == {eid("ann")}
    assert finding(r, "NOT_DIRSYNCED", "ann")["severity"] == "info"


def test_already_cloud_managed_is_info():
    t = Tenant([exo_mailbox("ann", IsExchangeCloudManaged=True), exo_mailbox("bob")], onprem=None)
    r = t.run()
    assert codes_for(r, "ALREADY_CLOUD_MANAGED") == {eid("ann")}
    assert finding(r, "ALREADY_CLOUD_MANAGED", "ann")["severity"] == "info"


def test_unsupported_type_for_mailboxes_the_flip_does_not_cover():
    t = Tenant([exo_mailbox("ann", "LinkedMailbox"), exo_mailbox("bob", "RoomMailbox"),
                exo_mailbox("cid", "SchedulingMailbox")], onprem=None)
    r = t.run()
    assert codes_for(r, "UNSUPPORTED_TYPE") == {eid("ann"), eid("cid")}


# ----------------------------------------------------------------------------- RECENT_ONPREM_CHANGE


def test_recent_onprem_change_within_sync_interval_plus_24h_of_now():
    window = timedelta(minutes=30) + timedelta(hours=24)
    t = Tenant(
        [exo_mailbox("edge"), exo_mailbox("old"), exo_mailbox("new"), exo_mailbox("mu", "MailUser")],
        onprem=[onprem("edge", WhenChanged=NOW - window), onprem("old", WhenChanged=NOW - window - timedelta(seconds=1)),
                onprem("new", WhenChanged=NOW - timedelta(minutes=5)), onprem("mu", WhenChanged=NOW)],
    )
    r = t.run()
    assert codes_for(r, "RECENT_ONPREM_CHANGE") == {eid("edge"), eid("new")}
    f = finding(r, "RECENT_ONPREM_CHANGE", "new")
    assert f["severity"] == "medium" and f["action"] == "wait-for-sync"
    assert f["evidence"]["safe_after"] == "2026-03-02T12:25:00Z"


def test_recent_onprem_change_follows_the_injected_clock_and_interval():
    t = Tenant([exo_mailbox("ann")], onprem=[onprem("ann", WhenChanged=NOW - timedelta(hours=30))])
    assert codes_for(t.run(), "RECENT_ONPREM_CHANGE") == set()
    assert codes_for(t.run(sync_interval=timedelta(hours=7)), "RECENT_ONPREM_CHANGE") == {eid("ann")}
    assert codes_for(t.run(now=NOW - timedelta(hours=10)), "RECENT_ONPREM_CHANGE") == {eid("ann")}


# ----------------------------------------------------------------------------- ATTRIBUTE_DRIFT


def test_attribute_drift_shows_the_differing_values_on_both_sides():
    t = Tenant([exo_mailbox("ann", CustomAttribute3="Sales", ExtensionCustomAttribute1=["a", "b"])],
               onprem=[onprem("ann", CustomAttribute3="Marketing", ExtensionCustomAttribute1=["b", "a"],
                              EmailAddresses=["SMTP:ann@contoso.com", "smtp:ann@contoso.mail.onmicrosoft.com",
                                              "smtp:a.new@contoso.com"])])
    f = finding(t.run(), "ATTRIBUTE_DRIFT", "ann")
    ev = f["evidence"]
    assert set(ev) == {"CustomAttribute3", "EmailAddresses"}
    assert ev["CustomAttribute3"] == {"onprem": "Marketing", "cloud": "Sales"}
    assert "smtp:a.new@contoso.com" in ev["EmailAddresses"]["onprem"]
    assert "CustomAttribute3" in f["explanation"]
    json.dumps(ev)


def test_no_drift_for_order_or_address_case_or_empty_vs_missing():
    t = Tenant([exo_mailbox("ann", CustomAttribute1=None, ExtensionCustomAttribute2=["y", "x"],
                            EmailAddresses=["smtp:ANN@contoso.mail.onmicrosoft.com", "SMTP:Ann@Contoso.com"])],
               onprem=[onprem("ann", CustomAttribute1="", ExtensionCustomAttribute2=["x", "y"])])
    assert codes_for(t.run(), "ATTRIBUTE_DRIFT") == set()


def test_drift_not_reported_for_attributes_the_export_lacks_nor_for_cloud_managed_mailboxes():
    row = onprem("ann")
    del row["CustomAttribute3"]  # an export without the column: unknown, not empty
    t = Tenant([exo_mailbox("ann", CustomAttribute3="Sales")], onprem=[row])
    assert codes_for(t.run(), "ATTRIBUTE_DRIFT") == set()
    t = Tenant([exo_mailbox("bob", CustomAttribute3="Sales", IsExchangeCloudManaged=True)],
               onprem=[onprem("bob", CustomAttribute3="Old")])
    assert codes_for(t.run(), "ATTRIBUTE_DRIFT") == set()


def test_drift_in_the_primary_address_counts():
    t = Tenant([exo_mailbox("ann", PrimarySmtpAddress="ann@contoso.com")],
               onprem=[onprem("ann", PrimarySmtpAddress="ann.lee@contoso.com")])
    f = finding(t.run(), "ATTRIBUTE_DRIFT", "ann")
    assert f["evidence"]["PrimarySmtpAddress"] == {"onprem": "ann.lee@contoso.com", "cloud": "ann@contoso.com"}


# ----------------------------------------------------------------------------- tenant level


def test_tenant_default_cloud_managed_is_reported_with_the_warning():
    r = Tenant([exo_mailbox("ann")], onprem=[onprem("ann")],
               org={"ExchangeAttributesCloudManagedByDefault": True}).run()
    f = r.findings[r.findings["code"] == "TENANT_CLOUD_MANAGED_BY_DEFAULT"].iloc[0]
    assert f["ExternalDirectoryObjectId"] == "" and f["UserPrincipalName"] == ""
    assert "new mailboxes only" in f["explanation"] and "created on-prem" in f["explanation"]
    assert "RemoteMailboxes" in f["explanation"]  # on-prem data shows on-prem provisioning in use
    off = Tenant([exo_mailbox("ann")], org={"ExchangeAttributesCloudManagedByDefault": False}).run()
    assert codes_for(off, "TENANT_CLOUD_MANAGED_BY_DEFAULT") == set()
    unknown = Tenant([exo_mailbox("ann")]).run()
    assert "TENANT_CLOUD_MANAGED_BY_DEFAULT" in unknown.not_checked


# ----------------------------------------------------------------------------- the engine


def test_without_onprem_data_the_onprem_rules_are_listed_as_not_checked():
    r = Tenant([exo_mailbox("ann")], onprem=None).run()
    for code in ("DUAL_MAILBOX", "EXCHANGEGUID_MISMATCH", "RECENT_ONPREM_CHANGE", "ATTRIBUTE_DRIFT", "AMBIGUOUS_MATCH"):
        assert code in r.not_checked


def test_findings_have_the_documented_columns_and_json_evidence():
    t = Tenant([exo_mailbox("ann"), exo_mailbox("bob", IsExchangeCloudManaged=True)],
               [exo_mailuser("cid", PreviousRecipientTypeDetails="UserMailbox")],
               onprem=[onprem("ann", "UserMailbox", WhenChanged=NOW)])
    f = t.run().findings
    assert tuple(f.columns) == FINDING_COLUMNS
    assert set(f["severity"]) <= set(SEVERITIES)
    ranks = [SEVERITIES.index(s) for s in f["severity"]]
    assert ranks == sorted(ranks)  # worst first
    for ev in f["evidence"]:
        assert isinstance(ev, dict)
        json.dumps(ev)
    assert f["explanation"].map(lambda s: "\n" not in s and len(s) > 10).all()


def test_adding_a_rule_is_one_function():
    @rule("TEST_BIG_ALIAS", "low", action="shorten-alias", blocks=frozenset(), summary="alias longer than 5")
    def big_alias(ctx: DetectContext) -> Hits:
        alias = ctx.exo_text("Alias")
        return ctx.hits(alias.str.len() > 5, "Alias is long", evidence=["Alias"])

    try:
        inv = Tenant([exo_mailbox("ann"), exo_mailbox("bartholomew")]).inventory()
        r = detect(inv, None, now=NOW, codes=["TEST_BIG_ALIAS"])
        assert list(r.findings["ExternalDirectoryObjectId"]) == [eid("bartholomew")]
        assert r.findings.iloc[0]["evidence"] == {"Alias": "bartholomew"}
        assert r.findings.iloc[0]["action"] == "shorten-alias"
    finally:
        del RULES["TEST_BIG_ALIAS"]


def test_empty_inventory_gives_no_findings():
    r = detect(Tenant().inventory(), pd.DataFrame(), now=NOW)
    assert r.findings.empty and tuple(r.findings.columns) == FINDING_COLUMNS
    assert LONG_AGO < NOW
