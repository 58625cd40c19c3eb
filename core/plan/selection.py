"""Which mailboxes a plan targets: from a CSV, from a filter expression, or all dir-synced.

Identities from files are resolved against the inventory frame the way Exchange resolves
`-Identity` (ExternalDirectoryObjectId, Guid, ExchangeGuid, UserPrincipalName,
PrimarySmtpAddress, any proxy address, Alias; case-insensitive). A value that matches
nothing or more than one mailbox is reported with its line number, never guessed.

Filter expressions are parsed by a small grammar of our own (no `eval`): column names
of the inventory, literals, comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`,
`not in`, and the OPATH spellings `-eq -ne -lt -le -gt -ge -like -notlike -in
-notin -contains`), `and` / `or` / `not` (also `-and -or -not`), parentheses, and
`$true $false $null`. String comparisons are case-insensitive, as in Exchange.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd

from ..csvio import read_csv
from ..model import FLIP_TYPES, MAILBOX_TYPES
from ..values import as_bool, true_mask
from .planfile import EXCLUDED, TYPE_NOT_SELECTED

#: CSV columns tried, in order, when --identity-column is not given.
IDENTITY_COLUMNS: Final[tuple[str, ...]] = (
    "Identity",
    "ExternalDirectoryObjectId",
    "UserPrincipalName",
    "PrimarySmtpAddress",
    "EmailAddress",
    "Mail",
    "Alias",
)
#: Inventory columns an identity is matched against (EmailAddresses: each proxy).
_MATCH_COLUMNS: Final = ("Guid", "ExchangeGuid", "UserPrincipalName", "PrimarySmtpAddress", "Alias",
                         # object kinds (groups, contacts, users through Graph; ProxyAddresses: each proxy)
                         "Mail", "MailNickname", "OnPremisesSamAccountName")

Problem = Literal["unmatched", "ambiguous", "duplicate", "empty", "bad_row"]


class SelectionError(Exception):
    """The selection input cannot be used at all; `str(exc)` is one line saying what to do."""


class FilterError(SelectionError):
    """A filter expression does not parse or names an unknown column."""


@dataclass(frozen=True)
class InputIssue:
    """One line of an input file that selects nothing: why, and the candidates if ambiguous."""

    line: int
    value: str
    problem: Problem
    source: str = "input"
    candidates: tuple[str, ...] = ()

    def message(self) -> str:
        """One line for the user."""
        where = f"{self.source} line {self.line}" if self.line else self.source
        value = _printable(self.value)
        if self.problem == "unmatched":
            return f"{where}: {value!r} matches no mailbox"
        if self.problem == "ambiguous":
            return f"{where}: {value!r} matches {len(self.candidates)} objects ({', '.join(self.candidates[:5])}); use the ExternalDirectoryObjectId"
        if self.problem == "duplicate":
            return f"{where}: {value!r} names a mailbox already selected on an earlier line"
        if self.problem == "empty":
            return f"{where}: empty identity"
        return f"{where}: unreadable row ({value})"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the plan's input report."""
        return {
            "line": self.line,
            "value": self.value,
            "problem": self.problem,
            "source": self.source,
            "candidates": list(self.candidates),
            "message": self.message(),
        }


@dataclass
class Selection:
    """Targets in order (ExternalDirectoryObjectId), skips the selection itself decided, input issues."""

    identities: list[str]
    source: dict[str, Any]
    preset_skips: dict[str, tuple[str, str]] = field(default_factory=dict)
    issues: list[InputIssue] = field(default_factory=list)


def _printable(text: str) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 120 else text[:117] + "..."


def _edoi_index(frame: pd.DataFrame) -> pd.Index:
    """The inventory's row keys: ExternalDirectoryObjectId (lower-case), or Guid where there is none."""
    return frame.index


def inventory_by_edoi(frame: pd.DataFrame) -> pd.DataFrame:
    """The inventory frame (already keyed by ExternalDirectoryObjectId, see core.inventory)."""
    return frame


class IdentityIndex:
    """Case-insensitive lookup of any identity form to the ExternalDirectoryObjectIds it names."""

    def __init__(self, frame: pd.DataFrame) -> None:
        edoi = _edoi_index(frame).astype("object")
        keys: dict[str, set[str]] = {}

        def add(values: Iterable[Any], owners: Iterable[Any]) -> None:
            for value, owner in zip(values, owners, strict=True):
                if value is None or owner is None or (isinstance(value, float) and value != value):
                    continue
                key = str(value).strip().lower()
                if key:
                    keys.setdefault(key, set()).add(str(owner))

        add(edoi, edoi)
        for column in ("ExternalDirectoryObjectId", *_MATCH_COLUMNS):
            if column in frame.columns:
                add(frame[column].tolist(), edoi)
        proxy_column = next((c for c in ("EmailAddresses", "ProxyAddresses") if c in frame.columns), None)
        if proxy_column is not None:
            owners: list[Any] = []
            values: list[str] = []
            for owner, proxies in zip(edoi, frame[proxy_column].tolist(), strict=True):
                if proxies is None or isinstance(proxies, float):
                    continue
                if isinstance(proxies, str):
                    proxies = [p for p in re.split(r"[;|\s]+", proxies) if p]
                for proxy in proxies:
                    text = str(proxy)
                    values.append(text)
                    owners.append(owner)
                    prefix, sep, address = text.partition(":")
                    if sep and prefix.lower() == "smtp":
                        values.append(address)
                        owners.append(owner)
            add(values, owners)
        self._keys = {k: tuple(sorted(v)) for k, v in keys.items()}

    def resolve(self, value: str) -> tuple[str, ...]:
        """Every ExternalDirectoryObjectId the value names (0, 1 or more)."""
        key = value.strip().lower()
        if key.startswith("{") and key.endswith("}"):
            key = key[1:-1]
        return self._keys.get(key, ())


def resolve_values(
    index: IdentityIndex, values: Sequence[tuple[int, str]], *, source: str = "input"
) -> tuple[list[str], list[InputIssue]]:
    """Resolve (line, value) pairs: the unique targets in input order, and the issues by line."""
    found: list[str] = []
    seen: set[str] = set()
    issues: list[InputIssue] = []
    for line, raw in values:
        value = (raw or "").strip()
        if not value:
            issues.append(InputIssue(line, "", "empty", source))
            continue
        matches = index.resolve(value)
        if not matches:
            issues.append(InputIssue(line, value, "unmatched", source))
        elif len(matches) > 1:
            issues.append(InputIssue(line, value, "ambiguous", source, matches))
        elif matches[0] in seen:
            issues.append(InputIssue(line, value, "duplicate", source, matches))
        else:
            seen.add(matches[0])
            found.append(matches[0])
    return found, issues


def read_identity_file(
    path: Path | str, identity_column: str | None = None, *, source: str | None = None
) -> tuple[list[tuple[int, str]], list[InputIssue], str]:
    """Identities from a CSV (any Export-Csv format) or a plain one-per-line list.

    Returns ((line, value) pairs, unreadable-row issues, the column used). Without
    `identity_column` the first of IDENTITY_COLUMNS present is used; a file with no
    header is read as a plain list (first column).
    """
    path = Path(path)
    label = source or path.name
    try:
        read = read_csv(path, known_columns=IDENTITY_COLUMNS)
    except FileNotFoundError:
        raise SelectionError(f"{path} does not exist") from None
    except OSError as exc:
        raise SelectionError(f"cannot read {path}: {exc.strerror}") from None
    frame = read.frame
    issues = [InputIssue(b.line, b.reason, "bad_row", label) for b in read.bad_rows]
    if frame.empty and not len(frame.columns):
        return [], issues, ""
    columns = {str(c).lower(): str(c) for c in frame.columns}
    if identity_column is not None:
        column = columns.get(identity_column.lower())
        if column is None:
            raise SelectionError(
                f"{path} has no column {identity_column!r}; its columns are: {', '.join(map(str, frame.columns))}"
            )
    else:
        column = next((columns[c.lower()] for c in IDENTITY_COLUMNS if c.lower() in columns), None)
        if column is None:
            if not frame.attrs.get("csv_format", {}).get("has_header", True):
                column = str(frame.columns[0])
            else:
                raise SelectionError(
                    f"{path} has none of the identity columns {', '.join(IDENTITY_COLUMNS)}; "
                    "name one with --identity-column"
                )
    values = [(int(str(line)), "" if v is None or v != v else str(v)) for line, v in frame[column].items()]
    return values, issues, column


# --- sources ---------------------------------------------------------------------------


def select_from_csv(frame: pd.DataFrame, path: Path | str, identity_column: str | None = None) -> Selection:
    """Targets named in a CSV file, resolved against the inventory; issues reported by line."""
    values, issues, column = read_identity_file(path, identity_column)
    found, more = resolve_values(IdentityIndex(frame), values, source=Path(path).name)
    return Selection(
        identities=found,
        source={"kind": "csv", "file": Path(path).name, "column": column, "lines": len(values)},
        issues=issues + more,
    )


def select_where(frame: pd.DataFrame, expression: str) -> Selection:
    """Mailboxes of the inventory for which the filter expression holds."""
    mask = evaluate_filter(frame, expression)
    edoi = _edoi_index(frame)
    return Selection(
        identities=[str(x) for x in edoi[mask.to_numpy(dtype=bool)]],
        source={"kind": "where", "expression": expression},
    )


def select_all_dirsynced(frame: pd.DataFrame) -> Selection:
    """Every dir-synced mailbox of the inventory (mail users and groups are not mailboxes); over a
    group, contact or user inventory, every object synced from AD (onPremisesSyncEnabled true)."""
    if "IsDirSynced" not in frame.columns and "OnPremisesSyncEnabled" in frame.columns:
        objects = frame["OnPremisesSyncEnabled"].map(as_bool) == True  # noqa: E712 - object series
        return Selection(identities=[str(x) for x in frame.index[objects.to_numpy(dtype=bool)]],
                         source={"kind": "all-dirsynced"})
    synced = frame["IsDirSynced"].map(as_bool) == True  # noqa: E712 - object series
    mailbox = frame["RecipientTypeDetails"].isin(sorted(MAILBOX_TYPES | FLIP_TYPES))
    edoi = _edoi_index(frame)
    return Selection(
        identities=[str(x) for x in edoi[(synced & mailbox).to_numpy(dtype=bool)]],
        source={"kind": "all-dirsynced"},
    )


def select_identities(frame: pd.DataFrame, identities: Sequence[str]) -> Selection:
    """Mailboxes picked one by one (ExternalDirectoryObjectIds, in order; each kept once)."""
    picked = list(dict.fromkeys(str(identity) for identity in identities))
    return Selection(identities=picked, source={"kind": "identities", "count": len(picked)})


def apply_exclude(selection: Selection, frame: pd.DataFrame, path: Path | str) -> Selection:
    """Mark targets named in an exclude file as skipped (excluded); unmatched lines are reported."""
    values, issues, _ = read_identity_file(path, source=f"exclude {Path(path).name}")
    label = f"exclude {Path(path).name}"
    found, more = resolve_values(IdentityIndex(frame), values, source=label)
    # a duplicate line in an exclude file harms nothing: do not report it
    selection.issues.extend(issues + [i for i in more if i.problem != "duplicate"])
    excluded = set(found)
    for edoi in selection.identities:
        if edoi in excluded and edoi not in selection.preset_skips:
            selection.preset_skips[edoi] = (EXCLUDED, f"listed in {Path(path).name}")
    selection.source["exclude"] = Path(path).name
    return selection


def parse_types(text: str | Iterable[str]) -> list[str]:
    """`--types` value(s) as RecipientTypeDetails names (checked, case-insensitive)."""
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    known = {t.lower(): t for t in sorted(MAILBOX_TYPES | FLIP_TYPES)}
    out = []
    for item in items:
        if item.lower() not in known:
            raise SelectionError(f"unknown type {item!r} in --types; use one of: {', '.join(sorted(FLIP_TYPES))}")
        out.append(known[item.lower()])
    return out


def apply_types(selection: Selection, frame: pd.DataFrame, types: Sequence[str]) -> Selection:
    """Keep only the given RecipientTypeDetails.

    Targets chosen by a filter or 'all dir-synced' of other types are left out; targets a
    file named explicitly stay in the plan as skipped (type not selected), so every line
    of the file is accounted for.
    """
    if not types:
        return selection
    by_edoi = inventory_by_edoi(frame)
    rtd = by_edoi["RecipientTypeDetails"].reindex(selection.identities)
    wanted = set(types)
    if selection.source.get("kind") == "csv":
        for edoi, kind in rtd.items():
            if kind not in wanted and str(edoi) not in selection.preset_skips:
                selection.preset_skips[str(edoi)] = (TYPE_NOT_SELECTED, f"RecipientTypeDetails is {kind}")
    else:
        selection.identities = [str(e) for e, k in rtd.items() if k in wanted]
    selection.source["types"] = list(types)
    return selection


# --- filter expressions --------------------------------------------------------------

MAX_FILTER_LENGTH: Final = 10_000
MAX_FILTER_DEPTH: Final = 64

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.|"")*"|'(?:[^'\\]|\\.|'')*')
  | (?P<number>-?\d+(?:\.\d+)?(?![\w]))
  | (?P<op>==|!=|<>|<=|>=|<|>|=|\(|\)|\[|\]|,|&&|\|\||!)
  | (?P<dashword>-[A-Za-z]+)
  | (?P<variable>\$[A-Za-z_]+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)

_COMPARE: Final = {
    "==": "eq", "=": "eq", "-eq": "eq", "-ieq": "eq",
    "!=": "ne", "<>": "ne", "-ne": "ne", "-ine": "ne",
    "<": "lt", "-lt": "lt", "<=": "le", "-le": "le",
    ">": "gt", "-gt": "gt", ">=": "ge", "-ge": "ge",
    "-like": "like", "-ilike": "like", "-notlike": "notlike", "-inotlike": "notlike",
    "-in": "in", "in": "in", "-notin": "notin", "-contains": "contains", "-notcontains": "notcontains",
}
_LITERAL_WORDS: Final[dict[str, Any]] = {
    "true": True, "false": False, "none": None, "null": None,
    "$true": True, "$false": False, "$null": None,
}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int

    @property
    def shown(self) -> str:
        """The token as an error message quotes it (long tokens cut, so the message stays one short line)."""
        return repr(self.text if len(self.text) <= 60 else self.text[:57] + "...")


def _tokenise(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise FilterError(f"filter: unexpected character {text[pos]!r} at position {pos + 1}")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, m.group(), pos + 1))
        pos = m.end()
    return tokens


@dataclass(frozen=True)
class _Node:
    op: str
    args: tuple[Any, ...]


class _Parser:
    def __init__(self, text: str, columns: Sequence[str]) -> None:
        self.text = text
        self.tokens = _tokenise(text)
        self.i = 0
        self.columns = {c.lower(): c for c in columns}
        self.depth = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def word(self) -> str:
        tok = self.peek()
        return tok.text.lower() if tok else ""

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise FilterError("filter: the expression ends too early")
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text:
            raise FilterError(f"filter: expected {text!r} at position {tok.pos}, found {tok.shown}")

    def parse(self) -> _Node:
        if not self.tokens:
            raise FilterError("filter: the expression is empty")
        node = self.parse_or()
        tok = self.peek()
        if tok is not None:
            raise FilterError(f"filter: unexpected {tok.shown} at position {tok.pos}")
        return node

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise FilterError(f"filter: nested more than {MAX_FILTER_DEPTH} levels deep")

    def parse_or(self) -> _Node:
        self.nest()
        node = self.parse_and()
        while self.word() in ("or", "-or", "||"):
            self.take()
            node = _Node("or", (node, self.parse_and()))
        self.depth -= 1
        return node

    def parse_and(self) -> _Node:
        node = self.parse_not()
        while self.word() in ("and", "-and", "&&"):
            self.take()
            node = _Node("and", (node, self.parse_not()))
        return node

    def parse_not(self) -> _Node:
        if self.word() in ("not", "-not", "!"):
            self.take()
            self.nest()
            inner = self.parse_not()
            self.depth -= 1
            return _Node("not", (inner,))
        return self.parse_compare()

    def parse_compare(self) -> _Node:
        left = self.parse_operand()
        word = self.word()
        if word == "not" and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1].text.lower() == "in":
            self.take()
            self.take()
            return _Node("notin", (left, self.parse_operand()))
        tok = self.peek()
        if tok is not None and (tok.text in _COMPARE or word in _COMPARE):
            op = _COMPARE.get(tok.text, _COMPARE.get(word, ""))
            self.take()
            return _Node(op, (left, self.parse_operand()))
        if tok is not None and tok.kind == "dashword" and word not in ("-and", "-or", "-not"):
            raise FilterError(f"filter: unknown operator {tok.shown} at position {tok.pos}")
        return _Node("truthy", (left,))

    def parse_operand(self) -> _Node:
        tok = self.take()
        if tok.text == "(":
            self.nest()
            node = self.parse_or()
            if self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                first: _Node = node.args[0] if node.op == "truthy" else node
                elements = [first]
                while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                    self.take()
                    elements.append(self.parse_operand())
                self.expect(")")
                self.depth -= 1
                return _Node("list", tuple(elements))
            self.expect(")")
            self.depth -= 1
            return node
        if tok.text == "[":
            items: list[_Node] = []
            if self.peek() is not None and self.peek().text != "]":  # type: ignore[union-attr]
                items.append(self.parse_operand())
                while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                    self.take()
                    items.append(self.parse_operand())
            self.expect("]")
            return _Node("list", tuple(items))
        if tok.kind == "string":
            quote = tok.text[0]
            body = tok.text[1:-1].replace(quote * 2, quote)
            body = re.sub(r"\\(.)", r"\1", body)
            return _Node("lit", (body,))
        if tok.kind == "number":
            return _Node("lit", (float(tok.text) if "." in tok.text else int(tok.text),))
        lowered = tok.text.lower()
        if lowered in _LITERAL_WORDS and (tok.kind in ("variable", "name")):
            return _Node("lit", (_LITERAL_WORDS[lowered],))
        if tok.kind == "name":
            column = self.columns.get(lowered)
            if column is None:
                close = difflib.get_close_matches(tok.text, list(self.columns.values()), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise FilterError(f"filter: unknown column {tok.shown} at position {tok.pos}{hint}")
            return _Node("col", (column,))
        raise FilterError(f"filter: unexpected {tok.shown} at position {tok.pos}")


def parse_filter(expression: str, columns: Sequence[str]) -> _Node:
    """Parse a filter expression against the given column names (raises FilterError)."""
    if len(expression) > MAX_FILTER_LENGTH:
        raise FilterError(f"filter: longer than {MAX_FILTER_LENGTH} characters")
    return _Parser(expression, columns).parse()


def evaluate_filter(frame: pd.DataFrame, expression: str) -> pd.Series:
    """Boolean mask of the frame's rows for which `expression` holds."""
    columns = list(map(str, frame.columns))
    if frame.index.name and frame.index.name not in columns:
        columns.append(str(frame.index.name))
    node = parse_filter(expression, columns)
    result = _Evaluator(frame).eval(node)
    if not isinstance(result, pd.Series):
        return pd.Series([bool(result)] * len(frame), index=frame.index, dtype=bool)
    return true_mask(result)


def _fold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _like_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if ch == "*" else re.escape(ch) for ch in pattern), re.IGNORECASE | re.DOTALL)


class _Evaluator:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def column(self, name: str) -> pd.Series:
        if name in self.frame.columns:
            return self.frame[name].astype("object")
        return pd.Series(self.frame.index, index=self.frame.index, dtype="object")

    def eval(self, node: _Node) -> Any:
        op, args = node.op, node.args
        if op == "lit":
            return args[0]
        if op == "col":
            return self.column(args[0])
        if op == "list":
            return [self.scalar(self.eval(a)) for a in args]
        if op == "and":
            return true_mask(self.as_series(self.eval(args[0]))) & true_mask(self.as_series(self.eval(args[1])))
        if op == "or":
            return true_mask(self.as_series(self.eval(args[0]))) | true_mask(self.as_series(self.eval(args[1])))
        if op == "not":
            return ~true_mask(self.as_series(self.eval(args[0])))
        if op == "truthy":
            return true_mask(self.as_series(self.eval(args[0])))
        left, right = self.eval(args[0]), self.eval(args[1])
        return self.compare(op, left, right)

    def scalar(self, value: Any) -> Any:
        if isinstance(value, pd.Series):
            raise FilterError("filter: a list may hold only literal values")
        return value

    def as_series(self, value: Any) -> pd.Series:
        if isinstance(value, pd.Series):
            return value
        return pd.Series([value] * len(self.frame), index=self.frame.index, dtype="object")

    def compare(self, op: str, left: Any, right: Any) -> pd.Series:
        if not isinstance(left, pd.Series) and isinstance(right, pd.Series):
            flipped = {"lt": "gt", "gt": "lt", "le": "ge", "ge": "le"}.get(op, op)
            if op in ("eq", "ne", "lt", "gt", "le", "ge"):
                left, right, op = right, left, flipped
        series = self.as_series(left)
        if isinstance(right, pd.Series):
            pairs = zip(series.tolist(), right.tolist(), strict=True)
            return pd.Series([_cmp(op, a, b) for a, b in pairs], index=series.index, dtype=bool)
        if op in ("like", "notlike"):
            regex = _like_regex(str(right))
            matched = series.map(lambda v: _any(v, lambda x: regex.fullmatch(str(x)) is not None))
            return matched.astype(bool) if op == "like" else ~matched.astype(bool)
        return series.map(lambda v: _cmp(op, v, right)).astype(bool)


def _any(value: Any, test: Any) -> bool:
    if isinstance(value, list | tuple | set | frozenset) or hasattr(value, "tolist") and not isinstance(value, str):
        items = value.tolist() if hasattr(value, "tolist") else list(value)
        return any(test(x) for x in items if x is not None)
    if value is None or (isinstance(value, float) and value != value):
        return False
    return bool(test(value))


def _norm_scalar(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item") and not isinstance(value, str | list | tuple):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    return value


def _cmp(op: str, left: Any, right: Any) -> bool:
    """Compare one cell with a literal (Exchange-style: case-insensitive, lists match any item)."""
    left = _norm_scalar(left) if not isinstance(left, list | tuple) else left
    if op in ("in", "notin"):
        items = right if isinstance(right, list | tuple) else [right]
        hit = _any(left, lambda x: any(_eq(x, r) for r in items)) if left is not None else None in items
        return hit if op == "in" else not hit
    if op in ("contains", "notcontains"):
        hit = _any(left, lambda x: _eq(x, right))
        return hit if op == "contains" else not hit
    if op == "like":
        return _any(left, lambda x: _like_regex(str(right)).fullmatch(str(x)) is not None)
    if op == "notlike":
        return not _any(left, lambda x: _like_regex(str(right)).fullmatch(str(x)) is not None)
    if op == "eq":
        return _eq_cell(left, right)
    if op == "ne":
        return not _eq_cell(left, right)
    if left is None or right is None:
        return False
    a, b = _coerce_pair(left, right)
    if a is _INCOMPARABLE:
        return False
    try:
        if op == "lt":
            return bool(a < b)
        if op == "le":
            return bool(a <= b)
        if op == "gt":
            return bool(a > b)
        if op == "ge":
            return bool(a >= b)
    except TypeError:
        return False
    raise FilterError(f"filter: unknown operator {op}")


def _eq_cell(left: Any, right: Any) -> bool:
    if isinstance(left, list | tuple):
        if right is None:
            return len(left) == 0
        return any(_eq(x, right) for x in left)
    return _eq(left, right)


def _eq(left: Any, right: Any) -> bool:
    left, right = _norm_scalar(left), _norm_scalar(right)
    if left is None or right is None:
        return left is None and (right is None or right == "")
    if isinstance(right, bool) or isinstance(left, bool):
        lb, rb = as_bool(left), as_bool(right)
        return lb is not None and lb == rb
    a, b = _coerce_pair(left, right)
    return a is not _INCOMPARABLE and bool(_fold(a) == _fold(b))


_INCOMPARABLE: Final = object()


def _coerce_pair(left: Any, right: Any) -> tuple[Any, Any]:
    """Bring a cell and a literal to comparable types (numbers, timestamps, text)."""
    if isinstance(left, int | float) and isinstance(right, str):
        try:
            return left, float(right)
        except ValueError:
            return _INCOMPARABLE, right
    if isinstance(right, int | float) and isinstance(left, str):
        try:
            return float(left), right
        except ValueError:
            return _INCOMPARABLE, right
    if isinstance(left, pd.Timestamp | _dt_type()) and isinstance(right, str):
        try:
            stamp = pd.Timestamp(right)
            if stamp.tzinfo is None:
                stamp = stamp.tz_localize("UTC")
            lt = pd.Timestamp(str(left)) if not isinstance(left, pd.Timestamp) else left
            if lt.tzinfo is None:
                lt = lt.tz_localize("UTC")
            return lt, stamp
        except ValueError:
            return str(left), right
    if isinstance(left, str) and isinstance(right, str):
        return left.lower(), right.lower()
    return left, right


def _dt_type() -> type:
    from datetime import datetime

    return datetime

