"""Helpers for the object-kind tests (groups, contacts, users through Graph): the product's Graph
bridge to a sandbox (real msal + httpx), the on-prem AD side as an admin's export, and the
sandbox's own record of the Graph writes it ran."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from exocm.cli.object_kinds import write_sandbox_ad_export
from exocm.core.access.config import sandbox_profile
from exocm.core.access.graph_host import open_graph
from exocm.core.bridge.graph import GraphBridge
from exocm.core.inventory.onprem_objects import load_onprem_objects_csv, match_onprem_objects, when_changed


def graph_for(sb: Any, **options: Any) -> GraphBridge:
    """The product's Graph bridge to the sandbox (app-only token from its token endpoint, in memory)."""
    profile = sandbox_profile("objects-test", sb.info)
    assert profile.secret_env is not None
    return open_graph(profile, env={profile.secret_env: str(sb.info["client_secret"])}, persist_tokens=False,
                      **options)


def ad_when_changed(sb: Any, kind: str, frame: Any, workdir: Path) -> dict[str, datetime]:
    """AD whenChanged per object id, read from an Export-Csv style file of the sandbox's AD."""
    path = workdir / f"ad-{kind}.csv"
    write_sandbox_ad_export(sb.tenant, kind, path)
    return when_changed(match_onprem_objects(kind, frame, load_onprem_objects_csv(path)))


def sync_behavior_writes(log: Path) -> Counter[str]:
    """PATCH onPremisesSyncBehavior writes per object id, from the sandbox's write log."""
    counts: Counter[str] = Counter()
    if not log.exists():
        return counts
    for line in log.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("operation") == "onPremisesSyncBehavior":
            counts[str(entry["identity"]).lower()] += 1
    return counts
