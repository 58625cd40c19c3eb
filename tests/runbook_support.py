"""Helpers for the runbook tests: plant dual mailboxes the way they are born, connect the real
clients to a sandbox, and re-run detection (EXO inventory + live on-prem over WinRM)."""
from __future__ import annotations

from typing import Any

from exocm.core.access.config import sandbox_profile
from exocm.core.access.connect import open_bridge
from exocm.core.access.graph_host import open_graph
from exocm.core.detect.engine import detect
from exocm.core.inventory.fetch import fetch_inventory
from exocm.core.inventory.onprem_live import (
    PASSWORD_ENV,
    OnPremSettings,
    load_onprem_live,
    open_onprem_bridge,
)
from exocm.core.runbooks import Services
from exocm.sandbox.licensing import E3
from exocm.sandbox.tenant import Tenant


def new_hire(t: Tenant, skip: int = 0) -> Any:
    """A synced on-prem user with no Exchange attributes and no license (EXO: User)."""
    found = [r for r in sorted(t.exo.values(), key=lambda r: r.edoid)
             if r.rtd == "User" and r.dir_synced and not t.has_exchange_license(t.entra_users[r.edoid])
             and (a := t.ad_for(r)) is not None and a.rtd is None]
    return found[skip]


def plant_dual(t: Tenant, license_kind: str, skip: int = 0) -> str:
    """Birth of a dual mailbox: license first (direct / cloud group / synced group), sync, then an
    on-prem mailbox, sync. Returns the EDOID."""
    r = new_hire(t, skip)
    a = t.ad_for(r)
    assert a is not None
    if license_kind == "direct":
        t.graph_assign_license(r.edoid, E3.sku_id)
    elif license_kind == "cloud_group":
        group = next(g for g in t.entra_groups.values() if g.licenses and not g.sync_enabled)
        t.graph_add_group_member(group.id, r.edoid)
    elif license_kind == "synced_group":
        group = next(g for g in t.ad_groups.values() if t.entra_groups[g.entra_id or ""].licenses)
        t.invoke("Add-ADGroupMember", {"Identity": group.name, "Members": [a.sam]}, side="onprem")
    else:
        raise ValueError(license_kind)
    t.run_sync_cycle()
    assert t.exo[r.edoid].rtd == "UserMailbox", license_kind
    t.invoke("Enable-Mailbox", {"Identity": a.guid}, side="onprem")
    t.run_sync_cycle()
    assert r.edoid in t.planted()["DUAL_MAILBOX"]
    return str(r.edoid)


def services_for(info: dict[str, Any], *, onprem_group_changes: bool = False) -> Services:
    """Real clients (REST bridge, Graph over httpx, PSRP to on-prem) for a sandbox's info."""
    prof = sandbox_profile("rb-test", info)
    assert prof.secret_env is not None
    env = {prof.secret_env: str(info["client_secret"])}
    exo = open_bridge(prof, env=env, persist_tokens=False)
    graph = open_graph(prof, env=env, persist_tokens=False)
    onprem = open_onprem_bridge(OnPremSettings(url=str(info["winrm_onprem_url"]), username=str(info["winrm_username"]),
                                               ca_file=str(info["ca_file"])),
                                env={PASSWORD_ENV: str(info["winrm_password"])})
    return Services(exo=exo, graph=graph, onprem=onprem, onprem_group_changes=onprem_group_changes)


def findings_by_code(services: Services) -> dict[str, set[str]]:
    """Detection re-run from scratch: a fresh EXO inventory and the live on-prem side over WinRM."""
    inventory = fetch_inventory(services.exo, partitions=1)
    assert services.onprem is not None
    onprem = load_onprem_live(services.onprem)  # type: ignore[arg-type]
    result = detect(inventory.frame, onprem.frame)
    out: dict[str, set[str]] = {}
    for code, edoid in zip(result.findings["code"], result.findings["ExternalDirectoryObjectId"], strict=True):
        out.setdefault(str(code), set()).add(str(edoid))
    return out
