"""Findings history: runs kept gzip-compressed with retention, and the drift between two runs."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from detect_tenants import eid
from exocm.core.access.config import ConfigError, config_path
from exocm.core.detect.history import diff_runs, find_run, list_runs, record_and_diff, run_state, save_run

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TENANT = "11111111-2222-3333-4444-555555555555"


def _findings(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"code": code, "severity": sev, "ExternalDirectoryObjectId": eid(name),
                          "UserPrincipalName": f"{name}@contoso.com", "explanation": "x",
                          "evidence": {"n": name}, "action": "a"} for code, sev, name in rows])


def _inventory(**cloud: bool) -> pd.DataFrame:
    return pd.DataFrame({"ExternalDirectoryObjectId": [eid(n) for n in cloud],
                         "IsExchangeCloudManaged": pd.array(list(cloud.values()), dtype="boolean")})


def test_drift_new_resolved_changed_flips_and_tenant_default() -> None:
    old = save_run(TENANT, "p", _findings(("DUAL_MAILBOX", "critical", "ann"), ("STALE", "medium", "bob")),
                   run_state(_inventory(ann=False, bob=False, cy=False),
                             {"ExchangeAttributesCloudManagedByDefault": False}), now=T0)
    new = save_run(TENANT, "p", _findings(("DUAL_MAILBOX", "critical", "cy"), ("STALE", "high", "bob")),
                   run_state(_inventory(ann=False, bob=True, cy=False),
                             {"ExchangeAttributesCloudManagedByDefault": True}), now=T0 + timedelta(hours=1))
    assert old.path is not None and old.path.name.endswith(".json.gz")
    drift = diff_runs(old, new)
    assert [f["ExternalDirectoryObjectId"] for f in drift.new] == [eid("cy")]
    assert [f["ExternalDirectoryObjectId"] for f in drift.resolved] == [eid("ann")]
    assert [c["ExternalDirectoryObjectId"] for c in drift.changed] == [eid("bob")]
    assert drift.flips == [{"ExternalDirectoryObjectId": eid("bob"), "before": False, "now": True}]
    assert drift.tenant_default == {"before": False, "now": True}
    assert drift.new_at_or_above("critical") and drift.new_at_or_above("high")
    # the runs are found by "last", by id and by time
    assert find_run(TENANT, "last", before=new).run_id == old.run_id  # type: ignore[union-attr]
    assert find_run(TENANT, new.run_id).run_id == new.run_id  # type: ignore[union-attr]
    assert find_run(TENANT, (T0 + timedelta(minutes=30)).isoformat()).run_id == old.run_id  # type: ignore[union-attr]
    assert find_run(TENANT, (T0 - timedelta(days=1)).isoformat()) is None
    with pytest.raises(ConfigError):
        find_run(TENANT, "yesterday-ish")


def test_since_without_an_earlier_run_is_one_error_line() -> None:
    with pytest.raises(ConfigError, match="no earlier findings run"):
        record_and_diff(TENANT, "p", _findings(), _inventory(), None, since="last")


def test_retention_keeps_the_newest_runs() -> None:
    path: Path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[history]\nkeep_runs = 3\nkeep_days = 10\n", encoding="utf-8")
    now = datetime.now(UTC)
    for k in range(6):
        save_run(TENANT, "p", _findings(), run_state(_inventory(), None), now=now - timedelta(hours=6 - k))
    assert len(list_runs(TENANT)) == 3
    save_run(TENANT, "p", _findings(), run_state(_inventory(), None), now=now + timedelta(days=30))
    assert len(list_runs(TENANT)) == 1  # the older ones are past keep_days; the newest is always kept
