"""The partition plan of a parallel read: disjoint server-side filters whose union is the whole set.

A read cmdlet (Get-Mailbox, Get-User) is split by the first hex digit(s) of a stable property
(ExternalDirectoryObjectId, a lower-case GUID) into `-like 'x*'` partitions, plus one
*complement* partition `-not ((P -like '0*') -or ... -or (P -like 'f*'))` that catches
everything else (empty ids, upper-case ids on a case-sensitive server, anything odd). The union
is therefore complete by construction, whatever the data looks like; disjointness is checked
by key, because it rests on the service evaluating the filters consistently: each slice's keys
are checked to start as its filter demands and hashed as it ends (`fetch.slice_keys`), else all
the read's keys at once after its last page (`fetch.duplicate_keys`).

Every filter is built from constants here (hex digits and a property name), never from user
text, so nothing can be injected into the OPATH string. A base filter (e.g.
`IsDirSynced -eq $true`) is ANDed into every partition.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

#: The property partitions split on: Entra's immutable object id, a GUID string.
PARTITION_PROPERTY: Final = "ExternalDirectoryObjectId"
HEX_DIGITS: Final = "0123456789abcdef"
#: Name of the complement partition.
REST: Final = "rest"
#: Allowed partition counts: one stream, one hex digit, two hex digits.
PARTITION_COUNTS: Final = (1, 16, 256)
#: The second split, for when the first degenerates (a service that matches `*` on
#: ExternalDirectoryObjectId literally puts every record in the complement) or is refused:
#: the leading characters of UserPrincipalName, a text property Microsoft's filterable-properties
#: page lists for Get-Mailbox and Get-User alike, where `-like 'x*'` is the documented use of
#: wildcards on text (docs/exchange-facts.md#wildcards-on-externaldirectoryobjectid).
#: Letters and digits; the complement takes the rest.
NAME_PROPERTY: Final = "UserPrincipalName"
NAME_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
#: A first character holding more than this share of the sample is split again by its second character
#: (few, balanced slices: each slice costs a query, and the biggest one sets the tail).
SPLIT_SHARE: Final = 0.08
#: A second character needs at least this share of the sample to get a unit of its own.
MIN_SUB_SHARE: Final = 0.01
#: Slices of an adaptive split: units packed to similar sizes (a few per concurrent request of a
#: tenant limited to ~10: each slice costs a query, the biggest one sets the tail).
SLICES: Final = 16


@dataclass(frozen=True)
class Partition:
    """One slice of the read: a name ("0".."f", "00".."ff", "rest" or "all") and its full OPATH filter.

    `filter` is None when the slice has no filter at all (a single unfiltered stream).
    """

    name: str
    filter: str | None


@dataclass(frozen=True)
class PartitionPlan:
    """The slices of one read, complete by construction (prefix slices + complement)."""

    base_filter: str | None
    partitions: tuple[Partition, ...]
    prop: str = PARTITION_PROPERTY

    @property
    def is_single(self) -> bool:
        """True when the plan is one paged stream (no partitioning)."""
        return len(self.partitions) == 1

    @property
    def prefix_count(self) -> int:
        """How many prefix slices (the complement not counted)."""
        return sum(1 for p in self.partitions if p.name not in (REST, "all"))


def and_filters(*filters: str | None) -> str | None:
    """AND together the given OPATH filters (None entries skipped); None when there is none."""
    parts = [f for f in filters if f]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " -and ".join(f"({f})" for f in parts)


def _like(prop: str, prefix: str) -> str:
    return f"{prop} -like '{prefix}*'"


def complement_filter(prop: str = PARTITION_PROPERTY, alphabet: str = HEX_DIGITS) -> str:
    """The filter of everything whose `prop` starts with no character of `alphabet` (incl. empty or missing)."""
    ors = " -or ".join(f"({_like(prop, d)})" for d in alphabet)
    return f"-not ({ors})"


def _none_of(prop: str, prefixes: list[str]) -> str:
    ors = " -or ".join(f"({_like(prop, p)})" for p in prefixes)
    return f"-not ({ors})"


def _balanced(units: list[tuple[str, str, float]], bins: int) -> list[tuple[str, str]]:
    """Pack disjoint units into at most `bins` slices of similar share (largest first, each to the
    lightest slice): (name, OPATH filter) per slice, a slice of several units being their -or."""
    loads: list[tuple[float, list[tuple[str, str]]]] = [(0.0, []) for _ in range(min(bins, len(units)))]
    for name, filt, share in sorted(units, key=lambda u: -u[2]):
        lightest = min(range(len(loads)), key=lambda i: loads[i][0])
        load, members = loads[lightest]
        loads[lightest] = (load + share, [*members, (name, filt)])
    out = []
    for _, members in loads:
        if len(members) == 1:
            out.append(members[0])
        else:
            out.append(("+".join(n for n, _ in members), " -or ".join(f"({f})" for _, f in members)))
    return out


def plan_by_first_character(base_filter: str | None = None, *, prop: str = NAME_PROPERTY,
                            alphabet: str = NAME_ALPHABET, sample: Sequence[str] | None = None) -> PartitionPlan:
    """Slices by the leading characters of `prop`, plus the complement: complete by construction.

    Without a sample: one slice per character of `alphabet`. With a `sample` of values (the records
    already read), the split adapts: only characters seen make units (the complement takes the
    others), a character holding more than SPLIT_SHARE of the sample is split again by its second
    character (those seen, each a unit; a `c-rest` unit takes the rest of `c`), and the units are
    packed into at most SLICES slices of similar share.
    Prefixes come only from `alphabet` (constants): nothing from the data reaches the filter text
    but characters of `alphabet`.
    """
    if not sample:
        slices = [Partition(c, and_filters(_like(prop, c), base_filter)) for c in alphabet]
        slices.append(Partition(REST, and_filters(base_filter, complement_filter(prop, alphabet))))
        return PartitionPlan(base_filter=base_filter, partitions=tuple(slices), prop=prop)
    values = [v.lower() for v in sample if v]
    total = max(1, len(values))
    firsts = Counter(v[0] for v in values if v[0] in alphabet)
    seconds = Counter(v[:2] for v in values if len(v) > 1 and v[0] in alphabet and v[1] in alphabet)
    units: list[tuple[str, str, float]] = []  # (name, filter, share of the sample): disjoint by construction
    tops = [c for c in alphabet if firsts[c]]
    for c in tops:
        subs = [c + d for d in alphabet if firsts[c] / total > SPLIT_SHARE and seconds[c + d] / total >= MIN_SUB_SHARE]
        if len(subs) < 2:
            units.append((c, _like(prop, c), firsts[c] / total))
            continue
        units.extend((p, _like(prop, p), seconds[p] / total) for p in subs)
        rest_share = (firsts[c] - sum(seconds[p] for p in subs)) / total
        units.append((f"{c}-rest", f"({_like(prop, c)}) -and ({_none_of(prop, subs)})", rest_share))
    slices = [Partition(name, and_filters(filt, base_filter)) for name, filt in _balanced(units, SLICES)]
    slices.append(Partition(REST, and_filters(base_filter, _none_of(prop, tops or list(alphabet)))))
    return PartitionPlan(base_filter=base_filter, partitions=tuple(slices), prop=prop)


def single_stream(base_filter: str | None = None) -> PartitionPlan:
    """The fallback plan: one paged stream with only the base filter."""
    return PartitionPlan(base_filter=base_filter, partitions=(Partition("all", base_filter),))


def plan_partitions(
    base_filter: str | None = None, *, partitions: int = 16, prop: str = PARTITION_PROPERTY
) -> PartitionPlan:
    """Split a read into `partitions` prefix slices of `prop` plus the complement.

    `partitions` is 1 (one stream), 16 (first hex digit) or 256 (first two hex digits).
    The complement is listed last (see below).
    """
    if partitions not in PARTITION_COUNTS:
        raise ValueError(f"partitions must be one of {PARTITION_COUNTS}, not {partitions}")
    if partitions == 1:
        return single_stream(base_filter)
    if partitions == 16:
        prefixes = list(HEX_DIGITS)
    else:
        prefixes = [a + b for a in HEX_DIGITS for b in HEX_DIGITS]
    # Cheap, selective test first (an evaluator that short-circuits scans the rest on 1/16 of the
    # objects): the prefix before the base filter, the base filter before the 16-way complement.
    # The complement goes last: usually nearly empty, but the costliest for the service to
    # evaluate, so it is best run while the other slices are already paging.
    slices = [Partition(p, and_filters(_like(prop, p), base_filter)) for p in prefixes]
    slices.append(Partition(REST, and_filters(base_filter, complement_filter(prop))))
    return PartitionPlan(base_filter=base_filter, partitions=tuple(slices), prop=prop)
