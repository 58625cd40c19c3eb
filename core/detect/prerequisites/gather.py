"""Read the facts the checks need, each from its source, concurrently; a source that fails gives
a Fact with the reason (one line), never an exception out of here.

Sources: the EXO bridge (Get-OrganizationConfig, Get-AcceptedDomain), the EXO inventory and the
on-prem data (loaders, as `findings` reads them), Microsoft Graph (organization, subscribedSkus,
users, synced groups, Cloud Sync), the Exchange server over WinRM (public folders, hybrid
objects), and the sync server over WinRM (the Entra Connect Sync build) or the version given.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import pandas as pd

from ...bridge.base import Bridge
from ...bridge.errors import BridgeError
from ..engine import detect
from .checks_flip import MAILBOX_FINDING_FIXES
from .model import (
    CLOUD_SYNC_APP_ID,
    CloudSyncFacts,
    Fact,
    Facts,
    GraphReads,
    GroupSizes,
    HybridFacts,
    Record,
    is_exo_to_ad_template,
)

#: The one script the sync server runs: a constant, with nothing pasted into it.
SYNC_VERSION_SCRIPT: Final = ("(Get-ADSyncGlobalSettings).Parameters"
                              "['Microsoft.Synchronize.ServerConfigurationVersion'].Value")
_EVENTUAL: Final = {"ConsistencyLevel": "eventual"}


@dataclass
class Sources:
    """Where each fact comes from; None (with a reason in `absent`) when the admin gave no such source."""

    exo: Bridge
    inventory: Callable[[], pd.DataFrame] | None = None
    onprem: Callable[[], pd.DataFrame] | None = None
    onprem_server: Callable[[], Bridge] | None = None
    graph: GraphReads | None = None
    sync_server: Callable[[], Any] | None = None  # -> a bridge with run_script (PSRP)
    sync_client_version: str | None = None
    absent: dict[str, str] = field(default_factory=dict)  # fact name -> why there is no source
    provisioning_window_days: int = 30
    now: datetime | None = None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BridgeError):
        return exc.message.splitlines()[0] if exc.message else type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _guard(func: Callable[[], Fact[Any]], what: str) -> Callable[[], Fact[Any]]:
    def run() -> Fact[Any]:
        try:
            return func()
        except Exception as exc:  # every source failure becomes the fact's reason (one line)
            return Fact.unavailable(f"{what}: {_one_line(exc)}")
    return run


def _timed(func: Callable[[], Fact[Any]], name: str, timings: dict[str, float]) -> Callable[[], Fact[Any]]:
    def run() -> Fact[Any]:
        started = time.perf_counter()
        try:
            return func()
        finally:
            timings[name] = round(time.perf_counter() - started, 3)
    return run


def read_sync_client_version(bridge: Any) -> str:
    """The Entra Connect Sync build, from the sync server (the fixed script, no parameters)."""
    records = bridge.run_script(SYNC_VERSION_SCRIPT, label="Get-ADSyncGlobalSettings")
    values = [r.get("Value") for r in records if isinstance(r, dict)]
    value = next((v for v in values if v not in (None, "")), None)
    if value is None:
        raise BridgeError("Get-ADSyncGlobalSettings: the sync server returned no ServerConfigurationVersion")
    return str(value)


def read_hybrid(bridge: Bridge) -> HybridFacts:
    """Public folder mailboxes and folders, and the hybrid objects, from the Exchange server."""
    out = HybridFacts()
    out.public_folder_mailboxes = [str(r.get("Name") or r.get("Alias") or "")
                                   for r in bridge.invoke("Get-Mailbox", {"PublicFolder": True,
                                                                          "ResultSize": "Unlimited"})]
    if out.public_folder_mailboxes:
        folders = bridge.invoke("Get-PublicFolder", {"Identity": "\\", "Recurse": True, "ResultSize": "Unlimited"})
        out.public_folders = [str(r.get("Identity")) for r in folders if str(r.get("Identity")) not in ("\\", "")]
    simple = {"HybridConfiguration": "Get-HybridConfiguration",
              "IntraOrganizationConnector": "Get-IntraOrganizationConnector",
              "OrganizationRelationship": "Get-OrganizationRelationship",
              "FederationTrust": "Get-FederationTrust"}
    for kind, cmdlet in simple.items():
        names = [str(r.get("Name") or r.get("Identity")) for r in bridge.invoke(cmdlet, {})]
        if names:
            out.hybrid[kind] = names
    send = [str(r.get("Identity") or r.get("Name")) for r in bridge.invoke("Get-SendConnector", {})
            if _true(r.get("CloudServicesMailEnabled"))]
    if send:
        out.hybrid["SendConnector"] = send
    receive = [str(r.get("Identity") or r.get("Name")) for r in bridge.invoke("Get-ReceiveConnector", {})
               if any("acceptcloudservicesmail" in str(c).lower() for c in _list(r.get("TlsDomainCapabilities")))]
    if receive:
        out.hybrid["ReceiveConnector"] = receive
    return out


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def read_cloud_sync(graph: GraphReads) -> CloudSyncFacts:
    """The EXO-to-AD Cloud Sync jobs (with their mappings) and the provisioning agents' versions.
    Jobs are the Cloud Sync service principal's synchronization jobs whose template is EXO to AD."""
    out = CloudSyncFacts()
    sps = graph.read_all("/servicePrincipals", params={"$filter": f"appId eq '{CLOUD_SYNC_APP_ID}'"})
    for sp in sps:
        if str(sp.get("appId", "")).lower() != CLOUD_SYNC_APP_ID:
            continue
        sp_id = quote(str(sp["id"]), safe="")
        for job in graph.read_all(f"/servicePrincipals/{sp_id}/synchronization/jobs"):
            if not is_exo_to_ad_template(str(job.get("templateId") or job.get("id") or "")):
                continue
            out.jobs.append(job)
            schema = graph.read(f"/servicePrincipals/{sp_id}/synchronization/jobs/{quote(str(job['id']), safe='')}"
                                "/schema")
            targets: list[str] = []
            for rule in schema.get("synchronizationRules", []) if isinstance(schema, dict) else []:
                for mapping in rule.get("objectMappings", []):
                    targets.extend(str(a.get("targetAttributeName")) for a in mapping.get("attributeMappings", []))
            out.mappings[str(job["id"])] = targets
    agents = graph.read_all("/onPremisesPublishingProfiles/provisioning/agents", version="beta")
    out.agent_versions = [str(a["agentVersion"]) if a.get("agentVersion") else None for a in agents]
    return out


#: UPN prefixes the synced users are read by, in parallel (Graph pages a collection one nextLink at a
#: time; a 100,000-user tenant is 101 sequential pages otherwise). The union is checked against
#: `/users/$count`: a UPN starting with anything else makes the counts differ, and the read falls
#: back to one sequential stream.
UPN_PREFIXES: Final = tuple("abcdefghijklmnopqrstuvwxyz0123456789")
_SYNCED_FILTER: Final = "onPremisesSyncEnabled eq true"
_USER_SELECT: Final = "id,userPrincipalName,assignedLicenses"


def read_synced_users(graph: GraphReads, *, parallel: int = 8) -> list[Record]:
    """Every synced user (id, UPN, assigned licences): UPN-prefix partitions read in parallel, complete
    when their union matches the service's count, else one sequential read."""
    total = int(str(graph.read("/users/$count", params={"$filter": _SYNCED_FILTER}, headers=_EVENTUAL)).strip())

    def part(prefix: str) -> list[Record]:
        filt = f"{_SYNCED_FILTER} and startswith(userPrincipalName,'{prefix}')"
        return graph.read_all("/users", params={"$filter": filt, "$select": _USER_SELECT, "$count": "true",
                                                "$top": "999"}, headers=_EVENTUAL)

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="exocm-graph-users") as pool:
        parts = list(pool.map(part, UPN_PREFIXES))
    users = {str(u.get("id")): u for chunk in parts for u in chunk}
    if len(users) == total:
        return list(users.values())
    return graph.read_all("/users", params={"$filter": _SYNCED_FILTER, "$select": _USER_SELECT, "$count": "true",
                                            "$top": "999"}, headers=_EVENTUAL)


def read_licensed_synced_users(graph: GraphReads) -> list[Record]:
    """Synced users with a licence that includes an Exchange Online plan (EXCHANGE_S_*)."""
    skus = graph.read_all("/subscribedSkus")
    exchange = {str(s.get("skuId")).lower() for s in skus
                if any(str(p.get("servicePlanName", "")).startswith("EXCHANGE_S_") for p in s.get("servicePlans", []))}
    return [u for u in read_synced_users(graph)
            if any(str(lic.get("skuId", "")).lower() in exchange for lic in u.get("assignedLicenses") or [])]


#: Synced groups counted one `$count` request each; beyond this many, only the bound is used.
GROUP_COUNT_CAP: Final = 500
_GROUP_LIMIT: Final = 50_000


def read_group_sizes(graph: GraphReads, *, parallel: int = 8) -> GroupSizes:
    """Members of each synced group ($count, in parallel) when there are at most GROUP_COUNT_CAP of
    them; else the directory's object count as the bound (no group can have more members than there
    are users, groups and contacts), and `not_counted` when that bound does not settle it."""
    synced = int(str(graph.read("/groups/$count", params={"$filter": "onPremisesSyncEnabled eq true"},
                                headers=_EVENTUAL)).strip())
    out = GroupSizes(synced_groups=synced)
    if synced <= GROUP_COUNT_CAP:
        groups = graph.read_all("/groups", params={"$filter": "onPremisesSyncEnabled eq true",
                                                   "$select": "id,displayName", "$count": "true", "$top": "999"},
                                headers=_EVENTUAL)
        out.synced_groups = len(groups)
        def count(g: Record) -> tuple[str, int]:
            text = graph.read(f"/groups/{g['id']}/members/$count", headers=_EVENTUAL)
            return str(g.get("displayName") or g["id"]), int(str(text).strip())
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="exocm-graph-groups") as pool:
            out.sizes = dict(pool.map(count, groups))
        return out
    out.directory_objects = sum(int(str(graph.read(f"/{name}/$count", headers=_EVENTUAL)).strip())
                                for name in ("users", "groups", "contacts"))
    if out.directory_objects > _GROUP_LIMIT:
        out.not_counted = (f"{synced:,} synced groups and {out.directory_objects:,} directory objects: counting "
                           f"each group's members would take {synced:,} Graph requests; check the largest "
                           "groups' member counts in the Entra admin center")
    return out


#: Synced groups and contacts whose onPremisesSyncBehavior is read (one Graph request each); beyond
#: this many GROUPS_CONTACTS_CONVERTED stays unknown (with the counts).
OBJECT_SOA_CAP: Final = 500


def read_object_soa(graph: GraphReads, *, parallel: int = 8) -> Record:
    """Synced groups and contacts and how many are not cloud-managed (Graph onPremisesSyncBehavior:
    groups on v1.0, contacts on beta); raises ValueError (the check's reason) over OBJECT_SOA_CAP."""
    synced = {"groups": 0, "contacts": 0}
    for name in synced:
        synced[name] = int(str(graph.read(f"/{name}/$count", params={"$filter": "onPremisesSyncEnabled eq true"},
                                          headers=_EVENTUAL)).strip())
    total = synced["groups"] + synced["contacts"]
    if total > OBJECT_SOA_CAP:
        raise ValueError(f"{synced['groups']:,} synced groups and {synced['contacts']:,} synced contacts: reading each "
                         f"one's onPremisesSyncBehavior takes {total:,} Graph requests (exocm reads up to "
                         f"{OBJECT_SOA_CAP}); check them with the object-level SOA tooling")
    objects: list[tuple[str, str, str]] = []
    for name in ("groups", "contacts"):
        for o in graph.read_all(f"/{name}", params={"$filter": "onPremisesSyncEnabled eq true",
                                                    "$select": "id,displayName", "$count": "true", "$top": "999"},
                                headers=_EVENTUAL):
            objects.append((name, str(o.get("displayName") or o["id"]), str(o["id"])))

    def converted(item: tuple[str, str, str]) -> tuple[str, str, bool]:
        name, label, ident = item
        version = "v1.0" if name == "groups" else "beta"
        answer = graph.read(f"/{name}/{ident}/onPremisesSyncBehavior", version=version)
        return name, label, bool(answer.get("isCloudManaged")) if isinstance(answer, dict) else False

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="exocm-graph-soa") as pool:
        states = list(pool.map(converted, objects))
    left = [f"{'group' if n == 'groups' else 'contact'} {label}" for n, label, ok in states if not ok]
    return {"synced": len(states), "groups": synced["groups"], "contacts": synced["contacts"],
            "not_converted": len(left), "samples": left[:10]}


@dataclass
class Gathered:
    """The facts, with how long the reads took and how many requests they sent."""

    facts: Facts
    elapsed_s: float
    detect_result: Any = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per fact read, and "detect"


def gather(sources: Sources, *, scope: str = "flip") -> Gathered:
    """Read every fact the scope's checks need (concurrently), then the finding counts."""
    started = time.perf_counter()
    now = sources.now or datetime.now(UTC)
    facts = Facts(now=now, tenant=str(getattr(sources.exo, "tenant", "")),
                  provisioning_window_days=sources.provisioning_window_days)
    absent = sources.absent
    exo = sources.exo

    def org() -> Fact[Record]:
        records = exo.invoke("Get-OrganizationConfig", {})
        return Fact.of(dict(records[0])) if records else Fact.unavailable("Get-OrganizationConfig returned nothing")

    def domains() -> Fact[list[str]]:
        records = exo.invoke("Get-AcceptedDomain", {})
        for r in records:
            if _true(r.get("InitialDomain")):
                facts.initial_domain = str(r.get("DomainName") or r.get("Name"))
        return Fact.of([str(r.get("DomainName") or r.get("Name")) for r in records])

    tasks: dict[str, Callable[[], Fact[Any]]] = {"org_config": _guard(org, "Get-OrganizationConfig"),
                                                 "accepted_domains": _guard(domains, "Get-AcceptedDomain")}
    if sources.inventory is not None:
        loader = sources.inventory
        tasks["inventory"] = _guard(lambda: Fact.of(loader(), "EXO Get-Mailbox/Get-User"), "EXO inventory")
    if sources.onprem is not None:
        onprem_loader = sources.onprem
        tasks["onprem"] = _guard(lambda: Fact.of(onprem_loader()), "on-prem data")
    graph = sources.graph
    if graph is not None:
        def organization() -> Fact[Record]:
            orgs = graph.read_all("/organization")
            return Fact.of(orgs[0]) if orgs else Fact.unavailable("Graph returned no organization")
        tasks["organization"] = _guard(organization, "Graph organization")
        tasks["licensed_synced_users"] = _guard(lambda: Fact.of(read_licensed_synced_users(graph)), "Graph users")
        tasks["synced_group_sizes"] = _guard(lambda: Fact.of(read_group_sizes(graph)), "Graph groups")
        tasks["cloud_sync"] = _guard(lambda: Fact.of(read_cloud_sync(graph)), "Graph Cloud Sync")
        if scope == "decommission":
            tasks["object_soa"] = _guard(lambda: Fact.of(read_object_soa(graph)), "Graph onPremisesSyncBehavior")
    if sources.sync_client_version:
        facts.sync_client_version = Fact.of(sources.sync_client_version, "given with --sync-client-version")
    elif sources.sync_server is not None:
        open_sync = sources.sync_server

        def sync_version() -> Fact[str]:
            bridge = open_sync()
            try:
                return Fact.of(read_sync_client_version(bridge), "read from the sync server")
            finally:
                bridge.close()
        tasks["sync_client_version"] = _guard(sync_version, "sync server")
    if sources.onprem_server is not None and scope == "decommission":
        open_server = sources.onprem_server

        def server() -> Fact[HybridFacts]:
            bridge = open_server()
            try:
                return Fact.of(read_hybrid(bridge), "the Exchange server over WinRM")
            finally:
                close = getattr(bridge, "close", None)
                if close is not None:
                    close()
        tasks["onprem_server"] = _guard(server, "Exchange server")
    for name, reason in absent.items():
        if name not in tasks and hasattr(facts, name):
            setattr(facts, name, Fact.unavailable(reason))
    with ThreadPoolExecutor(max_workers=max(1, len(tasks)), thread_name_prefix="exocm-readiness") as pool:
        timings: dict[str, float] = {}
        futures: dict[str, Future[Fact[Any]]] = {name: pool.submit(_timed(task, name, timings))
                                                 for name, task in tasks.items()}
        for name, future in futures.items():
            setattr(facts, name, future.result())
    result = None
    detect_started = time.perf_counter()
    if facts.inventory.ok and facts.inventory.value is not None:
        onprem = facts.onprem.value if facts.onprem.ok else None
        org_config = facts.org_config.value if facts.org_config.ok else None
        try:
            result = detect(facts.inventory.value, onprem, now=now, org_config=org_config,
                            codes=list(MAILBOX_FINDING_FIXES))
        except Exception as exc:  # a detection failure is the check's reason, not a crash
            facts.finding_counts = Fact.unavailable(f"detection failed: {_one_line(exc)}")
        else:
            counts = result.findings["code"].value_counts() if len(result.findings) else pd.Series(dtype="int64")
            facts.finding_counts = Fact.of({c: int(counts.get(c, 0)) for c in MAILBOX_FINDING_FIXES
                                            if c not in result.not_checked})
            facts.notes.extend(f"{c} not checked: {why}" for c, why in result.not_checked.items())
    else:
        facts.finding_counts = Fact.unavailable(facts.inventory.reason)
    timings["detect"] = round(time.perf_counter() - detect_started, 3)
    return Gathered(facts, time.perf_counter() - started, result, timings)
