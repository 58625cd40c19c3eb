"""Tenant sets on the command line: `--profiles a,b,c` / `--all-profiles` / `--parallel-tenants N`.

The work per tenant is core's (exocm.core.app.tenants); this module only presents it: a progress
line per tenant on stderr, a summary table per tenant (or `{"tenants": {PROFILE: ...}}` with
--format json), and the exit code of the worst tenant.
"""
from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from exocm.core.access.config import ConfigError
from exocm.core.app.tenants import TenantOutcome, profile_names, run_tenants, summary_rows, worst

from . import exitcodes
from .console import csv_for, write_output
from .errors import fail, inert

F = TypeVar("F", bound=Callable[..., Any])

#: Exit code of a tenant set by its worst tenant's status.
STATUS_EXIT = {"ok": exitcodes.OK, "changes": exitcodes.CHANGES, "error": exitcodes.ERROR,
               "auth": exitcodes.AUTH_FAILED}
#: Keys the options add to a command's keyword arguments.
TENANT_SET_KEYS = ("profiles", "all_profiles", "parallel_tenants", "tenant_processes")


def tenant_set_options(func: F) -> F:
    """Add --profiles, --all-profiles, --parallel-tenants and --tenant-processes to a click command."""
    options = [
        click.option("--profiles", "profiles", metavar="A,B,..", default=None,
                     help="Run for these profiles (tenants) in one process, in parallel."),
        click.option("--all-profiles", "all_profiles", is_flag=True, default=False,
                     help="Run for every configured profile."),
        click.option("--parallel-tenants", "parallel_tenants", type=click.IntRange(1, 256), default=None,
                     help="Tenants worked on at once (default min(8, tenants)); each has its own budget."),
        click.option("--tenant-processes", "tenant_processes", type=click.IntRange(1, 256), default=None,
                     help="Worker processes the tenants are spread over (default on Linux: one per core, "
                          "from 4 tenants on; 1: threads of one process). One process uses one core."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def pop_tenant_set(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the tenant-set values out of a command's kwargs."""
    return {key: kwargs.pop(key, None) for key in TENANT_SET_KEYS}


def wanted(options: Mapping[str, Any]) -> bool:
    """True when the options name a tenant set."""
    return bool(options.get("profiles") or options.get("all_profiles"))


def run_set(options: Mapping[str, Any], conn: Mapping[str, Any], job: Callable[[str], TenantOutcome],
            cancel: threading.Event | None = None) -> dict[str, TenantOutcome]:
    """Resolve the profiles and run `job` for each, printing one line per finished tenant on stderr."""
    if conn.get("profile") or conn.get("sandbox"):
        raise click.UsageError("--profiles/--all-profiles exclude --profile and --sandbox")
    try:
        names = profile_names(options.get("profiles"), all_profiles=bool(options.get("all_profiles")))
    except ConfigError as exc:
        fail(str(exc))
    click.echo(f"exocm: {len(names)} tenants: {', '.join(names)}", err=True)

    def done(o: TenantOutcome) -> None:
        what = inert(o.error) if o.error else ", ".join(f"{k} {v}" for k, v in o.counts.items()) or "nothing"
        click.echo(f"  {o.profile}: {o.status} in {o.seconds:.1f} s ({what})", err=True)

    try:
        return run_tenants(names, job, parallel=options.get("parallel_tenants"),
                           processes=options.get("tenant_processes"), on_done=done, cancel=cancel)
    except KeyboardInterrupt:
        click.echo("exocm: interrupted; every tenant's journal keeps what was done: the same command "
                   "again resumes where each stopped", err=True)
        raise SystemExit(exitcodes.INTERRUPTED) from None


def summary_text(outcomes: Mapping[str, TenantOutcome]) -> str:
    """The per-tenant summary table."""
    rows = summary_rows(outcomes)
    width = max([len("PROFILE")] + [len(r["profile"]) for r in rows])
    lines = [f"{'PROFILE':<{width}}  {'STATUS':<8} {'SECONDS':>7}  COUNTS / ERROR"]
    for r in rows:
        detail = inert(r["error"]) if r["error"] else (", ".join(f"{k} {v}" for k, v in r["counts"].items()) or "-")
        lines.append(f"{r['profile']:<{width}}  {r['status']:<8} {r['seconds']:>7.1f}  {detail}")
    failed = [r["profile"] for r in rows if r["error"]]
    lines.append(f"# {len(rows) - len(failed)} of {len(rows)} tenants completed"
                 + (f"; failed: {', '.join(failed)}" if failed else ""))
    for outcome in outcomes.values():
        if outcome.details:
            lines += ["", *(inert(line) for line in outcome.details.splitlines())]
    return "\n".join(lines) + "\n"


def present(outcomes: Mapping[str, TenantOutcome], fmt: str, out: Path | None, *,
            csv: Callable[[Mapping[str, Any]], str] | None = None,
            html: Callable[[Mapping[str, Any]], str] | None = None) -> NoReturn:
    """Write the summary (table), {"tenants": {...}} (json), or one CSV or HTML report of the whole
    set that core renders from the tenants' documents (`csv`, `html`), then exit with the worst
    tenant's code."""
    documents = {name: o.to_json() for name, o in outcomes.items()}
    if fmt == "json":
        text = json.dumps({"tenants": documents}, ensure_ascii=False, default=str, indent=1) + "\n"
    elif fmt == "csv" and csv is not None:
        text = csv_for(csv(documents), out)
    elif fmt == "html" and html is not None:
        text = html(documents)
    else:
        text = summary_text(outcomes)
    write_output(text, out)
    sys.exit(STATUS_EXIT[worst(outcomes.values())])
