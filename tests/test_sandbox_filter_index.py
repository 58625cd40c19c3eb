"""The sandbox answers filters from indexes with exactly what a scan of the tenant returns."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from exocm.sandbox.cmdlets_exo import FLIP_TYPES, USER_SCOPE, _view
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.licensing import E3
from exocm.sandbox.objects import ExoRecipient
from exocm.sandbox.opath import compile_filter
from exocm.sandbox.tenant import Tenant
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Values where str.lower() and re.IGNORECASE disagree or that are not plain text.
ODD_NAMES = ("Åsa Öberg", "İlker Kaya", "ſam", "\u212aelvin", "KELVIN", "Sam", "", "ÅSA ÖBERG", "straße")


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    """A small tenant with awkward values planted: non-ASCII names, upper-case ids, empty aliases."""
    t = generate_tenant(400, 3, clock=lambda: NOW)
    objs = list(t.exo.values())
    for k, name in enumerate(ODD_NAMES):
        with t.editing_exo(objs[k * 7]) as r:
            r.display_name = name
            r.alias = name or None
            r.upn = (name or "x") + "@Contoso.com"
    with t.editing_exo(objs[3]) as r:
        r.ca = {1: "ABC-1", 2: "\u212a"}
    with t.editing_exo(objs[5]) as r:
        r.ca = {1: "abc-2"}
    return t


def _scan(t: Tenant, cmdlet: str, flt: str) -> list[str]:
    """What the tenant returned before indexes: every object, in order, through the predicate."""
    kind, scope = {"Get-Mailbox": ("mailbox", FLIP_TYPES), "Get-User": ("user", USER_SCOPE)}[cmdlet]
    pred = compile_filter(flt, _view(t, kind).filterable)
    return [r.edoid for r in t.exo.values() if r.rtd in scope and pred(r)]


def _ids(t: Tenant, cmdlet: str, flt: str) -> list[str]:
    return [x["ExternalDirectoryObjectId"] for x in t.invoke(cmdlet, {"Filter": flt, "ResultSize": "Unlimited"})]


PROPS = ("ExternalDirectoryObjectId", "DisplayName", "Alias", "UserPrincipalName", "RecipientTypeDetails",
         "RecipientType", "CustomAttribute1", "CustomAttribute2", "EmailAddresses", "IsDirSynced", "WhenChanged")
VALUES = ("0*", "A*", "a*", "ab*", "abc-1", "ABC*", "*", "**", "", "s*", "S*", "k*", "K*", "\u212a*", "\u212a",
          "åsa*", "ÅSA ÖBERG", "İ*", "i*", "usermailbox", "MailUser", "user*", "True", "$true", "smtp:*",
          "*son*", "x'y", "Straße", "STRASSE")


USER_PROPS = ("ExternalDirectoryObjectId", "DisplayName", "UserPrincipalName", "RecipientTypeDetails",
              "RecipientType", "PreviousRecipientTypeDetails", "FirstName", "IsDirSynced")


@st.composite
def filters(draw: st.DrawFn, props: tuple[str, ...], depth: int = 2) -> str:
    """Random OPATH text over `props` and the awkward values above."""
    if depth == 0 or draw(st.booleans()):
        prop = draw(st.sampled_from(props))
        op = draw(st.sampled_from(("-eq", "-ne", "-like", "-notlike", "-eq", "-like")))
        if draw(st.integers(0, 9)) == 0:
            return f"{prop} {op} $null"
        value = draw(st.sampled_from(VALUES)).replace("'", "''")
        return f"{prop} {op} '{value}'"
    kind = draw(st.sampled_from(("and", "or", "not")))
    if kind == "not":
        return f"-not ({draw(filters(props, depth - 1))})"
    parts = draw(st.lists(filters(props, depth - 1), min_size=2, max_size=4))
    return f" -{kind} ".join(f"({p})" for p in parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), cmdlet=st.sampled_from(("Get-Mailbox", "Get-User")))
def test_indexed_filters_return_what_a_scan_returns_in_the_same_order(
        tenant: Tenant, data: st.DataObject, cmdlet: str) -> None:
    flt = data.draw(filters(PROPS if cmdlet == "Get-Mailbox" else USER_PROPS), label="filter")
    assert _ids(tenant, cmdlet, flt) == _scan(tenant, cmdlet, flt)


@pytest.mark.parametrize("flt", [
    "ExternalDirectoryObjectId -like '3*'",
    "-not ((ExternalDirectoryObjectId -like '0*') -or (ExternalDirectoryObjectId -like '1*'))",
    "(IsDirSynced -eq $true) -and (ExternalDirectoryObjectId -like 'a*')",
    "DisplayName -like 'k*'", "DisplayName -eq 'kelvin'", "DisplayName -like 's*'", "Alias -eq ''",
    "CustomAttribute2 -eq 'k'", "UserPrincipalName -like 'İ*'", "DisplayName -eq 'STRASSE'",
])
def test_awkward_values_match_as_exchange_would(tenant: Tenant, flt: str) -> None:
    got = _ids(tenant, "Get-Mailbox", flt)
    assert got == _scan(tenant, "Get-Mailbox", flt)


def test_the_partition_filters_need_no_scan_of_the_tenant(tenant: Tenant) -> None:
    from exocm.sandbox.opath import parse_filter

    view = _view(tenant, "mailbox")
    node = parse_filter("-not ((ExternalDirectoryObjectId -like '0*') -or (ExternalDirectoryObjectId -like '1*'))"
                        " -and (ExternalDirectoryObjectId -like '2*')", view.filterable)
    hits, residual = node.candidates(tenant.exo_filter_index().bind(view.filterable, view.sources))
    assert residual is None and hits is not None
    assert len(hits) == sum(1 for r in tenant.exo.values() if r.edoid.startswith("2"))


@pytest.fixture
def rw() -> Iterator[Tenant]:
    """A private tenant for tests that write."""
    yield generate_tenant(300, 5, clock=lambda: NOW)


def _first(t: Tenant, pred: Any) -> ExoRecipient:
    return next(r for r in t.exo.values() if pred(r))


def test_indexes_follow_edits_writes_syncs_and_new_objects(rw: Tenant) -> None:
    # Build the indexes, then change the tenant four ways; every answer must be current.
    assert _ids(rw, "Get-Mailbox", "DisplayName -like 'zz*'") == []
    target = _first(rw, lambda r: r.rtd == "UserMailbox")
    with rw.editing_exo(target) as r:
        r.display_name = "ZZ Top"
    assert _ids(rw, "Get-Mailbox", "DisplayName -like 'zz*'") == [target.edoid]

    cloud = _first(rw, lambda r: r.rtd == "UserMailbox" and not r.dir_synced)
    assert _ids(rw, "Get-Mailbox", "CustomAttribute7 -eq 'fresh'") == []
    rw.invoke("Set-Mailbox", {"Identity": cloud.edoid, "CustomAttribute7": "Fresh"})
    assert _ids(rw, "Get-Mailbox", "CustomAttribute7 -eq 'fresh'") == [cloud.edoid]

    # A licence, then a sync cycle: the plain User becomes a UserMailbox (sync.py's provisioning pass).
    flt = "RecipientTypeDetails -eq 'UserMailbox'"
    before = _ids(rw, "Get-User", flt)
    hire = _first(rw, lambda r: r.rtd == "User" and r.dir_synced
                  and not rw.has_exchange_license(rw.entra_users[r.edoid]))
    rw.graph_assign_license(hire.edoid, E3.sku_id)
    rw.run_sync_cycle()
    assert hire.rtd == "UserMailbox" and hire.edoid not in before
    after = _ids(rw, "Get-User", flt)
    assert hire.edoid in after and after == _scan(rw, "Get-User", flt)

    clone = ExoRecipient(**{f: getattr(target, f) for f in target.__slots__})  # type: ignore[attr-defined]
    clone.edoid = "ffffffff-0000-4000-8000-000000000001"
    clone.guid = "ffffffff-0000-4000-8000-000000000002"
    clone.name = clone.display_name = "Newcomer"
    clone.upn = "newcomer@contoso.com"
    clone.alias, clone.proxies, clone.legacy_dn = "newcomer", ["SMTP:newcomer@contoso.com"], None
    rw.add_exo(clone)
    assert clone.edoid in _ids(rw, "Get-Mailbox", "ExternalDirectoryObjectId -like 'ffffffff*'")
    assert _ids(rw, "Get-Mailbox", "ExternalDirectoryObjectId -like 'f*'") == _scan(
        rw, "Get-Mailbox", "ExternalDirectoryObjectId -like 'f*'")
