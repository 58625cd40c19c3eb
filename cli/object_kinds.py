"""What `inventory`, `findings` and `plan` do for groups, contacts and users (`--kind`), in one place.

The decisions are core's (inventory/objects.py, detect/objects.py, plan/objects.py); this module
reads the kind's inventory through the connection's Graph bridge, finds the on-prem side (an
`--onprem-csv` AD export, or the embedded sandbox's own AD written as such an export), and
renders the kind's rows.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import pandas as pd
from exocm.core.csvio import to_csv_text
from exocm.core.events import Progress
from exocm.core.inventory.fetch import Inventory
from exocm.core.inventory.objects import fetch_objects
from exocm.core.inventory.onprem_objects import (
    ONPREM_OBJECT_COLUMNS,
    OnPremObjectsError,
    load_onprem_objects_csv,
    match_onprem_objects,
)
from exocm.core.inventory.snapshot import load_or_fetch_objects, save_object_snapshot
from exocm.core.model import GROUP, MAILBOX, OBJECT_KINDS, USER, object_columns
from rich.console import Console

from .errors import fail, inert

F = TypeVar("F", bound=Callable[..., Any])

#: Table columns per Graph kind (CSV and JSON carry every column).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    GROUP: ("DisplayName", "Mail", "GroupType", "OnPremisesSyncEnabled", "IsCloudManaged", "MemberCount",
            "OwnerCount", "ChildGroups", "ParentGroups", "ExternalDirectoryObjectId"),
    "contact": ("DisplayName", "Mail", "OnPremisesSyncEnabled", "IsCloudManaged", "ExternalDirectoryObjectId"),
    USER: ("DisplayName", "UserPrincipalName", "OnPremisesSyncEnabled", "IsCloudManaged", "ExternalDirectoryObjectId"),
}
_CELL_MAX = 40


def kind_option(func: F) -> F:
    """Add --kind mailbox|group|contact|user (default mailbox) to a click command."""
    return click.option("--kind", "kind", type=click.Choice(OBJECT_KINDS, case_sensitive=False), default=MAILBOX,
                        show_default=True,
                        help="What to work on: mailboxes (Exchange attribute SOA through EXO), or groups, "
                             "contacts, users (object SOA through Microsoft Graph).")(func)


def read_objects(connection: Any, kind: str, *, refresh: bool, err: Console,
                 progress: Callable[[Progress], None] | None = None) -> Inventory:
    """The kind's inventory: fresh from the embedded sandbox, else the snapshot unless `refresh`."""
    graph = connection.graph()
    with err.status(f"reading {kind}s through Microsoft Graph ..."):
        if connection.sandbox_handle is not None:
            inv = fetch_objects(graph, kind, progress=progress)
            save_object_snapshot(inv)
            return inv
        return load_or_fetch_objects(graph, kind, refresh=refresh, progress=progress)


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, tuple):
        return str(len(value)) if value and len(str(value[0])) == 36 else ";".join(str(v) for v in value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def render_objects_table(frame: pd.DataFrame, kind: str, *, label: str, header: str) -> str:
    """Plain aligned text of the kind's table columns (lists of ids shown as counts)."""
    columns = [c for c in TABLE_COLUMNS[kind] if c in frame.columns]
    rows = [[inert(_cell(v))[:_CELL_MAX] for v in row] for row in frame[columns].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    lines = [f"# {label}: {header}"]
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def render_objects_csv(frame: pd.DataFrame, kind: str, *, label: str) -> str:
    """CSV for Excel (UTF-8 BOM, formula cells escaped), led by a Tenant column; lists joined by ';'."""
    out = frame[list(object_columns(kind))].copy()
    for column in out.columns:
        if out[column].map(lambda v: isinstance(v, tuple)).any():
            out[column] = out[column].map(lambda v: ";".join(str(x) for x in v) if isinstance(v, tuple) else v)
    out.insert(0, "Tenant", label)
    return "\ufeff" + to_csv_text(out)


def render_objects_json(inv: Inventory, *, label: str, sandbox: bool) -> str:
    """One JSON object: tenant, kind, SANDBOX flag, fetch time and the records."""
    head = {"tenant": inv.tenant, "label": label, "sandbox": sandbox, "kind": inv.kind,
            "fetched_at": inv.fetched_at.isoformat(), "from_snapshot": inv.from_snapshot, "count": len(inv.frame)}
    records = inv.frame.reset_index(drop=True).to_json(orient="records", date_format="iso", date_unit="s",
                                                       force_ascii=False)
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "records": ' + records + "}\n"


def write_sandbox_ad_export(tenant: Any, kind: str, path: Path) -> int:
    """The embedded sandbox's AD objects of a kind as an Export-Csv file (cli may use the sandbox; core never)."""
    if kind == GROUP:
        objects = [(g.guid, g.sam, g.mail or "", g.display_name or g.name, g.proxies, g.when_changed, g.ca)
                   for g in tenant.ad_groups.values()]
    elif kind == USER:
        objects = [(u.guid, u.sam, getattr(u, "mail", "") or "", u.display_name, [], u.when_changed, u.ca)
                   for u in tenant.ad_users.values()]
    else:
        objects = [(c.guid, "", c.mail or "", c.display_name, c.proxies, c.when_changed, c.ca)
                   for c in tenant.ad_contacts.values()]
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(ONPREM_OBJECT_COLUMNS)
        for guid, sam, mail, name, proxies, when, ca in objects:
            extension = [(ca or {}).get(i, "") for i in range(1, 16)]
            writer.writerow([guid, sam, mail, name, " ".join(proxies or []),
                             when.isoformat() if when is not None else "", *extension])
    return len(objects)


def object_onprem(connection: Any, kind: str, frame: pd.DataFrame, onprem_csv: Path | None,
                  workdir: Path) -> tuple[dict[str, dict[str, Any]] | None, str]:
    """The AD side of the kind's objects (matched to Graph ids) and where it came from; (None, '') without one."""
    path = onprem_csv
    source = str(onprem_csv) if onprem_csv is not None else ""
    tenant = getattr(connection.sandbox_handle, "tenant", None) if connection.sandbox_handle is not None else None
    if path is None and tenant is not None:
        path = workdir / f"sandbox-ad-{kind}s.csv"
        write_sandbox_ad_export(tenant, kind, path)
        source = "sandbox AD export (Export-Csv style)"
    if path is None:
        return None, ""
    try:
        onprem = load_onprem_objects_csv(path)
    except OnPremObjectsError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read the on-prem file: {exc.strerror or exc}")
    return match_onprem_objects(kind, frame, onprem), source
