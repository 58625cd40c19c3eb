"""Inventory of groups, contacts and users through Microsoft Graph (object-level SOA).

One frame per kind, one row per Entra object (index = its object id, which EXO calls
ExternalDirectoryObjectId), columns `model.object_columns(kind)`. Every object of the kind is
listed, synced or not: a cloud-only object is a finding (OBJECT_NOT_SYNCED) and, as a member of
a synced group, the evidence of another (GROUP_CLOUD_ONLY_MEMBERS).

Reads (docs/exchange-facts.md "Object-level SOA through Graph"):
- `GET /{groups|contacts|users}?$select=...&$top=999`, paged by `@odata.nextLink`;
- per group, `GET /groups/{id}/members` and `/owners` (`$select=id,onPremisesSyncEnabled`; the
  `@odata.type` of each says user, group or orgContact), for member and owner counts, nesting
  and cloud-only members;
- per synced object, `GET .../onPremisesSyncBehavior` (`isCloudManaged`; Graph offers it on no
  `$select` of the object itself), v1.0 for groups and beta for contacts and users.
The per-object reads go in JSON batches of 20, many batches at once under the tenant's shared
concurrency limit, while the listing pages keep coming (the listing is one sequential pager:
Graph offers no partitioned listing of directory objects).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd

from ..bridge.errors import BridgeError, NotFound, PermissionDenied
from ..bridge.graph import API_VERSION, MAX_TOP, GraphBridge, GraphCall, GraphResult
from ..events import Progress, ProgressCallback, ignore_progress
from ..model import (
    CONTACT,
    GRAPH_COLLECTIONS,
    GROUP,
    READ_PERMISSIONS,
    SYNC_BEHAVIOR_PERMISSIONS,
    SYNC_BEHAVIOR_VERSIONS,
    USER,
    check_kind,
    object_columns,
)
from .fetch import Inventory, InventoryCancelled

_COMMON_SELECT: Final = ("id", "displayName", "mail", "mailNickname", "proxyAddresses", "onPremisesSyncEnabled",
                         "onPremisesLastSyncDateTime", "onPremisesSamAccountName")
SELECT: Final[dict[str, tuple[str, ...]]] = {
    GROUP: (*_COMMON_SELECT, "mailEnabled", "securityEnabled", "groupTypes", "membershipRule",
            "onPremisesExtensionAttributes", "assignedLicenses"),
    CONTACT: _COMMON_SELECT,
    USER: (*_COMMON_SELECT, "userPrincipalName", "onPremisesExtensionAttributes"),
}
_MEMBER_SELECT: Final = "id,onPremisesSyncEnabled"
#: Multi-valued columns (tuples of str) of object frames.
OBJECT_MULTI_COLUMNS: Final = ("ProxyAddresses", "ExtensionAttributes", "GroupTypes", "ChildGroups", "ParentGroups")


def group_type(record: Mapping[str, Any]) -> str:
    """Distribution, MailEnabledSecurity, Security, Microsoft365 or Dynamic (Graph group resource:
    groupTypes "DynamicMembership" / "Unified", mailEnabled, securityEnabled)."""
    types = [str(t) for t in (record.get("groupTypes") or [])]
    if "DynamicMembership" in types:
        return "Dynamic"
    if "Unified" in types:
        return "Microsoft365"
    mail, security = bool(record.get("mailEnabled")), bool(record.get("securityEnabled"))
    if mail and security:
        return "MailEnabledSecurity"
    if mail:
        return "Distribution"
    return "Security"


def _written_back(record: Mapping[str, Any]) -> bool:
    """A Microsoft 365 group written back to AD: `writebackConfiguration.isEnabled` (beta) when Graph
    sends it (fetch_objects reads it for Unified groups), else a Unified group synced from on-prem."""
    config = record.get("writebackConfiguration")
    if isinstance(config, Mapping) and config.get("isEnabled") is not None:
        return bool(config.get("isEnabled"))
    return record.get("onPremisesSyncEnabled") is True


def _extension_attributes(record: Mapping[str, Any]) -> tuple[str, ...]:
    attrs = record.get("onPremisesExtensionAttributes")
    if not isinstance(attrs, Mapping):
        return ()
    out = []
    for i in range(1, 16):
        value = attrs.get(f"extensionAttribute{i}")
        if value not in (None, ""):
            out.append(f"extensionAttribute{i}={value}")
    return tuple(out)


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _row(kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
    oid = str(record.get("id") or "").lower()
    row: dict[str, Any] = {
        "ExternalDirectoryObjectId": oid,
        "DisplayName": record.get("displayName") or "",
        "Mail": record.get("mail") or "",
        "MailNickname": record.get("mailNickname") or "",
        "ProxyAddresses": tuple(str(p) for p in (record.get("proxyAddresses") or [])),
        "OnPremisesSyncEnabled": record.get("onPremisesSyncEnabled") is True,
        "IsCloudManaged": None,
        "OnPremisesLastSyncDateTime": _when(record.get("onPremisesLastSyncDateTime")),
        "OnPremisesSamAccountName": record.get("onPremisesSamAccountName") or "",
        "ExtensionAttributes": _extension_attributes(record),
    }
    if kind == GROUP:
        row.update({
            "GroupType": group_type(record),
            "GroupTypes": tuple(str(t) for t in (record.get("groupTypes") or [])),
            "MailEnabled": bool(record.get("mailEnabled")),
            "SecurityEnabled": bool(record.get("securityEnabled")),
            "MembershipRule": record.get("membershipRule") or "",
            "MemberCount": 0, "OwnerCount": 0, "ChildGroups": (), "ParentGroups": (), "CloudOnlyMembers": 0,
            "LicenseCount": len(record.get("assignedLicenses") or []),
            "WrittenBack": _written_back(record),
        })
    elif kind == USER:
        row["UserPrincipalName"] = record.get("userPrincipalName") or ""
    return row


def empty_object_frame(kind: str) -> pd.DataFrame:
    """An object frame with no rows and the kind's columns."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in object_columns(kind)})


def rows_to_frame(kind: str, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Object rows (dicts keyed by the kind's columns) as the kind's frame, indexed by object id."""
    columns = list(object_columns(kind))
    if not rows:
        return empty_object_frame(kind)
    frame = pd.DataFrame.from_records(list(rows), columns=columns)
    for column in OBJECT_MULTI_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.Series([tuple(v) if v is not None else () for v in frame[column]],
                                      index=frame.index, dtype=object)
    frame["OnPremisesLastSyncDateTime"] = pd.to_datetime(frame["OnPremisesLastSyncDateTime"], utc=True)
    frame["IsCloudManaged"] = frame["IsCloudManaged"].astype(object)
    frame.index = pd.Index(frame["ExternalDirectoryObjectId"].tolist())
    return frame


class _GroupEdges:
    """Members and owners of each group, as the per-group reads come back (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.child_groups: dict[str, list[str]] = {}
        self.members: dict[str, int] = {}
        self.owners: dict[str, int] = {}
        self.cloud_only: dict[str, int] = {}

    def add(self, group: str, relation: str, records: Iterable[Mapping[str, Any]]) -> None:
        children: list[str] = []
        count = 0
        cloud = 0
        for member in records:
            count += 1
            kind = str(member.get("@odata.type") or "")
            if kind.endswith(".group"):
                children.append(str(member.get("id") or "").lower())
            if member.get("onPremisesSyncEnabled") is not True:
                cloud += 1
        with self.lock:
            if relation == "members":
                self.members[group] = self.members.get(group, 0) + count
                self.child_groups.setdefault(group, []).extend(children)
            else:
                self.owners[group] = self.owners.get(group, 0) + count
            self.cloud_only[group] = self.cloud_only.get(group, 0) + cloud


class _ObjectFetch:
    def __init__(self, graph: GraphBridge, kind: str, *, progress: ProgressCallback,
                 cancel: threading.Event, workers: int) -> None:
        self.graph = graph
        self.kind = kind
        self.collection = GRAPH_COLLECTIONS[kind]
        self.behaviour_version = SYNC_BEHAVIOR_VERSIONS[kind]
        self.progress = progress
        self.cancel = cancel
        self.workers = max(1, workers)
        self.rows: dict[str, dict[str, Any]] = {}
        self.edges = _GroupEdges()
        self.cloud_managed: dict[str, bool | None] = {}
        self.written_back: dict[str, bool] = {}
        self.lock = threading.Lock()
        self.reads_done = 0
        self.reads_total = 0
        self.error: BaseException | None = None

    def emit(self, message: str = "") -> None:
        with self.lock:
            done, total = self.reads_done, self.reads_total
        snap = self.graph.snapshot()
        self.progress(Progress(stage="inventory", done=len(self.rows), total=None, message=message,
                               counters={"kind": self.kind, "reads_done": done, "reads_total": total,
                                         "requests": snap.get("requests", 0), "http_429": snap.get("http_429", 0),
                                         "concurrency": snap.get("limit")}))

    def check(self, result: GraphResult, what: str) -> bool:
        """True when the result is usable; NotFound (the object went away) is False; other errors raise."""
        if result.error is None:
            return True
        if isinstance(result.error, NotFound):
            return False
        raise result.error

    def read_group_edges(self, calls: list[tuple[str, str, GraphCall]]) -> None:
        results = self.graph.batch([c for _, _, c in calls], what=f"read {self.collection}", version=API_VERSION,
                                   permission=READ_PERMISSIONS[GROUP], parallel=False)
        for (group, relation, _), result in zip(calls, results, strict=True):
            if not self.check(result, relation):
                continue
            body = result.body if isinstance(result.body, Mapping) else {}
            raw = body.get("value")
            value: list[Any] = raw if isinstance(raw, list) else []
            self.edges.add(group, relation, [v for v in value if isinstance(v, Mapping)])
            link = body.get("@odata.nextLink")
            if link:  # a big group: the rest of its members page by page
                path = f"/groups/{group}/{relation}"
                rest = self.graph.list_all(path, what=f"read {relation} of group {group}",
                                           select=_MEMBER_SELECT.split(","), top=MAX_TOP,
                                           permission=READ_PERMISSIONS[GROUP])
                self.edges.add(group, relation, rest[len(value):])
        with self.lock:
            self.reads_done += len(calls)

    def read_behaviour(self, ids: list[str]) -> None:
        calls = [GraphCall("GET", f"/{self.collection}/{oid}/onPremisesSyncBehavior") for oid in ids]
        results = self.graph.batch(calls, what=f"read onPremisesSyncBehavior of {self.collection}",
                                   version=self.behaviour_version, permission=SYNC_BEHAVIOR_PERMISSIONS[self.kind],
                                   parallel=False)
        for oid, result in zip(ids, results, strict=True):
            if not self.check(result, "onPremisesSyncBehavior"):
                continue
            body = result.body if isinstance(result.body, Mapping) else {}
            value = body.get("isCloudManaged")
            with self.lock:
                self.cloud_managed[oid] = value if isinstance(value, bool) else None
        with self.lock:
            self.reads_done += len(ids)

    def page_work(self, page: Sequence[Mapping[str, Any]]) -> list[Callable[[], None]]:
        jobs: list[Callable[[], None]] = []
        synced: list[str] = []
        edge_calls: list[tuple[str, str, GraphCall]] = []
        for record in page:
            row = _row(self.kind, record)
            oid = row["ExternalDirectoryObjectId"]
            if not oid:
                continue
            self.rows[oid] = row
            if row["OnPremisesSyncEnabled"]:
                synced.append(oid)
            if self.kind == GROUP:
                for relation in ("members", "owners"):
                    edge_calls.append((oid, relation, GraphCall(
                        "GET", f"/groups/{oid}/{relation}?$select={_MEMBER_SELECT}&$top={MAX_TOP}")))
        for start in range(0, len(edge_calls), 20):
            chunk = edge_calls[start:start + 20]
            jobs.append(lambda chunk=chunk: self.read_group_edges(chunk))  # type: ignore[misc]
        for start in range(0, len(synced), 20):
            ids = synced[start:start + 20]
            jobs.append(lambda ids=ids: self.read_behaviour(ids))  # type: ignore[misc]
        unified = [oid for oid in (str(r.get("id") or "").lower() for r in page if "Unified" in (r.get("groupTypes") or []))
                   if oid] if self.kind == GROUP else []
        for start in range(0, len(unified), 20):
            ids = unified[start:start + 20]
            jobs.append(lambda ids=ids: self.read_writeback(ids))  # type: ignore[misc]
        with self.lock:
            self.reads_total += len(edge_calls) + len(synced) + len(unified)
        return jobs

    def read_writeback(self, ids: list[str]) -> None:
        """Group writeback of Microsoft 365 groups: `writebackConfiguration` is a beta-only property."""
        calls = [GraphCall("GET", f"/groups/{oid}?$select=id,writebackConfiguration") for oid in ids]
        results = self.graph.batch(calls, what="read writebackConfiguration of groups", version="beta",
                                   permission=READ_PERMISSIONS[GROUP], parallel=False)
        for oid, result in zip(ids, results, strict=True):
            if not self.check(result, "writebackConfiguration"):
                continue
            body = result.body if isinstance(result.body, Mapping) else {}
            config = body.get("writebackConfiguration")
            if isinstance(config, Mapping) and config.get("isEnabled") is not None:
                with self.lock:
                    self.written_back[oid] = bool(config.get("isEnabled"))
        with self.lock:
            self.reads_done += len(ids)

    def run(self) -> list[dict[str, Any]]:
        futures: list[Future[None]] = []
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="exocm-objects") as pool:
            try:
                for page in self.graph.pages(f"/{self.collection}", what=f"list {self.collection}",
                                             select=SELECT[self.kind], top=MAX_TOP,
                                             permission=READ_PERMISSIONS[self.kind]):
                    if self.cancel.is_set():
                        raise InventoryCancelled()
                    for job in self.page_work(page):
                        futures.append(pool.submit(job))
                    self.emit()
                    self._raise_done_errors(futures)
                for future in futures:
                    if self.cancel.is_set():
                        raise InventoryCancelled()
                    future.result()
            except BaseException:
                self.cancel.set()
                for future in futures:
                    future.cancel()
                raise
        self.emit("done")
        return self.finish()

    @staticmethod
    def _raise_done_errors(futures: list[Future[None]]) -> None:
        for future in futures:
            if future.done() and not future.cancelled():
                exc = future.exception()
                if exc is not None:
                    raise exc

    def finish(self) -> list[dict[str, Any]]:
        for oid, row in self.rows.items():
            row["IsCloudManaged"] = self.cloud_managed.get(oid) if row["OnPremisesSyncEnabled"] else None
        if self.kind == GROUP:
            parents: dict[str, list[str]] = {}
            for group, children in self.edges.child_groups.items():
                for child in children:
                    parents.setdefault(child, []).append(group)
            for oid, row in self.rows.items():
                row["MemberCount"] = self.edges.members.get(oid, 0)
                row["OwnerCount"] = self.edges.owners.get(oid, 0)
                row["CloudOnlyMembers"] = self.edges.cloud_only.get(oid, 0)
                row["ChildGroups"] = tuple(sorted(set(self.edges.child_groups.get(oid, []))))
                row["ParentGroups"] = tuple(sorted(set(parents.get(oid, []))))
                if oid in self.written_back:
                    row["WrittenBack"] = self.written_back[oid]
        return list(self.rows.values())


def fetch_objects(graph: GraphBridge, kind: str, *, progress: ProgressCallback | None = None,
                  cancel: threading.Event | None = None, max_workers: int | None = None,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Inventory:
    """List every object of `kind` (group, contact, user) with its SOA state; see the module docstring.

    A 403 names the Graph permission to grant (PermissionDenied); InventoryCancelled when `cancel`
    is set.
    """
    kind = check_kind(kind, allow_mailbox=False)
    workers = max_workers or graph.limiter.max_limit
    job = _ObjectFetch(graph, kind, progress=progress or ignore_progress, cancel=cancel or threading.Event(),
                       workers=workers)
    try:
        rows = job.run()
    except PermissionDenied:
        raise
    except BridgeError:
        raise
    frame = rows_to_frame(kind, rows)
    snap = graph.snapshot()
    stats = {"objects": len(frame), "kind": kind, "requests": snap.get("requests", 0),
             "batches": snap.get("batches", 0), "pages": snap.get("pages", 0), "http_429": snap.get("http_429", 0)}
    if kind == GROUP:
        stats["synced"] = int(frame["OnPremisesSyncEnabled"].sum()) if len(frame) else 0
    return Inventory(frame=frame, tenant=graph.tenant, fetched_at=now(), source="graph", stats=stats,
                     kind=kind)


def members_of(graph: GraphBridge, group: str) -> list[dict[str, Any]]:
    """The direct members of one group (id, displayName, @odata.type, onPremisesSyncEnabled) for detail panes."""
    return graph.list_all(f"/groups/{group}/members", what=f"read members of group {group}",
                          select=("id", "displayName", "onPremisesSyncEnabled"), top=MAX_TOP,
                          permission=READ_PERMISSIONS[GROUP])


__all__ = ["CONTACT", "OBJECT_MULTI_COLUMNS", "SELECT", "empty_object_frame", "fetch_objects", "group_type",
           "members_of", "rows_to_frame"]
