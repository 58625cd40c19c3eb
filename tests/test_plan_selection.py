"""Selection: identities from files resolve like Exchange resolves -Identity; filters are a safe grammar."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from exocm.core.inventory.fetch import records_to_frame
from exocm.core.plan.planfile import EXCLUDED, OVER_CAP, TYPE_NOT_SELECTED, UNSUPPORTED_TYPE, build_plan
from exocm.core.plan.selection import (
    FilterError,
    SelectionError,
    apply_exclude,
    apply_types,
    evaluate_filter,
    select_all_dirsynced,
    select_from_csv,
    select_where,
)
from hypothesis import given, settings
from hypothesis import strategies as st

WHEN = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


def _mailbox(n: int, rtd: str = "UserMailbox", **extra: Any) -> dict[str, Any]:
    edoi = f"{n:08x}-0000-4000-8000-{n:012x}"
    record: dict[str, Any] = {
        "ExternalDirectoryObjectId": edoi, "Guid": f"{n:08x}-1111-4000-8000-{n:012x}",
        "ExchangeGuid": f"{n:08x}-2222-4000-8000-{n:012x}", "UserPrincipalName": f"user{n}@contoso.com",
        "PrimarySmtpAddress": f"user{n}@contoso.com", "Alias": f"user{n}", "DisplayName": f"User {n}",
        "EmailAddresses": [f"SMTP:user{n}@contoso.com", f"smtp:u{n}@contoso.mail.onmicrosoft.com"],
        "RecipientType": "UserMailbox", "RecipientTypeDetails": rtd, "IsDirSynced": True,
        "IsExchangeCloudManaged": False, "WhenChanged": WHEN, "WhenChangedUTC": WHEN,
        "HiddenFromAddressListsEnabled": False, "CustomAttribute1": f"dept{n % 3}",
    }
    record.update(extra)
    return record


@pytest.fixture
def frame() -> pd.DataFrame:
    records = [_mailbox(n) for n in range(1, 9)]
    records.append(_mailbox(9, "SharedMailbox"))
    records.append(_mailbox(10, "RoomMailbox", IsDirSynced=False))
    records.append(_mailbox(11, "UserMailbox", IsExchangeCloudManaged=True))
    # two people share one secondary proxy (a classic mess): that address is ambiguous
    records[0]["EmailAddresses"].append("smtp:helpdesk@contoso.com")
    records[1]["EmailAddresses"].append("smtp:helpdesk@contoso.com")
    return records_to_frame(records, [])


def _csv(path: Path, text: str, encoding: str = "utf-8-sig") -> Path:
    path.write_text(text, encoding=encoding, newline="")
    return path


def test_every_identity_form_resolves_case_insensitively_and_problems_are_reported_by_line(
        frame: pd.DataFrame, tmp_path: Path) -> None:
    lines = [
        '#TYPE Selected.System.Management.Automation.PSCustomObject',
        '"Identity";"Note"',
        '"00000001-0000-4000-8000-000000000001";"EDOI"',
        '"USER2@CONTOSO.COM";"UPN, upper case"',
        '"u3@contoso.mail.onmicrosoft.com";"secondary proxy"',
        '"smtp:user4@contoso.com";"proxy with prefix"',
        '"user5";"alias"',
        '"{00000006-2222-4000-8000-000000000006}";"ExchangeGuid in braces"',
        '"00000007-1111-4000-8000-000000000007";"Guid"',
        '"nobody@contoso.com";"no such mailbox"',
        '"helpdesk@contoso.com";"two mailboxes"',
        '"user2@contoso.com";"again"',
        '"";"empty"',
    ]
    path = _csv(tmp_path / "targets.csv", "\r\n".join(lines) + "\r\n", "utf-16")
    selection = select_from_csv(frame, path)
    assert selection.source["column"] == "Identity"
    assert [i[:8] for i in selection.identities] == [f"0000000{n}" for n in range(1, 8)]
    problems = {(i.line, i.problem) for i in selection.issues}
    assert problems == {(10, "unmatched"), (11, "ambiguous"), (12, "duplicate"), (13, "empty")}
    ambiguous = next(i for i in selection.issues if i.problem == "ambiguous")
    assert len(ambiguous.candidates) == 2 and "line 11" in ambiguous.message()


def test_identity_column_defaults_in_order_and_can_be_named(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = _csv(tmp_path / "t.csv", "Alias,UserPrincipalName,Mail\nuser1,user2@contoso.com,user3@contoso.com\n")
    assert select_from_csv(frame, path).identities[0].startswith("00000002")  # UPN before Mail and Alias
    assert select_from_csv(frame, path, "mail").identities[0].startswith("00000003")
    with pytest.raises(SelectionError, match="no column 'Nope'"):
        select_from_csv(frame, path, "Nope")
    plain = _csv(tmp_path / "list.txt", "user4\nuser5@contoso.com\n")
    assert [i[:8] for i in select_from_csv(frame, plain).identities] == ["00000004", "00000005"]


@pytest.mark.parametrize(("expression", "expected"), [
    ('RecipientTypeDetails == "SharedMailbox" and IsDirSynced', {9}),
    ("RecipientTypeDetails -eq 'sharedmailbox' -or -not IsDirSynced", {9, 10}),
    ("IsExchangeCloudManaged -eq $true", {11}),
    ("EmailAddresses -like '*helpdesk*'", {1, 2}),
    ("CustomAttribute1 in ['dept1', 'DEPT2'] and not (Alias == 'user2')", {1, 4, 5, 7, 8, 10, 11}),
    ("UserPrincipalName -notlike 'user1*' and RecipientTypeDetails != 'UserMailbox'", {9}),
    ("WhenChanged < '2026-02-01' and Alias -eq 'USER3'", {3}),
    ("HiddenFromAddressListsEnabled", set()),
])
def test_filter_expressions_select_what_they_say(frame: pd.DataFrame, expression: str, expected: set[int]) -> None:
    selected = select_where(frame, expression).identities
    assert {int(i[:8], 16) for i in selected} == expected


@pytest.mark.parametrize(("expression", "words"), [
    ("Displayname == 'x' and Foo == 1", "unknown column 'Foo'"),
    ("__import__('os')", "unknown column '__import__'"),
    ("DisplayName.__class__", "unexpected character '.'"),
    ("IsDirSynced ==", "ends too early"),
    ("IsDirSynced -bogus 1", "unknown operator '-bogus'"),
    ("(" * 200 + "IsDirSynced" + ")" * 200, "nested more than"),
    ("", "empty"),
    ("IsDirSynced IsDirSynced", "unexpected 'IsDirSynced'"),
])
def test_bad_filters_give_one_clear_error(frame: pd.DataFrame, expression: str, words: str) -> None:
    with pytest.raises(FilterError, match=words.replace("(", r"\(").replace(".", r"\.")):
        evaluate_filter(frame, expression)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_as_a_filter_either_selects_or_raises_filter_error(text: str) -> None:
    frame = records_to_frame([_mailbox(1), _mailbox(2, "SharedMailbox")], [])
    try:
        mask = evaluate_filter(frame, text)
    except FilterError:
        return
    assert len(mask) == 2 and mask.dtype == bool


def test_exclude_types_and_max_become_skip_rows_with_their_reasons(frame: pd.DataFrame, tmp_path: Path) -> None:
    csv = _csv(tmp_path / "t.csv", "Identity\n" + "\n".join(f"user{n}" for n in (1, 2, 3, 4, 5, 9, 10)) + "\n")
    exclude = _csv(tmp_path / "ex.txt", "user2@contoso.com\nghost@contoso.com\n")
    selection = select_from_csv(frame, csv)
    apply_exclude(selection, frame, exclude)
    apply_types(selection, frame, ["UserMailbox"])
    plan = build_plan(frame, selection.identities, True, tenant="contoso", bridge="rest",
                      preset_skips=selection.preset_skips, max_changes=2,
                      input_report=[i.to_json() for i in selection.issues])
    by_alias = {r.upn.split("@")[0]: (r.action, r.reason) for r in plan.rows}
    assert by_alias == {
        "user1": ("set", ""), "user2": ("skip", EXCLUDED), "user3": ("set", ""), "user4": ("skip", OVER_CAP),
        "user5": ("skip", OVER_CAP), "user9": ("skip", TYPE_NOT_SELECTED), "user10": ("skip", TYPE_NOT_SELECTED),
    }
    assert plan.input_report[0]["problem"] == "unmatched" and "ghost" in plan.input_report[0]["value"]
    everyone = select_all_dirsynced(frame)
    apply_types(everyone, frame, ["SharedMailbox", "RoomMailbox"])
    assert [i[:8] for i in everyone.identities] == ["00000009"]  # a filter just narrows; no skip rows
    rows = build_plan(frame, [frame.index[9]], True, tenant="c", bridge="rest").rows
    assert rows[0].reason == UNSUPPORTED_TYPE or rows[0].reason == "not_dirsynced"
