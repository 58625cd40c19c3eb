"""Join on-prem recipients to EXO recipients: who is the same person on both sides.

Keys, strongest first (DESIGN section 1, issue 4): ``ExternalDirectoryObjectId`` where the
on-prem row has one (then it alone decides), else ``UserPrincipalName``, else addresses
(on-prem primary SMTP, proxy addresses and LegacyExchangeDN as X500 against the same on the EXO
side). All comparisons are case-insensitive. An address held by two people on either side
proves nothing about either of them: it never makes a match on its own, and a row whose only
links are such addresses (or whose addresses point at two EXO recipients) is reported as
ambiguous instead of guessed. Two on-prem rows claiming one EXO recipient keep the match only
for the row with the strictly strongest key; the others are ambiguous too.

Everything here is vectorised (index lookups, explode, merge, groupby).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["JOIN_KEYS", "OnPremMatch", "match_onprem", "address_keys", "text_column"]

#: Join keys, strongest first; a pair's ``join`` column names the one that matched.
JOIN_KEYS: tuple[str, ...] = ("ExternalDirectoryObjectId", "UserPrincipalName", "PrimarySmtpAddress", "EmailAddresses")
_RANK = {k: i for i, k in enumerate(JOIN_KEYS)}


@dataclass
class OnPremMatch:
    """The outcome of :func:`match_onprem`.

    ``pairs``: index = EXO ExternalDirectoryObjectId, columns ``line`` (on-prem row label) and
    ``join`` (the key that matched). ``ambiguous``: one row per (on-prem line, candidate EXO
    id) with ``candidates`` (all EXO ids the line could be), ``via`` (why it is ambiguous) and
    ``addresses`` (the shared or conflicting keys). ``unmatched``: on-prem lines with no EXO
    counterpart at all.
    """

    pairs: pd.DataFrame
    ambiguous: pd.DataFrame
    unmatched: pd.Index


def text_column(frame: pd.DataFrame, col: str) -> pd.Series:
    """A column as str with '' for missing/NA (a missing column is all '')."""
    if col not in frame.columns:
        return pd.Series("", index=frame.index, dtype="str")
    return frame[col].fillna("").astype("str")


def address_keys(frame: pd.DataFrame, owner: pd.Index | None = None) -> pd.DataFrame:
    """Every address of every row as a lower-case ``type:address`` key.

    Columns ``owner`` (the row label, or ``owner`` if given), ``key`` and ``primary`` (the
    key is the row's PrimarySmtpAddress). Sources: PrimarySmtpAddress (as ``smtp:``),
    EmailAddresses (bare addresses get ``smtp:``), LegacyExchangeDN (as ``x500:``).
    """
    labels = frame.index if owner is None else owner
    parts: list[pd.DataFrame] = []
    prim = text_column(frame, "PrimarySmtpAddress").str.strip().str.lower()
    keep = (prim != "").to_numpy()
    parts.append(pd.DataFrame({"owner": labels[keep], "key": ("smtp:" + prim[keep]).to_numpy(), "primary": True}))
    if "EmailAddresses" in frame.columns:
        em = frame["EmailAddresses"]
        pos = np.arange(len(frame))
        lens = em.map(lambda t: len(t) if isinstance(t, tuple | list) else 0, na_action="ignore").fillna(0)
        counts = lens.to_numpy(dtype="int64")
        if counts.sum():
            flat = pd.Series(
                [a for t in em[counts > 0] for a in t], dtype="str"
            ).str.strip().str.lower()
            flat = flat.where(flat.str.contains(":", regex=False), "smtp:" + flat)
            parts.append(
                pd.DataFrame({"owner": labels[np.repeat(pos, counts)], "key": flat.to_numpy(), "primary": False})
            )
    ldn = text_column(frame, "LegacyExchangeDN").str.strip().str.lower()
    keep = (ldn != "").to_numpy()
    parts.append(pd.DataFrame({"owner": labels[keep], "key": ("x500:" + ldn[keep]).to_numpy(), "primary": False}))
    keys = pd.concat(parts, ignore_index=True)
    keys = keys[keys["key"].str.len() > 5]
    # a key listed twice for one owner (primary and in EmailAddresses) counts once, as primary
    keys = keys.sort_values("primary", ascending=False, kind="stable").drop_duplicates(["owner", "key"])
    return keys.reset_index(drop=True)


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame({"line": pd.Series(dtype="object"), "join": pd.Series(dtype="str")}).rename_axis(
        "ExternalDirectoryObjectId"
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


def match_onprem(inventory: pd.DataFrame, onprem: pd.DataFrame) -> OnPremMatch:
    """Pair on-prem rows with EXO recipients (see the module docstring for the rules)."""
    if onprem is None or len(onprem) == 0 or len(inventory) == 0:
        lines = onprem.index if onprem is not None else pd.Index([])
        return OnPremMatch(_empty_pairs(), _empty_ambiguous(), lines)
    exo_ids = inventory.index.astype("str")
    found: list[pd.DataFrame] = []
    ambiguous: list[pd.DataFrame] = []

    # 1. ExternalDirectoryObjectId: where the on-prem row has one, it alone decides.
    op_eid = text_column(onprem, "ExternalDirectoryObjectId").str.strip().str.lower()
    has_eid = (op_eid != "").to_numpy()
    lower_ids = pd.Index(exo_ids.str.lower())
    pos = lower_ids.get_indexer(pd.Index(op_eid[has_eid])) if lower_ids.is_unique else _first_indexer(lower_ids, op_eid[has_eid])
    hit = pos >= 0
    found.append(
        pd.DataFrame(
            {"line": onprem.index[has_eid][hit], "eid": exo_ids[pos[hit]], "join": "ExternalDirectoryObjectId"}
        )
    )

    # 2. UserPrincipalName, case-insensitive.
    inv_upn = text_column(inventory, "UserPrincipalName").str.strip().str.lower()
    op_upn = text_column(onprem, "UserPrincipalName").str.strip().str.lower()
    todo = ~has_eid & (op_upn != "").to_numpy()
    dup = inv_upn.duplicated(keep=False).to_numpy() | (inv_upn == "").to_numpy()
    uniq_upn = pd.Index(inv_upn[~dup])
    uniq_ids = exo_ids[~dup]
    pos = uniq_upn.get_indexer(pd.Index(op_upn[todo]))
    hit = pos >= 0
    found.append(pd.DataFrame({"line": onprem.index[todo][hit], "eid": uniq_ids[pos[hit]], "join": "UserPrincipalName"}))
    upn_hit = np.zeros(len(onprem), dtype=bool)
    upn_hit[np.flatnonzero(todo)[hit]] = True
    dup_upns = set(inv_upn[dup & (inv_upn != "").to_numpy()])
    if dup_upns:
        amb = todo & ~upn_hit & op_upn.isin(dup_upns).to_numpy()
        if amb.any():
            ids_by_upn = pd.Series(exo_ids, index=inv_upn).groupby(level=0).agg(tuple)
            for line, upn in zip(onprem.index[amb], op_upn[amb], strict=True):  # rare: duplicated UPNs in EXO
                cands = ids_by_upn[upn]
                ambiguous.append(_amb_rows(line, cands, "UserPrincipalName held by several EXO recipients", (upn,)))

    # 3. addresses, for rows that have no ExternalDirectoryObjectId and no UPN match.
    rest = ~has_eid & ~upn_hit
    if rest.any():
        m3, a3 = _match_addresses(inventory, exo_ids, onprem, rest)
        found.append(m3)
        ambiguous.extend(a3)

    matches = pd.concat([f for f in found if len(f)], ignore_index=True) if any(len(f) for f in found) else None
    if matches is None:
        pairs = _empty_pairs()
    else:
        matches["rank"] = matches["join"].map(_RANK)
        best = matches.groupby("eid")["rank"].transform("min")
        at_best = matches["rank"] == best
        n_best = at_best.groupby(matches["eid"]).transform("sum")
        keep = at_best & (n_best == 1)
        losers = matches[~keep]
        for eid, grp in losers.groupby("eid"):
            for line in grp["line"]:
                ambiguous.append(
                    _amb_rows(line, (str(eid),), "another on-prem object matches this recipient as well", ())
                )
        pairs = matches[keep].set_index("eid")[["line", "join"]]
        pairs["line"] = pairs["line"].astype("object")
        pairs.index.name = "ExternalDirectoryObjectId"
    amb_frame = pd.concat(ambiguous, ignore_index=True) if ambiguous else _empty_ambiguous()
    matched_lines = set(pairs["line"]) | set(amb_frame["line"])
    unmatched = onprem.index[~onprem.index.isin(list(matched_lines))]
    return OnPremMatch(pairs, amb_frame, unmatched)


def _first_indexer(index: pd.Index, values: pd.Series) -> np.ndarray:
    """get_indexer for an index with duplicates: the first position of each value, -1 if absent."""
    first = pd.Index(index[~index.duplicated()])
    positions = np.flatnonzero(~index.duplicated())
    pos = first.get_indexer(pd.Index(values))
    return np.where(pos >= 0, positions[np.maximum(pos, 0)], -1)


def _amb_rows(line: object, cands: tuple[str, ...], via: str, addresses: tuple[str, ...]) -> pd.DataFrame:
    cands = tuple(sorted(set(cands)))
    return pd.DataFrame(
        {
            "line": [line] * len(cands),
            "ExternalDirectoryObjectId": list(cands),
            "candidates": [cands] * len(cands),
            "via": via,
            "addresses": [addresses] * len(cands),
        }
    )


def _match_addresses(
    inventory: pd.DataFrame, exo_ids: pd.Index, onprem: pd.DataFrame, rest: np.ndarray
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    op_keys = address_keys(onprem)
    todo_lines = onprem.index[rest]
    want = op_keys[op_keys["owner"].isin(todo_lines)]
    if want.empty:
        return pd.DataFrame(columns=["line", "eid", "join"]), []
    exo_keys = address_keys(inventory, owner=exo_ids)
    exo_keys = exo_keys[exo_keys["key"].isin(set(want["key"]))]
    hits = want.merge(exo_keys[["owner", "key"]], on="key", suffixes=("", "_exo"))
    if hits.empty:
        return pd.DataFrame(columns=["line", "eid", "join"]), []
    # A key is evidence only if exactly one person on each side holds it.
    op_holders = op_keys[op_keys["key"].isin(set(hits["key"]))].groupby("key")["owner"].nunique()
    exo_holders = exo_keys.groupby("key")["owner"].nunique()
    hits["unique"] = (hits["key"].map(op_holders) == 1) & (hits["key"].map(exo_holders) == 1)
    uniq = hits[hits["unique"]]
    n_uniq = uniq.groupby("owner")["owner_exo"].nunique()
    single = n_uniq[n_uniq == 1].index
    chosen = uniq[uniq["owner"].isin(single)]
    by_primary = chosen.groupby("owner")["primary"].any()
    first = chosen.drop_duplicates("owner").set_index("owner")["owner_exo"]
    m = pd.DataFrame(
        {
            "line": first.index,
            "eid": first.to_numpy(),
            "join": np.where(by_primary.reindex(first.index).to_numpy(), "PrimarySmtpAddress", "EmailAddresses"),
        }
    )
    amb: list[pd.DataFrame] = []
    several = n_uniq[n_uniq > 1].index
    only_shared = pd.Index(hits["owner"].unique()).difference(n_uniq.index)
    for line in several:  # rare: addresses pointing at several EXO recipients
        g = uniq[uniq["owner"] == line]
        amb.append(
            _amb_rows(line, tuple(g["owner_exo"]), "addresses point at several EXO recipients", tuple(sorted(set(g["key"]))))
        )
    for line in only_shared:  # rare: only addresses that two people hold
        g = hits[hits["owner"] == line]
        amb.append(
            _amb_rows(
                line,
                tuple(g["owner_exo"]),
                "the only matching addresses are held by more than one person",
                tuple(sorted(set(g["key"]))),
            )
        )
    return m, amb
