"""Tenant persistence: a JSON-able dict (to_state/from_state) and a SQLite file (save/load).

SQLite layout: one table per object kind, one row per object (`id`, `data` = JSON array of the
dataclass fields in declaration order), plus `meta` (key/value JSON). save() writes a new file
next to the target and renames it over (a crash never leaves half a tenant).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exocm.sandbox.objects import (
    AdContact,
    AdGroup,
    AdUser,
    EntraContact,
    EntraGroup,
    EntraUser,
    ExoRecipient,
)
from exocm.sandbox.tenant import Tenant, gc_paused

SCHEMA_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

KINDS: dict[str, type] = {
    "ad_users": AdUser,
    "ad_groups": AdGroup,
    "entra_users": EntraUser,
    "entra_groups": EntraGroup,
    "exo": ExoRecipient,
    "ad_contacts": AdContact,
    "entra_contacts": EntraContact,
}
_DT_FIELDS = {"when_created", "when_changed", "last_sync"}
_INTKEY_FIELDS = {"ca", "eca"}


def _dt_out(v: datetime | None) -> int | None:
    return None if v is None else (v - _EPOCH) // _US  # exact microseconds


def _dt_in(v: int | None) -> datetime | None:
    return None if v is None else _EPOCH + timedelta(microseconds=v)


def _encoders(cls: type) -> tuple[list[str], list[Callable[[Any], Any]], list[Callable[[Any], Any]]]:
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    enc: list[Callable[[Any], Any]] = []
    dec: list[Callable[[Any], Any]] = []
    for f in fields:
        n = f.name
        if n in _DT_FIELDS:
            enc.append(_dt_out)
            dec.append(_dt_in)
        elif str(f.type).startswith("set["):
            enc.append(lambda v: sorted(v))
            dec.append(lambda v: set(v))
        elif n in _INTKEY_FIELDS:
            enc.append(lambda v: None if v is None else {str(k): x for k, x in v.items()})
            dec.append(lambda v: None if v is None else {int(k): x for k, x in v.items()})
        else:
            enc.append(lambda v: v)
            dec.append(lambda v: v)
    return names, enc, dec


_CODECS = {kind: _encoders(cls) for kind, cls in KINDS.items()}
#: Fields without a default, per kind: an older row must hold at least these.
_REQUIRED = {kind: sum(1 for f in dataclasses.fields(cls)
                       if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
             for kind, cls in KINDS.items()}


def _rows(kind: str, objs: Iterable[Any]) -> Iterable[list[Any]]:
    names, enc, _ = _CODECS[kind]
    pairs = list(zip(names, enc, strict=True))
    for o in objs:
        yield [e(getattr(o, n)) for n, e in pairs]


def _obj(kind: str, row: list[Any]) -> Any:
    _, _, dec = _CODECS[kind]
    if len(row) != len(dec) and not _REQUIRED[kind] <= len(row) < len(dec):
        raise ValueError(f"sandbox state row of {kind} has {len(row)} fields, expected {len(dec)}")
    # Fields in declaration order; a row written before later fields existed (they all have
    # defaults) leaves them at their defaults.
    return KINDS[kind](*[d(v) for d, v in zip(dec, row, strict=False)])


def _meta(t: Tenant) -> dict[str, Any]:
    org = {k: (_dt_out(v) if isinstance(v, datetime) else v) for k, v in t.org_config.items()}
    return {
        "schema": SCHEMA_VERSION,
        "seed": t.seed,
        "tenant_id": t.tenant_id,
        "org_name": t.org_name,
        "onprem_domain": t.onprem_domain,
        "guid_counter": t.guid_counter,
        "org_config": org,
        "org_config_dt": [k for k, v in t.org_config.items() if isinstance(v, datetime)],
        "pending_ad": sorted(t.pending_ad),
        "pending_exo": sorted(t.pending_exo),
        "pending_writeback": sorted(t.pending_writeback),
        "pending_groups": sorted(t.pending_groups),
        "pending_contacts": sorted(t.pending_contacts),
        "last_sync": _dt_out(t.last_sync),
        "sync_cycles": t.sync_cycles,
        "generated": t.generated,
        "readiness": t.readiness.to_meta(),
        "generated_objects": t.generated_objects,
    }


def _apply_meta(t: Tenant, meta: dict[str, Any]) -> None:
    if meta.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"unsupported sandbox state schema {meta.get('schema')!r}")
    t.guid_counter = int(meta["guid_counter"])
    org = dict(meta["org_config"])
    for k in meta.get("org_config_dt", []):
        org[k] = _dt_in(org[k])
    t.org_config = org
    t.pending_ad = set(meta["pending_ad"])
    t.pending_exo = set(meta["pending_exo"])
    t.pending_writeback = set(meta["pending_writeback"])
    t.pending_groups = set(meta["pending_groups"])
    t.pending_contacts = set(meta.get("pending_contacts", []))
    t.last_sync = _dt_in(meta["last_sync"])
    t.sync_cycles = int(meta["sync_cycles"])
    t.generated = {k: list(v) for k, v in meta.get("generated", {}).items()}
    from exocm.sandbox.readiness_state import ReadinessState

    t.readiness = ReadinessState.from_meta(meta.get("readiness"))
    t.generated_objects = {k: list(v) for k, v in meta.get("generated_objects", {}).items()}


def _new_tenant(meta: dict[str, Any], clock: Callable[[], datetime] | None) -> Tenant:
    return Tenant(seed=int(meta["seed"]), tenant_id=meta["tenant_id"], org_name=meta["org_name"],
                  onprem_domain=meta["onprem_domain"], clock=clock)


def _install(t: Tenant, kind: str, objs: Iterable[Any]) -> None:
    if kind == "ad_users":
        for a in objs:
            t.add_ad_user(a)
    elif kind == "ad_groups":
        for g in objs:
            t.add_ad_group(g)
    elif kind == "entra_users":
        for u in objs:
            t.add_entra_user(u)
    elif kind == "entra_groups":
        for eg in objs:
            t.add_entra_group(eg)
    elif kind == "ad_contacts":
        for ac in objs:
            t.add_ad_contact(ac)
    elif kind == "entra_contacts":
        for ec in objs:
            t.add_entra_contact(ec)
    else:
        for r in objs:
            t.add_exo(r)


def _collections(t: Tenant) -> dict[str, Iterable[Any]]:
    return {"ad_users": t.ad_users.values(), "ad_groups": t.ad_groups.values(),
            "entra_users": t.entra_users.values(), "entra_groups": t.entra_groups.values(), "exo": t.exo.values(),
            "ad_contacts": t.ad_contacts.values(), "entra_contacts": t.entra_contacts.values()}


def tenant_to_state(t: Tenant) -> dict[str, Any]:
    """The tenant as a JSON-able dict (same content as the SQLite file)."""
    out: dict[str, Any] = {"meta": _meta(t)}
    for kind, objs in _collections(t).items():
        out[kind] = list(_rows(kind, objs))
    return out


def tenant_from_state(state: dict[str, Any], *, clock: Callable[[], datetime] | None = None) -> Tenant:
    """Rebuild a tenant from tenant_to_state() output."""
    meta = state["meta"]
    t = _new_tenant(meta, clock)
    with gc_paused():
        for kind in KINDS:
            _install(t, kind, (_obj(kind, row) for row in state.get(kind, [])))
    _apply_meta(t, meta)
    return t


try:  # orjson is a sandbox dependency (the REST front uses it); json is the fallback
    import orjson

    def _dumps(v: Any) -> bytes | str:
        return orjson.dumps(v)

    _loads: Callable[[bytes | str], Any] = orjson.loads
except ImportError:  # pragma: no cover
    def _dumps(v: Any) -> bytes | str:
        return json.dumps(v, separators=(",", ":"))

    _loads = json.loads

_KEY = {"ad_users": "guid", "ad_groups": "guid", "entra_users": "id", "entra_groups": "id", "exo": "edoid",
        "ad_contacts": "guid", "entra_contacts": "id"}


def _key_index(kind: str) -> int:
    return _CODECS[kind][0].index(_KEY[kind])


def _clear_tracking(t: Tenant, path: Path) -> None:
    t.saved_to = str(path.resolve())
    for kind in KINDS:
        t.dirty[kind].clear()
        t.added[kind].clear()


def _write_meta(con: sqlite3.Connection, t: Tenant) -> None:
    con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [(k, json.dumps(v)) for k, v in _meta(t).items()])


def save(t: Tenant, path: str | Path) -> None:
    """Write the tenant to a SQLite file at `path`.

    The first save (or a save to another file) writes a fresh file and renames it over the
    target. Later saves to the same file write only the objects changed since, in one SQLite
    transaction (atomic as well), so a big tenant under a busy server stays cheap to persist.
    """
    target = Path(path)
    if t.saved_to == str(target.resolve()) and target.exists():
        _save_incremental(t, target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for kind in KINDS:
                con.execute(f"CREATE TABLE {kind} (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, data BLOB NOT NULL)")
            _write_meta(con, t)
            for kind, objs in _collections(t).items():
                ki = _key_index(kind)
                con.executemany(f"INSERT INTO {kind} (key, seq, data) VALUES (?, ?, ?)",
                                ((row[ki], i, _dumps(row)) for i, row in enumerate(_rows(kind, objs))))
            con.commit()
        finally:
            con.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _clear_tracking(t, target)


def _save_incremental(t: Tenant, target: Path) -> None:
    con = sqlite3.connect(target)
    try:
        con.execute("PRAGMA synchronous=FULL")
        with con:  # one transaction: every change of this save lands, or none
            _create_missing_tables(con)
            for kind, objs in (("ad_users", t.ad_users), ("ad_groups", t.ad_groups),
                               ("entra_users", t.entra_users), ("entra_groups", t.entra_groups),
                               ("exo", t.exo), ("ad_contacts", t.ad_contacts),
                               ("entra_contacts", t.entra_contacts)):
                ki = _key_index(kind)
                new = [k for k in t.added[kind] if k in objs]
                if new:
                    (top,) = con.execute(f"SELECT COALESCE(MAX(seq), -1) FROM {kind}").fetchone()
                    con.executemany(
                        f"INSERT OR REPLACE INTO {kind} (key, seq, data) VALUES (?, ?, ?)",
                        ((row[ki], top + 1 + i, _dumps(row))
                         for i, row in enumerate(_rows(kind, (objs[k] for k in new)))))
                fresh = set(new)
                changed = [k for k in t.dirty[kind] if k in objs and k not in fresh]
                if changed:
                    con.executemany(f"UPDATE {kind} SET data = ? WHERE key = ?",
                                    ((_dumps(row), row[ki]) for row in _rows(kind, (objs[k] for k in changed))))
            _write_meta(con, t)
    finally:
        con.close()
    _clear_tracking(t, target)


def _create_missing_tables(con: sqlite3.Connection) -> None:
    """Tables of kinds added after the file was written (an older state file saved again)."""
    for kind in KINDS:
        con.execute(f"CREATE TABLE IF NOT EXISTS {kind} (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, data BLOB NOT NULL)")


class StateError(ValueError):
    """A state file that cannot be read as a sandbox tenant (one line, names the file)."""


def load(path: str | Path, *, clock: Callable[[], datetime] | None = None) -> Tenant:
    """Read a tenant written by save(); later saves to the same file are incremental.

    A file that is missing, not SQLite, or not a sandbox state raises StateError.
    """
    target = Path(path)
    if not target.is_file():
        raise StateError(f"{target}: no such sandbox state file")
    try:
        return _load(target, clock)
    except (sqlite3.Error, KeyError, TypeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise StateError(f"{target} is not a sandbox state file ({detail})") from None


def _load(target: Path, clock: Callable[[], datetime] | None) -> Tenant:
    # mode=rw, not ro: a process killed in the middle of an incremental save leaves a hot
    # rollback journal, and only a writable connection may roll it back (read-only fails with
    # "attempt to write a readonly database"; sqlite.org/lockingv3.html, "hot journals").
    con = sqlite3.connect(f"file:{target}?mode=rw", uri=True)
    try:
        meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
        t = _new_tenant(meta, clock)
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        with gc_paused():
            for kind in KINDS:
                if kind not in tables:  # a state file written before this kind existed
                    continue
                rows = con.execute(f"SELECT data FROM {kind} ORDER BY seq")
                _install(t, kind, (_obj(kind, _loads(d)) for (d,) in rows))
        _apply_meta(t, meta)
    finally:
        con.close()
    _clear_tracking(t, target)
    return t
