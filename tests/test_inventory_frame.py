"""The inventory frame and the partition plan: pure functions, no service needed."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from exocm.core.inventory.fetch import (
    _page_to_batch,
    duplicate_keys,
    empty_frame,
    records_to_frame,
    slice_keys,
)
from exocm.core.inventory.partition import (
    HEX_DIGITS,
    REST,
    and_filters,
    complement_filter,
    plan_partitions,
)
from exocm.core.model import INVENTORY_COLUMNS

A = "0a1b2c3d-0000-4000-8000-000000000001"
B = "fb1b2c3d-0000-4000-8000-000000000002"
C = "5c1b2c3d-0000-4000-8000-000000000003"
D = "6d1b2c3d-0000-4000-8000-000000000004"


def _mailbox(edoid: str, **kw: object) -> dict[str, object]:
    record: dict[str, object] = {
        "ExternalDirectoryObjectId": edoid,
        "Guid": "g-" + edoid,
        "RecipientType": "UserMailbox",
        "RecipientTypeDetails": "UserMailbox",
        "IsDirSynced": True,
        "IsExchangeCloudManaged": False,
        "EmailAddresses": ["SMTP:a@contoso.com", "smtp:b@contoso.com"],
        "WhenChanged": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
    record.update(kw)
    return record


def _user(edoid: str, rtd: str, prev: str | None = "None", rt: str | None = None) -> dict[str, object]:
    return {"ExternalDirectoryObjectId": edoid, "Guid": "g-" + edoid, "RecipientTypeDetails": rtd,
            "RecipientType": rt or ("MailUser" if rtd == "MailUser" else "UserMailbox"),
            "PreviousRecipientTypeDetails": prev, "IsDirSynced": True,
            "WhenChanged": datetime(2025, 2, 1, tzinfo=UTC)}


def test_frame_joins_mailboxes_with_get_user_and_adds_mail_users_without_mailbox() -> None:
    frame = records_to_frame(
        [_mailbox(A), _mailbox(B, RecipientTypeDetails="SharedMailbox")],
        [_user(A, "UserMailbox"), _user(C, "MailUser", prev="UserMailbox"), _user(D, "User", rt="User")],
    )
    assert list(frame.columns) == list(INVENTORY_COLUMNS)
    assert set(frame.index) == {A, B, C}  # the plain User D is no recipient
    assert frame.loc[C, "RecipientTypeDetails"] == "MailUser"
    assert frame.loc[C, "PreviousRecipientTypeDetails"] == "UserMailbox"
    assert frame.loc[A, "PreviousRecipientTypeDetails"] == "None"
    assert pd.isna(frame.loc[B, "PreviousRecipientTypeDetails"])  # no Get-User record: unknown, not guessed
    assert pd.isna(frame.loc[C, "IsExchangeCloudManaged"])  # Get-User has no such property


def test_frame_dtypes_are_compact_and_typed() -> None:
    frame = records_to_frame([_mailbox(A, ExtensionCustomAttribute2=["x", "y"])], [])
    assert str(frame["DisplayName"].dtype) == "str"
    assert str(frame["IsDirSynced"].dtype) == "boolean"
    assert str(frame["WhenChanged"].dtype) == "datetime64[us, UTC]"
    assert frame.loc[A, "EmailAddresses"] == ("SMTP:a@contoso.com", "smtp:b@contoso.com")
    assert frame.loc[A, "ExtensionCustomAttribute2"] == ("x", "y")
    assert frame.loc[A, "ExtensionCustomAttribute1"] == ()
    assert frame.loc[A, "IsExchangeCloudManaged"] is False or frame.loc[A, "IsExchangeCloudManaged"] == False  # noqa: E712
    assert frame.index.name is None  # a named index would clash with the column of the same name
    frame.sort_values("ExternalDirectoryObjectId")  # and so sorting by it works


def test_frame_normalises_loose_values_from_hand_built_records() -> None:
    naive = datetime(2025, 1, 1, 12, 0)
    plus_two = datetime(2025, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    frame = records_to_frame(
        [_mailbox(A, IsDirSynced="True", WhenChanged="2025-01-01T12:00:00Z", EmailAddresses="SMTP:x@y.z"),
         _mailbox(B, IsDirSynced="false", WhenChanged=naive, WhenChangedUTC=plus_two, CustomAttribute1=7)],
        [],
    )
    assert bool(frame.loc[A, "IsDirSynced"]) is True and bool(frame.loc[B, "IsDirSynced"]) is False
    stamp = pd.Timestamp("2025-01-01T12:00:00Z")
    assert frame.loc[A, "WhenChanged"] == stamp == frame.loc[B, "WhenChanged"] == frame.loc[B, "WhenChangedUTC"]
    assert frame.loc[A, "EmailAddresses"] == ("SMTP:x@y.z",)
    assert frame.loc[B, "CustomAttribute1"] == "7"


def test_frame_keys_by_guid_when_there_is_no_external_directory_object_id() -> None:
    frame = records_to_frame([_mailbox("", Guid="AB-CD", RecipientTypeDetails="DiscoveryMailbox")], [])
    assert list(frame.index) == ["ab-cd"]


def test_empty_frame_has_every_column() -> None:
    frame = empty_frame()
    assert len(frame) == 0 and list(frame.columns) == list(INVENTORY_COLUMNS)


def test_partition_plan_is_prefixes_plus_complement_anded_with_the_base_filter() -> None:
    plan = plan_partitions("IsDirSynced -eq $true")
    names = [p.name for p in plan.partitions]
    assert names == [*HEX_DIGITS, REST]
    assert plan.partitions[0].filter == "(ExternalDirectoryObjectId -like '0*') -and (IsDirSynced -eq $true)"
    assert plan.partitions[-1].filter == f"(IsDirSynced -eq $true) -and ({complement_filter()})"
    assert complement_filter().startswith("-not ((ExternalDirectoryObjectId -like '0*') -or ")
    assert plan_partitions(None).partitions[0].filter == "ExternalDirectoryObjectId -like '0*'"
    two = plan_partitions(partitions=256)
    assert len(two.partitions) == 257 and two.prefix_count == 256
    assert plan_partitions(partitions=1).is_single
    with pytest.raises(ValueError):
        plan_partitions(partitions=3)


def test_and_filters_skips_empty_parts() -> None:
    assert and_filters(None, "A -eq 1", "") == "A -eq 1"
    assert and_filters(None) is None
    assert and_filters("A", "B") == "(A) -and (B)"


def test_duplicate_keys_counts_an_object_seen_in_two_partitions() -> None:
    first = _page_to_batch([_mailbox(A), _mailbox(B)])
    second = _page_to_batch([_mailbox(C), _mailbox(B.upper()), _mailbox("", Guid="")])
    assert duplicate_keys([first, second]) == 1  # B in both (keys are case-insensitive); no-key rows not counted
    assert duplicate_keys([first]) == 0 and duplicate_keys([]) == 0


def test_slice_keys_proves_slices_disjoint_only_when_every_key_starts_as_its_filter_demands() -> None:
    zero = [_page_to_batch([_mailbox(A), _mailbox(A.replace("0a", "0b"))])]
    assert slice_keys(zero, "0") == (True, 0)
    assert slice_keys(zero, "0a") == (False, 0)  # one key is 0b...: not in the two-digit slice 0a
    assert slice_keys([*zero, _page_to_batch([_mailbox(A.upper())])], "0") == (True, 1)  # keys are lower-case
    assert slice_keys([_page_to_batch([_mailbox(A), _mailbox(B)])], "0")[0] is False  # B (fb...) strayed into 0
    assert slice_keys([_page_to_batch([_mailbox(A), _mailbox("", Guid="")])], "0")[0] is False  # a keyless row
    assert slice_keys([], "f") == (True, 0)
    assert slice_keys([_page_to_batch([_mailbox("x-odd"), _mailbox("Zed")])], "rest") == (True, 0)
    for stray in (A, ""):  # the complement holds no key starting with a hex digit, and no empty key
        assert slice_keys([_page_to_batch([_mailbox("x-odd"), _mailbox(stray, Guid="")])], "rest")[0] is False
    assert slice_keys(zero, "0+1")[0] is False  # not a hex slice: the caller hashes the whole read


def test_a_frame_built_with_known_unique_keys_equals_the_checked_one() -> None:
    import pyarrow as pa
    from exocm.core.inventory.fetch import _build_frame

    mailboxes = pa.Table.from_batches([_page_to_batch([_mailbox(A), _mailbox(B), _mailbox(D)])])
    users = pa.Table.from_batches([_page_to_batch([_user(C, "MailUser", prev="UserMailbox")])])
    checked, counts = _build_frame(mailboxes, users, users_narrowed=True)
    known, known_counts = _build_frame(mailboxes, users, users_narrowed=True, unique=(True, True))
    pd.testing.assert_frame_equal(checked, known)
    assert counts == known_counts


def test_frame_keeps_the_last_copy_of_a_repeated_record_and_drops_records_without_any_key() -> None:
    import pyarrow as pa
    from exocm.core.inventory.fetch import _build_frame

    mailboxes = [_mailbox(A, DisplayName="first"), _mailbox(B), _mailbox(A.upper(), DisplayName="last"),
                 _mailbox("", Guid="")]
    users = [_user(C, "MailUser", prev="UserMailbox"), _user(C, "MailUser", prev="MailUser"), _user(B, "UserMailbox")]
    frame, counts = _build_frame(pa.Table.from_batches([_page_to_batch(mailboxes)]),
                                 pa.Table.from_batches([_page_to_batch(users)]), users_narrowed=True)
    assert list(frame.index) == [B, A, C]  # service order of the kept copies, then mail users
    assert frame.loc[A, "DisplayName"] == "last"
    assert frame.loc[C, "PreviousRecipientTypeDetails"] == "MailUser"
    assert counts["duplicates_dropped"] == 2 and counts["unkeyed_dropped"] == 1 and counts["mail_users"] == 1


def test_a_mailbox_the_narrowed_get_user_did_not_return_has_no_previous_mailbox_info() -> None:
    import pyarrow as pa
    from exocm.core.inventory.fetch import _build_frame

    mailboxes = [_mailbox(A), _mailbox(B), _mailbox(D, PreviousRecipientTypeDetails="SharedMailbox")]
    users = [_user(B, "UserMailbox", prev="MailUser")]
    for narrowed, expected_a in ((True, "None"), (False, None)):
        frame, _ = _build_frame(pa.Table.from_batches([_page_to_batch(mailboxes)]),
                                pa.Table.from_batches([_page_to_batch(users)]), users_narrowed=narrowed)
        assert frame.loc[B, "PreviousRecipientTypeDetails"] == "MailUser"  # Get-User's value wins
        assert frame.loc[D, "PreviousRecipientTypeDetails"] == "SharedMailbox"  # the mailbox's own, when no user
        a = frame.loc[A, "PreviousRecipientTypeDetails"]
        assert a == expected_a if expected_a else pd.isna(a)
