"""One connected tenant and the work a face does with it: a facade over core for the TUI (and any face).

A Session holds the bridge and what was loaded through it (inventory, on-prem data, findings)
and offers each step of the product as one call: load the inventory, detect, build a plan from
a selection, save it, apply it with progress/cancel/pause, list journals, build an undo plan.
It decides nothing new: every rule lives in the core module it names. Every method may be
called from a worker thread; none touches a terminal.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..access.config import ConfigError
from ..access.config import data_dir as default_data_dir
from ..bridge.base import Bridge
from ..bridge.errors import BridgeError
from ..detect.engine import detect
from ..detect.prerequisites import Check
from ..detect.prerequisites.gather import Sources
from ..detect.readiness import flip_readiness
from ..events import Progress, ProgressCallback
from ..execute.apply import ApplyResult, apply_plan, confirmation_phrase, pending_rows
from ..execute.journal import JournalInfo, journals_under, list_journals, plan_history, read_journal
from ..execute.undo import build_undo_plan, journal_object_kind
from ..inventory import snapshot
from ..inventory.fetch import Inventory
from ..inventory.onprem import OnPremData, load_onprem_csv, onprem_frame_from_records
from ..model import Writeback
from ..plan import selection
from ..plan.planfile import Plan, PlanRow, save_plan
from ..plan.workflow import SelectionRequest, default_plan_path, plan_from_selection, select_targets
from ..runbooks.engine import Services
from ..runbooks.reads import cloud_sync_writeback
from .views import VIEW_COLUMNS, MailboxView


@dataclass(frozen=True)
class SnapshotPreview:
    """The saved snapshot's list columns, read before the whole inventory: enough to paint the table.

    `view` has no frame until the full inventory of the same rows is attached to it.
    """

    view: MailboxView
    fetched_at: datetime | None
    path: Path
    from_snapshot: bool = True


@dataclass(frozen=True)
class FirstPagePreview:
    """The first page of a fetch still running (a cold start: no snapshot), to paint at once.

    `view` holds only those rows; the whole inventory replaces it when the fetch is done.
    """

    view: MailboxView
    fetched_at: datetime | None
    from_snapshot: bool = False
    partial: bool = True


@dataclass(frozen=True)
class SelectionImport:
    """A CSV resolved against the inventory: identities to select and the lines that matched nothing."""

    identities: list[str]
    unmatched: list[str]


class Session:
    """A connected tenant (or the sandbox) and what was loaded from it."""

    def __init__(
        self,
        bridge: Bridge,
        *,
        label: str,
        is_sandbox: bool,
        profile_name: str | None = None,
        onprem_csv: Path | None = None,
        onprem_records: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
        onprem_data: Callable[[], OnPremData] | None = None,
        data_dir: Path | None = None,
        snapshot_first: bool = True,
        clock: Callable[[], datetime] | None = None,
        on_close: Callable[[], None] | None = None,
        runbook_services: Callable[[bool], Services] | None = None,
        embedded_sandbox: tuple[int, int] | None = None,
        prerequisite_sources: Callable[[], Sources] | None = None,
        graph: Callable[[], Any] | None = None,
        object_onprem: Callable[[str, pd.DataFrame], Mapping[str, Mapping[str, Any]] | None] | None = None,
    ) -> None:
        """`onprem_csv` / `onprem_records` / `onprem_data`: where on-prem data comes from (an Export-Csv
        file, records such as PSRP Get-Mailbox/Get-RemoteMailbox rows, or a loader of normalised
        on-prem data such as the live WinRM read, `onprem_live.load_onprem_live`). `snapshot_first`: the first
        load reuses the saved snapshot (False for a tenant that is new each run, like the
        embedded sandbox, whose snapshot would describe another tenant's state). `clock`: the
        session's wall clock (when an inventory is read, detection's now, plan creation and plan age
        checks; tests freeze it).
        `embedded_sandbox`: (size, seed) of the saved embedded sandbox this session runs on (None
        otherwise), recorded in runbook runs so `exocm runbook resume` reopens the same one.
        `graph`: opens the tenant's Microsoft Graph bridge (groups, contacts, users); `object_onprem(kind,
        frame)`: the AD side of a kind's objects, matched to their ids (inventory/onprem_objects.py)."""
        self.bridge = bridge
        self._graph_factory = graph
        self._graph: Any = None
        self.object_onprem = object_onprem
        #: Object inventories (groups, contacts, users) and their findings, per kind, once loaded.
        self.objects: dict[str, Any] = {}
        self.object_findings: dict[str, pd.DataFrame] = {}
        self.embedded_sandbox = embedded_sandbox
        #: Where the readiness checks read their facts (the faces say where; None: not available).
        self.prerequisite_sources = prerequisite_sources
        #: Opens what a runbook run needs (EXO, Graph, on-prem) with its on-prem-group-changes flag.
        self.runbook_services = runbook_services
        self.label = label
        self.is_sandbox = is_sandbox
        self.profile_name = profile_name
        self.onprem_csv = onprem_csv
        self.onprem_records = onprem_records
        self.onprem_data = onprem_data
        #: Where the loaded on-prem data came from ("" before it is loaded, or when there is none).
        self.onprem_source = ""
        self.snapshot_first = snapshot_first
        self.clock = clock
        self.loads = 0
        self._data_dir = data_dir
        self._on_close = on_close
        self.inventory: Inventory | None = None
        self.onprem: pd.DataFrame | None = None
        self._onprem_index: dict[str, int] | None = None
        self.findings_frame: pd.DataFrame | None = None
        self.readiness_frame: pd.DataFrame | None = None
        self.detect_notes: list[str] = []
        self._writeback: Writeback | None = None
        self._lock = threading.Lock()

    # -- where things live --------------------------------------------------------------------
    @property
    def tenant(self) -> str:
        """The tenant the bridge talks to."""
        return str(self.bridge.tenant)

    @property
    def data_dir(self) -> Path:
        """Data directory (snapshots, plans, journals)."""
        if self._data_dir is not None:
            return self._data_dir
        return default_data_dir()

    def embedded_source(self) -> dict[str, Any]:
        """What a run records about the embedded sandbox it was started on (empty otherwise)."""
        if self.embedded_sandbox is None:
            return {}
        size, seed = self.embedded_sandbox
        return {"embedded_sandbox": {"size": size, "seed": seed}}

    # -- inventory ------------------------------------------------------------------------------
    def load_inventory(
        self,
        refresh: bool = False,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Inventory:
        """The inventory: the saved snapshot when there is one and `refresh` is False, else a fetch.

        Raises core.inventory.InventoryCancelled when `cancel` is set during a fetch.
        """
        if self.loads == 0 and not self.snapshot_first:
            refresh = True
        inventory = snapshot.load_or_fetch(self.bridge, refresh=refresh, progress=progress, cancel=cancel,
                                           root=self.data_dir / "snapshots" if self._data_dir else None,
                                           now=self.clock or _system_clock)
        with self._lock:
            self.loads += 1
            self.inventory = inventory
            self.findings_frame = None
            self.readiness_frame = None
        return inventory

    def preview_snapshot(self) -> SnapshotPreview | None:
        """The saved snapshot that the next `load_inventory()` will load, read lean (only VIEW_COLUMNS
        and the row key, straight from Parquet into Arrow: tens of milliseconds at 100,000 rows), so a
        face can paint before the whole inventory is loaded and detected. None when the next load
        fetches (`snapshot_first` is False and nothing was loaded yet) or there is no usable snapshot.
        """
        if self.loads == 0 and not self.snapshot_first:
            return None
        root = self.data_dir / "snapshots" if self._data_dir else None
        path = snapshot.snapshot_path(self.tenant, snapshot.default_variant(False), root)
        meta = snapshot.read_snapshot_meta(path)  # the same checks as load_snapshot: else it will fetch
        if (meta is None or meta.get("schema") != snapshot.SCHEMA_VERSION
                or meta.get("columns") != snapshot.COLUMNS_VERSION):
            return None
        try:
            fetched_at: datetime | None = datetime.fromisoformat(str(meta["fetched_at"])).astimezone(UTC)
        except (KeyError, ValueError):
            return None
        try:
            parquet = pq.ParquetFile(path)
            names = parquet.schema_arrow.names
            index = (parquet.schema_arrow.pandas_metadata or {}).get("index_columns", [])
            key = index[0] if index and isinstance(index[0], str) else "ExternalDirectoryObjectId"
            columns = [name for name in VIEW_COLUMNS if name in names] + [key]
            # one thread: the table is small, and a thread pool costs more CPU than it saves here
            table = parquet.read(columns=columns, use_threads=False)
            view = MailboxView(table, key_column=key)
        except (OSError, pa.ArrowException, KeyError, ValueError):
            return None
        return SnapshotPreview(view=view, fetched_at=fetched_at, path=path)

    def preview_first_page(self, page_size: int = 1000) -> FirstPagePreview | None:
        """One page of Get-Mailbox to paint while the whole inventory is fetched (a cold start: no
        snapshot), so the first rows show after one request instead of after the whole fetch. None when
        the page cannot be read (the fetch that follows reports why)."""
        from ..bridge.errors import BridgeError
        from ..inventory.fetch import records_to_frame

        try:
            records = self.bridge.invoke("Get-Mailbox", {"ResultSize": page_size})
        except BridgeError:
            return None
        if not records:
            return None
        return FirstPagePreview(view=MailboxView(records_to_frame(list(records), [])), fetched_at=datetime.now(UTC))

    def view(self) -> MailboxView:
        """A MailboxView of the loaded inventory (with findings when detected)."""
        if self.inventory is None:
            raise RuntimeError("no inventory loaded")
        return MailboxView(self.inventory.frame, self.findings_frame)

    # -- on-prem and detection ------------------------------------------------------------------
    def load_onprem(self) -> pd.DataFrame | None:
        """On-prem recipients from the session's CSV, loader or records (None when there is none).

        A loader that fails (an unreachable or refusing WinRM endpoint) raises; the next call tries again."""
        if self.onprem is not None:
            return self.onprem
        data: OnPremData | None = None
        if self.onprem_csv is not None:
            data = load_onprem_csv(self.onprem_csv)
        elif self.onprem_data is not None:
            data = self.onprem_data()
        elif self.onprem_records is not None:
            data = onprem_frame_from_records(self.onprem_records(), source="on-prem records")
        if data is not None:
            self.onprem_source = data.source
            self.onprem = data.frame
        return self.onprem

    def onprem_record(self, identity: str, cloud: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The on-prem record of one mailbox (by ExternalDirectoryObjectId, else UPN), or None."""
        onprem = self.onprem
        if onprem is None or onprem.empty:
            return None
        if self._onprem_index is None:
            index: dict[str, int] = {}
            for column in ("UserPrincipalName", "ExternalDirectoryObjectId"):
                if column in onprem.columns:
                    for pos, value in enumerate(onprem[column].tolist()):
                        if isinstance(value, str) and value:
                            index.setdefault(value.lower(), pos)
            self._onprem_index = index
        keys = [identity.lower()]
        if cloud is not None and isinstance(cloud.get("UserPrincipalName"), str):
            keys.append(str(cloud["UserPrincipalName"]).lower())
        for key in keys:
            found = self._onprem_index.get(key)
            if found is not None:
                row = onprem.iloc[found]
                return {str(k): v for k, v in row.items()}
        return None

    def findings(self, now: datetime | None = None) -> pd.DataFrame:
        """Detection findings over the loaded inventory (and on-prem data when present)."""
        inventory = self.inventory
        if inventory is None:
            raise RuntimeError("no inventory loaded")
        onprem = self.load_onprem()
        if now is None and self.clock is not None:
            now = self.clock()
        # as `exocm findings` does: whether cloud edits reach AD matters only beside on-prem data
        writeback = self.writeback() if onprem is not None else None
        result = detect(inventory.frame, onprem, now=now, writeback=writeback)
        found = result.findings
        with self._lock:
            self.findings_frame = found
            self.detect_notes = list(result.notes) + [f"{code} not checked: {why}"
                                                      for code, why in result.not_checked.items()]
        return found

    def prerequisites(self, scope: str = "flip") -> tuple[list[Check], dict[str, Any]]:
        """Run the readiness checks of `scope` (reusing the loaded inventory); (checks, summary)."""
        from ..detect.prerequisites import evaluate
        from ..detect.prerequisites.gather import gather
        from ..detect.prerequisites.report import summarise

        if self.prerequisite_sources is None:
            raise RuntimeError("readiness checks are not available in this session")
        sources = self.prerequisite_sources()
        inventory = self.inventory
        if inventory is not None:
            frame = inventory.frame
            sources.inventory = lambda: frame
        checks = evaluate(gather(sources, scope=scope).facts, scope)
        return checks, summarise(checks, scope)

    def findings_for(self, identity: str) -> list[tuple[str, str, str]]:
        """(code, severity, explanation) of the findings of one mailbox."""
        frame = self.findings_frame
        if frame is None or frame.empty:
            return []
        rows = frame.loc[frame["ExternalDirectoryObjectId"] == identity]
        return [(str(r.code), str(r.severity), str(r.explanation)) for r in rows.itertuples()]

    def readiness(self, target: bool) -> pd.DataFrame | None:
        """Flip readiness for a flip to `target` (None when detection is not available)."""
        if self.inventory is None:
            return None
        findings = self.findings_frame if self.findings_frame is not None else self.findings()
        return flip_readiness(self.inventory.frame, findings, target)

    # -- plans ------------------------------------------------------------------------------------
    def build_plan(self, request: SelectionRequest, target: bool, *, max_changes: int | None = None) -> Plan:
        """The plan that sets IsExchangeCloudManaged to `target` for a selection: the same steps and
        the same plan as `exocm plan` (core.plan.workflow). Raises SelectionError for a bad request."""
        inventory = self.inventory
        if inventory is None:
            raise RuntimeError("no inventory loaded")
        chosen = select_targets(inventory.frame, request)
        return plan_from_selection(
            inventory.frame, chosen, target, tenant=self.tenant, bridge=self.bridge.kind,
            inventory_fetched_at=inventory.fetched_at, sandbox=self.is_sandbox,
            readiness=self.readiness(target), max_changes=max_changes,
            extra_source=self.embedded_source(), now=self.clock() if self.clock is not None else None,
        )

    def default_plan_path(self, plan: Plan) -> Path:
        """Where a plan is saved by default (core.plan.workflow.default_plan_path)."""
        return default_plan_path(plan, self.data_dir)

    def save_plan(self, plan: Plan, path: Path | None = None) -> Path:
        """Write the plan file (0600, atomic); returns its path."""
        target = path or self.default_plan_path(plan)
        return Path(save_plan(plan, target))

    @property
    def journal_folder(self) -> Path:
        """Where this session's apply runs write their journals."""
        return journals_under(self.data_dir)

    def pending_rows(self, plan: Plan) -> list[PlanRow]:
        """Set rows of the plan that no earlier run has verified (what an apply would still change)."""
        return pending_rows(plan, plan_history(plan.digest, self.journal_folder))

    def confirmation_phrase(self, plan: Plan) -> str:
        """What the user types to confirm an apply: the tenant and the rows still to change (core.execute.apply)."""
        return confirmation_phrase(plan.tenant, len(self.pending_rows(plan)))

    # -- apply, journals, undo -----------------------------------------------------------------
    def apply(
        self,
        plan: Plan,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> ApplyResult:
        """Apply a plan through the bridge (core.apply); returns its ApplyResult (journal path, counts).

        `cancel` set = clean stop (in-flight rows settle, journal flushed); `pause` set = hold.
        `on_failure(identity, error)` is called for each failed row as the journal records it.
        """
        tail = _JournalTail(self.journal_folder, plan.short_digest) if on_failure else None

        def relay(event: Progress) -> None:
            if tail is not None and on_failure is not None and event.counters.get("failed"):
                for identity, error in tail.new_failures():
                    on_failure(identity, error)
            if progress is not None:
                progress(event)

        bridge, io = self._io_for(plan)
        result = apply_plan(bridge, plan, progress=relay, cancel=cancel, pause=pause, data_dir=self.data_dir,
                            now=self.clock, io=io)
        if tail is not None and on_failure is not None:
            for identity, error in tail.new_failures(Path(result.journal_path)):
                on_failure(identity, error)
        return result

    def journals(self) -> list[JournalInfo]:
        """Past runs of this tenant, newest first (unreadable files are left out)."""
        return list_journals(self.journal_folder, tenant=self.tenant)

    def journal_rows(self, path: Path) -> pd.DataFrame:
        """The row records of one journal as a table (seq, identity, status, before, after, error, at)."""
        rows = read_journal(path).rows()
        columns = ["seq", "identity", "status", "before", "after", "error", "at"]
        frame = pd.DataFrame(rows)
        for column in columns:
            if column not in frame.columns:
                frame[column] = None
        return frame[columns + [c for c in frame.columns if c not in columns and c not in ("type", "run_id")]]

    def undo_plan(self, path: Path) -> Plan:
        """An undo plan built from a journal (core.undo: verified rows only; drifted ones skipped)."""
        kind = journal_object_kind(read_journal(path).header or {})
        if kind != "mailbox":
            bridge, io = self._io_for(kind)
            return build_undo_plan(bridge, path, io=io)
        return build_undo_plan(self.bridge, path, onprem=self.load_onprem())

    # -- object kinds: groups, contacts, users through Microsoft Graph -----------------------------
    def writeback(self) -> Writeback:
        """Whether Cloud Sync writes Exchange attributes back to AD, read once through the session's
        Graph (unknown, with the reason, when it has none or Graph fails)."""
        with self._lock:
            if self._writeback is not None:
                return self._writeback
        if self._graph_factory is None:
            result = Writeback(None, (), "no Microsoft Graph connection in this session")
        else:
            try:
                result = cloud_sync_writeback(self.graph())
            except (BridgeError, ConfigError, OSError, RuntimeError) as exc:
                result = Writeback(None, (), f"Graph not available ({exc})")
        with self._lock:
            self._writeback = result
        return result

    def graph(self) -> Any:
        """The tenant's Graph bridge (opened on first use; RuntimeError when the session has none)."""
        if self._graph is None:
            if self._graph_factory is None:
                raise RuntimeError("this session has no Microsoft Graph connection")
            self._graph = self._graph_factory()
        return self._graph

    def load_objects(self, kind: str, refresh: bool = False, progress: ProgressCallback | None = None,
                     cancel: threading.Event | None = None) -> Any:
        """A Graph kind's inventory (snapshot unless `refresh`, or always fresh when snapshots are off)."""
        from ..inventory import snapshot

        if not self.snapshot_first:
            refresh = True
        inventory = snapshot.load_or_fetch_objects(
            self.graph(), kind, refresh=refresh, progress=progress, cancel=cancel,
            root=self.data_dir / "snapshots" if self._data_dir else None)
        with self._lock:
            self.objects[kind] = inventory
            self.object_findings.pop(kind, None)
        return inventory

    def findings_of(self, kind: str, now: datetime | None = None) -> pd.DataFrame:
        """Object findings of a loaded kind (with the AD side when the session has one)."""
        from ..detect.objects import detect_objects
        from ..inventory.onprem_objects import when_changed

        inventory = self.objects.get(kind)
        if inventory is None:
            raise RuntimeError(f"no {kind} inventory loaded")
        matched = self.object_onprem(kind, inventory.frame) if self.object_onprem is not None else None
        if now is None and self.clock is not None:
            now = self.clock()
        found = detect_objects(kind, inventory.frame, now=now,
                               onprem_when_changed=when_changed(matched) if matched is not None else None)
        with self._lock:
            self.object_findings[kind] = found
        return found

    def object_relations(self, kind: str, identity: str) -> dict[str, list[tuple[str, str]]]:
        """For a group: its parents and children among the inventory's groups as (id, display name)."""
        inventory = self.objects.get(kind)
        if inventory is None or kind != "group" or identity not in inventory.frame.index:
            return {}
        frame = inventory.frame
        names = frame["DisplayName"].to_dict()
        return {relation: [(str(i), str(names.get(i, ""))) for i in frame.at[identity, column]]
                for relation, column in (("parents", "ParentGroups"), ("children", "ChildGroups"))}

    def group_members(self, identity: str) -> list[dict[str, Any]]:
        """The direct members of one group, read live (id, displayName, @odata.type, onPremisesSyncEnabled)."""
        from ..inventory.objects import members_of

        return members_of(self.graph(), identity)

    def build_object_plan(self, kind: str, identities: Sequence[str], target: bool) -> Any:
        """A plan that sets isCloudManaged to `target` for these objects (core.plan decides skips and order)."""
        from ..plan.objects import build_object_plan

        inventory = self.objects.get(kind)
        if inventory is None:
            raise RuntimeError(f"no {kind} inventory loaded")
        findings = self.object_findings.get(kind)
        if findings is None:
            findings = self.findings_of(kind)
        return build_object_plan(kind, inventory.frame, list(identities), target, tenant=self.tenant,
                                 findings=findings, source={"kind": "tui-selection", "count": len(identities)},
                                 now=self.clock() if self.clock is not None else None)

    def _io_for(self, plan_or_kind: Any) -> tuple[Any, Any]:
        """(bridge, row IO) for a plan or an object kind: Graph with an ObjectIO for Graph kinds."""
        kind = plan_or_kind if isinstance(plan_or_kind, str) else getattr(plan_or_kind, "object_kind", "mailbox")
        if kind == "mailbox":
            return self.bridge, None
        from ..execute.objects_io import ObjectIO

        graph = self.graph()
        return graph, ObjectIO(graph, kind)

    # -- selection ---------------------------------------------------------------------------------
    def select_from_csv(self, path: Path) -> SelectionImport:
        """Resolve a CSV of identities against the inventory (core.selection decides what matches)."""
        if self.inventory is None:
            raise RuntimeError("no inventory loaded")
        result = selection.select_from_csv(self.inventory.frame, path)
        return SelectionImport(identities=list(result.identities),
                               unmatched=[issue.message() for issue in result.issues])

    def close(self) -> None:
        """Close the bridge (and stop the sandbox when the session owns one)."""
        try:
            if self._graph is not None:
                self._graph.close()
            self.bridge.close()
        finally:
            if self._on_close is not None:
                self._on_close()


def _system_clock() -> datetime:
    return datetime.now(UTC)


class _JournalTail:
    """Follows the journal a running apply writes (found by plan digest) and yields new failed rows."""

    def __init__(self, folder: Path, digest_tag: str) -> None:
        self.folder = folder
        self.tag = digest_tag[:12]
        self.before = set(folder.glob(f"*-{self.tag}.jsonl")) if folder.is_dir() else set()
        self.path: Path | None = None
        self.offset = 0
        self.seen: set[str] = set()

    def _find(self) -> Path | None:
        if self.path is None and self.folder.is_dir():
            fresh = sorted(set(self.folder.glob(f"*-{self.tag}.jsonl")) - self.before)
            self.path = fresh[-1] if fresh else None
        return self.path

    def new_failures(self, path: Path | None = None) -> list[tuple[str, str]]:
        """(identity, error) of failed rows appended since the last call (complete lines only)."""
        if path is not None and self.path is None:
            self.path = path
        target = self._find()
        if target is None:
            return []
        try:
            with target.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        out: list[tuple[str, str]] = []
        for line in data[: end + 1].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("type") != "row" or record.get("status") != "failed":
                continue
            identity = str(record.get("identity", ""))
            if identity in self.seen:
                continue
            self.seen.add(identity)
            out.append((identity, str(record.get("error") or "failed")))
        return out

