"""Join on-prem recipients to EXO recipients: who is the same person on both sides.

Keys, strongest first (docs/exchange-facts.md#identities, issue 4): ``ExternalDirectoryObjectId`` where the
on-prem row has one (then it alone decides), else ``UserPrincipalName``, else addresses
(on-prem primary SMTP, proxy addresses and LegacyExchangeDN as X500 against the same on the EXO
side). All comparisons are case-insensitive. An address held by two people on either side
proves nothing about either of them: it never makes a match on its own, and a row whose only
links are such addresses (or whose addresses point at two EXO recipients) is reported as
ambiguous instead of guessed. Two on-prem rows claiming one EXO recipient keep the match only
for the row with the strictly strongest key; the others are ambiguous too.

Everything here is vectorised (hash lookups on positions, explode, merge, groupby); rows are
carried as integer positions and turned into labels only at the end.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["JOIN_KEYS", "OnPremMatch", "address_keys", "match_onprem", "text_column"]

#: Join keys, strongest first; a pair's ``join`` column names the one that matched.
JOIN_KEYS: tuple[str, ...] = ("ExternalDirectoryObjectId", "UserPrincipalName", "PrimarySmtpAddress", "EmailAddresses")
_RANK = {k: i for i, k in enumerate(JOIN_KEYS)}


@dataclass
class OnPremMatch:
    """The outcome of :func:`match_onprem`.

    ``pairs``: index = EXO ExternalDirectoryObjectId (the inventory's index values), columns
    ``line`` (on-prem row label), ``join`` (the key that matched), ``exo_pos`` and ``op_pos``
    (row positions in the inventory and the on-prem frame). ``ambiguous``: one row per
    (on-prem line, candidate EXO id) with ``candidates`` (all EXO ids the line could be),
    ``via`` (why it is ambiguous) and ``addresses`` (the shared or conflicting keys).
    ``unmatched``: on-prem lines with no EXO counterpart at all.
    """

    pairs: pd.DataFrame
    ambiguous: pd.DataFrame
    unmatched: pd.Index


def text_column(frame: pd.DataFrame, col: str) -> pd.Series:
    """A column as str with '' for missing/NA (a missing column is all '')."""
    if col not in frame.columns:
        return pd.Series("", index=frame.index, dtype="str")
    return frame[col].fillna("").astype("str")


def _lower(frame: pd.DataFrame, col: str) -> pd.Series:
    return text_column(frame, col).str.strip().str.lower()


def address_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Every address of every row as a lower-case ``type:address`` key.

    Columns ``owner`` (row position), ``key`` and ``primary`` (the key is the row's
    PrimarySmtpAddress). Sources: PrimarySmtpAddress (as ``smtp:``), EmailAddresses (bare
    addresses get ``smtp:``), LegacyExchangeDN (as ``x500:``). One row per (owner, key).
    """
    n = len(frame)
    pos = np.arange(n)
    parts: list[pd.DataFrame] = []
    prim = _lower(frame, "PrimarySmtpAddress")
    keep = (prim != "").to_numpy()
    parts.append(pd.DataFrame({"owner": pos[keep], "key": ("smtp:" + prim[keep]).to_numpy(), "primary": True}))
    if "EmailAddresses" in frame.columns:
        em = frame["EmailAddresses"].reset_index(drop=True)
        exploded = em[em.notna()].explode()
        exploded = exploded[exploded.notna()]
        if len(exploded):
            flat = exploded.astype("str").str.strip().str.lower()
            flat = flat.where(flat.str.contains(":", regex=False), "smtp:" + flat)
            parts.append(
                pd.DataFrame({"owner": exploded.index.to_numpy(), "key": flat.to_numpy(), "primary": False})
            )
    ldn = _lower(frame, "LegacyExchangeDN")
    keep = (ldn != "").to_numpy()
    parts.append(pd.DataFrame({"owner": pos[keep], "key": ("x500:" + ldn[keep]).to_numpy(), "primary": False}))
    keys = pd.concat(parts, ignore_index=True)
    keys = keys[keys["key"].str.len() > 5]
    # a key listed twice for one owner (primary and in EmailAddresses) counts once, as primary
    keys = keys.drop_duplicates(["owner", "key"], keep="first")
    return keys.reset_index(drop=True)


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line": pd.Series(dtype="object"),
            "join": pd.Series(dtype="str"),
            "exo_pos": pd.Series(dtype="int64"),
            "op_pos": pd.Series(dtype="int64"),
        }
    )


def _empty_ambiguous() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line": pd.Series(dtype="object"),
            "ExternalDirectoryObjectId": pd.Series(dtype="str"),
            "candidates": pd.Series(dtype="object"),
            "via": pd.Series(dtype="str"),
            "addresses": pd.Series(dtype="object"),
        }
    )


def _stage(op_pos: np.ndarray, exo_pos: np.ndarray, join: str) -> pd.DataFrame:
    return pd.DataFrame({"op_pos": op_pos.astype("int64"), "exo_pos": exo_pos.astype("int64"), "join": join})


def _arrow(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The Series' values as pyarrow strings (zero-copy when already Arrow-backed: chunks are kept)."""
    arr: pa.Array | pa.ChunkedArray = pa.array(s.astype("str").array)
    return arr


def _index_in(keys: pd.Series, wanted: pd.Series) -> np.ndarray:
    """Position in ``keys`` of each ``wanted`` value (the first one), -1 if absent."""
    found = pc.index_in(_arrow(wanted), value_set=_arrow(keys)).fill_null(-1)
    return np.asarray(found.to_numpy(), dtype=np.int64)


def _lookup(keys: pd.Series, wanted: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``keys`` of each ``wanted`` value among keys held exactly once; and the duplicated-key mask.

    The hash lookup is pyarrow's ``index_in`` (C++), which at 300,000 rows is several times
    faster than building a pandas object Index.
    """
    dup = keys.duplicated(keep=False).to_numpy() | (keys == "").to_numpy()
    uniq_pos = np.flatnonzero(~dup)
    found = _index_in(keys[~dup], wanted)
    return np.where(found >= 0, uniq_pos[np.maximum(found, 0)], -1), dup


def match_onprem(inventory: pd.DataFrame, onprem: pd.DataFrame | None) -> OnPremMatch:
    """Pair on-prem rows with EXO recipients (see the module docstring for the rules)."""
    if onprem is None or len(onprem) == 0 or len(inventory) == 0:
        lines = onprem.index if onprem is not None else pd.Index([])
        return OnPremMatch(_empty_pairs(), _empty_ambiguous(), lines)
    exo_ids = _LazyIds(inventory.index)
    stages: list[pd.DataFrame] = []
    ambiguous: list[pd.DataFrame] = []
    n_op = len(onprem)

    # 1. ExternalDirectoryObjectId: where the on-prem row has one, it alone decides.
    op_eid = _lower(onprem, "ExternalDirectoryObjectId")
    has_eid = (op_eid != "").to_numpy()
    todo = np.flatnonzero(has_eid)
    if len(todo):
        # the inventory index is unique by contract (one row per ExternalDirectoryObjectId)
        found = _index_in(pd.Series(inventory.index.astype("str")).str.lower(),
                          op_eid if len(todo) == n_op else op_eid.iloc[todo])
        hit = found >= 0
        stages.append(_stage(todo[hit], found[hit], "ExternalDirectoryObjectId"))

    # 2. UserPrincipalName, case-insensitive.
    op_upn = _lower(onprem, "UserPrincipalName")
    todo = np.flatnonzero(~has_eid & (op_upn != "").to_numpy())
    upn_hit = np.zeros(n_op, dtype=bool)
    if len(todo):
        inv_upn = _lower(inventory, "UserPrincipalName").reset_index(drop=True)
        found, dup = _lookup(inv_upn, op_upn.iloc[todo])
        hit = found >= 0
        stages.append(_stage(todo[hit], found[hit], "UserPrincipalName"))
        upn_hit[todo[hit]] = True
        dup_upns = set(inv_upn[dup & (inv_upn != "").to_numpy()])
        if dup_upns:  # rare: two EXO recipients with one UPN
            amb = todo[~hit][op_upn.iloc[todo[~hit]].isin(dup_upns).to_numpy()]
            by_upn = pd.Series(exo_ids.values, index=inv_upn.to_numpy()).groupby(level=0).agg(tuple)
            for p in amb:
                cands = by_upn[op_upn.iloc[p]]
                ambiguous.append(
                    _amb_rows(onprem.index[p], cands, "UserPrincipalName held by several EXO recipients", (op_upn.iloc[p],))
                )

    # 3. addresses, for rows that have no ExternalDirectoryObjectId and no UPN match.
    rest = ~has_eid & ~upn_hit
    if rest.any():
        found3, amb3 = _match_addresses(inventory, exo_ids, onprem, rest)
        stages.append(found3)
        ambiguous.extend(amb3)

    stages = [s for s in stages if len(s)]
    if not stages:
        pairs = _empty_pairs()
    else:
        matches = pd.concat(stages, ignore_index=True)
        exo_pos = matches["exo_pos"].to_numpy()
        claimed = np.bincount(exo_pos, minlength=len(inventory))
        keep = np.ones(len(matches), dtype=bool)
        if (claimed > 1).any():  # rare: several on-prem rows claim one EXO recipient
            multi = claimed[exo_pos] > 1
            sub = matches[multi].copy()
            sub["rank"] = sub["join"].map(_RANK).astype("int64")
            best = sub.groupby("exo_pos")["rank"].transform("min")
            at_best = sub["rank"] == best
            n_best = at_best.groupby(sub["exo_pos"]).transform("sum")
            keep[np.flatnonzero(multi)] = (at_best & (n_best == 1)).to_numpy()
        losers = matches[~keep]
        for op_p, exo_p in zip(losers["op_pos"].tolist(), losers["exo_pos"].tolist(), strict=True):  # rare
            ambiguous.append(
                _amb_rows(
                    onprem.index[int(op_p)],
                    (exo_ids[int(exo_p)],),
                    "another on-prem object matches this recipient as well",
                    (),
                )
            )
        kept = matches[keep]
        pairs = pd.DataFrame(
            {
                "line": onprem.index.to_numpy(dtype=object)[kept["op_pos"].to_numpy()],
                "join": kept["join"].astype("str").array,
                "exo_pos": kept["exo_pos"].to_numpy(),
                "op_pos": kept["op_pos"].to_numpy(),
            },
            index=pd.Index(inventory.index[kept["exo_pos"].to_numpy()].astype("str"), name="ExternalDirectoryObjectId"),
        )
    amb_frame = pd.concat(ambiguous, ignore_index=True) if ambiguous else _empty_ambiguous()
    seen = np.zeros(n_op, dtype=bool)
    seen[pairs["op_pos"].to_numpy(dtype="int64")] = True
    if len(amb_frame):
        seen |= onprem.index.isin(list(amb_frame["line"]))
    return OnPremMatch(pairs, amb_frame, onprem.index[~seen])


class _LazyIds:
    """EXO ids by position, converted to Python str only when an ambiguity needs a label (rare)."""

    def __init__(self, index: pd.Index) -> None:
        self._index = index

    def __getitem__(self, pos: int) -> str:
        return str(self._index[int(pos)])

    @property
    def values(self) -> np.ndarray:
        return np.asarray(self._index.astype("str"), dtype=object)


def _amb_rows(line: object, cands: tuple[str, ...], via: str, addresses: tuple[str, ...]) -> pd.DataFrame:
    cands = tuple(sorted(set(cands)))
    return pd.DataFrame(
        {
            "line": pd.Series([line] * len(cands), dtype="object"),
            "ExternalDirectoryObjectId": list(cands),
            "candidates": pd.Series([cands] * len(cands), dtype="object"),
            "via": via,
            "addresses": pd.Series([addresses] * len(cands), dtype="object"),
        }
    )


def _match_addresses(
    inventory: pd.DataFrame, exo_ids: _LazyIds, onprem: pd.DataFrame, rest: np.ndarray
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    none = pd.DataFrame({"op_pos": [], "exo_pos": [], "join": []}).astype({"op_pos": "int64", "exo_pos": "int64"})
    op_keys = address_keys(onprem)
    want = op_keys[rest[op_keys["owner"].to_numpy()]]
    if want.empty:
        return none, []
    wanted_keys = pd.Index(want["key"].unique())
    exo_keys = address_keys(inventory)
    exo_keys = exo_keys[wanted_keys.get_indexer(pd.Index(exo_keys["key"].to_numpy())) >= 0]
    hits = want.merge(exo_keys[["owner", "key"]], on="key", suffixes=("", "_exo"))
    if hits.empty:
        return none, []
    # A key is evidence only if exactly one person on each side holds it.
    hit_keys = pd.Index(hits["key"].unique())
    op_holders = op_keys[hit_keys.get_indexer(pd.Index(op_keys["key"].to_numpy())) >= 0].groupby("key")["owner"].nunique()
    exo_holders = exo_keys.groupby("key")["owner"].nunique()
    hits["unique"] = (hits["key"].map(op_holders) == 1) & (hits["key"].map(exo_holders) == 1)
    uniq = hits[hits["unique"]]
    n_uniq = uniq.groupby("owner")["owner_exo"].nunique()
    single = n_uniq[n_uniq == 1].index
    chosen = uniq[uniq["owner"].isin(single)]
    by_primary = chosen.groupby("owner")["primary"].any()
    first = chosen.drop_duplicates("owner").set_index("owner")["owner_exo"]
    found = pd.DataFrame(
        {
            "op_pos": first.index.to_numpy(dtype="int64"),
            "exo_pos": first.to_numpy(dtype="int64"),
            "join": np.where(by_primary.reindex(first.index).to_numpy(dtype=bool), "PrimarySmtpAddress", "EmailAddresses"),
        }
    )
    amb: list[pd.DataFrame] = []
    several = n_uniq[n_uniq > 1].index
    only_shared = pd.Index(hits["owner"].unique()).difference(n_uniq.index)
    rare = (  # addresses pointing at several EXO recipients; only addresses that two people hold
        (several, uniq, "addresses point at several EXO recipients"),
        (only_shared, hits, "the only matching addresses are held by more than one person"),
    )
    for owners, rows, why in rare:
        for p in owners:
            g = rows[rows["owner"] == p]
            amb.append(_amb_rows(onprem.index[p], tuple(str(exo_ids[e]) for e in g["owner_exo"]), why,
                                 tuple(sorted(set(g["key"])))))
    return found, amb
