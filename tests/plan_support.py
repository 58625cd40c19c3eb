"""Helpers for the plan / apply / journal / undo tests: real clients against a sandbox.

`connect(sb)` opens the product's REST bridge (MSAL + httpx over loopback TLS) to a sandbox;
`add_profile(sb, name)` writes a sandbox profile (config under $EXOCM_CONFIG_DIR) so CLI
commands can use `--profile name`; `mailbox(sb, id)` reads the sandbox's own state directly
(the ground truth a test asserts on).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exocm.core.access.config import sandbox_profile, save_profile, store_sandbox_secret
from exocm.core.access.connect import open_bridge
from exocm.core.access.token_cache import memory_token_cache
from exocm.core.bridge.rest import RestBridge
from exocm.core.inventory.fetch import fetch_inventory
from exocm.core.plan.planfile import Plan, build_plan
from exocm.core.plan.selection import select_all_dirsynced


def connect(sb: Any, **options: Any) -> RestBridge:
    """The product's REST bridge to the sandbox (in-memory token cache)."""
    info = sb.info
    profile = sandbox_profile("test", info)
    assert profile.secret_env is not None
    options.setdefault("token_cache", memory_token_cache())
    return open_bridge(profile, env={profile.secret_env: str(info["client_secret"])}, **options)


def add_profile(sb: Any, name: str = "sb") -> str:
    """Save a sandbox profile (and its throwaway secret) for CLI tests; returns its name."""
    info = sb.info
    profile = sandbox_profile(name, info)
    save_profile(profile, make_default=True)
    store_sandbox_secret(name, str(info["client_secret"]))
    return name


def mailbox(sb: Any, identity: str) -> dict[str, Any]:
    """The sandbox's own record of one mailbox (bypasses the REST endpoint)."""
    found = sb.tenant.invoke("Get-Mailbox", {"Identity": identity}, side="exo")
    assert len(found) == 1, identity
    return dict(found[0])


def cloud_managed(sb: Any, identity: str) -> bool | None:
    """IsExchangeCloudManaged as the sandbox holds it."""
    value = mailbox(sb, identity).get("IsExchangeCloudManaged")
    return value if isinstance(value, bool) else None


def dirsynced_plan(sb: Any, bridge: RestBridge, value: bool = True, limit: int | None = None, **kw: Any) -> Plan:
    """A plan over every dir-synced mailbox (first `limit` set rows kept), from a fresh inventory."""
    inv = fetch_inventory(bridge)
    selection = select_all_dirsynced(inv.frame)
    plan = build_plan(inv.frame, selection.identities, value, tenant=str(bridge.tenant), bridge="rest", **kw)
    if limit is not None:
        keep = [r.identity for r in plan.set_rows()][:limit]
        plan = build_plan(inv.frame, keep, value, tenant=str(bridge.tenant), bridge="rest", **kw)
    return plan


def journal_records(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of a journal (strict: the test wants to see a broken line)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class SetMailboxCounter:
    """Counts Set-Mailbox calls per identity that the sandbox ran (wraps its cmdlet runner).

    Only the sandbox (the stand-in for Microsoft) is instrumented; the product is untouched.
    """

    def __init__(self, sb: Any) -> None:
        self.counts: dict[str, int] = {}
        original = sb.rest._run

        def counting(cmdlet: str, params: dict[str, Any]) -> Any:
            if cmdlet.lower() == "set-mailbox" and "IsExchangeCloudManaged" in params:
                key = str(params.get("Identity", "")).lower()
                self.counts[key] = self.counts.get(key, 0) + 1
            return original(cmdlet, params)

        sb.rest._run = counting
