"""What a property value means, decided once: missing, true/false, GUID text, its canonical form.

The bridge, an inventory snapshot, an on-prem CSV, a filter expression and a plan file each hand
over the same Exchange property in their own types (the text 'True', a numpy bool, pandas NA, a
tuple of addresses, a Timestamp). Every stage reads them through these functions, so a value
that is "missing" or "true" in one place is the same in every other.
"""
from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

# --- GUIDs ------------------------------------------------------------------------------------

#: A GUID as Exchange writes it, braces allowed (`{...}`); group 1 is the bare GUID. Also valid
#: RE2 syntax, so Arrow's `match_substring_regex` takes it as it is.
GUID_PATTERN: Final = (
    r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$"
)
GUID_RE: Final = re.compile(GUID_PATTERN)


def is_guid(text: str, *, braces: bool = True) -> bool:
    """Whether `text` is a GUID (`braces=False`: only the bare form, as a filter may quote it)."""
    match = GUID_RE.match(text)
    return match is not None and (braces or match.group(1) == text)


# --- missing values ---------------------------------------------------------------------------

_CONTAINERS: Final = (list, tuple, set, frozenset, dict, np.ndarray)


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and pandas NA; a container (even an empty one) is never missing."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (str, bool, int, *_CONTAINERS)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# --- true / false -----------------------------------------------------------------------------

_TRUE: Final = frozenset({"true", "$true", "1", "yes"})
_FALSE: Final = frozenset({"false", "$false", "0", "no"})
#: Words a person types for a switch (`--set-cloud-managed on`), accepted only where asked for.
_SWITCH_TRUE: Final = frozenset({"on"})
_SWITCH_FALSE: Final = frozenset({"off"})


def as_bool(value: Any, *, switch_words: bool = False) -> bool | None:
    """A boolean property as bool; None when absent or not a truth value.

    Accepts bool (numpy's too), numbers (0 is False) and the text 'True'/'False', '$true',
    'yes'/'no', '1'/'0' in any case; `switch_words` adds 'on'/'off' (what an admin types).
    """
    if value is None or value.__class__ is bool:
        return value
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, bool):
            return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE or (switch_words and text in _SWITCH_TRUE):
            return True
        if text in _FALSE or (switch_words and text in _SWITCH_FALSE):
            return False
        return None
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, float):
        return None if math.isnan(value) else bool(value)
    return None


def is_true(value: Any) -> bool:
    """`as_bool(value) is True`, except that a list or tuple is true when it is not empty."""
    if isinstance(value, list | tuple):
        return bool(value)
    return as_bool(value) is True


def true_mask(series: pd.Series) -> pd.Series:
    """`is_true` over a whole column (missing -> False), as a bool Series with the same index."""
    return series.map(is_true).astype(bool)


# --- canonical record values ------------------------------------------------------------------


def iso_utc(value: Any) -> str | None:
    """A timestamp (datetime, pandas Timestamp, ISO string) as ISO-8601 UTC; None when absent.

    Naive datetimes are taken as UTC (the bridge and the inventory hand out UTC).
    """
    if is_missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        parsed = parse_utc(text)
        if parsed is None:
            return text
        value = parsed
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return str(value.astimezone(UTC).isoformat())
    return str(value)


def parse_utc(value: str | None) -> datetime | None:
    """Parse an ISO timestamp such as `iso_utc` writes; naive means UTC (None stays None; junk gives None)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalise_value(value: Any, *, fold_case: bool = False) -> Any:
    """A record value as plain JSON: None for absent/empty, bool, int, str, sorted list of str.

    The same mailbox read through the bridge or from an inventory snapshot normalises to
    the same value, so fingerprints agree. `fold_case`: the form two sources compare in
    (text stripped and lower-case, lists as their sorted distinct lower-case items).
    """
    kind = type(value)
    if kind is str:
        if fold_case:
            return value.strip().lower() or None
        return value if value else None
    if value is None or kind is bool or kind is int:
        return value
    if (kind is tuple or kind is list) and not fold_case:
        if not value:
            return None
        items = sorted(str(v) for v in value if v is not None and str(v) != "")
        return items or None
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()  # numpy scalars and arrays
    if isinstance(value, list | tuple | set | frozenset):
        items = [str(v) for v in value if not is_missing(v) and str(v) != ""]
        if fold_case:
            return sorted({item.lower() for item in items}) or None
        return sorted(items) or None
    if is_missing(value):
        return None
    if isinstance(value, bool | int):
        return value
    if isinstance(value, datetime | pd.Timestamp):
        return iso_utc(value)
    if isinstance(value, str):  # a str subclass
        return normalise_value(str(value), fold_case=fold_case)
    text = str(value)
    return text if text != "" else None


def json_value(value: Any) -> Any:
    """A value fit for JSON evidence: numpy scalars as Python, tuples as lists, times as ISO UTC ('Z').

    Nested lists and dicts are converted item by item; missing scalars become None.
    """
    if value is None or value.__class__ in (str, bool, int):
        return value
    if isinstance(value, tuple | list | np.ndarray):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, pd.Timestamp | datetime):
        if value is pd.NaT:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
