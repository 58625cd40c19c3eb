"""Decode one CLIXML output object (MS-PSRP 2.2.5) straight to plain Python values.

Why not a library: pypsrp's and psrpcore's deserialisers build a full object model and cost
~1.7 and ~2.3 ms for a 32-property on-prem mailbox selected with Select-Object (six typed
collections and an enum inside), which caps a live on-prem fetch near 400 objects/s. Walking
the ElementTree once costs well under 0.1 ms. The output of Exchange cmdlets needs only this
subset of CLIXML: primitives, `Obj` with `Props`/`MS` property bags, `ToString` (enums, ADObjectId
and other values shown by name), `LST`/`IE`/`QUE`/`STK` collections (ProxyAddressCollection,
MultiValuedProperty), `DCT`, `Ref` and `TN`/`TNRef`. Anything else decodes to its text.

Values: strings with PowerShell's `_xHHHH_` escapes undone; `<DT>` as tz-aware UTC datetime;
`<G>` lower-case text; enums and other ToString-only objects as their name; collections as
lists; nested property bags as dicts.
"""
from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

from .normalize import parse_datetime

_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_CONTAINERS = frozenset({"LST", "IE", "QUE", "STK"})


def unescape(text: str | None) -> str:
    """A CLIXML string value as Python text (`_x000A_` -> newline, surrogate pairs joined)."""
    if not text:
        return ""
    if "_x" not in text:
        return text
    decoded = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return decoded.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return decoded


def _datetime(text: str | None) -> Any:
    value = (text or "").strip()
    return parse_datetime(value) or value


def _int(text: str | None) -> int:
    return int((text or "0").strip())


def _float(text: str | None) -> float:
    return float((text or "0").strip())


_PRIMITIVES: dict[str, Callable[[str | None], Any]] = {
    "S": unescape,
    "C": lambda t: chr(_int(t)),
    "B": lambda t: (t or "").strip().lower() == "true",
    "DT": _datetime,
    "TS": lambda t: (t or "").strip(),
    "By": _int, "SB": _int, "U16": _int, "I16": _int, "U32": _int, "I32": _int, "U64": _int, "I64": _int,
    "Sg": _float, "Db": _float, "D": _float,
    "G": lambda t: (t or "").strip().lower(),
    "URI": unescape, "Version": lambda t: (t or "").strip(), "XD": unescape, "SBK": unescape,
    "BA": lambda t: base64.b64encode(base64.b64decode(t or "")).decode(),
    "Nil": lambda t: None,
    "SS": lambda t: None,  # a SecureString is never decoded into a record
}


class _Decoder:
    __slots__ = ("refs", "types")

    def __init__(self) -> None:
        self.refs: dict[str, Any] = {}
        self.types: dict[str, list[str]] = {}

    def value(self, el: ET.Element, top: bool = False) -> Any:
        tag = el.tag
        if tag == "Obj":
            return self.obj(el, top)
        if tag == "Ref":
            return self.refs.get(el.get("RefId", ""))
        convert = _PRIMITIVES.get(tag)
        return convert(el.text) if convert is not None else unescape(el.text)

    def obj(self, el: ET.Element, top: bool) -> Any:
        props: dict[str, Any] | None = None
        container: Any = None
        to_string: str | None = None
        primitive: Any = None
        for child in el:
            tag = child.tag
            if tag == "TN":
                self.types[child.get("RefId", "")] = [t.text or "" for t in child]
            elif tag == "TNRef":
                continue
            elif tag == "Props" or tag == "MS":
                if props is None:
                    props = {}
                for prop in child:
                    props[prop.get("N") or ""] = self.value(prop)
            elif tag == "ToString":
                to_string = unescape(child.text)
            elif tag in _CONTAINERS:
                container = [self.value(item) for item in child]
            elif tag == "DCT":
                container = {}
                for entry in child:
                    key = value = None
                    for part in entry:
                        if part.get("N") == "Key":
                            key = self.value(part)
                        elif part.get("N") == "Value":
                            value = self.value(part)
                    container[str(key)] = value
            else:
                primitive = self.value(child)
        if container is not None:
            result = container
        elif props and (top or to_string is None):
            result = props  # an output object, or a nested property bag without a display form
        elif to_string is not None:
            result = to_string  # enums, ADObjectId, SmtpAddress, ...: the name PowerShell shows
        else:
            result = props if props is not None else primitive
        ref = el.get("RefId")
        if ref is not None:
            self.refs[ref] = result
        return result


def decode(xml: str | bytes) -> Any:
    """Decode one CLIXML element (an output object) to plain values."""
    return _Decoder().value(ET.fromstring(xml), top=True)


def decode_record(xml: str | bytes) -> dict[str, Any]:
    """Decode one output object to a record: its properties, or {"Value": v} for a scalar."""
    value = decode(xml)
    return value if isinstance(value, dict) else {"Value": value}
