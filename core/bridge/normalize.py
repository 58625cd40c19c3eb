"""Record value normalisation: every transport hands callers the same Python types.

bool, int, float, str, list[str], datetime (tz-aware UTC), GUIDs as lower-case str, None.
Conversions are decided by the property *name* as well as the value, so a display name
that happens to look like a date or a GUID stays the string it is: date properties are
Exchange's `When*` / `*Time` / `*Date` / `*UTC` names, GUID properties end in `Guid` or
`ObjectId`. OData annotations (keys containing "@") are dropped. Nested objects become
their JSON text (records stay flat and safe to render).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from ..values import GUID_RE
from .base import Record

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_DATE_SUFFIXES = ("Time", "Date", "UTC", "Utc", "Timestamp", "DateTime")


def is_date_property(name: str) -> bool:
    """True for Exchange property names that carry a point in time."""
    return name.startswith("When") or name.endswith(_DATE_SUFFIXES)


def is_guid_property(name: str) -> bool:
    """True for Exchange property names that carry a GUID."""
    return name == "Guid" or name.endswith(("Guid", "ObjectId"))


def parse_datetime(value: str) -> datetime | None:
    """Parse ISO 8601 (up to 7 fraction digits, as .NET writes) or /Date(ms)/ into UTC; None if not one."""
    text = value.strip()
    match = _ISO.match(text)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        try:
            moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
                              tzinfo=UTC)
        except ValueError:
            return None
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return moment
    match = _MS_DATE.match(text)
    if match:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match.group(1)))
    return None


def normalize_guid(value: str) -> str:
    """A GUID as lower-case text without braces; other text unchanged."""
    match = GUID_RE.match(value.strip())
    return match.group(1).lower() if match else value


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


_PLAIN, _DATE, _GUID_KIND, _DROP = 0, 1, 2, 3


@lru_cache(maxsize=8192)
def _kind(name: str) -> int:
    """How values of property `name` are treated (cached: a tenant has few property names)."""
    if "@" in name:
        return _DROP
    if is_date_property(name):
        return _DATE
    if is_guid_property(name):
        return _GUID_KIND
    return _PLAIN


def _to_datetime(value: str) -> datetime | None:
    if len(value) >= 16 and value[4:5] == "-" and value[10:11] in ("T", " "):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return parse_datetime(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return parse_datetime(value)


def normalize_value(name: str, value: Any) -> Any:
    """Normalise one property value of property `name`."""
    kind = _kind(name)
    cls = value.__class__
    if value is None or cls is bool or cls is int or cls is float:
        return value
    if cls is str:
        if kind == _PLAIN or kind == _DROP:
            return value
        if kind == _DATE:
            moment = _to_datetime(value)
            return value if moment is None else moment
        return normalize_guid(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, list | tuple | set | frozenset):
        items = [v if v.__class__ is str else _scalar_text(v) for v in value if v is not None]
        if kind == _GUID_KIND:
            items = [normalize_guid(v) for v in items]
        return items
    if isinstance(value, str):  # a str subclass
        return normalize_value(name, str(value))
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return _scalar_text(value)
    return str(value)


def normalize_record(record: Mapping[str, Any]) -> Record:
    """Normalise every value of one record; drop OData annotations."""
    out: Record = {}
    for key, value in record.items():
        name = key if key.__class__ is str else str(key)
        kind = _kind(name)
        if kind == _DROP:
            continue
        if kind == _PLAIN and (value is None or value.__class__ in _PASS_THROUGH):
            out[name] = value
        else:
            out[name] = normalize_value(name, value)
    return out


_PASS_THROUGH = frozenset({str, bool, int, float})


def normalize_records(records: Iterable[Any]) -> list[Record]:
    """Normalise a page of records; a non-object entry becomes {"Value": text}."""
    out: list[Record] = []
    for item in records:
        if isinstance(item, Mapping):
            out.append(normalize_record(item))
        else:
            out.append({"Value": normalize_value("Value", item)})
    return out
