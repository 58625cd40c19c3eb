"""OData query options of Graph directory collections: $filter (a subset), $select, $top,
$count and the advanced-query rules (issue 15).

Facts (Microsoft Graph docs "Advanced query capabilities on Microsoft Entra ID objects",
`concepts/aad-advanced-queries.md` and `includes/filter-directory-objects.md` in
microsoftgraph/microsoft-graph-docs-contrib; docs/exchange-facts.md):
- Advanced query parameters are the `ConsistencyLevel: eventual` header AND `$count=true`.
- `$filter=onPremisesSyncEnabled eq true` works by default (eq, in); `ne` and `not` need the
  advanced query parameters, else 400 Request_UnsupportedQuery "Operator 'ne' is not supported
  because the required parameters might be missing. ...".
- `onPremisesSyncEnabled eq null` is refused with 400 Request_UnsupportedQuery "Unsupported or
  invalid query filter clause specified for property 'onPremisesSyncEnabled' of resource
  'Group'." even with the advanced parameters (microsoft-graph-docs issues #2680, #1170).
- `$count=true` without `ConsistencyLevel: eventual` is silently ignored (no @odata.count);
  `/groups/$count` without it is 400 Request_BadRequest "$count is not currently supported.".
- `$top` on directory objects is 1..999 (default page 100); outside it 400
  Request_UnsupportedQuery "Invalid page size specified: 'N'. Must be between 1 and 999
  inclusive." (wording as Graph answers it; not on the docs page).
- `$select` names are matched case-insensitively; `@odata.type` of directoryObject members stays.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from exocm.sandbox.errors import CmdletError

MAX_TOP = 999
DEFAULT_TOP = 100
ADVANCED_HINT = ("because the required parameters might be missing. Try adding $count=true query parameter "
                 "and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries "
                 "for more information")

Getter = Callable[[Any], Any]

#: Filterable scalar properties per collection: getter from the sandbox object.
_GROUP: dict[str, Getter] = {
    "id": lambda o: o.id,
    "displayName": lambda o: o.display_name,
    "mail": lambda o: o.mail,
    "mailNickname": lambda o: o.mail_nickname,
    "mailEnabled": lambda o: o.mail_enabled,
    "securityEnabled": lambda o: o.security_enabled,
    "onPremisesSyncEnabled": lambda o: True if o.sync_enabled else None,
}
_CONTACT: dict[str, Getter] = {
    "id": lambda o: o.id,
    "displayName": lambda o: o.display_name,
    "mail": lambda o: o.mail,
    "mailNickname": lambda o: o.mail_nickname,
    "onPremisesSyncEnabled": lambda o: True if o.sync_enabled else None,
}
_USER: dict[str, Getter] = {
    "id": lambda o: o.id,
    "displayName": lambda o: o.display_name,
    "userPrincipalName": lambda o: o.upn,
    "accountEnabled": lambda o: o.account_enabled,
    "department": lambda o: o.department or None,
    "onPremisesSyncEnabled": lambda o: True if o.sync_enabled else None,
}
SCALARS = {"groups": _GROUP, "contacts": _CONTACT, "users": _USER}
#: Collection-valued properties usable with any(): getter returning a list of strings.
COLLECTIONS: dict[str, dict[str, Getter]] = {
    "groups": {"groupTypes": lambda o: o.group_types, "proxyAddresses": lambda o: o.proxies},
    "contacts": {"proxyAddresses": lambda o: o.proxies},
    "users": {},
}
#: Properties whose null comparison Graph refuses (issues #2680, #1170 in microsoft-graph-docs).
_NO_NULL = {"onPremisesSyncEnabled"}

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),:])|(?P<word>[A-Za-z0-9_@./$+-]+))")


def bad_request(code: str, message: str) -> CmdletError:
    """A Graph 400 with `code` (rendered by graph.py as {"error": {"code", "message"}})."""
    return CmdletError(code, "InvalidArgument", message, http_status=400)


def unsupported_property(prop: str, resource: str) -> CmdletError:
    """Graph's 400 for a property/operator the service cannot filter on."""
    return bad_request("Request_UnsupportedQuery",
                       f"Unsupported or invalid query filter clause specified for property '{prop}' "
                       f"of resource '{resource}'.")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise bad_request("Request_BadRequest", "Invalid filter clause")
        out.append(m.group(m.lastgroup or "word"))
        pos = m.end()
    return out


def _literal(tok: str) -> Any:
    if tok.startswith("'"):
        return tok[1:-1].replace("''", "'")
    low = tok.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low == "null":
        return None
    return tok  # guids and numbers compare as text


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b)


class FilterParser:
    """Parse a $filter subset into a predicate: `p eq|ne v`, `p in (v, ...)`,
    `coll/any(x:x eq v)`, `startswith(p, 'v')`, `not ...`, joined by `and` / `or` (left to right)."""

    def __init__(self, collection: str, resource: str, advanced: bool) -> None:
        self.scalars = SCALARS[collection]
        self.colls = COLLECTIONS[collection]
        self.resource = resource
        self.advanced = advanced
        self.toks: list[str] = []
        self.i = 0

    def parse(self, text: str) -> Callable[[Any], bool]:
        """The predicate for `text`; raises CmdletError (400) as Graph would."""
        self.toks = _tokens(text)
        self.i = 0
        pred = self._expr()
        if self.i != len(self.toks):
            raise bad_request("Request_BadRequest", "Invalid filter clause")
        return pred

    def _peek(self) -> str:
        return self.toks[self.i] if self.i < len(self.toks) else ""

    def _take(self) -> str:
        if self.i >= len(self.toks):
            raise bad_request("Request_BadRequest", "Invalid filter clause")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def _need_advanced(self, operator: str) -> None:
        if not self.advanced:
            raise bad_request("Request_UnsupportedQuery", f"Operator '{operator}' is not supported {ADVANCED_HINT}")

    def _expr(self) -> Callable[[Any], bool]:
        pred = self._term()
        while self._peek().lower() in ("and", "or"):
            op = self._take().lower()
            right = self._term()
            left = pred
            if op == "and":
                pred = (lambda lft, rgt: lambda o: lft(o) and rgt(o))(left, right)
            else:
                pred = (lambda lft, rgt: lambda o: lft(o) or rgt(o))(left, right)
        return pred

    def _term(self) -> Callable[[Any], bool]:
        tok = self._take()
        if tok.lower() == "not":
            self._need_advanced("not")
            inner = self._term()
            return lambda o: not inner(o)
        if tok == "(":
            inner = self._expr()
            if self._take() != ")":
                raise bad_request("Request_BadRequest", "Invalid filter clause")
            return inner
        if "/" in tok:
            return self._any(tok)
        if tok.lower() == "startswith":
            return self._startswith()
        prop = next((p for p in self.scalars if p.lower() == tok.lower()), None)
        if prop is None:
            raise unsupported_property(tok, self.resource)
        get = self.scalars[prop]
        op = self._take().lower()
        if op == "in":
            if self._take() != "(":
                raise bad_request("Request_BadRequest", "Invalid filter clause")
            values: list[Any] = []
            while True:
                values.append(_literal(self._take()))
                sep = self._take()
                if sep == ")":
                    break
                if sep != ",":
                    raise bad_request("Request_BadRequest", "Invalid filter clause")
            if prop in _NO_NULL and None in values:
                raise unsupported_property(prop, self.resource)
            return lambda o: any(_eq(get(o), v) for v in values)
        if op not in ("eq", "ne"):
            raise unsupported_property(prop, self.resource)
        value = _literal(self._take())
        if prop in _NO_NULL and value is None:
            raise unsupported_property(prop, self.resource)
        if op == "ne":
            self._need_advanced("ne")
            return lambda o: not _eq(get(o), value)
        return lambda o: _eq(get(o), value)

    def _startswith(self) -> Callable[[Any], bool]:
        """`startswith(prop, 'text')` on a string property: case-insensitive (Graph docs, $filter
        "startsWith" on directory objects, e.g. userPrincipalName)."""
        if self._take() != "(":
            raise bad_request("Request_BadRequest", "Invalid filter clause")
        name = self._take()
        prop = next((p for p in self.scalars if p.lower() == name.lower()), None)
        if prop is None:
            raise unsupported_property(name, self.resource)
        if self._take() != ",":
            raise bad_request("Request_BadRequest", "Invalid filter clause")
        value = _literal(self._take())
        if self._take() != ")" or not isinstance(value, str):
            raise bad_request("Request_BadRequest", "Invalid filter clause")
        get, prefix = self.scalars[prop], value.lower()
        return lambda o: isinstance(get(o), str) and get(o).lower().startswith(prefix)

    def _any(self, tok: str) -> Callable[[Any], bool]:
        name, _, fn = tok.partition("/")
        prop = next((p for p in self.colls if p.lower() == name.lower()), None)
        if prop is None or fn.lower() != "any":
            raise unsupported_property(name, self.resource)
        get = self.colls[prop]
        if self._take() != "(":
            raise bad_request("Request_BadRequest", "Invalid filter clause")
        var = self._take()
        if self._take() != ":" or self._take() != var:
            raise bad_request("Request_BadRequest", "Invalid filter clause")
        op = self._take().lower()
        value = _literal(self._take())
        if self._take() != ")" or op != "eq":
            raise unsupported_property(prop, self.resource)
        return lambda o: any(_eq(x, value) for x in get(o))


def page_size(query: dict[str, str]) -> int:
    """$top checked against Graph's 1..999 for directory objects (default 100)."""
    raw = query.get("$top")
    if raw is None:
        return DEFAULT_TOP
    try:
        top = int(raw)
    except ValueError:
        top = -1
    if not 1 <= top <= MAX_TOP:
        raise bad_request("Request_UnsupportedQuery",
                          f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_TOP} inclusive.")
    return top


def select_names(query: dict[str, str]) -> list[str]:
    """The $select property names (empty: every property)."""
    return [n.strip() for n in (query.get("$select") or "").split(",") if n.strip()]


def is_advanced(query: dict[str, str], consistency: str) -> bool:
    """Both advanced query parameters present: ConsistencyLevel eventual and $count=true."""
    return consistency.strip().lower() == "eventual" and query.get("$count", "").lower() == "true"


def project(record: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    """A record reduced to the $select names (case-insensitive); @odata.type stays."""
    return {k: v for k, v in record.items() if k.lower() in wanted or k == "@odata.type"}
