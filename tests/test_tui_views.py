"""core.views: what a face shows (filter, sort, selection, findings badges, plan tables), headless."""
from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from exocm.core.app.session import Session
from exocm.core.app.views import (
    MAILBOX_COLUMNS,
    VIEW_COLUMNS,
    CheckedRows,
    MailboxView,
    QuickFilter,
    compare_sides,
    filter_mailboxes,
    findings_summary,
    format_age,
)
from exocm.core.inventory.fetch import records_to_frame
from tui_support import sandbox_session

BASE = datetime(2025, 6, 1, tzinfo=UTC)


def mailbox(i: int, name: str, rtd: str = "UserMailbox", synced: bool = True, cloud: bool = False,
            extra_smtp: str | None = None) -> dict[str, object]:
    upn = f"user{i}@contoso.com"
    addresses = [f"SMTP:{upn}"] + ([f"smtp:{extra_smtp}"] if extra_smtp else [])
    return {
        "ExternalDirectoryObjectId": f"00000000-0000-0000-0000-{i:012d}", "Guid": f"10000000-0000-0000-0000-{i:012d}",
        "UserPrincipalName": upn, "PrimarySmtpAddress": upn, "Alias": f"user{i}", "DisplayName": name,
        "EmailAddresses": addresses, "RecipientType": "UserMailbox", "RecipientTypeDetails": rtd,
        "IsDirSynced": synced, "IsExchangeCloudManaged": cloud, "WhenChanged": BASE - timedelta(days=i),
    }


@pytest.fixture()
def view() -> MailboxView:
    records = [
        mailbox(1, "Zoë Zimmer"),
        mailbox(2, "Anna Åberg", rtd="SharedMailbox", cloud=True),
        mailbox(3, "Bob Baker", synced=False, extra_smtp="bobby@fabrikam.com"),
        mailbox(4, "Chen Ng", rtd="RoomMailbox"),
        mailbox(5, "anna lower", cloud=True),
    ]
    frame = records_to_frame(records, [])
    findings = pd.DataFrame({
        "code": ["DUAL_MAILBOX", "RECENT_ONPREM_CHANGE", "RECENT_ONPREM_CHANGE"],
        "severity": ["critical", "medium", "medium"],
        "ExternalDirectoryObjectId": [frame.index[3], frame.index[3], frame.index[0]],
        "UserPrincipalName": ["user4@contoso.com", "user4@contoso.com", "user1@contoso.com"],
        "explanation": ["x", "y", "z"], "evidence": [{}, {}, {}], "action": ["a", "b", "c"],
    })
    return MailboxView(frame, findings)


def names(view: MailboxView, positions: np.ndarray) -> list[str]:
    return [view.cells(int(p))[0] for p in positions]


def test_search_matches_name_upn_and_proxy_addresses_case_insensitively(view: MailboxView) -> None:
    assert names(view, view.filter("ANNA")) == ["Anna Åberg", "anna lower"]
    assert names(view, view.filter("user4@")) == ["Chen Ng"]
    assert names(view, view.filter("fabrikam")) == ["Bob Baker"]
    assert names(view, view.filter("zoë")) == ["Zoë Zimmer"]
    assert len(view.filter("")) == view.size


def test_narrowing_a_search_gives_the_same_rows_as_a_fresh_search(view: MailboxView) -> None:
    view.filter("a")
    narrowed = view.filter("an")
    fresh = MailboxView(view.frame, view.findings).filter("an")
    assert list(narrowed) == list(fresh)
    # widening again (backspace) is a fresh scan, not a narrowing of the last result
    assert len(view.filter("a")) > len(narrowed)


def test_searches_in_any_order_give_the_same_rows_as_a_fresh_view(view: MailboxView) -> None:
    """Kept search results (narrowing from an earlier search that the new one contains, going back
    with backspace) never change what a search finds."""
    needles = ["a", "an", "ann", "anna", "nn", "b", "bob", "ob", "fabrikam", "rikam", "zoë", "", "user",
               "user4", "@contoso", "x", "Ann", "anna "]
    for needle in needles + needles[::-1] + needles[::2]:
        fresh = MailboxView(view.frame, view.findings).filter(needle)
        assert list(view.filter(needle)) == list(fresh), needle


def test_search_looks_at_smtp_addresses_not_other_proxies() -> None:
    frame = records_to_frame([mailbox(1, "Ann One", extra_smtp="sales@fabrikam.com")], [])
    frame.at[frame.index[0], "EmailAddresses"] = ("SMTP:user1@contoso.com", "smtp:sales@fabrikam.com",
                                                  "X500:/o=ExchangeLabs/cn=Recipients/cn=legacy-ann",
                                                  "SIP:ann.voice@contoso.com")
    view = MailboxView(frame)
    assert len(view.filter("SALES@fabrikam")) == 1 and len(view.filter("user1@contoso.com")) == 1
    assert len(view.filter("exchangelabs")) == 0 and len(view.filter("ann.voice")) == 0


def test_a_view_built_from_arrow_columns_matches_the_frame_view(view: MailboxView) -> None:
    assert view.frame is not None
    frame = view.frame
    table = pa.Table.from_pandas(frame[[c for c in VIEW_COLUMNS if c != "EmailAddresses"]], preserve_index=True)
    addresses = pa.array([list(v) for v in frame["EmailAddresses"]], type=pa.list_(pa.string()))
    table = table.append_column("EmailAddresses", addresses)
    lean = MailboxView(table, view.findings)
    assert lean.frame is None and lean.record(0)["DisplayName"] == "Zoë Zimmer"
    for position in range(view.size):
        assert lean.cells(position) == view.cells(position)
    for needle in ("anna", "fabrikam", "user4@", ""):
        assert list(lean.filter(needle)) == list(view.filter(needle))
    for column, _ in MAILBOX_COLUMNS:
        assert list(lean.sort(lean.filter(), column)) == list(view.sort(view.filter(), column))
    assert lean.type_names() == view.type_names()
    assert not lean.attach(frame.iloc[::-1])  # other rows (or order): refused
    assert lean.attach(frame) and lean.frame is frame and len(lean.record(3)) == len(frame.columns)


def test_quick_filters_combine_with_and(view: MailboxView) -> None:
    assert names(view, view.filter(quick=QuickFilter(cloud_managed=True))) == ["Anna Åberg", "anna lower"]
    assert names(view, view.filter(quick=QuickFilter(onprem_managed=True))) == ["Zoë Zimmer", "Chen Ng"]
    assert names(view, view.filter(quick=QuickFilter(not_dirsynced=True))) == ["Bob Baker"]
    assert names(view, view.filter(quick=QuickFilter(has_findings=True))) == ["Zoë Zimmer", "Chen Ng"]
    assert names(view, view.filter(quick=QuickFilter(types=frozenset({"RoomMailbox"})))) == ["Chen Ng"]
    both = QuickFilter(cloud_managed=True, types=frozenset({"SharedMailbox"}))
    assert names(view, view.filter("anna", both)) == ["Anna Åberg"]


def test_sort_by_name_findings_and_when_changed_both_ways(view: MailboxView) -> None:
    everything = view.filter()
    by_name = filter_mailboxes(view, sort="DisplayName")
    assert names(view, by_name) == ["anna lower", "Anna Åberg", "Bob Baker", "Chen Ng", "Zoë Zimmer"]
    assert names(view, view.sort(everything, "DisplayName", descending=True))[0] == "Zoë Zimmer"
    # worst severity first, then more findings first
    assert names(view, view.sort(everything, "Findings"))[:2] == ["Chen Ng", "Zoë Zimmer"]
    assert names(view, view.sort(everything, "WhenChanged")) == [
        "anna lower", "Chen Ng", "Bob Baker", "Anna Åberg", "Zoë Zimmer"]


def test_findings_badge_shows_count_and_worst_severity(view: MailboxView) -> None:
    chen = view.position_of(str(view.frame.index[3]))
    assert chen is not None
    assert view.cells(chen)[5] == "2 critical"
    assert view.severity_of(chen) == "critical"
    assert view.cells(1)[5] == ""


def test_findings_summary_groups_by_code_worst_first(view: MailboxView) -> None:
    summary = findings_summary(view.findings)
    assert summary.to_dict("records") == [
        {"code": "DUAL_MAILBOX", "severity": "critical", "count": 1},
        {"code": "RECENT_ONPREM_CHANGE", "severity": "medium", "count": 2},
    ]


def test_selection_toggle_all_shown_none_invert_and_ids(view: MailboxView) -> None:
    selection = CheckedRows(view.size)
    shown = view.filter("anna")
    selection.select(shown)
    assert selection.count == 2
    selection.invert(view.filter())
    assert selection.count == 3 and not selection.is_selected(int(shown[0]))
    assert selection.toggle(int(shown[0])) is True
    selection.clear()
    assert selection.count == 0
    missing = selection.select_ids(view, [str(view.frame.index[0]), "not-an-id"])
    assert missing == ["not-an-id"] and selection.ids(view) == [str(view.frame.index[0])]


def test_compare_sides_marks_only_real_differences() -> None:
    rows = compare_sides(
        {"CustomAttribute1": "Sales", "EmailAddresses": ("SMTP:a@x.com", "smtp:b@x.com"), "Alias": "a"},
        {"CustomAttribute1": "HR", "EmailAddresses": ["smtp:B@x.com", "SMTP:a@x.com"]},
    )
    differs = {name: diff for name, _, _, diff in rows}
    assert differs == {"CustomAttribute1": True, "EmailAddresses": False, "Alias": False}


def test_format_age_reads_like_a_person() -> None:
    now = BASE
    assert format_age(now - timedelta(seconds=5), now) == "5 s ago"
    assert format_age(now - timedelta(minutes=3), now) == "3 min ago"
    assert format_age(now - timedelta(hours=2, minutes=5), now) == "2 h 5 min ago"
    assert format_age(None, now) == "never fetched"


def test_filtering_100k_rows_is_vectorised_and_correct() -> None:
    """The hot path at issue size: every row is checked, the count matches a plain Python scan."""
    n = 100_000
    frame = pd.DataFrame({
        "DisplayName": [f"User {i}" for i in range(n)],
        "UserPrincipalName": [f"u{i}@contoso.com" for i in range(n)],
        "IsDirSynced": np.arange(n) % 3 != 0,
        "IsExchangeCloudManaged": np.arange(n) % 10 == 0,
        "RecipientTypeDetails": np.where(np.arange(n) % 7 == 0, "SharedMailbox", "UserMailbox"),
    }, index=[f"id{i}" for i in range(n)])
    view = MailboxView(frame)
    shown = filter_mailboxes(view, "user 12", QuickFilter(onprem_managed=True), sort="DisplayName")
    expected = [i for i in range(n) if "user 12" in f"user {i}" and i % 3 != 0 and i % 10 != 0]
    assert sorted(int(p) for p in shown) == expected


def test_core_views_and_session_import_no_ui_library() -> None:
    code = ("import sys, exocm.core.app.views, exocm.core.app.session; "
            "bad = [m for m in ('textual', 'rich', 'click', 'exocm.tui', 'exocm.cli', 'exocm.sandbox') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_session_paints_from_the_saved_snapshot_then_attaches_the_whole_inventory(tmp_path: Path) -> None:
    with sandbox_session(tmp_path / "data", size=120) as fetching:
        assert fetching.preview_snapshot() is None  # the first load of this session fetches
        fetched = fetching.load_inventory()
        reopened = Session(fetching.bridge, label="SANDBOX", is_sandbox=True, data_dir=tmp_path / "data",
                           snapshot_first=True)
        preview = reopened.preview_snapshot()
        assert preview is not None and preview.view.frame is None
        assert preview.fetched_at == fetched.fetched_at and preview.view.size == len(fetched.frame)
        full = MailboxView(fetched.frame)
        for position in range(full.size):
            assert preview.view.cells(position) == full.cells(position)
        assert list(preview.view.filter("a")) == list(full.filter("a"))
        inventory = reopened.load_inventory()
        assert inventory.from_snapshot and preview.view.attach(inventory.frame)
        assert preview.view.record(0) == full.record(0)
