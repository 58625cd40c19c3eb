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
from typing import Any

from .base import Record

_GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")
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
    match = _GUID.match(value.strip())
    return match.group(1).lower() if match else value


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


def normalize_value(name: str, value: Any) -> Any:
    """Normalise one property value of property `name`."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):
        if is_date_property(name):
            moment = parse_datetime(value)
            if moment is not None:
                return moment
        if is_guid_property(name):
            return normalize_guid(value)
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = [_scalar_text(v) for v in value if v is not None]
        if is_guid_property(name):
            items = [normalize_guid(v) for v in items]
        return items
    if isinstance(value, Mapping):
        return _scalar_text(value)
    return str(value)


def normalize_record(record: Mapping[str, Any]) -> Record:
    """Normalise every value of one record; drop OData annotations."""
    return {str(k): normalize_value(str(k), v) for k, v in record.items() if "@" not in str(k)}


def normalize_records(records: Iterable[Any]) -> list[Record]:
    """Normalise a page of records; a non-object entry becomes {"Value": text}."""
    out: list[Record] = []
    for item in records:
        if isinstance(item, Mapping):
            out.append(normalize_record(item))
        else:
            out.append({"Value": normalize_value("Value", item)})
    return out
