"""The EXO inventory: every mailbox (Get-Mailbox) joined with Get-User, in one pandas DataFrame.

Fetching is a *partitioned parallel read* (see `partition.py`): each cmdlet is split into
disjoint server-side filter partitions (first hex digit of ExternalDirectoryObjectId, plus a
complement), streamed concurrently by a thread pool within the tenant's limit (the bridge's
shared limiter decides how many requests really run at once). The union is complete by
construction; disjointness is checked by key. When a partition cannot be proven (duplicate keys
across partitions, or the service rejects a partition filter as InvalidInput), that cmdlet is
fetched again as one paged stream, and a progress event says so.

Get-User is read only for the users that matter (`USERS_FILTER`): mail users, and anyone whose
PreviousRecipientTypeDetails is not 'None'. A mailbox without such a Get-User record therefore
has PreviousRecipientTypeDetails 'None' by the filter's own logic; if the service rejects that
filter, all users are read instead.

Memory: each page is projected at once to the inventory columns as a pyarrow RecordBatch (the
record dicts are dropped page by page), and the frame is built from Arrow. The frame's dtypes:

* text columns: pandas' ``str`` dtype (Arrow-backed, about half the memory of object strings
  at 300k rows; missing = NaN),
* IsDirSynced / IsExchangeCloudManaged / HiddenFromAddressListsEnabled: nullable ``boolean``
  (MailUsers from Get-User have no IsExchangeCloudManaged: <NA>),
* WhenChanged / WhenChangedUTC: ``datetime64[us, UTC]``,
* EmailAddresses, ExtensionCustomAttribute1-5 (multi-valued in Exchange): object columns of
  ``tuple[str, ...]`` (the empty tuple when absent; it is a shared singleton, so empty cells
  cost one pointer).

The index is the row key: ExternalDirectoryObjectId (lower-case), or Guid where an object has
none. It is unnamed on purpose: a column of the same name exists, and pandas refuses to sort or
group by a name that is both an index level and a column.
"""
from __future__ import annotations

import io
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from ..bridge.base import Bridge, PropertySelectingBridge, Record
from ..bridge.concurrency import request_priority
from ..bridge.errors import (
    BridgeError,
    IncompleteRead,
    InvalidInput,
    PageLost,
    ProtocolError,
    Throttled,
    Transient,
)
from ..bridge.normalize import is_guid_property, normalize_value
from ..events import Progress, ProgressCallback
from ..memory import fewer_collections, trim_c_heap
from ..model import EXTENSION_CUSTOM_ATTRIBUTES, INVENTORY_COLUMNS
from ..values import GUID_PATTERN, as_bool
from .partition import (
    HEX_DIGITS,
    PARTITION_PROPERTY,
    REST,
    PartitionPlan,
    and_filters,
    plan_by_first_character,
    plan_partitions,
    single_stream,
)
from .shared import remember_addresses

STAGE: Final = "inventory"
DIRSYNCED_FILTER: Final = "IsDirSynced -eq $true"
#: Get-User rows the inventory needs: mail users (rows of their own) and stale previous-mailbox info.
#: An unset PreviousRecipientTypeDetails may read 'None' or $null ("String or $null" on Microsoft's
#: filterable-properties page; docs/exchange-facts.md#unset-previousrecipienttypedetails): both are excluded, so the read stays narrow.
USERS_FILTER: Final = ("(RecipientType -eq 'MailUser') -or ((PreviousRecipientTypeDetails -ne $null) -and "
                       "(PreviousRecipientTypeDetails -ne 'None'))")
#: Worker threads: by default one per partition of every read, so that all partitions advance
#: together (the bridge's per-tenant limiter bounds the requests in flight; a thread waiting for
#: a slot costs nothing). Fewer threads than partitions leave a tail: the partitions started last
#: page on alone after the others have ended.
MAX_WORKERS: Final = 64
DEFAULT_PARTITIONS: Final = 16
PAGE_SIZE: Final = 1000
#: A probed read (Get-User) stays one stream for up to this many full pages, then is partitioned.
#: Up to ~8 pages it ends while Get-Mailbox's partitions (the bulk) still run, and a partitioned
#: read costs 17 server-side queries where one does; beyond that, parallel pages win.
PROBE_PAGES: Final = 8
#: The properties each read asks for: the inventory's columns that the cmdlet has. REST sends them
#: as `$select`; PSRP pipes the cmdlet into `Select-Object -Property` in the remote session (EXO V3's
#: Get-Mailbox has no -Properties parameter, only Get-EXOMailbox does; "When you select properties,
#: Select-Object returns new objects that have only the specified properties", PowerShell docs,
#: Microsoft.PowerShell.Utility/Select-Object; Exchange's restricted remote endpoint exposes
#: Select-Object among its core cmdlets, Microsoft Learn "Exchange Management Shell").
#: Get-Mailbox has no PreviousRecipientTypeDetails (Get-User brings it); Get-User has none of the
#: mailbox attributes. CIPP's New-ExoRequest selects such lists (with IsExchangeCloudManaged) on
#: Get-Mailbox and Get-User through InvokeCommand.
SELECT: Final[dict[str, tuple[str, ...]]] = {
    "Get-Mailbox": tuple(c for c in INVENTORY_COLUMNS if c != "PreviousRecipientTypeDetails"),
    "Get-User": ("ExternalDirectoryObjectId", "Guid", "UserPrincipalName", "DisplayName", "RecipientType",
                 "RecipientTypeDetails", "PreviousRecipientTypeDetails", "IsDirSynced", "WhenChanged",
                 "WhenChangedUTC"),
}
#: Prefix slices that must have ended empty (beside a full complement page) before a read is taken
#: for literal matching of its prefixes (_Fetch._degenerate).
DEGENERATE_AFTER: Final = 4
#: How often one partition is re-read from its start after the bridge gave up on a transient error.
PARTITION_RETRIES: Final = 3
#: How often one partition is re-read from its start after the answer to one of its follow-up pages
#: was lost (PageLost): a lost page is never asked for again, since whether the service's cursor
#: moved on is undocumented (docs/exchange-facts.md#retried-pages).
PAGE_LOST_REREADS: Final = 20

BOOL_COLUMNS: Final = ("IsDirSynced", "IsExchangeCloudManaged", "HiddenFromAddressListsEnabled")
DATETIME_COLUMNS: Final = ("WhenChanged", "WhenChangedUTC")
#: Multi-valued properties (MultiValuedProperty in Exchange): tuples of str in the frame.
MULTI_COLUMNS: Final = ("EmailAddresses", *EXTENSION_CUSTOM_ATTRIBUTES)
_MULTI_SET: Final = frozenset(MULTI_COLUMNS)
_KEY: Final = "ExternalDirectoryObjectId"


class InventoryCancelled(Exception):
    """The fetch was cancelled through its cancel event; nothing was returned."""


@dataclass
class Inventory:
    """An inventory: the frame and where and when it came from.

    `source` is the transport ("rest", "psrp"); `notes` are one-line remarks for the user
    (fallbacks, dropped duplicates); `stats` holds counts (mailboxes, users, pages, mode...).
    """

    frame: pd.DataFrame
    tenant: str
    fetched_at: datetime
    source: str
    from_snapshot: bool = False
    dirsynced_only: bool = False
    notes: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    #: What a row is (model.OBJECT_KINDS): mailboxes through EXO, or groups/contacts/users through Graph.
    kind: str = "mailbox"
    #: Records the service left out with `@adminapi.errors` that could not be read again (the
    #: service's texts, which name them). Non-empty: the inventory is incomplete, and findings and
    #: plan refuse it unless told to accept an incomplete inventory.
    incomplete: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        remember_addresses(self.frame)

    def incomplete_reason(self) -> str | None:
        """One line for a refused incomplete inventory (None when complete)."""
        if not self.incomplete:
            return None
        return (f"the inventory is incomplete: the service left {len(self.incomplete)} record(s) out with "
                f"@adminapi.errors and they could not be read again (first: {self.incomplete[0]}); "
                "read it again (--refresh), or pass --accept-incomplete to go on without them")

    @property
    def age(self) -> timedelta:
        """Time since the data was fetched from the service."""
        return self.age_at(datetime.now(UTC))

    def age_at(self, now: datetime) -> timedelta:
        """Age relative to `now` (tz-aware), never negative."""
        return max(now - self.fetched_at, timedelta(0))


# ----------------------------------------------------------------------------- records -> Arrow

#: Single-valued text columns are large_string from the parse on: pandas' Arrow-backed strings are
#: large_string, so the frame takes the parsed buffers as they are instead of casting (copying) every
#: text column once the last page has come.
TEXT: Final = pa.large_string()


def _arrow_type(column: str) -> pa.DataType:
    if column in BOOL_COLUMNS:
        return pa.bool_()
    if column in DATETIME_COLUMNS:
        return pa.timestamp("us", tz="UTC")
    if column in MULTI_COLUMNS:
        return pa.list_(pa.string())
    return TEXT


ARROW_SCHEMA: Final = pa.schema([pa.field(c, _arrow_type(c)) for c in INVENTORY_COLUMNS])
#: Pages carry their row keys as one more Arrow column: kept as Python strings, 100k small keys
#: would pin the interpreter's memory arenas of every parsed page (hundreds of MB of RSS).
KEY_FIELD: Final = "__key"
BATCH_SCHEMA: Final = ARROW_SCHEMA.append(pa.field(KEY_FIELD, TEXT))


def _as_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return str(value)


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_multi(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Iterable):
        return [s for s in (_as_str(v) for v in value) if s is not None]
    return [str(value)]


_NORMALISERS: Final[dict[str, Callable[[Any], Any]]] = {
    **{c: as_bool for c in BOOL_COLUMNS},
    **{c: _as_datetime for c in DATETIME_COLUMNS},
    **{c: _as_multi for c in MULTI_COLUMNS},
}


_pa_array: Final[Callable[..., pa.Array]] = pa.array
_GUID_COLUMNS: Final = frozenset(c for c in INVENTORY_COLUMNS if is_guid_property(c))


def _plain_guid(value: Any) -> bool:
    return value is None or (value.__class__ is str and value == value.lower() and not value.startswith("{"))


def _column(records: Sequence[Record], column: str, kind: pa.DataType) -> pa.Array:
    """One column of a page as an Arrow array.

    Records may come normalised (Bridge.stream) or raw (RestBridge.stream_raw): values that
    Arrow takes as they are go through in C; the rest get the bridge's own per-value
    normalisation (`normalize_value`), then are coerced to the column's type.
    """
    values = [r.get(column) for r in records]
    if column in _GUID_COLUMNS and not all(_plain_guid(v) for v in values):
        values = [v if _plain_guid(v) else normalize_value(column, v) for v in values]
    if column in MULTI_COLUMNS and any(isinstance(v, str) for v in values):
        values = [_as_multi(v) for v in values]  # Arrow would split a lone string into characters
    try:
        return _pa_array(values, type=kind)  # fast path
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    if column in DATETIME_COLUMNS:
        try:  # ISO 8601 text with a zone, as the REST API sends it: Arrow parses it in C
            return _pa_array(values, type=pa.string()).cast(kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            pass
    coerce: Callable[[Any], Any] = _NORMALISERS.get(column) or _as_str
    return _pa_array([coerce(normalize_value(column, v)) for v in values], type=kind)


def record_key(record: Record) -> str:
    """The row key of a record: ExternalDirectoryObjectId (lower-case), else Guid, else ''."""
    for name in (_KEY, "Guid"):
        value = record.get(name)
        if value:
            return str(value).strip().lower()
    return ""


def _page_to_batch(records: Sequence[Record]) -> pa.RecordBatch:
    """Project one page of records onto the inventory columns, plus the row key column."""
    arrays = [_column(records, f.name, f.type) for f in ARROW_SCHEMA]
    arrays.append(_pa_array([record_key(r) for r in records], type=TEXT))
    return pa.RecordBatch.from_arrays(arrays, schema=BATCH_SCHEMA)


_BODY_SCHEMA: Final = pa.schema([
    pa.field("value", pa.list_(pa.struct([
        pa.field(f.name, pa.string() if f.name in DATETIME_COLUMNS else f.type) for f in ARROW_SCHEMA]))),
    pa.field("@odata.nextLink", pa.string()),
    pa.field("@adminapi.warnings", pa.list_(pa.string())),
    pa.field("@adminapi.errors", pa.list_(pa.string())),
])
#: Schema metadata key under which a page batch carries its `@adminapi.errors` (JSON list).
ERRORS_KEY: Final = b"adminapi.errors"


def _with_errors(batch: pa.RecordBatch, errors: list[str]) -> pa.RecordBatch:
    """`batch` carrying the page's `@adminapi.errors` in its schema metadata (none: unchanged)."""
    if not errors:
        return batch
    return batch.replace_schema_metadata({ERRORS_KEY: orjson.dumps(errors)})


def page_errors(batch: pa.RecordBatch) -> list[str]:
    """The `@adminapi.errors` a page batch carries (see parse_page_body)."""
    meta = batch.schema.metadata
    if not meta or ERRORS_KEY not in meta:
        return []
    return [str(e) for e in orjson.loads(meta[ERRORS_KEY])]
#: Where page parsing allocates (in many worker threads at once): the C library's malloc. pyarrow's
#: default pool (mimalloc in the Linux wheels) cost ~0.7-0.9 s more system CPU per 100k-record fetch
#: on a 2-core VM (freed pages handed back to the OS and faulted in again, page after page).
_POOL: Final = pa.system_memory_pool()
_BODY_PARSE: Final = pajson.ParseOptions(explicit_schema=_BODY_SCHEMA, unexpected_field_behavior="ignore",
                                         newlines_in_values=True)


def _guid_text(column: pa.Array) -> pa.Array:
    """GUID text as the bridge normalises it (lower case, no braces); other text unchanged."""
    pool = _POOL
    is_guid = pc.coalesce(pc.match_substring_regex(column, GUID_PATTERN, memory_pool=pool), False,
                          memory_pool=pool)
    lower = pc.utf8_lower(pc.utf8_trim(column, "{}", memory_pool=pool), memory_pool=pool)
    return pc.if_else(is_guid, lower, column, memory_pool=pool)


def _key_column(edoid: pa.Array, guid: pa.Array) -> pa.Array:
    """record_key() for a whole page: lower-case ExternalDirectoryObjectId, else Guid, else ''."""
    pool = _POOL
    edoid = pc.utf8_lower(pc.utf8_trim_whitespace(pc.coalesce(edoid, "", memory_pool=pool), memory_pool=pool),
                          memory_pool=pool)
    guid = pc.utf8_lower(pc.utf8_trim_whitespace(pc.coalesce(guid, "", memory_pool=pool), memory_pool=pool),
                         memory_pool=pool)
    return pc.if_else(pc.equal(edoid, "", memory_pool=pool), guid, edoid, memory_pool=pool)


def parse_page_body(body: bytes) -> tuple[pa.RecordBatch, str | None, list[str]]:
    """Decode one InvokeCommand JSON page straight into an inventory batch (RestBridge.stream_bodies).

    pyarrow's JSON reader parses only the inventory's properties, in C++ and off the GIL. A page
    it cannot type (a number where text is expected, "True" as text, ...) goes the Python way:
    orjson, then the bridge's per-value normalisation. Returns (batch, @odata.nextLink, warnings);
    the page's `@adminapi.errors` ride in the batch's schema metadata (page_errors).
    """
    try:
        table = pajson.read_json(io.BytesIO(body), parse_options=_BODY_PARSE,
                                 read_options=pajson.ReadOptions(use_threads=False, block_size=len(body) + 64),
                                 memory_pool=_POOL)
        if table.num_rows != 1:
            raise ValueError("not one JSON object")
    except (pa.ArrowInvalid, ValueError):
        return _parse_page_slowly(body)
    next_link = table.column("@odata.nextLink")[0].as_py()
    warnings = [str(w) for w in table.column("@adminapi.warnings")[0].as_py() or []]
    errors = [str(e) for e in table.column("@adminapi.errors")[0].as_py() or []]
    values = table.column("value").chunk(0)
    if not values[0].is_valid:
        return _parse_page_slowly(body)
    fields = values.values.slice(values.offsets[0].as_py(), len(values[0])).flatten(memory_pool=_POOL)
    arrays: list[pa.Array] = []
    for f, column in zip(ARROW_SCHEMA, fields, strict=True):
        if f.name in _GUID_COLUMNS:
            column = _guid_text(column)
        elif f.name in DATETIME_COLUMNS:
            try:
                column = column.cast(f.type, memory_pool=_POOL)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                column = _pa_array([_as_datetime(normalize_value(f.name, v)) for v in column.to_pylist()],
                                   type=f.type)
        arrays.append(column)
    names = ARROW_SCHEMA.names
    arrays.append(_key_column(fields[names.index(_KEY)], fields[names.index("Guid")]))
    return _with_errors(pa.RecordBatch.from_arrays(arrays, schema=BATCH_SCHEMA), errors), next_link, warnings


def _parse_page_slowly(body: bytes) -> tuple[pa.RecordBatch, str | None, list[str]]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProtocolError("the service answered with something that is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("the service answered with something that is not a JSON object")
    value = data.get("value")
    records = [v for v in value if isinstance(v, dict)] if isinstance(value, list) else (
        [value] if isinstance(value, dict) else [])
    link = data.get("@odata.nextLink")
    raw_warnings = data.get("@adminapi.warnings") or []
    warnings = [str(w) for w in (raw_warnings if isinstance(raw_warnings, list) else [raw_warnings])]
    raw_errors = data.get("@adminapi.errors") or []
    errors = [str(e) for e in (raw_errors if isinstance(raw_errors, list) else [raw_errors])]
    return _with_errors(_page_to_batch(records), errors), link if isinstance(link, str) else None, warnings


def slice_keys(batches: Sequence[pa.RecordBatch], name: str) -> tuple[bool, int]:
    """(whether every key of the hex slice `name` is non-empty and starts as its filter demands,
    how many rows repeat a key within the slice).

    A prefix slice's keys (lower-case ExternalDirectoryObjectId) must start with its prefix, the
    complement's with no hex digit. When every slice of a read passes, no two slices can share a
    key, so the read's duplicates are the sum of its slices': each slice is hashed when it ends,
    instead of every key of the read at once after the last page (duplicate_keys).
    """
    keys = _keys(batches)
    if name == REST:
        stray = pc.match_substring_regex(keys, f"^([{HEX_DIGITS}]|$)")
        placed = not pc.any(stray).as_py()
    elif name and all(c in HEX_DIGITS for c in name):
        placed = len(keys) == 0 or bool(pc.all(pc.starts_with(keys, name)).as_py())
    else:
        placed = False
    return placed and not keys.null_count, len(keys) - pc.count_distinct(keys).as_py()


def _keys(batches: Iterable[pa.RecordBatch]) -> pa.ChunkedArray:
    return pa.chunked_array([b.column(KEY_FIELD) for b in batches], type=TEXT)


def duplicate_keys(batches: Iterable[pa.RecordBatch]) -> int:
    """How many rows repeat a key already seen in `batches` (rows without a key not counted)."""
    keys = _keys(batches)
    if not len(keys):
        return 0
    keys = keys.filter(pc.not_equal(keys, ""))
    distinct: int = pc.count_distinct(keys).as_py()
    return len(keys) - distinct


# ----------------------------------------------------------------------------- Arrow -> frame

def list_tuples(column: pa.ChunkedArray) -> list[tuple[str, ...]]:
    """A list<string> column as Python tuples (the empty tuple for null or empty), built from offsets."""
    out: list[tuple[str, ...]] = []
    for chunk in column.chunks:
        offsets = chunk.offsets.to_pylist()
        if offsets[0] == offsets[-1]:  # every cell empty or null: the common case for sparse attributes
            out.extend([()] * len(chunk))
            continue
        flat = chunk.values.to_pylist()
        out.extend([tuple(flat[a:b]) if b > a else () for a, b in zip(offsets, offsets[1:], strict=False)])
    return out


#: The multi-valued columns of some rows as Python tuples, column by column (aligned with the rows).
Tuples = dict[str, list[tuple[str, ...]]]


def batch_tuples(batch: pa.RecordBatch | pa.Table) -> Tuples:
    """The multi-valued columns of a page as tuples: built while the fetch waits on the network,
    so that the frame at the end only joins lists (see _build_frame)."""
    return {c: list_tuples(pa.chunked_array([batch.column(c)]) if isinstance(batch, pa.RecordBatch)
                           else batch.column(c)) for c in MULTI_COLUMNS}


def _without_multi(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with its multi-valued columns emptied (all null), once batch_tuples holds them:
    the page's Arrow copy of every address list is freed at once instead of at the end."""
    arrays = [pa.nulls(batch.num_rows, f.type) if f.name in _MULTI_SET else batch.column(i)
              for i, f in enumerate(batch.schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def _join_tuples(parts: Iterable[Tuples]) -> Tuples:
    out: Tuples = {c: [] for c in MULTI_COLUMNS}
    for part in parts:
        for c in MULTI_COLUMNS:
            out[c].extend(part[c])
    return out


def _take_tuples(tuples: Tuples, mask: Sequence[bool] | np.ndarray | None) -> Tuples:
    """The rows of `tuples` where `mask` is true (all rows when it is None)."""
    if mask is None:
        return tuples
    return {c: list(itertools.compress(v, mask)) for c, v in tuples.items()}


def _to_frame(table: pa.Table, keys: pa.Array, tuples: Tuples | None = None) -> pd.DataFrame:
    multi = tuples if tuples is not None else {c: list_tuples(table.column(c)) for c in MULTI_COLUMNS}
    table = table.drop_columns([*MULTI_COLUMNS, KEY_FIELD])
    frame = table.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get, self_destruct=True)
    for column, values in multi.items():
        frame[column] = pd.Series(values, dtype=object)
    frame.index = pd.Index(keys.to_pandas(), dtype="str")
    result: pd.DataFrame = frame
    return result


def _flat(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous Arrow array."""
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def _unique_keyed(table: pa.Table, known_unique: bool = False) -> tuple[pa.Table, pa.Array, int, int,
                                                                        list[bool] | None]:
    """Drop rows without a key and all but the last row of each key; returns table, keys, #dups,
    #unkeyed and the rows kept (None: all of them).

    The common case (every row keyed, no key twice) is decided in Arrow without touching the keys in
    Python, or not at all when the fetch already knows it (`known_unique`: see slice_keys).
    """
    keys = _flat(table.column(KEY_FIELD))
    if known_unique:
        return table, keys, 0, 0, None
    keyed = pc.fill_null(pc.not_equal(keys, ""), False)
    unkeyed = len(keys) - pc.sum(keyed).as_py() if len(keys) else 0
    if not unkeyed and pc.count_distinct(keys).as_py() == len(keys):
        return table, keys, 0, 0, None
    seen: set[str] = set()
    key_list: list[str | None] = keys.to_pylist()
    keep = [False] * len(key_list)
    duplicates = 0
    for index in range(len(key_list) - 1, -1, -1):
        key = key_list[index]
        if not key:
            continue
        if key in seen:
            duplicates += 1
        else:
            seen.add(key)
            keep[index] = True
    mask = pa.array(keep, type=pa.bool_())
    return table.filter(mask), keys.filter(mask), duplicates, unkeyed, keep


def _build_frame(mailboxes: pa.Table, users: pa.Table, *, users_narrowed: bool,
                 tuples: tuple[Tuples, Tuples] | None = None,
                 unique: tuple[bool, bool] = (False, False)) -> tuple[pd.DataFrame, dict[str, int]]:
    """The inventory frame from the Get-Mailbox and Get-User tables (with their multi-valued
    columns already as tuples when `tuples` is given, row for row); returns it and its counts.
    `unique`: per table, whether every row is already known to have a key of its own."""
    counts = {"mailboxes": mailboxes.num_rows, "user_records": users.num_rows}
    mailboxes, mkeys, mdup, mnokey, mkept = _unique_keyed(mailboxes, unique[0])
    users, ukeys, udup, unokey, ukept = _unique_keyed(users, unique[1])
    counts.update(duplicates_dropped=mdup + udup, unkeyed_dropped=mnokey + unokey)

    # PreviousRecipientTypeDetails of a mailbox comes from its Get-User record; a mailbox the narrowed
    # Get-User did not return has 'None' (the filter returns every user whose value is not 'None').
    # Get-User always has the property: a null there is "unset" like 'None' (the service may print
    # either; docs/exchange-facts.md#unset-previousrecipienttypedetails), so the frame holds one spelling.
    if users.num_rows:
        prtd_at = users.schema.get_field_index("PreviousRecipientTypeDetails")
        users = users.set_column(prtd_at, users.schema.field(prtd_at),
                                 pc.coalesce(users.column(prtd_at), "None"))
    at = pc.index_in(mkeys, value_set=ukeys)
    from_user = pc.take(users.column("PreviousRecipientTypeDetails"), at)
    own = mailboxes.column("PreviousRecipientTypeDetails")
    if users_narrowed:
        own = pc.if_else(pc.is_null(at), pc.coalesce(own, "None"), own)
    merged = pc.coalesce(from_user, own)
    position = mailboxes.schema.get_field_index("PreviousRecipientTypeDetails")
    mailboxes = mailboxes.set_column(position, ARROW_SCHEMA.field(position), merged)

    # Mail users without a mailbox get rows of their own; plain Users (no mail) are no recipients.
    is_mail_user = pc.or_(pc.fill_null(pc.equal(users.column("RecipientType"), "MailUser"), False),
                          pc.fill_null(pc.ends_with(users.column("RecipientTypeDetails"), "MailUser"), False))
    has_mailbox = np.zeros(len(ukeys), dtype=bool)
    has_mailbox[pc.drop_null(at).to_numpy()] = True  # users matched by a mailbox key above
    extra = _flat(pc.and_(pa.array(~has_mailbox), is_mail_user))
    mail_users = users.filter(extra)
    counts["mail_users"] = mail_users.num_rows
    table = pa.concat_tables([mailboxes, mail_users]) if mail_users.num_rows else mailboxes
    keys = pa.concat_arrays([mkeys, ukeys.filter(extra)]) if mail_users.num_rows else mkeys
    joined: Tuples | None = None
    if tuples is not None:
        parts = [_take_tuples(tuples[0], mkept)]
        if mail_users.num_rows:
            parts.append(_take_tuples(_take_tuples(tuples[1], ukept), extra.to_numpy(zero_copy_only=False)))
        joined = _join_tuples(parts) if len(parts) > 1 else parts[0]
    frame = _to_frame(table, keys, joined)
    frame = frame[list(INVENTORY_COLUMNS)]
    frame.index.name = None
    return frame, counts


def records_to_frame(mailboxes: list[dict[str, Any]], users: list[dict[str, Any]]) -> pd.DataFrame:
    """Join Get-Mailbox and Get-User records into the inventory frame (see module docstring).

    One row per mailbox (PreviousRecipientTypeDetails from the user's Get-User record, else the
    mailbox's own value), plus one row per mail user that has no mailbox. Index: the row key
    (ExternalDirectoryObjectId, else Guid); columns: INVENTORY_COLUMNS.
    """
    frame, _ = _build_frame(pa.Table.from_batches([_page_to_batch(mailboxes)]),
                            pa.Table.from_batches([_page_to_batch(users)]), users_narrowed=False)
    return frame


def empty_frame() -> pd.DataFrame:
    """An inventory frame with no rows and the right columns and dtypes."""
    return records_to_frame([], [])


# ----------------------------------------------------------------------------- the fetch


@dataclass
class _Read:
    """One cmdlet to read, with its plans in order of preference (fallbacks after the first).

    `probe`: plans[0] is a single stream expected to be small; if it is still going after
    PROBE_PAGES full pages, the read moves on to plans[1] (partitioned) instead of paging on alone.
    `narrowed[i]`: plan i reads Get-User through USERS_FILTER.
    """

    cmdlet: str
    plans: list[PartitionPlan]
    narrowed: list[bool]
    probe: bool = False
    plan_index: int = 0
    done: bool = False

    @property
    def plan(self) -> PartitionPlan:
        return self.plans[self.plan_index]

    @property
    def probing(self) -> bool:
        return self.probe and self.plan_index == 0

    def next_plan(self, *, rejected: bool) -> int | None:
        """Index of the plan to fall back to, or None.

        After duplicates or a rejected partition filter: the next single stream with the same
        base filter. After a rejected single stream (its base filter is what the service refused):
        the next plan with another base filter.
        """
        current = self.plan
        for index in range(self.plan_index + 1, len(self.plans)):
            candidate = self.plans[index]
            if rejected and current.is_single:
                if candidate.base_filter != current.base_filter:
                    return index
            elif candidate.is_single and candidate.base_filter == current.base_filter:
                return index
        if rejected and not current.is_single:  # no single stream of this base left: try another base
            return next((i for i in range(self.plan_index + 1, len(self.plans))
                         if self.plans[i].base_filter != current.base_filter), None)
        return None


@dataclass
class _Task:
    """One partition of one read, in flight or finished."""

    task_id: int
    read: _Read
    name: str
    filter: str | None
    attempt: int = 1
    batches: list[pa.RecordBatch] = field(default_factory=list)
    tuples: list[Tuples] = field(default_factory=list)  # each batch's multi-valued columns (batch_tuples)
    rows: int = 0
    pages: int = 0
    finished: bool = False
    errors: list[str] = field(default_factory=list)
    #: slice_keys() of the ended slice (hex plans only).
    keys: tuple[bool, int] | None = None


_Event = tuple[str, int, Any]


def _bridge_counters(bridge: Bridge) -> dict[str, Any]:
    """The bridge's own counters (requests, http_429, limit...) when it keeps any (RestBridge.snapshot())."""
    counters: Any = getattr(bridge, "counters", None)
    if counters is None:
        counters = getattr(bridge, "snapshot", None)
    if callable(counters):
        try:
            counters = counters()
        except Exception:  # noqa: BLE001 - counters are decoration, never a reason to fail
            return {}
    if isinstance(counters, Mapping):
        return {str(k): v for k, v in counters.items() if isinstance(v, int | float | str)}
    return {}


class _Fetch:
    """The state machine of one inventory fetch; events from workers are handled on the caller's thread."""

    def __init__(
        self, bridge: Bridge, reads: list[_Read], *, progress: ProgressCallback | None,
        cancel: threading.Event | None, max_workers: int, page_size: int, probe_pages: int,
        clock: Callable[[], float], select: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.bridge = bridge
        self.reads = reads
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.stop = threading.Event()  # set when this fetch ends, for whatever reason
        self.page_size = page_size
        self.probe_pages = max(1, probe_pages)
        self.clock = clock
        self.select = select or {}
        self.events: queue.Queue[_Event] = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="exocm-inventory")
        self.tasks: dict[int, _Task] = {}
        self.retired: set[int] = set()
        self._flags: dict[int, threading.Event] = {}
        self.next_id = 0
        self.notes: list[str] = []
        self.started = clock()
        self.pages = 0
        self.retries = 0
        self.rereads = 0
        self.fallbacks = 0
        self.degenerate = 0
        #: `@adminapi.errors` per read (by cmdlet), from the pages of live tasks.
        self.errors: dict[str, list[str]] = {}

    # -- workers ---------------------------------------------------------------------------
    def _worker(
        self, task_id: int, cmdlet: str, filt: str | None, retired: threading.Event, delay: float,
        first: int = 0,
    ) -> None:
        params: dict[str, Any] = {"ResultSize": "Unlimited"}
        if filt:
            params["Filter"] = filt
        pages: Iterator[pa.RecordBatch] | None = None
        try:
            if delay and (self.stop.wait(delay) or self.cancel.is_set()):
                return
            if self.stop.is_set() or self.cancel.is_set() or retired.is_set():
                return
            pages = self._pages(cmdlet, params)
            for read in itertools.count():
                # partitions that have read fewer pages get the next free slot: they end together
                with request_priority(read or first):
                    batch = next(pages, None)
                if batch is None:
                    break
                if self.stop.is_set() or self.cancel.is_set() or retired.is_set():
                    return
                tuples = batch_tuples(batch)
                self.events.put(("page", task_id, (_without_multi(batch), tuples)))
            self.events.put(("done", task_id, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.events.put(("error", task_id, exc))
        finally:
            close = getattr(pages, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - a stream that fails to close is not our result
                    pass

    def _pages(self, cmdlet: str, params: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        """Pages as Arrow batches, by the cheapest way the bridge offers: undecoded bodies
        (parsed by pyarrow.json), raw records (normalised column-wise), or plain records."""
        select = self.select.get(cmdlet)
        bodies = getattr(self.bridge, "stream_bodies", None)
        if callable(bodies):
            batches: Iterator[pa.RecordBatch] = bodies(cmdlet, params, page_size=self.page_size,
                                                       parse=parse_page_body, select=select)
            return batches
        if select and isinstance(self.bridge, PropertySelectingBridge) and self.bridge.selects_properties:
            # PSRP: `| Select-Object -Property ...` runs in the remote pipeline, so only these columns
            # are serialised, sent and deserialised (the rest were dropped by _page_to_batch anyway).
            selected = self.bridge.stream(cmdlet, params, page_size=self.page_size, properties=select)
            return (_page_to_batch(page) for page in selected)
        raw = getattr(self.bridge, "stream_raw", None)
        stream = raw if callable(raw) else self.bridge.stream
        return (_page_to_batch(page) for page in stream(cmdlet, params, page_size=self.page_size))

    def _submit(self, read: _Read, name: str, filt: str | None, attempt: int = 1, delay: float = 0.0) -> None:
        task = _Task(self.next_id, read, name, filt, attempt)
        self.next_id += 1
        self.tasks[task.task_id] = task
        flag = threading.Event()
        self._flags[task.task_id] = flag
        # The complement's first page goes ahead: it holds everything when the service matched the
        # prefixes literally, and that is best known before the other slices have all been read.
        first = -1 if name == REST else 0
        self.pool.submit(self._worker, task.task_id, read.cmdlet, filt, flag, delay, first)

    def _start_plan(self, read: _Read) -> None:
        for part in read.plan.partitions:
            self._submit(read, part.name, part.filter)

    def _retire(self, read: _Read) -> None:
        """Forget every task of `read` (their later events are ignored; their workers stop)."""
        for task_id in [t for t, task in self.tasks.items() if task.read is read]:
            self._flags[task_id].set()
            self.retired.add(task_id)
            del self.tasks[task_id]

    def _switch(self, read: _Read, index: int) -> None:
        self._retire(read)
        read.plan_index = index
        self._start_plan(read)

    def _fall_back(self, read: _Read, reason: str, *, rejected: bool) -> None:
        index = read.next_plan(rejected=rejected)
        if index is None:
            raise _NoFallback(reason)
        previous = read.plan
        plan = read.plans[index]
        self.fallbacks += 1
        how = "one paged stream" if plan.is_single else f"{len(plan.partitions)} partitions"
        note = f"{read.cmdlet}: {reason}; falling back to {how}"
        if plan.base_filter != previous.base_filter:
            note += f" with filter {plan.base_filter or '(none)'}"
        self.notes.append(note)
        self._emit(note)
        self._switch(read, index)

    # -- progress --------------------------------------------------------------------------
    def _estimate_total(self) -> int | None:
        total = 0
        for read in self.reads:
            tasks = [t for t in self.tasks.values() if t.read is read]
            if read.done or all(t.finished for t in tasks):
                total += sum(t.rows for t in tasks)
                continue
            if read.plan.is_single:
                return None
            sized = [t.rows for t in tasks if t.finished and t.name != REST]
            if not sized:
                return None
            mean = sum(sized) / len(sized)
            for t in tasks:
                size = t.rows
                total += size if t.finished or t.name == REST else max(size, round(mean))
        return max(total, self.records)

    def _emit(self, message: str = "", *, final: bool = False) -> None:
        if self.progress is None:
            return
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.records / elapsed if self.records else None
        total = self.records if final else self._estimate_total()
        eta = None
        if total is not None and rate:
            eta = max(total - self.records, 0) / rate
        tasks = list(self.tasks.values())
        counters: dict[str, Any] = {
            "pages": self.pages,
            "partitions": len(tasks),
            "partitions_done": sum(1 for t in tasks if t.finished),
            "partition_retries": self.retries,
            "fallbacks": self.fallbacks,
        }
        counters.update(_bridge_counters(self.bridge))
        self.progress(Progress(STAGE, self.records, total, rate, eta, message, counters))

    # -- the loop --------------------------------------------------------------------------
    @property
    def records(self) -> int:
        """Records held by the live tasks (retired tasks' records were discarded)."""
        return sum(t.rows for t in self.tasks.values())

    def run(self) -> list[tuple[pa.Table, Tuples]]:
        """Run every read to the end; return one table (with the key column) per read, in order."""
        try:
            for read in self.reads:
                self._start_plan(read)
            self._emit("started")
            while not all(read.done for read in self.reads):
                if self.cancel.is_set():
                    raise InventoryCancelled("inventory fetch cancelled")
                try:
                    kind, task_id, payload = self.events.get(timeout=0.05)
                except queue.Empty:
                    continue
                task = self.tasks.get(task_id)
                if task is None:  # a retired task: its read fell back or was retried
                    continue
                if kind == "page":
                    self._on_page(task, payload)
                elif kind == "done":
                    self._on_done(task)
                else:
                    self._on_error(task, payload)
            self._emit("done", final=True)
            return [self._result(read) for read in self.reads]
        finally:
            self.stop.set()
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _on_page(self, task: _Task, page: tuple[pa.RecordBatch, Tuples]) -> None:
        batch, tuples = page
        task.tuples.append(tuples)
        errors = page_errors(batch)
        if errors:
            task.errors.extend(errors)
            batch = batch.replace_schema_metadata(None)
        task.batches.append(batch)
        task.rows += batch.num_rows
        task.pages += 1
        self.pages += 1
        read = task.read
        if read.probing and task.pages >= self.probe_pages and batch.num_rows >= self.page_size:
            # Bigger than a probe: read it in partitions rather than page after page.
            self._switch(read, 1)
            self._emit(f"{read.cmdlet}: more than {self.probe_pages * self.page_size} records; reading "
                       f"{len(read.plan.partitions)} partitions")
            return
        if self._degenerate(read):
            self._resplit(read, "every record landed in the complement partition (the service did not match "
                                f"the {read.plan.prop} prefixes)")
            return
        self._emit()

    def _degenerate(self, read: _Read) -> bool:
        """A partitioned read whose prefix slices ended empty while the complement holds a full page:
        correct, but serial. Decided once DEGENERATE_AFTER prefix slices (or all) have ended, none
        with a record: with random GUIDs, a tenant big enough to fill a complement page leaves no
        sixteenth of its objects empty. Checked on the hex plan only (the second split is not re-split)."""
        plan = read.plan
        if plan.is_single or plan.prop != PARTITION_PROPERTY:
            return False
        tasks = [t for t in self.tasks.values() if t.read is read]
        prefix = [t for t in tasks if t.name != REST]
        rest = [t for t in tasks if t.name == REST]
        ended = sum(1 for t in prefix if t.finished)
        return bool(prefix and rest) and ended >= min(DEGENERATE_AFTER, len(prefix)) and \
            all(t.rows == 0 for t in prefix) and rest[0].rows >= self.page_size

    def _resplit(self, read: _Read, reason: str) -> None:
        """Move `read` to the second documented split (leading characters of UserPrincipalName), inserted
        as its next plan; the records read so far (the complement's first pages) shape it."""
        sample = [v for t in self.tasks.values() if t.read is read for b in t.batches
                  for v in b.column("UserPrincipalName").to_pylist() if isinstance(v, str)]
        plan = plan_by_first_character(read.plan.base_filter, sample=sample)
        read.plans.insert(read.plan_index + 1, plan)
        read.narrowed.insert(read.plan_index + 1, read.narrowed[read.plan_index])
        self.degenerate += 1
        note = (f"{read.cmdlet}: {reason}; reading {len(plan.partitions)} partitions by the leading characters of "
                f"{plan.prop} instead")
        self.notes.append(note)
        self._emit(note)
        self._switch(read, read.plan_index + 1)

    def _on_done(self, task: _Task) -> None:
        task.finished = True
        read = task.read
        if not read.plan.is_single and read.plan.prop == PARTITION_PROPERTY:
            task.keys = slice_keys(task.batches, task.name)
        tasks = [t for t in self.tasks.values() if t.read is read]
        if not all(t.finished for t in tasks):
            if self._degenerate(read):
                self._resplit(read, "every record landed in the complement partition (the service did not "
                                    f"match the {read.plan.prop} prefixes)")
                return
            self._emit()
            return
        if not read.plan.is_single:
            dups = self.slice_duplicates(read)
            if dups is None:
                dups = duplicate_keys(b for t in tasks for b in t.batches)
            if dups:
                self._fall_back(read, f"{dups} object(s) came back in more than one partition",
                                rejected=False)
                return
        if self._degenerate(read) and sum(t.rows for t in tasks) > self.page_size:
            self._resplit(read, "every record landed in the complement partition")
            return
        read.done = True
        self._emit(f"{read.cmdlet}: {sum(t.rows for t in tasks)} records")

    def slice_duplicates(self, read: _Read) -> int | None:
        """The duplicates of `read` counted slice by slice (slice_keys), or None when some slice's keys
        are not proven in place (or the read is not a hex plan): then the whole read must be hashed."""
        checked = [t.keys for t in self.tasks.values() if t.read is read]
        if not checked or any(c is None or not c[0] for c in checked):
            return None
        return sum(c[1] for c in checked if c is not None)

    def _on_error(self, task: _Task, exc: BaseException) -> None:
        read = task.read
        if isinstance(exc, InvalidInput):
            if not read.plan.is_single and read.plan.prop == PARTITION_PROPERTY:
                # The prefix filter itself may be what the service refused: try the second split
                # before giving up parallelism (its own refusal then falls back as before).
                self._resplit(read, f"partition filter rejected by the service ({exc.message})")
                return
            try:
                self._fall_back(read, f"filter rejected by the service ({exc.message})", rejected=True)
            except _NoFallback:
                raise exc from None
            return
        lost = isinstance(exc, PageLost)
        if isinstance(exc, Transient) and task.attempt <= (PAGE_LOST_REREADS if lost else PARTITION_RETRIES):
            # The bridge already retried this request; read the whole partition again from its start.
            self._flags[task.task_id].set()
            self.retired.add(task.task_id)
            del self.tasks[task.task_id]
            self.retries += 1
            self.rereads += 1 if lost else 0
            wait = exc.retry_after if isinstance(exc, Throttled) and exc.retry_after else 0.0
            self._emit(f"{read.cmdlet} partition {task.name}: {exc.message}; reading it again")
            self._submit(read, task.name, task.filter, task.attempt + 1, delay=min(wait, 60.0))
            return
        raise exc

    def _result(self, read: _Read) -> tuple[pa.Table, Tuples]:
        tasks = sorted((t for t in self.tasks.values() if t.read is read), key=lambda t: t.task_id)
        self.errors[read.cmdlet] = [e for t in tasks for e in t.errors]
        return (pa.Table.from_batches([b for t in tasks for b in t.batches], schema=BATCH_SCHEMA),
                _join_tuples(m for t in tasks for m in t.tuples))


class _NoFallback(Exception):
    """No fallback plan is left for a read."""


def _reads(dirsynced_only: bool, partitions: int, prop: str) -> tuple[_Read, _Read]:
    """Get-Mailbox (partitioned at once: the bulk of the tenant) and Get-User (narrowed, usually
    small: probed with one stream, partitioned only past PROBE_PAGES full pages)."""
    base = DIRSYNCED_FILTER if dirsynced_only else None
    users_base = and_filters(USERS_FILTER, base)
    if partitions == 1:
        return (_Read("Get-Mailbox", [single_stream(base)], [False]),
                _Read("Get-User", [single_stream(users_base), single_stream(base)], [True, False]))
    mailboxes = _Read("Get-Mailbox", [plan_partitions(base, partitions=partitions, prop=prop), single_stream(base)],
                      [False, False])
    users = _Read(
        "Get-User",
        [single_stream(users_base), plan_partitions(users_base, partitions=partitions, prop=prop),
         single_stream(users_base), single_stream(base)],
        [True, True, True, False],
        probe=True,
    )
    return mailboxes, users


def fetch_inventory(
    bridge: Bridge,
    *,
    dirsynced_only: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    partitions: int = DEFAULT_PARTITIONS,
    max_workers: int | None = None,
    page_size: int = PAGE_SIZE,
    partition_property: str = PARTITION_PROPERTY,
    probe_pages: int = PROBE_PAGES,
    select_properties: bool = True,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] | None = None,
) -> Inventory:
    """Fetch Get-Mailbox and Get-User through `bridge` with a partitioned parallel read; return the Inventory.

    `partitions` is 16 (first hex digit of ExternalDirectoryObjectId, plus the complement), 256,
    or 1 (one paged stream per cmdlet); `partition_property` is the property the prefixes apply to;
    Get-User is read as one stream until `probe_pages` full pages have come, then partitioned.
    `select_properties`: ask each cmdlet for only the properties the inventory keeps (SELECT): REST
    as `$select` (every page ~30% smaller), PSRP as `Select-Object -Property` in the remote pipeline.
    `max_workers` defaults to one thread per partition (at most MAX_WORKERS). `progress` is
    called on the caller's thread (records
    done, pages, rate, and a total/ETA once the first partitions have ended). Setting `cancel`
    raises InventoryCancelled within a fraction of a second; requests already in flight finish
    in the background and are discarded. Bridge errors that retrying cannot fix propagate.
    `now`: the wall clock that stamps `fetched_at` (default: the system's).
    """
    fetched_at = now() if now is not None else datetime.now(UTC)
    mailboxes, users = _reads(dirsynced_only, partitions, partition_property)
    if max_workers is None:
        max_workers = min(MAX_WORKERS, sum(max(len(p.partitions) for p in r.plans) for r in (mailboxes, users)))
    fetch = _Fetch(bridge, [mailboxes, users], progress=progress, cancel=cancel,
                   max_workers=max(1, max_workers), page_size=page_size, probe_pages=probe_pages,
                   select=SELECT if select_properties else None,
                   clock=clock)
    try:
        with fewer_collections():
            (mbx_table, mbx_tuples), (usr_table, usr_tuples) = fetch.run()
    except _NoFallback as exc:  # pragma: no cover - _on_error re-raises the bridge error instead
        raise BridgeError(str(exc)) from None
    incomplete: list[str] = []
    recovered = 0
    record_errors = sum(len(v) for v in fetch.errors.values())
    tables = {"Get-Mailbox": (mbx_table, mbx_tuples), "Get-User": (usr_table, usr_tuples)}
    # every record keyed once, as the slices proved: the frame need not hash the keys again
    unique = {r.cmdlet: fetch.slice_duplicates(r) == 0 for r in (mailboxes, users)}
    for cmdlet, errors in fetch.errors.items():
        if errors:
            extra, missing = _recover(bridge, cmdlet, errors)
            recovered += extra.num_rows
            incomplete.extend(missing)
            if extra.num_rows:
                table, tuples = tables[cmdlet]
                tables[cmdlet] = (pa.concat_tables([table, extra]), _join_tuples([tuples, batch_tuples(extra)]))
                unique[cmdlet] = False
    (mbx_table, mbx_tuples), (usr_table, usr_tuples) = tables["Get-Mailbox"], tables["Get-User"]
    trim_c_heap()
    frame, counts = _build_frame(mbx_table, usr_table, users_narrowed=users.narrowed[users.plan_index],
                                 tuples=(mbx_tuples, usr_tuples),
                                 unique=(unique["Get-Mailbox"], unique["Get-User"]))
    notes = list(fetch.notes)
    if record_errors:
        notes.append(f"the service left {record_errors} record(s) out of its pages with @adminapi.errors; "
                     f"{recovered} read again by identity" + (f", {len(incomplete)} missing: the inventory is "
                                                              "INCOMPLETE" if incomplete else ""))
    if counts["duplicates_dropped"]:
        notes.append(f"{counts['duplicates_dropped']} duplicate record(s) from the service were dropped")
    if counts["unkeyed_dropped"]:
        notes.append(f"{counts['unkeyed_dropped']} record(s) without ExternalDirectoryObjectId or Guid were dropped")
    stats: dict[str, Any] = {
        **counts,
        "records": len(frame),
        "pages": fetch.pages,
        "mode": {r.cmdlet: ("single" if r.plan.is_single else f"{len(r.plan.partitions)} partitions")
                 for r in (mailboxes, users)},
        "partition_retries": fetch.retries,
        "partition_rereads_page_lost": fetch.rereads,
        "degenerate_resplits": fetch.degenerate,
        "record_errors": record_errors,
        "records_recovered": recovered,
        "fallbacks": fetch.fallbacks,
        "elapsed_s": round(clock() - fetch.started, 3),
        **{f"bridge_{k}": v for k, v in _bridge_counters(bridge).items()},
    }
    return Inventory(frame=frame, tenant=bridge.tenant, fetched_at=fetched_at, source=bridge.kind,
                     dirsynced_only=dirsynced_only, notes=tuple(notes), stats=stats, incomplete=tuple(incomplete))


def _recover(bridge: Bridge, cmdlet: str, errors: list[str]) -> tuple[pa.Table, list[str]]:
    """Read the records named in `errors` again by identity: (the records as a table, what stays missing)."""
    recover = getattr(bridge, "recover_records", None)
    if not callable(recover):
        return pa.Table.from_batches([], schema=BATCH_SCHEMA), list(errors)
    try:
        records = recover(cmdlet, errors, normalize=False)
        missing: list[str] = []
    except IncompleteRead as exc:
        return pa.Table.from_batches([], schema=BATCH_SCHEMA), list(exc.errors)
    return pa.Table.from_batches([_page_to_batch(records)], schema=BATCH_SCHEMA), missing
