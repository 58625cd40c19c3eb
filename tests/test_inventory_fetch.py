"""The partitioned parallel inventory against the sandbox, through the real REST bridge, MSAL and TLS."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from exocm.core.access.config import sandbox_profile
from exocm.core.access.connect import open_bridge
from exocm.core.bridge.rest import RestBridge
from exocm.core.events import Progress
from exocm.core.inventory.fetch import InventoryCancelled, fetch_inventory
from exocm.core.inventory.snapshot import load_or_fetch
from exocm.sandbox.server import Sandbox


def _bridge(sb: Sandbox, **options: Any) -> RestBridge:
    profile = sandbox_profile("test", sb.info)
    assert profile.secret_env is not None
    env = {profile.secret_env: str(sb.info["client_secret"])}
    return open_bridge(profile, env=env, persist_tokens=False, **options)


@pytest.fixture
def bridge_for() -> Iterator[Callable[..., RestBridge]]:
    opened: list[RestBridge] = []

    def make(sb: Sandbox, **options: Any) -> RestBridge:
        bridge = _bridge(sb, **options)
        opened.append(bridge)
        return bridge

    yield make
    for bridge in opened:
        bridge.close()


def _recipients(sb: Sandbox, *, dirsynced_only: bool = False) -> dict[str, str]:
    """Ground truth: EDOID -> RecipientTypeDetails of every EXO recipient (plain Users are none)."""
    with sb.tenant.lock:
        return {r.edoid: r.rtd for r in sb.tenant.exo.values()
                if r.rtd != "User" and (r.dir_synced or not dirsynced_only)}


def _no_sleep(_: float) -> None:
    """Faked time: the bridge's backoff and Retry-After waits return at once."""


def test_partitioned_inventory_equals_the_tenants_recipients_exactly(
        sandbox: Sandbox, bridge_for: Callable[..., RestBridge]) -> None:
    events: list[Progress] = []
    inventory = fetch_inventory(bridge_for(sandbox), progress=events.append)
    frame = inventory.frame
    truth = _recipients(sandbox)
    assert frame.index.is_unique
    assert set(frame.index) == set(truth)
    assert dict(zip(frame.index, frame["RecipientTypeDetails"], strict=True)) == truth
    assert inventory.stats["mode"]["Get-Mailbox"] == "17 partitions" and inventory.stats["fallbacks"] == 0
    assert inventory.tenant == sandbox.info["tenant"] and inventory.source == "rest"
    # PreviousRecipientTypeDetails comes from Get-User: the planted stale MailUsers carry it.
    planted = set(sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"])
    stale = frame[(frame["RecipientTypeDetails"] == "MailUser")
                  & frame["PreviousRecipientTypeDetails"].isin(["UserMailbox", "SharedMailbox"])]
    assert planted and set(stale.index) == planted
    assert (frame.loc[frame["RecipientTypeDetails"] == "UserMailbox", "PreviousRecipientTypeDetails"]
            .notna().all())
    # Progress: records and pages as they come, a total at the end.
    assert events[-1].stage == "inventory" and events[-1].done == events[-1].total >= len(frame)
    assert events[-1].counters["pages"] >= 17 and any(e.rate for e in events)


def test_five_percent_transient_faults_still_give_exactly_every_record_once(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge]) -> None:
    sb = make_sandbox(size=5000, seed=11, faults={"500": 0.02, "503": 0.02, "reset": 0.01})
    bridge = bridge_for(sb, sleep=_no_sleep)
    inventory = fetch_inventory(bridge, page_size=250)
    truth = _recipients(sb)
    assert len(truth) > 4500
    assert len(inventory.frame) == len(truth) and set(inventory.frame.index) == set(truth)
    assert inventory.stats["duplicates_dropped"] == 0
    assert bridge.snapshot()["retries"] > 0  # faults were injected, and survived


def test_token_expiry_in_the_middle_of_an_inventory_is_refreshed_without_a_lost_page(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge]) -> None:
    now = [time.time()]
    sb = make_sandbox(size=2000, seed=5, clock=lambda: now[0], token_lifetime_s=60)
    bridge = bridge_for(sb)
    moved = threading.Event()

    def on_progress(event: Progress) -> None:
        if event.counters.get("pages", 0) >= 3 and not moved.is_set():
            moved.set()
            now[0] += 61  # the service's clock passes the token's expiry; the client does not know

    inventory = fetch_inventory(bridge, page_size=50, progress=on_progress)
    truth = _recipients(sb)
    assert moved.is_set() and bridge.snapshot()["token_refreshes"] >= 1  # 401, then a new token
    assert bridge.snapshot()["pages"] > 10  # pages were still to come when the token expired
    assert inventory.frame.index.is_unique and set(inventory.frame.index) == set(truth)
    assert inventory.stats["fallbacks"] == 0


def test_dirsynced_only_returns_exactly_the_dirsynced_recipients(
        sandbox: Sandbox, bridge_for: Callable[..., RestBridge]) -> None:
    inventory = fetch_inventory(bridge_for(sandbox), dirsynced_only=True)
    truth = _recipients(sandbox, dirsynced_only=True)
    assert set(inventory.frame.index) == set(truth)
    assert len(truth) < len(_recipients(sandbox))  # the tenant has cloud-only objects to leave out
    assert inventory.frame["IsDirSynced"].all() and inventory.dirsynced_only


def test_a_partition_filter_the_service_rejects_falls_back_to_one_paged_stream_and_says_so(
        sandbox: Sandbox, bridge_for: Callable[..., RestBridge]) -> None:
    events: list[Progress] = []
    inventory = fetch_inventory(bridge_for(sandbox), partition_property="NoSuchProperty",
                                progress=events.append)
    assert set(inventory.frame.index) == set(_recipients(sandbox))
    assert inventory.stats["mode"]["Get-Mailbox"] == "single"
    assert any("Get-Mailbox: filter rejected by the service" in n and "one paged stream" in n
               for n in inventory.notes)
    assert any("falling back to one paged stream" in e.message for e in events)


def test_a_get_user_read_bigger_than_a_probe_switches_to_partitions(
        sandbox: Sandbox, bridge_for: Callable[..., RestBridge]) -> None:
    events: list[Progress] = []
    inventory = fetch_inventory(bridge_for(sandbox), page_size=10, probe_pages=2, progress=events.append)
    assert inventory.stats["mode"]["Get-User"] == "17 partitions"
    assert any("Get-User: more than 20 records; reading 17 partitions" in e.message for e in events)
    assert set(inventory.frame.index) == set(_recipients(sandbox))


def test_cancel_stops_a_fetch_after_its_first_page(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge]) -> None:
    sb = make_sandbox(size=1000, latency_ms=50)
    bridge = bridge_for(sb)
    cancel = threading.Event()
    pages: list[int] = []

    def on_progress(event: Progress) -> None:
        pages.append(int(event.counters.get("pages", 0)))
        if event.counters.get("pages"):
            cancel.set()

    with pytest.raises(InventoryCancelled):
        fetch_inventory(bridge, page_size=10, progress=on_progress, cancel=cancel)
    # ~100 pages of 10 would follow; the fetch returned after the first, and its workers wind down.
    assert max(pages) < 20
    for thread in threading.enumerate():
        if thread.name.startswith("exocm-inventory"):
            thread.join(timeout=30)
            assert not thread.is_alive()
    assert bridge.snapshot()["pages"] < 60


def test_load_or_fetch_reuses_the_snapshot_until_refresh_or_max_age(
        sandbox: Sandbox, bridge_for: Callable[..., RestBridge], tmp_path: Path) -> None:
    bridge = bridge_for(sandbox)
    first = load_or_fetch(bridge, root=tmp_path)
    assert not first.from_snapshot
    again = load_or_fetch(bridge, root=tmp_path)
    assert again.from_snapshot and again.fetched_at == first.fetched_at
    assert set(again.frame.index) == set(first.frame.index)
    assert not load_or_fetch(bridge, root=tmp_path, refresh=True).from_snapshot
    assert not load_or_fetch(bridge, root=tmp_path, max_age=timedelta(0)).from_snapshot
    dirsynced = load_or_fetch(bridge, root=tmp_path, dirsynced_only=True)
    assert not dirsynced.from_snapshot and dirsynced.dirsynced_only  # its own snapshot variant


def test_selected_properties_give_the_same_frame_as_whole_records(
        sandbox: Sandbox, bridge_for: Callable[..., RestBridge]) -> None:
    import pandas as pd

    selected = fetch_inventory(bridge_for(sandbox), page_size=100)
    whole = fetch_inventory(bridge_for(sandbox), page_size=100, select_properties=False)
    pd.testing.assert_frame_equal(selected.frame.sort_index(), whole.frame.sort_index())
