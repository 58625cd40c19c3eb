"""Identity resolution the way Exchange does it: one string, many attributes, 0/1/many matches.

Exchange resolves `-Identity` by searching the string against every identity attribute of
the objects in the cmdlet's scope (Name, Alias, DistinguishedName, Guid,
ExternalDirectoryObjectId, ExchangeGuid, UserPrincipalName, PrimarySmtpAddress, any proxy
address with or without its prefix, LegacyExchangeDN), case-insensitively; no match raises
ManagementObjectNotFoundException, more than one ManagementObjectAmbiguousException
(Microsoft Learn, "Identity" parameter of Get-Mailbox / Get-User; the sandbox keeps one
index per side and filters the candidates by the cmdlet's recipient scope).
"""
from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)

#: Proxy-address prefixes Exchange knows (Microsoft Learn, "Email addresses" / ProxyAddress).
PROXY_PREFIXES = ("smtp", "x500", "x400", "sip", "spo", "eum", "fax", "notes", "gwise")


def normalize_guid(text: str) -> str | None:
    """Lower-case canonical GUID text, or None when `text` is not a GUID (braces allowed)."""
    s = text.strip()
    if len(s) < 32 or len(s) > 38:
        return None
    try:
        return str(uuid.UUID(s))
    except ValueError:
        return None


def proxy_keys(address: str) -> tuple[str, ...]:
    """Keys for one proxy address: the full 'prefix:value' and the bare value (lower-case); the index uses the last."""
    low = address.lower()
    prefix, sep, rest = low.partition(":")
    if sep and prefix in PROXY_PREFIXES:
        return (low, rest)
    return (low,)


def proxy_query(identity: str) -> str | None:
    """The lower-case 'prefix:value' when `identity` is a prefixed proxy address, else None."""
    low = identity.strip().lower()
    prefix, sep, _ = low.partition(":")
    return low if sep and prefix in PROXY_PREFIXES else None


def matches_proxy(query: str, proxies: Iterable[str], legacy_dn: str | None) -> bool:
    """Whether a prefixed proxy query (from proxy_query) is one of `proxies` (X500 also matches the LegacyExchangeDN)."""
    if any(p.lower() == query for p in proxies):
        return True
    return query.startswith("x500:") and legacy_dn is not None and legacy_dn.lower() == query[5:]


def lookup_keys(identity: str) -> tuple[str, ...]:
    """Keys to look an identity string up under (lower-case; GUIDs canonicalised; proxy prefix stripped).

    The index holds bare proxy values only; callers check the prefix with matches_proxy().
    """
    s = identity.strip()
    low = s.lower()
    pq = proxy_query(s)
    keys = [pq.partition(":")[2]] if pq else [low]
    g = normalize_guid(s)
    if g is not None and g != low:
        keys.append(g)
    return tuple(keys)


class IdentityIndex(Generic[T]):
    """A multi-map from lower-case identity keys to objects; kept current by the writers."""

    __slots__ = ("_map",)

    def __init__(self) -> None:
        self._map: dict[str, T | set[T]] = {}

    def add(self, obj: T, keys: Iterable[str | None]) -> None:
        """Index `obj` under each non-empty key."""
        m = self._map
        for k in keys:
            if not k:
                continue
            cur = m.get(k)
            if cur is None:
                m[k] = obj
            elif isinstance(cur, set):
                cur.add(obj)
            elif cur is not obj:
                m[k] = {cur, obj}

    def remove(self, obj: T, keys: Iterable[str | None]) -> None:
        """Remove `obj` from each key (no error when absent)."""
        m = self._map
        for k in keys:
            if not k:
                continue
            cur = m.get(k)
            if cur is None:
                continue
            if isinstance(cur, set):
                cur.discard(obj)
                if len(cur) == 1:
                    m[k] = next(iter(cur))
                elif not cur:
                    del m[k]
            elif cur is obj:
                del m[k]

    def find(self, identity: str) -> list[T]:
        """Every object indexed under any key form of `identity` (deduplicated, stable order)."""
        out: list[T] = []
        seen: set[int] = set()
        for k in lookup_keys(identity):
            cur = self._map.get(k)
            if cur is None:
                continue
            items = cur if isinstance(cur, set) else (cur,)
            for o in items:
                if id(o) not in seen:
                    seen.add(id(o))
                    out.append(o)
        return out
