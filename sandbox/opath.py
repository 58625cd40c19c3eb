"""An OPATH subset for `-Filter`, compiled once per call into a Python predicate.

Grammar (Microsoft Learn, "Filterable properties for the Filter parameter" and
"about_Comparison_Operators"): comparisons `Property -op value` joined by `-and`, `-or`,
`-not`, with parentheses. Operators: -eq -ne -like -notlike (what the product uses), plus
-gt -ge -lt -le for dates and numbers. Values: 'single' or "double" quoted strings, $true,
$false, $null, numbers, or a bare word. Property names are case-insensitive; string
comparisons are case-insensitive as in Exchange; `-like` knows only the `*` wildcard;
a multi-valued property (EmailAddresses) matches when any of its values matches.

A filter compiles to a tree of nodes, each carrying its predicate. Besides the predicate, the
tree can answer from an index (`candidates`): `-eq`, `-ne`, `-like 'text'` / `-like 'prefix*'` and
`-notlike` on an indexed property, combined with `-and`, `-or`, `-not`, give the matching
positions without visiting every object (a real directory answers such filters from its
indexes too). The answer is exact or a superset; the caller runs the predicate where it is not
exact, so results are the same as a scan, in the same order.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from exocm.sandbox.errors import CmdletError

Getter = Callable[[Any], Any]
Predicate = Callable[[Any], bool]

_OPS = {"-eq", "-ne", "-like", "-notlike", "-gt", "-ge", "-lt", "-le"}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lp>\()|(?P<rp>\))|
        (?P<sq>'(?:[^']|'')*')|(?P<dq>"(?:[^"]|"")*")|
        (?P<var>\$(?:true|false|null)\b)|
        (?P<op>-[A-Za-z]+)|
        (?P<word>[^\s()'"]+)
    )""",
    re.VERBOSE | re.IGNORECASE,
)


def _syntax_error(text: str, pos: int) -> CmdletError:
    # Text modelled on Exchange's "Invalid filter syntax" error; wording approximate (sandbox-made).
    return CmdletError(
        "ParameterBindingException",
        "InvalidArgument",
        "Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": \"Invalid filter "
        "syntax. For a description of the filter parameter syntax see the command help.\n"
        f"\"{text}\" at position {pos + 1}.\"",
    )


def _unknown_property(text: str, name: str, pos: int) -> CmdletError:
    # Exchange's text for a property that is not filterable; wording approximate (sandbox-made).
    return CmdletError(
        "ParameterBindingException",
        "InvalidArgument",
        "Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": \"'"
        f"{name}' is not a recognized filterable property. For a list of filterable properties see "
        f"the command help.\n\"{text}\" at position {pos + 1}.\"",
    )


class _Tok:
    __slots__ = ("kind", "value", "pos")

    def __init__(self, kind: str, value: str, pos: int) -> None:
        self.kind = kind
        self.value = value
        self.pos = pos


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    n = len(text)
    while pos < n:
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _syntax_error(text, pos)
        kind = m.lastgroup or ""
        start = m.start(kind)
        raw = m.group(kind)
        if kind == "sq":
            toks.append(_Tok("str", raw[1:-1].replace("''", "'"), start))
        elif kind == "dq":
            toks.append(_Tok("str", raw[1:-1].replace('""', '"'), start))
        elif kind == "var":
            toks.append(_Tok("var", raw.lower(), start))
        elif kind == "op":
            toks.append(_Tok("op", raw.lower(), start))
        else:
            toks.append(_Tok(kind, raw, start))
        pos = m.end()
    return toks


class _Literal:
    """A filter value with its forms precomputed for each property type."""

    __slots__ = ("raw", "is_null", "low", "as_bool", "as_dt", "as_num", "regex")

    def __init__(self, raw: str | None) -> None:
        self.raw = raw
        self.is_null = raw is None
        self.low = raw.lower() if raw is not None else None
        self.as_bool: bool | None = None
        if self.low in ("true", "$true"):
            self.as_bool = True
        elif self.low in ("false", "$false"):
            self.as_bool = False
        self.as_dt = _parse_dt(raw) if raw is not None else None
        try:
            self.as_num: float | None = float(raw) if raw is not None else None
        except ValueError:
            self.as_num = None
        self.regex: re.Pattern[str] | None = None
        if raw is not None:
            pattern = "".join(".*" if ch == "*" else re.escape(ch) for ch in raw)
            self.regex = re.compile(rf"\A{pattern}\Z", re.IGNORECASE | re.DOTALL)


def _parse_dt(raw: str) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d",
                "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y"):
        try:
            dt = datetime.strptime(raw.strip().replace("Z", "+0000"), fmt)
        except ValueError:
            continue
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return None


def _empty(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, list | tuple) and len(v) == 0)


def _eq_scalar(v: Any, lit: _Literal) -> bool:
    if isinstance(v, bool):
        return lit.as_bool is not None and v == lit.as_bool
    if isinstance(v, str):
        return v.lower() == lit.low
    if isinstance(v, int | float):
        return lit.as_num is not None and float(v) == lit.as_num
    if isinstance(v, datetime):
        return lit.as_dt is not None and v == lit.as_dt
    return str(v).lower() == lit.low


def _cmp_scalar(v: Any, lit: _Literal) -> int | None:
    """-1/0/1 comparing v with the literal, or None when incomparable."""
    a: Any
    b: Any
    if isinstance(v, datetime):
        a, b = v, lit.as_dt
    elif isinstance(v, int | float) and not isinstance(v, bool):
        a, b = float(v), lit.as_num
    elif isinstance(v, str):
        a, b = v.lower(), lit.low
    else:
        return None
    if b is None:
        return None
    result: int = (a > b) - (a < b)
    return result


def _make_compare(getter: Getter, op: str, lit: _Literal) -> Predicate:
    if lit.is_null:
        if op == "-eq":
            return lambda o: _empty(getter(o))
        if op == "-ne":
            return lambda o: not _empty(getter(o))
        return lambda o: False
    if op in ("-eq", "-ne"):
        def eq(o: Any) -> bool:
            v = getter(o)
            if v is None:
                return False
            if isinstance(v, list | tuple):
                return any(_eq_scalar(x, lit) for x in v)
            return _eq_scalar(v, lit)
        if op == "-eq":
            return eq
        return lambda o: not eq(o)
    if op in ("-like", "-notlike"):
        rx = lit.regex
        assert rx is not None

        def like(o: Any) -> bool:
            v = getter(o)
            if v is None:
                return False
            if isinstance(v, list | tuple):
                return any(rx.match(str(x)) is not None for x in v)
            if isinstance(v, bool):
                v = "True" if v else "False"
            return rx.match(str(v)) is not None
        if op == "-like":
            return like
        return lambda o: not like(o)
    want = {"-gt": (1,), "-ge": (0, 1), "-lt": (-1,), "-le": (-1, 0)}[op]

    def rel(o: Any) -> bool:
        v = getter(o)
        if v is None:
            return False
        values = v if isinstance(v, list | tuple) else (v,)
        for x in values:
            c = _cmp_scalar(x, lit)
            if c is not None and c in want:
                return True
        return False
    return rel


class Lookup(Protocol):
    """What `candidates` asks of an index over the objects a filter runs on (positions 0..size-1)."""

    size: int

    def equal(self, prop: str, low: str, check: Predicate) -> set[int] | None:
        """Positions whose `prop` equals `low` case-insensitively (`check` decides values the index
        cannot), or None when `prop` is not indexed."""

    def prefix(self, prop: str, low: str, check: Predicate) -> set[int] | None:
        """Positions whose `prop` starts with the ASCII text `low` case-insensitively; None when not indexed."""


#: A node's answer from an index: (positions that may match, or None for "no help: every object";
#: the predicate those positions must still pass, or None when the positions are exact).
Plan = tuple[set[int] | None, Predicate | None]


class Node:
    """A compiled filter (sub)expression: `pred(obj)` decides it; `candidates(lookup)` narrows it by index."""

    __slots__ = ("pred",)

    def __init__(self, pred: Predicate) -> None:
        self.pred = pred

    def candidates(self, lookup: Lookup) -> Plan:
        """(positions, residual predicate): see `Plan`. Objects outside the positions never match."""
        return None, self.pred


class Compare(Node):
    """`Property -op value`."""

    __slots__ = ("prop", "op", "lit", "positive")

    def __init__(self, prop: str, op: str, lit: _Literal, getter: Getter) -> None:
        super().__init__(_make_compare(getter, op, lit))
        self.prop = prop
        self.op = op
        self.lit = lit
        # -ne / -notlike are the negations of -eq / -like: the index answers the positive form.
        self.positive = _make_compare(getter, {"-ne": "-eq", "-notlike": "-like"}.get(op, op), lit)

    def _positive_hits(self, lookup: Lookup) -> set[int] | None:
        lit = self.lit
        if lit.raw is None or lit.low is None:
            return None
        if self.op in ("-eq", "-ne"):
            return lookup.equal(self.prop, lit.low, self.positive)
        if self.op in ("-like", "-notlike"):
            # Only 'text' and 'text*' with ASCII text: re.IGNORECASE then agrees with str.lower().
            core = lit.raw.rstrip("*")
            if not core or "*" in core or not lit.raw.isascii():
                return None
            if core == lit.raw:
                return lookup.equal(self.prop, core.lower(), self.positive)
            return lookup.prefix(self.prop, core.lower(), self.positive)
        return None

    def candidates(self, lookup: Lookup) -> Plan:
        hits = self._positive_hits(lookup)
        if hits is None:
            return None, self.pred
        if self.op in ("-ne", "-notlike"):
            return _complement(hits, lookup.size), None
        return hits, None


class AllOf(Node):
    """`a -and b -and ...`."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Node]) -> None:
        super().__init__(_all([p.pred for p in parts]))
        self.parts = parts

    def candidates(self, lookup: Lookup) -> Plan:
        found: list[set[int]] = []
        residual: list[Predicate] = []
        for part in self.parts:
            hits, rest = part.candidates(lookup)
            if rest is not None:
                residual.append(rest)
            if hits is None:
                continue
            if not hits:
                return set(), None
            found.append(hits)
        if not found:
            return None, self.pred
        found.sort(key=len)
        result = set(found[0])
        for hits in found[1:]:
            result.intersection_update(hits)
        # Parts answered exactly hold for every position left; only the others are checked.
        return result, _all(residual) if residual else None


class AnyOf(Node):
    """`a -or b -or ...`."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Node]) -> None:
        preds = [p.pred for p in parts]
        super().__init__(lambda o: any(p(o) for p in preds))
        self.parts = parts

    def candidates(self, lookup: Lookup) -> Plan:
        result: set[int] = set()
        exact = True
        for part in self.parts:
            hits, rest = part.candidates(lookup)
            if hits is None:
                return None, self.pred
            result.update(hits)
            exact = exact and rest is None
        return result, None if exact else self.pred


class Negation(Node):
    """`-not a`: answered by an index only when `a` is answered exactly."""

    __slots__ = ("inner",)

    def __init__(self, inner: Node) -> None:
        pred = inner.pred
        super().__init__(lambda o: not pred(o))
        self.inner = inner

    def candidates(self, lookup: Lookup) -> Plan:
        hits, rest = self.inner.candidates(lookup)
        if hits is None or rest is not None:
            return None, self.pred
        return _complement(hits, lookup.size), None


def _all(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    return lambda o: all(p(o) for p in preds)


def _complement(hits: set[int], size: int) -> set[int]:
    return set(range(size)).difference(hits)


def _wildcard_refused(text: str, name: str, pos: int) -> CmdletError:
    # Variant edoid-no-wildcard-error: the refusal's wording is the sandbox's own.
    return CmdletError(
        "InvalidFilterException",
        "InvalidArgument",
        f"Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": \"Wildcards aren't "
        f"supported for the property '{name}'.\n\"{text}\" at position {pos + 1}.\" (sandbox message)",
    )


class _Parser:
    def __init__(self, text: str, props: Mapping[str, Getter],
                 no_wildcards: Mapping[str, str] | None = None) -> None:
        self.text = text
        self.props = props
        self.no_wildcards = no_wildcards or {}
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        t = self.peek()
        if t is None:
            raise _syntax_error(self.text, len(self.text))
        self.i += 1
        return t

    def parse(self) -> Node:
        if not self.toks:
            raise _syntax_error(self.text, 0)
        p = self.or_expr()
        t = self.peek()
        if t is not None:
            raise _syntax_error(self.text, t.pos)
        return p

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while (t := self.peek()) is not None and t.kind == "op" and t.value == "-or":
            self.i += 1
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return AnyOf(parts)

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while (t := self.peek()) is not None and t.kind == "op" and t.value == "-and":
            self.i += 1
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        return AllOf(parts)

    def not_expr(self) -> Node:
        t = self.peek()
        if t is not None and t.kind == "op" and t.value == "-not":
            self.i += 1
            return Negation(self.not_expr())
        return self.primary()

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "lp":
            inner = self.or_expr()
            close = self.take()
            if close.kind != "rp":
                raise _syntax_error(self.text, close.pos)
            return inner
        if t.kind != "word":
            raise _syntax_error(self.text, t.pos)
        name = t.value.lower()
        getter = self.props.get(name)
        if getter is None:
            raise _unknown_property(self.text, t.value, t.pos)
        op = self.take()
        if op.kind != "op" or op.value not in _OPS:
            raise _syntax_error(self.text, op.pos)
        val = self.take()
        if val.kind == "str" or val.kind == "word":
            lit = _Literal(val.value)
        elif val.kind == "var":
            lit = _Literal(None) if val.value == "$null" else _Literal(val.value[1:])
        else:
            raise _syntax_error(self.text, val.pos)
        operator = op.value
        mode = self.no_wildcards.get(name)
        if mode and operator in ("-like", "-notlike") and lit.raw is not None and "*" in lit.raw:
            if mode == "error":
                raise _wildcard_refused(self.text, t.value, t.pos)
            # "literal": the '*' is a character like any other, so -like is -eq on the text.
            operator = "-eq" if operator == "-like" else "-ne"
        return Compare(name, operator, lit, getter)


def parse_filter(text: str, props: Mapping[str, Getter], *, no_wildcards: Mapping[str, str] | None = None) -> Node:
    """Compile an OPATH filter into a node tree (`.pred` decides an object, `.candidates` asks an index).

    `props` maps lower-case property names to getters. Raises CmdletError
    (ParameterBindingException / InvalidArgument) for a syntax error or a property not in `props`.
    `no_wildcards` maps lower-case property names to "error" (a `*` in -like is refused) or
    "literal" (a `*` matches only itself): the edoid-no-wildcard-* variants (variants.py).
    """
    return _Parser(text, props, no_wildcards).parse()


def compile_filter(text: str, props: Mapping[str, Getter]) -> Predicate:
    """Compile an OPATH filter into a predicate; `props` maps lower-case property names to getters.

    Raises CmdletError (ParameterBindingException / InvalidArgument) for a syntax error or a
    property that is not in `props`.
    """
    return parse_filter(text, props).pred
