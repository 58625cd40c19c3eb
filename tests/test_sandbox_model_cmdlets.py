"""The sandbox's cmdlet layer behaves like Exchange: identities, filters, errors, Set-* rules."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from exocm.sandbox.errors import CmdletError
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.objects import ExoRecipient
from exocm.sandbox.tenant import Tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ro() -> Tenant:
    """A read-only tenant for the Get-* tests."""
    return generate_tenant(1500, 11, clock=lambda: NOW)


@pytest.fixture
def rw() -> Tenant:
    """A private tenant for tests that write."""
    return generate_tenant(300, 5, clock=lambda: NOW)


def _one(t: Tenant, pred: Any) -> ExoRecipient:
    return next(r for r in t.exo.values() if pred(r))


def _synced_mailbox(t: Tenant) -> ExoRecipient:
    return _one(t, lambda r: r.rtd == "UserMailbox" and r.dir_synced and not r.cloud_managed
                and t.ad_for(r) is not None and t.ad_for(r).rtd == "RemoteUserMailbox"  # type: ignore[union-attr]
                and r.edoid not in sum(t.planted().values(), []))


def _err(t: Tenant, cmdlet: str, params: dict[str, Any], side: str = "exo") -> CmdletError:
    with pytest.raises(CmdletError) as info:
        t.invoke(cmdlet, params, side=side)
    return info.value


# ----------------------------------------------------------------------------- identity
def test_every_identity_form_resolves_the_same_mailbox_case_insensitively(ro: Tenant) -> None:
    r = _synced_mailbox(ro)
    secondary = next(p for p in r.proxies if p.startswith("smtp:"))
    x500 = next(p for p in r.proxies if p.startswith("X500:"))
    forms = [
        r.edoid, r.edoid.upper(), r.guid, "{" + r.guid.upper() + "}", r.exchange_guid, r.upn.upper(),
        r.proxies[0][5:].title(), r.alias, r.alias.upper(), r.name, secondary, secondary[5:],
        "SMTP:" + secondary[5:], x500, x500[5:], r.legacy_dn, ro.exo_dn(r),
    ]
    for form in forms:
        got = ro.invoke("Get-Mailbox", {"Identity": form})
        assert [g["Guid"] for g in got] == [r.guid], form


def test_identity_that_matches_two_objects_is_ambiguous(rw: Tenant) -> None:
    a, b = [r for r in rw.exo.values() if r.rtd == "UserMailbox"][:2]
    with rw.editing_exo(b):
        b.alias = a.alias  # EXO does not force alias uniqueness across recipients
    err = _err(rw, "Get-Mailbox", {"Identity": a.alias})
    assert err.error_type == "ManagementObjectAmbiguousException"
    assert err.message == f"The operation couldn't be performed because '{a.alias}' matches multiple entries."


def test_unknown_identity_is_not_found_with_exchange_text(ro: Tenant) -> None:
    err = _err(ro, "Get-User", {"Identity": "nobody@contoso.com"})
    assert err.error_type == "ManagementObjectNotFoundException" and err.category == "ObjectNotFound"
    assert err.message.startswith("The operation couldn't be performed because object 'nobody@contoso.com' "
                                  "couldn't be found on '")


def test_get_mailbox_does_not_resolve_a_mail_user(ro: Tenant) -> None:
    mu = _one(ro, lambda r: r.rtd == "MailUser")
    assert _err(ro, "Get-Mailbox", {"Identity": mu.edoid}).category == "ObjectNotFound"
    assert ro.invoke("Get-MailUser", {"Identity": mu.edoid})[0]["RecipientTypeDetails"] == "MailUser"
    assert ro.invoke("Get-User", {"Identity": mu.edoid})[0]["RecipientTypeDetails"] == "MailUser"


def test_onprem_identity_forms(ro: Tenant) -> None:
    a = next(x for x in ro.ad_users.values() if x.rtd == "RemoteUserMailbox")
    for form in (a.guid, a.upn, a.alias, a.sam, a.dn, a.proxies[0], a.cn):
        got = ro.invoke("Get-RemoteMailbox", {"Identity": form}, side="onprem")
        assert [g["Guid"] for g in got] == [a.guid], form


# ----------------------------------------------------------------------------- filters
def _ids(t: Tenant, cmdlet: str, flt: str) -> set[str]:
    return {x["ExternalDirectoryObjectId"] for x in t.invoke(cmdlet, {"Filter": flt, "ResultSize": "Unlimited"})}


def _truth(t: Tenant, scope: set[str], pred: Any) -> set[str]:
    return {r.edoid for r in t.exo.values() if r.rtd in scope and pred(r)}


MBX = {"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox"}


def test_filter_eq_ne_booleans_and_case_insensitive_names(ro: Tenant) -> None:
    assert _ids(ro, "Get-Mailbox", "isdirsynced -eq $true") == _truth(ro, MBX, lambda r: r.dir_synced)
    assert _ids(ro, "Get-Mailbox", "IsDirSynced -eq $false") == _truth(ro, MBX, lambda r: not r.dir_synced)
    assert _ids(ro, "Get-Mailbox", "IsExchangeCloudManaged -ne $true") == _truth(
        ro, MBX, lambda r: not r.cloud_managed)
    assert _ids(ro, "Get-Mailbox", "RecipientTypeDetails -eq 'sharedmailbox'") == _truth(
        ro, MBX, lambda r: r.rtd == "SharedMailbox")


def test_filter_like_notlike_and_quotes(ro: Tenant) -> None:
    assert _ids(ro, "Get-Mailbox", 'UserPrincipalName -like "a*"') == _truth(
        ro, MBX, lambda r: r.upn.lower().startswith("a"))
    assert _ids(ro, "Get-Mailbox", "DisplayName -notlike '*son*'") == _truth(
        ro, MBX, lambda r: "son" not in r.display_name.lower())
    assert _ids(ro, "Get-Mailbox", "EmailAddresses -like 'x500:*'") == _truth(
        ro, MBX, lambda r: any(p.lower().startswith("x500:") for p in r.proxies))


def test_filter_and_or_not_parentheses_and_null(ro: Tenant) -> None:
    got = _ids(ro, "Get-Mailbox",
               "(IsDirSynced -eq $true -and -not (IsExchangeCloudManaged -eq $true)) -or RecipientTypeDetails -eq 'RoomMailbox'")
    assert got == _truth(ro, MBX, lambda r: (r.dir_synced and not r.cloud_managed) or r.rtd == "RoomMailbox")
    assert _ids(ro, "Get-Mailbox", "CustomAttribute1 -eq $null") == _truth(
        ro, MBX, lambda r: not (r.ca or {}).get(1))
    assert _ids(ro, "Get-Mailbox", "CustomAttribute1 -ne $null") == _truth(ro, MBX, lambda r: bool((r.ca or {}).get(1)))


def test_filter_previous_recipient_type_details_on_get_user(ro: Tenant) -> None:
    users = {"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox", "MailUser", "User"}
    assert _ids(ro, "Get-User", "PreviousRecipientTypeDetails -eq 'UserMailbox'") == _truth(
        ro, users, lambda r: r.prev_rtd == "UserMailbox")
    assert _ids(ro, "Get-User", "PreviousRecipientTypeDetails -ne 'None'") == _truth(
        ro, users, lambda r: r.prev_rtd is not None)


def test_filter_dates_compare(ro: Tenant) -> None:
    cut = NOW - timedelta(days=2)
    got = _ids(ro, "Get-Mailbox", f"WhenChanged -gt '{cut:%Y-%m-%dT%H:%M:%SZ}'")
    assert got == _truth(ro, MBX, lambda r: r.when_changed > cut)


@pytest.mark.parametrize("flt", ["Foo -eq 1", "ExchangeGuid -eq 'x'"])
def test_filter_unknown_property_is_invalid_argument(ro: Tenant, flt: str) -> None:
    cmdlet = "Get-User"  # Get-User has no ExchangeGuid property
    err = _err(ro, cmdlet, {"Filter": flt})
    assert err.category == "InvalidArgument" and "is not a recognized filterable property" in err.message


@pytest.mark.parametrize("flt", ["IsDirSynced -eq", "(IsDirSynced -eq $true", "IsDirSynced -bogus 1", "-and"])
def test_filter_syntax_errors_are_invalid_argument(ro: Tenant, flt: str) -> None:
    assert _err(ro, "Get-Mailbox", {"Filter": flt}).category == "InvalidArgument"


# ----------------------------------------------------------------------------- ResultSize, RTD
def test_default_result_size_is_1000_with_a_warning(ro: Tenant) -> None:
    rows = ro.invoke("Get-User", {})
    assert len(rows) == 1000
    assert ro.last_warnings == ["There are more results available than are currently displayed. To view them, "
                                "increase the value for the ResultSize parameter."]
    everything = ro.invoke("Get-User", {"ResultSize": "Unlimited"})
    assert len(everything) == len(ro.exo) and ro.last_warnings == []
    assert len(ro.invoke("Get-User", {"ResultSize": 7})) == 7


def test_recipient_type_details_parameter_takes_a_list(ro: Tenant) -> None:
    rows = ro.invoke("Get-Mailbox", {"RecipientTypeDetails": ["RoomMailbox", "EquipmentMailbox"],
                                     "ResultSize": "Unlimited"})
    assert {r["RecipientTypeDetails"] for r in rows} == {"RoomMailbox", "EquipmentMailbox"}
    assert _err(ro, "Get-Mailbox", {"RecipientTypeDetails": "Bogus"}).category == "InvalidArgument"


def test_records_use_exchange_names_and_python_types(ro: Tenant) -> None:
    rec = ro.invoke("Get-Mailbox", {"ResultSize": 1})[0]
    for key in ("ExternalDirectoryObjectId", "Guid", "ExchangeGuid", "ArchiveGuid", "EmailAddresses",
                "IsExchangeCloudManaged", "CustomAttribute15", "ExtensionCustomAttribute5", "WhenChangedUTC"):
        assert key in rec
    assert isinstance(rec["EmailAddresses"], list) and isinstance(rec["WhenChanged"], datetime)
    assert rec["WhenChanged"].tzinfo is not None and rec["Guid"] == rec["Guid"].lower()
    user = ro.invoke("Get-User", {"ResultSize": 1})[0]
    assert user["PreviousRecipientTypeDetails"] in ("None", "UserMailbox")


def test_lazy_query_pages_reflect_state_at_read_time(rw: Tenant) -> None:
    rs = rw.query("Get-Mailbox", {"ResultSize": "Unlimited"})
    assert len(rs) == len(rw.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}))
    assert rs[0:5] == rw.invoke("Get-Mailbox", {"ResultSize": 5})


# ----------------------------------------------------------------------------- errors
def test_unknown_cmdlet_fails_like_powershell(ro: Tenant) -> None:
    err = _err(ro, "Get-Mailboxx", {})
    assert err.error_type == "CommandNotFoundException"
    assert err.message.startswith("The term 'Get-Mailboxx' is not recognized as the name of a cmdlet")


def test_unknown_parameter_fails_like_powershell(ro: Tenant) -> None:
    err = _err(ro, "Get-Mailbox", {"Idenity": "x"})
    assert err.error_type == "ParameterBindingException" and err.category == "InvalidArgument"
    assert err.message == "A parameter cannot be found that matches parameter name 'Idenity'."


def test_parameter_names_are_case_insensitive(ro: Tenant) -> None:
    assert len(ro.invoke("get-mailbox", {"resultsize": 2})) == 2


# ----------------------------------------------------------------------------- Set-Mailbox
def test_flip_sets_the_flag_bumps_when_changed_and_returns_nothing(rw: Tenant) -> None:
    r = _synced_mailbox(rw)
    before = r.when_changed
    later = NOW + timedelta(hours=1)
    rw.set_clock(lambda: later)
    assert rw.invoke("Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": True}) == []
    rec = rw.invoke("Get-Mailbox", {"Identity": r.edoid})[0]
    assert rec["IsExchangeCloudManaged"] is True and rec["WhenChanged"] == later != before
    rw.invoke("Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": "$true"})
    assert rw.last_warnings and "no settings" in rw.last_warnings[0]


def test_flip_must_be_alone(rw: Tenant) -> None:
    r = _synced_mailbox(rw)
    err = _err(rw, "Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": True, "CustomAttribute1": "x"})
    assert err.category == "InvalidArgument" and not r.cloud_managed


@pytest.mark.parametrize("value", [None, "", "maybe"])
def test_flip_with_a_null_or_non_boolean_value_is_refused_and_changes_nothing(rw: Tenant, value: object) -> None:
    r = _synced_mailbox(rw)
    assert not r.cloud_managed
    err = _err(rw, "Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": value})
    assert err.category == "InvalidData" and "System.Boolean" in err.message and not r.cloud_managed


def test_flip_refuses_cloud_only_mailboxes(rw: Tenant) -> None:
    r = _one(rw, lambda x: x.rtd == "UserMailbox" and not x.dir_synced)
    err = _err(rw, "Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": True})
    assert err.category == "InvalidOperation" and "cloud-only" in err.message and not r.cloud_managed


def test_flip_refuses_mail_users(rw: Tenant) -> None:
    mu = _one(rw, lambda x: x.rtd == "MailUser")
    assert _err(rw, "Set-Mailbox", {"Identity": mu.edoid, "IsExchangeCloudManaged": True}).category == "ObjectNotFound"


def test_synced_attributes_are_read_only_until_cloud_managed(rw: Tenant) -> None:
    r = _synced_mailbox(rw)
    err = _err(rw, "Set-Mailbox", {"Identity": r.edoid, "CustomAttribute7": "cloud"})
    assert "out of the current user's write scope" in err.message
    rw.invoke("Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": True})
    rw.invoke("Set-Mailbox", {"Identity": r.edoid, "CustomAttribute7": "cloud",
                              "EmailAddresses": {"Add": ["smtp:extra@contoso.com"]}})
    rec = rw.invoke("Get-Mailbox", {"Identity": r.edoid})[0]
    assert rec["CustomAttribute7"] == "cloud" and "smtp:extra@contoso.com" in rec["EmailAddresses"]
    assert rw.invoke("Get-Mailbox", {"Identity": "extra@contoso.com"})[0]["Guid"] == r.guid


def test_duplicate_proxy_address_is_refused(rw: Tenant) -> None:
    a = _one(rw, lambda x: x.rtd == "UserMailbox" and not x.dir_synced)
    b = _synced_mailbox(rw)
    err = _err(rw, "Set-Mailbox", {"Identity": a.edoid, "EmailAddresses": {"Add": "smtp:" + b.proxies[0][5:]}})
    assert "is already being used by the proxy addresses" in err.message


# ----------------------------------------------------------------------------- Set-User
def test_clear_previous_mailbox_info_only_where_valid(rw: Tenant) -> None:
    stale = _one(rw, lambda x: x.rtd == "MailUser" and x.prev_rtd == "UserMailbox")
    plain = _one(rw, lambda x: x.rtd == "MailUser" and x.prev_rtd is None)
    mbx = _synced_mailbox(rw)
    for target in (plain, mbx):
        err = _err(rw, "Set-User", {"Identity": target.edoid, "PermanentlyClearPreviousMailboxInfo": True})
        assert err.category == "InvalidOperation"
    assert rw.invoke("Set-User", {"Identity": stale.edoid, "PermanentlyClearPreviousMailboxInfo": True}) == []
    assert rw.invoke("Get-User", {"Identity": stale.edoid})[0]["PreviousRecipientTypeDetails"] == "None"
    err = _err(rw, "Set-User", {"Identity": stale.edoid, "PermanentlyClearPreviousMailboxInfo": True})
    assert err.category == "InvalidOperation"  # once cleared, there is nothing left to clear


# ----------------------------------------------------------------------------- organization config
def test_tenant_default_round_trip(rw: Tenant) -> None:
    assert rw.invoke("Get-OrganizationConfig", {})[0]["ExchangeAttributesCloudManagedByDefault"] is False
    rw.invoke("Set-OrganizationConfig", {"ExchangeAttributesCloudManagedByDefault": True})
    assert rw.invoke("Get-OrganizationConfig", {})[0]["ExchangeAttributesCloudManagedByDefault"] is True
    rw.invoke("Set-OrganizationConfig", {"ExchangeAttributesServerManagedByDefault": True})
    assert rw.invoke("Get-OrganizationConfig", {})[0]["ExchangeAttributesCloudManagedByDefault"] is False
    assert _err(rw, "Set-OrganizationConfig", {"ExchangeAttributesCloudManagedByDefault": True,
                                               "ExchangeAttributesServerManagedByDefault": True})


# ----------------------------------------------------------------------------- on-prem side
def test_onprem_get_cmdlets_split_local_and_remote_mailboxes(ro: Tenant) -> None:
    local = ro.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, side="onprem")
    remote = ro.invoke("Get-RemoteMailbox", {"ResultSize": "Unlimited"}, side="onprem")
    assert {r["RecipientTypeDetails"] for r in local} <= {"UserMailbox", "SharedMailbox", "RoomMailbox",
                                                          "EquipmentMailbox"}
    assert {r["RecipientTypeDetails"] for r in remote} <= {"RemoteUserMailbox", "RemoteSharedMailbox",
                                                           "RemoteRoomMailbox", "RemoteEquipmentMailbox"}
    assert len(local) + len(remote) == len(ro.onprem_records())
    assert all(r["RemoteRoutingAddress"].startswith("SMTP:") for r in remote)


def test_ad_user_by_identity_and_filter(ro: Tenant) -> None:
    a = next(x for x in ro.ad_users.values() if x.rtd == "RemoteUserMailbox")
    by_filter = ro.invoke("Get-ADUser", {"Filter": f"UserPrincipalName -eq '{a.upn}'"}, side="onprem")
    assert [u["ObjectGUID"] for u in by_filter] == [a.guid]
    for form in (a.guid, a.sam, a.dn):
        assert ro.invoke("Get-ADUser", {"Identity": form}, side="onprem")[0]["SamAccountName"] == a.sam
    assert by_filter[0]["msDS-ExternalDirectoryObjectId"] == f"User_{a.entra_id}"
    err = _err(ro, "Get-ADUser", {"Identity": a.upn}, side="onprem")  # the AD module takes no UPN as -Identity
    assert err.error_type == "ADIdentityNotFoundException"


def test_opath_quoting_wildcards_barewords_and_numbers() -> None:
    from exocm.sandbox.opath import compile_filter

    props = {"displayname": lambda o: o["DisplayName"], "n": lambda o: o["N"], "emailaddresses": lambda o: o["E"]}
    obrien = {"DisplayName": "Sean O'Brien", "N": 5, "E": ["SMTP:sean@contoso.com", "smtp:s.ob@contoso.com"]}
    other = {"DisplayName": 'Ann "Q" Lee', "N": 12, "E": []}

    def match(flt: str) -> list[bool]:
        pred = compile_filter(flt, props)
        return [pred(obrien), pred(other)]

    assert match("DisplayName -eq 'Sean O''Brien'") == [True, False]
    assert match('DisplayName -eq "Ann ""Q"" Lee"') == [False, True]
    assert match("DisplayName -like 'S*O*n'") == [True, False]
    assert match("N -gt 10") == [False, True]
    assert match("N -eq 5") == [True, False]
    assert match("EmailAddresses -eq 'smtp:S.OB@contoso.com'") == [True, False]
    assert match("EmailAddresses -eq $null") == [False, True]
    assert match("-not (N -le 5) -or DisplayName -like '*brien'") == [True, True]
    assert match("DisplayName -ne sean") == [True, True]  # a bare word is a string value
