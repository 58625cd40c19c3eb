"""Plan files: what an apply will change, with the state each target was observed in.

A plan is JSON: schema version, tenant, bridge, created-at, tool version, the operation
(`set-cloud-managed`) and its value, and one row per target (immutable identity =
ExternalDirectoryObjectId, display name, UPN, action `set` | `skip`, skip reason, and the
*observed* state: IsExchangeCloudManaged, WhenChanged and a fingerprint of the writeback
attributes). Its SHA-256 digest (over the canonical JSON of everything but the digest)
names it; `load_plan` refuses a file whose digest does not match (docs/architecture.md#plan-apply-undo).

Skip reasons are decided here, in one place (`skip_reason_frame`), from the inventory
frame and, when detection has run, from flip readiness.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd

from ..files import read_whole, write_atomic
from ..model import FLIP_TYPES, GRAPH_KINDS, MAILBOX, OBJECT_KINDS, WRITEBACK_ATTRIBUTES
from ..values import as_bool, is_missing, iso_utc, normalise_value, parse_utc

SCHEMA_VERSION: Final = 1
OPERATION: Final = "set-cloud-managed"
PLAN_KINDS: Final = ("flip", "undo")
Action = Literal["set", "skip"]

# --- skip reasons (machine codes; REASON_TEXT says them in admin words) ---------------
ALREADY: Final = "already_in_target_state"
NOT_DIRSYNCED: Final = "not_dirsynced"
UNSUPPORTED_TYPE: Final = "unsupported_type"
BLOCKED: Final = "blocked_by_finding"
EXCLUDED: Final = "excluded"
TYPE_NOT_SELECTED: Final = "type_not_selected"
OVER_CAP: Final = "over_the_cap"
DRIFTED: Final = "drifted"
DUPLICATE: Final = "duplicate_in_input"
STATE_UNKNOWN: Final = "state_unknown"

REASON_TEXT: Final[dict[str, str]] = {
    ALREADY: "already in the target state",
    NOT_DIRSYNCED: "not dir-synced (cloud-only objects are out of scope)",
    UNSUPPORTED_TYPE: "recipient type not supported by IsExchangeCloudManaged",
    BLOCKED: "blocked by a finding",
    EXCLUDED: "excluded by --exclude",
    TYPE_NOT_SELECTED: "type not in --types",
    OVER_CAP: "over the --max cap",
    DRIFTED: "value changed since the journal's run (drifted)",
    DUPLICATE: "named more than once in the input",
    STATE_UNKNOWN: "IsExchangeCloudManaged not readable (absent or not true/false): is the feature available?",
}


class PlanError(Exception):
    """A plan file cannot be used; `str(exc)` is one line that says what to do."""


class PlanSchemaError(PlanError):
    """The plan's schema version is missing or not one this exocm reads."""


class PlanDigestError(PlanError):
    """The plan's content does not match its digest (edited or corrupted after creation)."""


class PlanFormatError(PlanError):
    """The file is not JSON, is truncated, or lacks required fields."""


# --- canonical values ----------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces, UTF-8 kept) used for digests and fingerprints."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of the UTF-8 bytes of `text`."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def same_instant(a: str | None, b: str | None) -> bool:
    """Whether two ISO timestamps name the same instant.

    When either side carries no sub-second part (one source kept whole seconds), the
    comparison is to the second, so a snapshot that lost precision does not mark every
    row stale.
    """
    if a == b:
        return True
    da, db = parse_utc(a), parse_utc(b)
    if da is None or db is None:
        return False
    if da.microsecond == 0 or db.microsecond == 0:
        return da.replace(microsecond=0) == db.replace(microsecond=0)
    return da == db


def writeback_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The writeback attributes of a record, normalised (the journal's backup)."""
    return {name: normalise_value(record.get(name)) for name in WRITEBACK_ATTRIBUTES}


def fingerprint(record: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the record's writeback attribute values."""
    return sha256_hex(canonical_json(writeback_values(record)))


# --- the plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """The state a target was seen in when the plan (or undo plan) was made."""

    is_cloud_managed: bool | None
    when_changed: str | None
    fingerprint: str
    #: True for a Graph object (group, contact, user): the keys are Graph's
    #: (isCloudManaged, onPremisesLastSyncDateTime) instead of Exchange's.
    graph: bool = False

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Observed:
        """Observed state of a mailbox record (bridge record or inventory row)."""
        return cls(
            is_cloud_managed=as_bool(record.get("IsExchangeCloudManaged")),
            when_changed=iso_utc(record.get("WhenChanged")),
            fingerprint=fingerprint(record),
        )

    @classmethod
    def from_object(cls, record: Mapping[str, Any]) -> Observed:
        """Observed state of a Graph object (an object inventory row, or one read back the same way)."""
        return cls(
            is_cloud_managed=as_bool(record.get("IsCloudManaged")),
            when_changed=iso_utc(record.get("OnPremisesLastSyncDateTime")),
            fingerprint=object_fingerprint(record),
            graph=True,
        )

    def _keys(self) -> tuple[str, str]:
        return ("isCloudManaged", "onPremisesLastSyncDateTime") if self.graph else ("IsExchangeCloudManaged",
                                                                                  "WhenChanged")

    def to_json(self) -> dict[str, Any]:
        """JSON form, keyed by Exchange's property names (Graph's for Graph objects)."""
        state, when = self._keys()
        return {state: self.is_cloud_managed, when: self.when_changed, "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Observed:
        """Inverse of to_json."""
        graph = "isCloudManaged" in data
        state, when_key = ("isCloudManaged", "onPremisesLastSyncDateTime") if graph else (
            "IsExchangeCloudManaged", "WhenChanged")
        value = data.get(state)
        when = data.get(when_key)
        fp = data.get("fingerprint")
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"observed.{state} must be true, false or null")
        if when is not None and not isinstance(when, str):
            raise ValueError(f"observed.{when_key} must be a string or null")
        if not isinstance(fp, str):
            raise ValueError("observed.fingerprint must be a string")
        return cls(value, when, fp, graph)

    def differences(self, current: Observed) -> list[str]:
        """What changed between this observation and `current` (empty when nothing did)."""
        state, when = self._keys()
        out: list[str] = []
        if self.is_cloud_managed != current.is_cloud_managed:
            out.append(f"{state} {self.is_cloud_managed} -> {current.is_cloud_managed}")
        if self.fingerprint != current.fingerprint:
            out.append("mail attributes changed" if self.graph else "writeback attributes changed")
        if not same_instant(self.when_changed, current.when_changed):
            out.append(f"{when} {self.when_changed} -> {current.when_changed}")
        return out


#: Graph object properties an object SOA flip's backup and fingerprint cover (what AD overwrites
#: when it takes the object back).
OBJECT_WRITEBACK: Final = ("DisplayName", "Mail", "MailNickname", "ProxyAddresses", "ExtensionAttributes")


def object_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The OBJECT_WRITEBACK values of an object row, normalised for JSON."""
    return {name: normalise_value(record.get(name)) for name in OBJECT_WRITEBACK}


def object_fingerprint(record: Mapping[str, Any]) -> str:
    """SHA-256 of an object's OBJECT_WRITEBACK values (canonical JSON)."""
    return sha256_hex(canonical_json(object_values(record)))


@dataclass(frozen=True)
class PlanRow:
    """One target of a plan."""

    identity: str
    display_name: str
    upn: str
    action: Action
    reason: str
    observed: Observed
    detail: str = ""
    #: Undo plans of a true->false flip: attribute -> {"cloud", "onprem", "basis"} the next sync overwrites.
    overwritten: dict[str, dict[str, Any]] | None = None
    #: Object plans: the apply wave (0 = no child group in the plan; children before parents).
    wave: int | None = None
    #: Object plans: rows of this plan (child groups) that must verify before this row is written.
    after: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON form of the row."""
        data: dict[str, Any] = {
            "identity": self.identity,
            "display_name": self.display_name,
            "upn": self.upn,
            "action": self.action,
            "reason": self.reason,
            "detail": self.detail,
            "observed": self.observed.to_json(),
        }
        if self.overwritten is not None:
            data["overwritten"] = self.overwritten
        if self.wave is not None:
            data["wave"] = self.wave
        if self.after:
            data["after"] = list(self.after)
        return data

    @classmethod
    def from_json(cls, data: Any) -> PlanRow:
        """Inverse of to_json; raises ValueError naming the bad field."""
        if not isinstance(data, dict):
            raise ValueError("row is not an object")
        for key in ("identity", "action", "observed"):
            if key not in data:
                raise ValueError(f"row lacks '{key}'")
        identity = data["identity"]
        if not isinstance(identity, str) or not identity:
            raise ValueError("row identity must be a non-empty string")
        action = data["action"]
        if action not in ("set", "skip"):
            raise ValueError(f"row action must be 'set' or 'skip', not {action!r}")
        observed = data["observed"]
        if not isinstance(observed, dict):
            raise ValueError("row observed must be an object")
        overwritten = data.get("overwritten")
        if overwritten is not None and not isinstance(overwritten, dict):
            raise ValueError("row overwritten must be an object")
        wave = data.get("wave")
        if wave is not None and (not isinstance(wave, int) or isinstance(wave, bool) or wave < 0):
            raise ValueError("row wave must be a whole number >= 0")
        after = data.get("after") or []
        if not isinstance(after, list) or not all(isinstance(a, str) and a for a in after):
            raise ValueError("row after must be a list of identities")
        return cls(
            identity=identity,
            display_name=str(data.get("display_name") or ""),
            upn=str(data.get("upn") or ""),
            action=action,
            reason=str(data.get("reason") or ""),
            detail=str(data.get("detail") or ""),
            observed=Observed.from_json(observed),
            overwritten=overwritten,
            wave=wave,
            after=tuple(after),
        )


@dataclass
class Plan:
    """A plan file in memory. `digest` is filled by `finalise()` / `load_plan`."""

    tenant: str
    bridge: str
    value: bool
    rows: list[PlanRow]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    tool_version: str = field(default_factory=lambda: tool_version())
    operation: str = OPERATION
    kind: str = "flip"
    source: dict[str, Any] = field(default_factory=dict)
    input_report: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    digest: str = ""
    #: What every row is (model.OBJECT_KINDS); a plan has one object kind. Files without one are mailbox plans.
    object_kind: str = MAILBOX
    #: False for a file written before object kinds (its digest covers no object_kind key).
    names_object_kind: bool = True

    @property
    def is_graph(self) -> bool:
        """True for a plan of groups, contacts or users (applied through Microsoft Graph)."""
        return self.object_kind in GRAPH_KINDS

    def body(self) -> dict[str, Any]:
        """Everything but the digest, as JSON."""
        body: dict[str, Any] = {
            "schema_version": self.schema_version,
            "kind": self.kind,
            "object_kind": self.object_kind,
            "tenant": self.tenant,
            "bridge": self.bridge,
            "created_at": self.created_at,
            "tool_version": self.tool_version,
            "operation": self.operation,
            "value": self.value,
            "source": self.source,
            "input_report": self.input_report,
            "rows": [row.to_json() for row in self.rows],
        }
        if not self.names_object_kind and self.object_kind == MAILBOX:
            del body["object_kind"]
        return body

    def compute_digest(self) -> str:
        """SHA-256 of the canonical JSON of the body."""
        return sha256_hex(canonical_json(self.body()))

    def finalise(self) -> Plan:
        """Fix the digest to the current content; returns self."""
        self.digest = self.compute_digest()
        return self

    def to_json(self) -> dict[str, Any]:
        """The whole file, digest included."""
        data = self.body()
        data["digest"] = self.digest or self.compute_digest()
        return data

    @property
    def short_digest(self) -> str:
        """First 12 hex digits of the digest (names files and locks)."""
        return (self.digest or self.compute_digest())[:12]

    def set_rows(self) -> list[PlanRow]:
        """Rows that would change something."""
        return [row for row in self.rows if row.action == "set"]

    def counts(self) -> dict[str, int]:
        """Rows per `action` or `skip:reason` (what `exocm show` prints first)."""
        counter: Counter[str] = Counter()
        for row in self.rows:
            counter["set" if row.action == "set" else f"skip:{row.reason}"] += 1
        for issue in self.input_report:
            counter[f"input:{issue.get('problem', 'issue')}"] += 1
        return dict(sorted(counter.items()))

    def created(self) -> datetime:
        """created_at as an aware datetime."""
        parsed = parse_utc(self.created_at)
        if parsed is None:
            raise PlanFormatError(f"plan created_at {self.created_at!r} is not a timestamp")
        return parsed

    def age(self, now: datetime | None = None) -> timedelta:
        """How old the plan is."""
        return (now or datetime.now(UTC)) - self.created()


def tool_version() -> str:
    """Installed exocm version ('0+unknown' when not installed)."""
    try:
        from importlib.metadata import version

        return version("exocm")
    except Exception:  # noqa: BLE001 - metadata missing in odd installs
        return "0+unknown"


# --- files -----------------------------------------------------------------------------


def save_plan(plan: Plan, path: Path) -> Path:
    """Finalise the digest and write the plan atomically (pretty JSON); returns the path."""
    plan.finalise()
    text = json.dumps(plan.to_json(), indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    write_atomic(path, text.encode("utf-8"))
    return Path(path)


def plan_from_json(data: Any, *, where: str = "plan") -> Plan:
    """Build a Plan from parsed JSON, verifying schema version and digest first."""
    if not isinstance(data, dict):
        raise PlanFormatError(f"{where} is not a plan file (top level is not a JSON object)")
    version = data.get("schema_version")
    if version is None:
        raise PlanSchemaError(f"{where} has no schema_version: it is not an exocm plan file")
    if version != SCHEMA_VERSION:
        raise PlanSchemaError(
            f"{where} has schema version {version!r}; this exocm reads version {SCHEMA_VERSION}: "
            "re-create the plan with this version of exocm"
        )
    digest = data.get("digest")
    body = {k: v for k, v in data.items() if k != "digest"}
    try:
        actual = sha256_hex(canonical_json(body))
    except (TypeError, ValueError) as exc:
        raise PlanFormatError(f"{where} holds values a plan cannot hold ({exc})") from None
    if not isinstance(digest, str) or digest != actual:
        raise PlanDigestError(
            f"{where} does not match its digest: it was edited or damaged after it was created; "
            "re-create it with 'exocm plan'"
        )
    try:
        value = data["value"]
        if not isinstance(value, bool):
            raise ValueError("value must be true or false")
        if data.get("operation") != OPERATION:
            raise ValueError(f"unknown operation {data.get('operation')!r}")
        kind = data.get("kind", "flip")
        if kind not in PLAN_KINDS:
            raise ValueError(f"unknown plan kind {kind!r}")
        object_kind = data.get("object_kind", MAILBOX)  # plans made before object kinds are mailbox plans
        if object_kind not in OBJECT_KINDS:
            raise ValueError(f"unknown object kind {object_kind!r}")
        for key in ("tenant", "bridge", "created_at"):
            if not isinstance(data.get(key), str) or not data.get(key):
                raise ValueError(f"'{key}' must be a non-empty string")
        raw_rows = data.get("rows")
        if not isinstance(raw_rows, list):
            raise ValueError("'rows' must be a list")
        rows = []
        for number, raw in enumerate(raw_rows, start=1):
            try:
                rows.append(PlanRow.from_json(raw))
            except ValueError as exc:
                raise ValueError(f"row {number}: {exc}") from None
        seen: set[str] = set()
        for row in rows:
            if row.identity in seen:
                raise ValueError(f"identity {row.identity} appears twice")
            seen.add(row.identity)
        source = data.get("source") or {}
        input_report = data.get("input_report") or []
        if not isinstance(source, dict) or not isinstance(input_report, list):
            raise ValueError("'source' must be an object and 'input_report' a list")
        plan = Plan(
            tenant=data["tenant"],
            bridge=data["bridge"],
            value=value,
            rows=rows,
            created_at=data["created_at"],
            tool_version=str(data.get("tool_version") or ""),
            operation=OPERATION,
            kind=kind,
            source=source,
            input_report=input_report,
            schema_version=SCHEMA_VERSION,
            digest=digest,
            object_kind=object_kind,
            names_object_kind="object_kind" in data,
        )
        if parse_utc(plan.created_at) is None:
            raise ValueError(f"created_at {plan.created_at!r} is not a timestamp")
    except (KeyError, ValueError, TypeError) as exc:
        raise PlanFormatError(f"{where} is malformed: {exc}") from None
    return plan


def load_plan(path: Path | str) -> Plan:
    """Read and verify a plan file (schema version, digest, fields): one clear PlanError if not usable."""
    path = Path(path)
    raw = read_whole(path, "plan file", PlanError)
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise PlanFormatError(f"{path} is not a plan file (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        hint = " - is it truncated?" if exc.pos >= len(raw.rstrip()) - 1 else ""
        raise PlanFormatError(
            f"{path} is not a valid plan file (JSON error at line {exc.lineno}, column {exc.colno}{hint})"
        ) from None
    except RecursionError:
        raise PlanFormatError(f"{path} is not a plan file (nested too deeply)") from None
    return plan_from_json(data, where=str(path))


# --- building a plan -------------------------------------------------------------------


def skip_reason_frame(
    frame: pd.DataFrame, value: bool, readiness: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per inventory row, the skip reason for a flip to `value` ('' when the row can be set).

    The one place skip reasons are decided, vectorised. Order: unsupported type, not
    dir-synced, already in the target state, current state unreadable, blocked by a finding (from `readiness`, the
    output of detection's flip readiness: columns `status` in ready/blocked/already and
    `reasons`). Returns columns `reason` and `detail`, same index as `frame`.
    """
    n = len(frame)
    rtd = _col(frame, "RecipientTypeDetails").astype("object")
    dirsynced = _col(frame, "IsDirSynced").map(as_bool).astype("object")
    current = _col(frame, "IsExchangeCloudManaged").map(as_bool).astype("object")
    reason = pd.Series([""] * n, index=frame.index, dtype="object")
    detail = pd.Series([""] * n, index=frame.index, dtype="object")

    def mark(mask: pd.Series, code: str, text: pd.Series | str) -> None:
        mask = mask & (reason == "")
        reason[mask] = code
        if isinstance(text, str):
            detail[mask] = text
        else:
            detail[mask] = text[mask]

    unsupported = ~rtd.isin(sorted(FLIP_TYPES))
    mark(unsupported, UNSUPPORTED_TYPE, "RecipientTypeDetails is " + rtd.fillna("(none)").astype(str))
    mark(dirsynced != True, NOT_DIRSYNCED, "IsDirSynced is not true")  # noqa: E712 - object series
    mark(current == value, ALREADY, f"IsExchangeCloudManaged is already {value}")
    # PEERS.md: tools stop on a missing IsExchangeCloudManaged (the feature is not in the tenant yet);
    # a row whose state cannot be read can be neither verified after a write nor undone.
    mark(current.isna(), STATE_UNKNOWN, "IsExchangeCloudManaged is absent or not true/false")
    if readiness is not None and len(readiness):
        aligned = readiness.reindex(frame.index)
        status = aligned["status"].astype("object")
        reasons = aligned["reasons"].map(_reasons_text) if "reasons" in aligned else ""
        mark(status == "blocked", BLOCKED, reasons)
    return pd.DataFrame({"reason": reason, "detail": detail}, index=frame.index)


def _reasons_text(value: Any) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value)
    if hasattr(value, "tolist"):
        return ", ".join(str(v) for v in value.tolist())
    return "" if is_missing(value) else str(value)


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    if frame.index.name == name:
        return pd.Series(frame.index, index=frame.index)
    return pd.Series([None] * len(frame), index=frame.index, dtype="object")


_PLAN_COLUMNS: Final = ("ExternalDirectoryObjectId", "DisplayName", "UserPrincipalName", "IsExchangeCloudManaged",
                        "WhenChanged", "RecipientTypeDetails", "IsDirSynced")


def frame_records(frame: pd.DataFrame, identities: Sequence[str]) -> list[dict[str, Any]]:
    """The plan-relevant columns of inventory rows (keyed by ExternalDirectoryObjectId) as dicts, in order."""
    wanted = [c for c in (*_PLAN_COLUMNS, *WRITEBACK_ATTRIBUTES) if c in frame.columns]
    sub = frame.loc[list(identities), list(dict.fromkeys(wanted))]
    out: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in sub.to_dict(orient="records")]
    for edoi, record in zip(identities, out, strict=True):
        record.setdefault("ExternalDirectoryObjectId", edoi)
    return out


def build_plan(
    frame: pd.DataFrame,
    identities: Sequence[str],
    value: bool,
    *,
    tenant: str,
    bridge: str,
    preset_skips: Mapping[str, tuple[str, str]] | None = None,
    readiness: pd.DataFrame | None = None,
    max_changes: int | None = None,
    source: Mapping[str, Any] | None = None,
    input_report: Iterable[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> Plan:
    """Build a plan that sets IsExchangeCloudManaged to `value` for `identities` (EDOIs, in order).

    `preset_skips` carries the selection's own skip reasons (excluded, type not selected);
    the rest come from `skip_reason_frame`. `max_changes` caps the `set` rows (pilot
    runs); the others are skipped as over the cap. Rows keep the inventory's observed state.
    """
    presets = dict(preset_skips or {})
    ids = list(dict.fromkeys(identities))
    sub = frame.loc[ids] if ids else frame.iloc[0:0]
    reasons = skip_reason_frame(sub, value, readiness)
    records = frame_records(frame, ids) if ids else []
    rows: list[PlanRow] = []
    changes = 0
    for edoi, record, reason, detail in zip(
        ids, records, reasons["reason"].tolist(), reasons["detail"].tolist(), strict=True
    ):
        if edoi in presets:
            reason, detail = presets[edoi]
        action: Action = "skip" if reason else "set"
        if action == "set" and max_changes is not None and changes >= max_changes:
            action, reason, detail = "skip", OVER_CAP, f"--max {max_changes}"
        if action == "set":
            changes += 1
        rows.append(
            PlanRow(
                identity=edoi,
                display_name=str(normalise_value(record.get("DisplayName")) or ""),
                upn=str(normalise_value(record.get("UserPrincipalName")) or ""),
                action=action,
                reason=reason,
                detail=str(detail or ""),
                observed=Observed.from_record(record),
            )
        )
    plan = Plan(
        tenant=tenant,
        bridge=bridge,
        value=value,
        rows=rows,
        created_at=(now or datetime.now(UTC)).isoformat(),
        source=dict(source or {}),
        input_report=[dict(i) for i in input_report],
    )
    return plan.finalise()
