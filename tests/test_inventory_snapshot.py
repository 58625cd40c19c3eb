"""Inventory snapshots: Parquet round trip, metadata, age, and when a snapshot is (not) used."""
from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from exocm.core.inventory.fetch import Inventory, records_to_frame
from exocm.core.inventory.snapshot import (
    COLUMNS_VERSION,
    load_snapshot,
    read_snapshot_meta,
    save_snapshot,
    snapshot_path,
)

TENANT = "contoso.onmicrosoft.com"


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _inventory(fetched_at: datetime, *, dirsynced_only: bool = False) -> Inventory:
    mailboxes = [
        {"ExternalDirectoryObjectId": f"{i:x}0000000-0000-4000-8000-000000000000", "Guid": f"g{i}",
         "DisplayName": f"User {i} \u00e9\U0001f600", "RecipientTypeDetails": "UserMailbox",
         "RecipientType": "UserMailbox", "IsDirSynced": i % 2 == 0, "IsExchangeCloudManaged": None if i == 3 else False,
         "EmailAddresses": [f"SMTP:u{i}@contoso.com"], "ExtensionCustomAttribute1": ["a", "b"] if i == 1 else [],
         "WhenChanged": datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=i), "CustomAttribute3": None}
        for i in range(6)
    ]
    users = [{"ExternalDirectoryObjectId": "ff000000-0000-4000-8000-000000000000", "Guid": "gm",
              "RecipientTypeDetails": "MailUser", "RecipientType": "MailUser",
              "PreviousRecipientTypeDetails": "UserMailbox", "IsDirSynced": True}]
    frame = records_to_frame(mailboxes, users)
    return Inventory(frame=frame, tenant=TENANT, fetched_at=fetched_at, source="rest",
                     dirsynced_only=dirsynced_only, notes=("a note",), stats={"mailboxes": 6, "pages": 2})


def test_snapshot_round_trip_keeps_dtypes_values_and_metadata_and_reports_age(_data_dir: Path) -> None:
    fetched = datetime.now(UTC) - timedelta(hours=3)
    original = _inventory(fetched)
    path = save_snapshot(original)
    assert path == snapshot_path(TENANT) and path.is_relative_to(_data_dir / "snapshots")

    loaded = load_snapshot(TENANT)
    assert loaded is not None and loaded.from_snapshot and not original.from_snapshot
    pd.testing.assert_frame_equal(loaded.frame, original.frame)
    assert loaded.frame.loc["10000000-0000-4000-8000-000000000000", "ExtensionCustomAttribute1"] == ("a", "b")
    assert loaded.tenant == TENANT and loaded.source == "rest" and loaded.notes == ("a note",)
    assert loaded.fetched_at == fetched and loaded.stats["pages"] == 2
    assert timedelta(hours=3) <= loaded.age < timedelta(hours=3, minutes=5)
    assert loaded.age_at(fetched + timedelta(days=2)) == timedelta(days=2)

    meta = read_snapshot_meta(path)
    assert meta is not None and meta["tenant"] == TENANT and meta["columns"] == COLUMNS_VERSION
    assert datetime.fromisoformat(meta["fetched_at"]) == fetched


def test_snapshot_is_private_and_written_atomically(_data_dir: Path) -> None:
    path = save_snapshot(_inventory(datetime.now(UTC)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_dirsynced_snapshot_is_a_separate_variant(_data_dir: Path) -> None:
    save_snapshot(_inventory(datetime.now(UTC), dirsynced_only=True))
    assert load_snapshot(TENANT) is None
    loaded = load_snapshot(TENANT, variant="dirsynced")
    assert loaded is not None and loaded.dirsynced_only


def test_snapshot_of_another_columns_version_is_ignored(_data_dir: Path) -> None:
    path = save_snapshot(_inventory(datetime.now(UTC)))
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    stale = json.loads(meta[b"exocm"])
    stale["columns"] = "0123456789ab"
    meta[b"exocm"] = json.dumps(stale).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    assert load_snapshot(TENANT) is None


def test_missing_or_foreign_snapshot_loads_as_none(_data_dir: Path) -> None:
    assert load_snapshot("nobody.onmicrosoft.com") is None
    path = snapshot_path("junk.onmicrosoft.com")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    assert load_snapshot("junk.onmicrosoft.com") is None


def test_tenant_names_cannot_escape_the_snapshot_directory(_data_dir: Path) -> None:
    path = snapshot_path("../../etc/passwd", variant="../x")
    assert path.resolve().is_relative_to((_data_dir / "snapshots").resolve())
