"""The sandbox's Exchange Online REST endpoint, driven by httpx over loopback TLS with tokens
from its own token endpoint (msal)."""
from __future__ import annotations

import datetime as dt
import fnmatch
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sandbox_clients import (
    app_token,
    batch_url,
    cmdlet_body,
    detail_message,
    headers,
    invoke,
    invoke_all,
    invoke_url,
    rest_client,
)


@pytest.fixture(scope="module")
def shared(sandbox: Any) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """Info, a token, and every mailbox of the shared sandbox (read through REST)."""
    info = sandbox.info
    token = app_token(info)
    with rest_client(info) as client:
        mailboxes, _ = invoke_all(client, info, token, "Get-Mailbox", ResultSize="Unlimited")
    return info, token, mailboxes


@pytest.fixture
def client(sandbox: Any) -> Any:
    with rest_client(sandbox.info) as c:
        yield c


# -- paging -----------------------------------------------------------------------------------
def test_paging_over_many_pages_yields_every_record_exactly_once(sandbox: Any, shared: Any, client: Any) -> None:
    info, token, _ = shared
    truth = {r["ExternalDirectoryObjectId"] for r in sandbox.tenant.invoke("Get-Recipient",
                                                                             {"ResultSize": "Unlimited"})}
    records, pages = invoke_all(client, info, token, "Get-Recipient", page_size=150, ResultSize="Unlimited")
    ids = [r["ExternalDirectoryObjectId"] for r in records]
    assert pages >= 3
    assert len(ids) == len(set(ids)) == len(truth)
    assert set(ids) == truth


def test_next_link_is_absolute_on_the_same_host_and_a_retried_link_returns_the_same_page(
        shared: Any, client: Any) -> None:
    info, token, _ = shared
    first = invoke(client, info, token, "Get-Mailbox", page_size=100, ResultSize="Unlimited").json()
    link = first["@odata.nextLink"]
    parts = urlsplit(link)
    assert parts.scheme == "https" and f"{parts.scheme}://{parts.netloc}" == info["rest_base_url"]
    body = cmdlet_body("Get-Mailbox", ResultSize="Unlimited")
    again = client.post(link, json=body, headers=headers(token)).json()
    retried = client.post(link, json=body, headers=headers(token)).json()
    by_get = client.get(link, headers=headers(token)).json()
    ids = [[r["ExternalDirectoryObjectId"] for r in page["value"]] for page in (again, retried, by_get)]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 100
    assert not set(ids[0]) & {r["ExternalDirectoryObjectId"] for r in first["value"]}


def test_unknown_skiptoken_fails_cleanly(shared: Any, client: Any) -> None:
    info, token, _ = shared
    resp = client.post(f"{invoke_url(info)}?$skiptoken=nope.3", json=cmdlet_body("Get-Mailbox"),
                       headers=headers(token))
    assert resp.status_code == 400 and resp.json()["error"]["message"]


def test_result_size_truncation_warning_reaches_adminapi_warnings(shared: Any, client: Any) -> None:
    info, token, _ = shared
    data = invoke(client, info, token, "Get-Mailbox", ResultSize=3).json()
    assert len(data["value"]) == 3 and "@odata.nextLink" not in data
    assert any("more results available" in w for w in data["@adminapi.warnings"])


def test_records_are_json_ready_with_iso_dates_and_request_id_echoed(shared: Any, client: Any) -> None:
    info, token, _ = shared
    resp = client.post(invoke_url(info), json=cmdlet_body("Get-Mailbox", ResultSize=1),
                       headers=headers(token, **{"client-request-id": "abc-123"}))
    assert resp.headers["client-request-id"] == "abc-123"
    record = resp.json()["value"][0]
    assert dt.datetime.fromisoformat(record["WhenChangedUTC"].replace("Z", "+00:00")).tzinfo is not None
    assert isinstance(record["IsDirSynced"], bool) and isinstance(record["EmailAddresses"], list)
    assert resp.json()["@odata.context"].startswith(info["rest_base_url"])


# -- errors ------------------------------------------------------------------------------------
def test_not_found_identity_is_an_exo_error_with_details(shared: Any, client: Any) -> None:
    info, token, _ = shared
    resp = invoke(client, info, token, "Get-Mailbox", Identity="nobody-at-all@example.org")
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["message"] == "Error executing cmdlet"
    error_id, exc_type, message = detail_message(resp).split("|", 2)
    assert error_id.startswith("Ex") and exc_type.endswith("ManagementObjectNotFoundException")
    assert "nobody-at-all@example.org" in message
    assert error["innererror"]["internalException"]["message"] == message


@pytest.mark.parametrize(("cmdlet", "params", "exception"), [
    ("Get-Frobnicator", {}, "CommandNotFoundException"),
    ("Get-Mailbox", {"NoSuchParameter": 1}, "ParameterBindingException"),
    ("Get-Mailbox", {"ResultSize": "lots"}, "ParameterBindingException"),
    ("Get-Mailbox", {"Filter": "IsDirSynced -eq"}, ""),
])
def test_unknown_cmdlets_parameters_and_bad_values_fail_the_exo_way_never_500(
        shared: Any, client: Any, cmdlet: str, params: dict[str, Any], exception: str) -> None:
    info, token, _ = shared
    resp = invoke(client, info, token, cmdlet, **params)
    assert 400 <= resp.status_code < 500
    assert exception in detail_message(resp)


@pytest.mark.parametrize("body", [b"{not json", b'{"CmdletInput": {}}', b'{"CmdletInput": {"CmdletName": "Get-Mailbox",'
                                                                         b' "Parameters": [1]}}'])
def test_malformed_bodies_are_400(shared: Any, client: Any, body: bytes) -> None:
    info, token, _ = shared
    resp = client.post(invoke_url(info), content=body, headers=headers(token))
    assert resp.status_code == 400 and resp.json()["error"]["message"]


# -- bearer tokens -----------------------------------------------------------------------------
def _assert_401(resp: httpx.Response) -> None:
    assert resp.status_code == 401, resp.text
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and "error=" in challenge


def test_missing_and_garbage_tokens_are_401(shared: Any, client: Any) -> None:
    info, token, _ = shared
    body = cmdlet_body("Get-Mailbox", ResultSize=1)
    _assert_401(client.post(invoke_url(info), json=body))
    _assert_401(client.post(invoke_url(info), json=body, headers=headers("not.a.jwt")))
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    _assert_401(client.post(invoke_url(info), json=body, headers=headers(tampered)))


def test_token_for_another_audience_is_401(sandbox: Any, shared: Any, client: Any) -> None:
    info, _, _ = shared
    other = sandbox.issue_token(audience="https://outlook.office365.com")
    _assert_401(invoke(client, info, other, "Get-Mailbox", ResultSize=1))


def test_token_used_on_another_tenant_path_is_401(shared: Any, client: Any) -> None:
    info, token, _ = shared
    resp = client.post(invoke_url(info, tenant="5f0b8a36-0000-4000-8000-000000000000"),
                       json=cmdlet_body("Get-Mailbox", ResultSize=1), headers=headers(token))
    _assert_401(resp)


def test_token_of_another_sandbox_is_401(make_sandbox: Callable[..., Any], shared: Any, client: Any) -> None:
    info, _, _ = shared
    stranger = make_sandbox(size=20)
    _assert_401(invoke(client, info, stranger.issue_token(), "Get-Mailbox", ResultSize=1))


def test_expired_token_is_401_when_the_clock_moves_past_its_expiry(make_sandbox: Callable[..., Any]) -> None:
    now = [time.time()]
    sb = make_sandbox(size=20, clock=lambda: now[0], token_lifetime_s=600)
    info = sb.info
    token = app_token(info)
    with rest_client(info) as c:
        assert invoke(c, info, token, "Get-Mailbox", ResultSize=1).status_code == 200
        now[0] += 601
        _assert_401(invoke(c, info, token, "Get-Mailbox", ResultSize=1))


def test_revoked_tokens_are_401_and_new_ones_work(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(size=20)
    info = sb.info
    token = app_token(info)
    with rest_client(info) as c:
        assert invoke(c, info, token, "Get-Mailbox", ResultSize=1).status_code == 200
        assert sb.revoke_tokens() >= 1
        _assert_401(invoke(c, info, token, "Get-Mailbox", ResultSize=1))
        assert invoke(c, info, app_token(info), "Get-Mailbox", ResultSize=1).status_code == 200


# -- $batch ------------------------------------------------------------------------------------
def _set(info: dict[str, Any], rid: str, identity: str, value: bool, relative: bool = False) -> dict[str, Any]:
    return {"id": rid, "method": "POST", "url": "InvokeCommand" if relative else invoke_url(info),
            "headers": {"Content-Type": "application/json"},
            "body": cmdlet_body("Set-Mailbox", Identity=identity, IsExchangeCloudManaged=value)}


def _flip_candidates(sb: Any, n: int) -> list[str]:
    rows = sb.tenant.invoke("Get-Mailbox", {"Filter": "IsDirSynced -eq $true -and IsExchangeCloudManaged -eq $false",
                                            "ResultSize": n})
    return [r["ExternalDirectoryObjectId"] for r in rows]


def test_batch_with_continue_on_error_answers_each_request(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox()
    info = sb.info
    token = app_token(info)
    good = _flip_candidates(sb, 3)
    requests = [_set(info, "1", good[0], True), _set(info, "2", "no-such-mailbox", True),
                _set(info, "3", good[1], True, relative=True),
                {"id": "4", "method": "POST", "url": invoke_url(info),
                 "body": cmdlet_body("Get-Mailbox", Identity=good[0])}]
    with rest_client(info) as c:
        resp = c.post(batch_url(info), json={"requests": requests},
                      headers=headers(token, Prefer="odata.continue-on-error"))
        assert resp.status_code == 200
        answers = {r["id"]: r for r in resp.json()["responses"]}
        assert [answers[i]["status"] for i in "1234"] == [200, 404, 200, 200]
        assert "ManagementObjectNotFoundException" in answers["2"]["body"]["error"]["details"][0]["message"]
        assert answers["4"]["body"]["value"][0]["IsExchangeCloudManaged"] is True
        for edoid in good[:2]:
            record = invoke(c, info, token, "Get-Mailbox", Identity=edoid).json()["value"][0]
            assert record["IsExchangeCloudManaged"] is True
    assert sb.stats.snapshot()["batch_requests"] == 1


def test_batch_without_continue_on_error_stops_at_the_first_failure(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox()
    info = sb.info
    good = _flip_candidates(sb, 2)
    requests = [_set(info, "a", "no-such-mailbox", True), _set(info, "b", good[0], True)]
    with rest_client(info) as c:
        resp = c.post(batch_url(info), json={"requests": requests}, headers=headers(app_token(info)))
    assert [(r["id"], r["status"]) for r in resp.json()["responses"]] == [("a", 404)]
    assert sb.tenant.invoke("Get-Mailbox", {"Identity": good[0]})[0]["IsExchangeCloudManaged"] is False


def test_batch_of_more_than_ten_requests_is_refused(shared: Any, client: Any) -> None:
    info, token, mailboxes = shared
    requests = [{"id": str(i), "method": "POST", "url": invoke_url(info),
                 "body": cmdlet_body("Get-Mailbox", Identity=m["ExternalDirectoryObjectId"])}
                for i, m in enumerate(mailboxes[:11])]
    resp = client.post(batch_url(info), json={"requests": requests}, headers=headers(token))
    assert resp.status_code == 400 and "10" in resp.json()["error"]["message"]


def test_batch_with_a_repeated_request_id_is_refused_before_anything_runs(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(size=40)
    info = sb.info
    target = _flip_candidates(sb, 1)[0]
    requests = [_set(info, "1", target, True), _set(info, "1", target, False)]
    with rest_client(info) as c:
        resp = c.post(batch_url(info), json={"requests": requests}, headers=headers(app_token(info)))
    assert resp.status_code == 400 and "'1' more than once" in resp.json()["error"]["message"]
    assert sb.tenant.invoke("Get-Mailbox", {"Identity": target})[0]["IsExchangeCloudManaged"] is False


# -- filters and identities end to end ------------------------------------------------------------
def _like(value: Any, pattern: str) -> bool:
    return fnmatch.fnmatchcase(str(value or "").lower(), pattern.lower())


FILTERS: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("IsDirSynced -eq $true", lambda r: r["IsDirSynced"] is True),
    ("IsExchangeCloudManaged -ne $false", lambda r: r["IsExchangeCloudManaged"] is not False),
    ("RecipientTypeDetails -eq 'SharedMailbox'", lambda r: r["RecipientTypeDetails"] == "SharedMailbox"),
    ("DisplayName -like 'a*'", lambda r: _like(r["DisplayName"], "a*")),
    ("DisplayName -notlike '*e*'", lambda r: not _like(r["DisplayName"], "*e*")),
    ("IsDirSynced -eq $true -and RecipientTypeDetails -ne 'UserMailbox'",
     lambda r: r["IsDirSynced"] and r["RecipientTypeDetails"] != "UserMailbox"),
    ("RecipientTypeDetails -eq 'RoomMailbox' -or RecipientTypeDetails -eq 'EquipmentMailbox'",
     lambda r: r["RecipientTypeDetails"] in ("RoomMailbox", "EquipmentMailbox")),
    ("-not (IsDirSynced -eq $true)", lambda r: not r["IsDirSynced"]),
    ("(IsDirSynced -eq $false -or IsExchangeCloudManaged -eq $true) -and -not (DisplayName -like 'z*')",
     lambda r: (not r["IsDirSynced"] or r["IsExchangeCloudManaged"]) and not _like(r["DisplayName"], "z*")),
    ("CustomAttribute1 -eq $null", lambda r: not r["CustomAttribute1"]),
    ("CustomAttribute1 -ne $null", lambda r: bool(r["CustomAttribute1"])),
]


@pytest.mark.parametrize(("expression", "expected"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filter_operators_through_rest_match_the_records(shared: Any, client: Any, expression: str,
                                                         expected: Callable[[dict[str, Any]], bool]) -> None:
    info, token, mailboxes = shared
    want = {r["ExternalDirectoryObjectId"] for r in mailboxes if expected(r)}
    got, _ = invoke_all(client, info, token, "Get-Mailbox", ResultSize="Unlimited", Filter=expression)
    assert {r["ExternalDirectoryObjectId"] for r in got} == want


IDENTITY_FORMS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("ExternalDirectoryObjectId", lambda r: r["ExternalDirectoryObjectId"]),
    ("Guid", lambda r: r["Guid"]),
    ("ExchangeGuid", lambda r: r["ExchangeGuid"]),
    ("UserPrincipalName", lambda r: r["UserPrincipalName"]),
    ("PrimarySmtpAddress", lambda r: r["PrimarySmtpAddress"].upper()),
    ("Alias", lambda r: r["Alias"]),
    ("secondary proxy address", lambda r: next(a.split(":", 1)[1] for a in r["EmailAddresses"]
                                               if a.startswith("smtp:"))),
    ("DistinguishedName", lambda r: r["DistinguishedName"]),
]


@pytest.mark.parametrize(("form", "pick"), IDENTITY_FORMS, ids=[f[0] for f in IDENTITY_FORMS])
def test_identity_forms_through_rest_resolve_the_same_mailbox(shared: Any, client: Any, form: str,
                                                              pick: Callable[[dict[str, Any]], str]) -> None:
    info, token, mailboxes = shared
    target = next(r for r in mailboxes if r["RecipientTypeDetails"] == "UserMailbox"
                  and any(a.startswith("smtp:") for a in r["EmailAddresses"]))
    resp = invoke(client, info, token, "Get-Mailbox", Identity=pick(target))
    assert resp.status_code == 200, resp.text
    assert [r["ExternalDirectoryObjectId"] for r in resp.json()["value"]] == [target["ExternalDirectoryObjectId"]]


def test_next_link_base_knob_makes_a_hostile_service_point_elsewhere(make_sandbox: Callable[..., Any]) -> None:
    # For clients' tests: a nextLink to another host must be refused by the client.
    sb = make_sandbox(size=40)
    sb.knobs.next_link_base_url = "https://attacker.example"
    info = sb.info
    with rest_client(info) as c:
        data = invoke(c, info, app_token(info), "Get-User", page_size=5, ResultSize="Unlimited").json()
    assert data["@odata.nextLink"].startswith("https://attacker.example/adminapi/beta/")
