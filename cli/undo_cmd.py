"""`exocm undo JOURNAL -o PLAN` (an undo plan from a journal) and `exocm report JOURNAL...`."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import pandas as pd
from exocm.core.access.config import data_dir
from exocm.core.csvio import to_csv_text
from exocm.core.execute.apply import ApplyRefused
from exocm.core.execute.journal import JournalError, read_journal
from exocm.core.execute.report import REPORT_COLUMNS, report_frame, summary
from exocm.core.execute.undo import UndoError, build_undo_plan, export_overwritten
from exocm.core.plan.planfile import save_plan
from exocm.core.plan.workflow import default_plan_path
from rich.markup import escape

from . import exitcodes
from .connection import connection_options, embedded_source, follow_recorded_sandbox, open_connection
from .console import banner, stderr_console, write_output
from .errors import fail, inert, user_errors
from .onprem_options import onprem_csv_frame
from .plan_cmd import counts_lines, sandbox_note
from .tenant_set import pop_tenant_set, present, run_set, tenant_set_options
from .tenant_set import wanted as tenant_set_wanted
from .writeback_read import read_writeback


def _plan_source(journal: Path) -> dict[str, Any]:
    """The `source` of the plan the journal ran (empty when its plan file is gone)."""
    from exocm.core.execute.journal import read_journal
    from exocm.core.paths import recorded_path
    from exocm.core.plan.planfile import PlanError, load_plan

    try:
        # a journal written on another system names a plan path that means nothing here
        plan_file = recorded_path((read_journal(journal).header or {}).get("plan_file"))
        if plan_file is None:
            return {}
        return dict(load_plan(plan_file).source)
    except (JournalError, PlanError, OSError, ValueError):
        return {}


def _recorded_sandbox(journal: Path) -> Any:
    """The embedded sandbox (size, seed) the journal's plan was made on, if it says so."""
    return _plan_source(journal).get("embedded_sandbox")


UNDO_EXAMPLES = """\b
Examples:
  exocm undo JOURNAL -o undo.json                        every verified row of that plan's runs
  exocm undo JOURNAL --only-this-run -o undo.json
  exocm undo JOURNAL --export-overwritten cloud-values.csv -o undo.json
then: exocm show undo.json, exocm apply undo.json
(journals live in <data dir>/journals; 'exocm apply' prints the path)
"""

REPORT_EXAMPLES = """\b
Examples:
  exocm report JOURNAL                        per row: result, before/after, reason
  exocm report JOURNAL --format csv -o results.csv   for the change ticket
  exocm report JOURNAL1 JOURNAL2 --format json
"""


@click.command(epilog=UNDO_EXAMPLES)
@connection_options
@tenant_set_options
@click.argument("journal", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(path_type=Path),
              help="Undo plan to write (default: <data dir>/plans/undo-<time>-<digest>.json).")
@click.option("--export-overwritten", "export", type=click.Path(dir_okay=False, path_type=Path),
              help="First save the cloud values the next sync will overwrite (true->false undo) as CSV.")
@click.option("--only-this-run", is_flag=True,
              help="Undo only this journal's run (default: every run of the same plan next to it).")
@click.option("--onprem-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="On-prem export to compare the overwritten values with (else: the backup in the journal).")
def undo(journal: Path, out: Path | None, export: Path | None, only_this_run: bool, onprem_csv: Path | None,
         **conn: Any) -> None:
    """Make a plan that sets the journal's verified rows back (drifted rows are skipped).

    Undoing a flip to cloud-managed hands the attributes back to on-prem: the plan lists
    the cloud values the next sync will overwrite ('exocm show PLAN'). With --profiles /
    --all-profiles, JOURNAL is the directory of the applied plans and -o DIR gets one undo plan
    per profile (apply them with 'exocm apply DIR --all-profiles --yes').
    """
    err = stderr_console()
    tenant_set = pop_tenant_set(conn)
    if tenant_set_wanted(tenant_set):
        from exocm.core.app.tenants import plan_for_profile, undo_job

        if out is None:
            raise click.UsageError("with a tenant set, JOURNAL is the plans' directory (or {profile} pattern) "
                                   "and -o DIR names the directory for one undo plan per profile")
        out.mkdir(parents=True, exist_ok=True)
        present(run_set(tenant_set, conn, lambda name: undo_job(name, plan_for_profile(journal, name), out_dir=out)),
                "table", None)
    kind = _journal_kind(journal)
    onprem = onprem_csv_frame(onprem_csv) if onprem_csv is not None and kind == "mailbox" else None
    follow_recorded_sandbox(click.get_current_context(), conn, _recorded_sandbox(journal), f"journal {journal}")
    with user_errors(), open_connection(**conn) as connection, tempfile.TemporaryDirectory() as tmp:
        banner(err, connection)
        bridge, io = connection.bridge, None
        if kind != "mailbox":  # groups, contacts, users: through Graph, compared with AD's values when known
            from exocm.core.execute.objects_io import ObjectIO

            bridge = connection.graph()
            io = ObjectIO(bridge, kind)
            onprem = _object_onprem_frame(connection, kind, onprem_csv, Path(tmp), err)
        try:
            writeback = read_writeback(connection) if io is None else None
            plan = build_undo_plan(bridge, journal, all_runs=not only_this_run, onprem=onprem, io=io,
                                   writeback=writeback)
        except (JournalError, UndoError, ApplyRefused) as exc:
            fail(str(exc))
        if connection.embedded is not None:  # so 'exocm apply' of the undo plan opens the same sandbox
            plan.source.update(embedded_source(connection))
            plan.finalise()
    overwritten = [r for r in plan.rows if r.action == "set" and r.overwritten]
    noun = "mailboxes" if kind == "mailbox" else f"{kind}s"
    if export is not None:
        export_overwritten(plan, export)
        err.print(f"overwritten cloud values of {len(overwritten):,} {noun} saved to {escape(str(export))}")
    path = out or default_plan_path(plan, data_dir())
    save_plan(plan, path)
    err.print("\n".join(counts_lines(plan)) or "  (no verified rows to undo)")
    if writeback is not None:  # Exchange attribute writeback concerns mailboxes only
        err.print(f"writeback to AD: {writeback.label} ({escape(writeback.source)})" + (
            "; every cloud edit since the flip is overwritten" if writeback.configured is False and onprem is None
            else "; only edits of attributes outside its list are overwritten" if writeback.configured and onprem is None
            else ""))
    if plan.value is False and plan.set_rows():
        if overwritten:
            err.print(f"[yellow]warning:[/] the next sync will overwrite cloud values of {len(overwritten):,} "
                      f"{noun} with on-prem values; 'exocm show PLAN' lists them")
        else:
            err.print(f"note: these {noun} go back to on-prem management; no cloud value differs from "
                      "what on-prem holds, so the next sync overwrites nothing known")
    err.print(f"undo plan {plan.digest[:12]} written to {escape(str(path))}")
    click.echo(str(path))


def _journal_kind(journal: Path) -> str:
    """The object kind of a journal's rows (mailbox for journals made before object kinds)."""
    try:
        header = read_journal(journal).header or {}
    except JournalError:
        return "mailbox"  # build_undo_plan says what is wrong with it
    kind = str(header.get("object_kind") or "mailbox")
    return kind if kind in ("mailbox", "group", "contact", "user") else "mailbox"


def _object_onprem_frame(connection: Any, kind: str, onprem_csv: Path | None, workdir: Path,
                         err: Any) -> pd.DataFrame | None:
    """AD's values of the kind's objects (from --onprem-csv, or the embedded sandbox's AD), keyed by object id."""
    from .object_kinds import object_onprem, read_objects

    if onprem_csv is None and connection.sandbox_handle is None:
        return None
    inv = read_objects(connection, kind, refresh=True, err=err)
    matched, _ = object_onprem(connection, kind, inv.frame, onprem_csv, workdir)
    if not matched:
        return None
    rows = [{"ExternalDirectoryObjectId": oid, **{k: v for k, v in row.items() if k != "whenChanged"}}
            for oid, row in matched.items()]
    return pd.DataFrame(rows)


def render_report_table(frame: pd.DataFrame, counts: dict[str, int]) -> str:
    """The report for a terminal."""
    head = "# " + ", ".join(f"{k} {v}" for k, v in counts.items()) if counts else "# no rows"
    cols = ["Timestamp", "Identity", "DisplayName", "Result", "Before", "After", "Reason"]
    cells = [[inert("" if v is None or v != v else str(v))[:60] for v in row] for row in frame[cols].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    lines = [head, "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


@click.command(epilog=REPORT_EXAMPLES)
@click.argument("journals", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (atomically).")
@tenant_set_options
def report(journals: tuple[Path, ...], fmt: str, out: Path | None, **tenant_set: Any) -> None:
    """Per row of one or more journals: result, before/after, reason, error, timestamps.

    With --profiles/--all-profiles, give the plan directory (or {profile} pattern) instead: per
    tenant, what every apply of its plan did (verified, failed, remaining).

    The CSV has the peers' results columns (Timestamp, Row, Identity, Mode, Result, Reason,
    Before, After) first, for change tickets.
    """
    if tenant_set_wanted(tenant_set):
        from exocm.core.app.tenants import plan_for_profile, report_job

        if len(journals) != 1:
            raise click.UsageError("with a tenant set, give one plan directory (or {profile} pattern)")
        present(run_set(tenant_set, {}, lambda name: report_job(name, plan_for_profile(journals[0], name))),
                "json" if fmt == "json" else "table", out)
    try:
        frame, warnings = report_frame(list(journals))
    except JournalError as exc:
        fail(str(exc))
    for warning in warnings:
        click.echo(f"exocm: warning: {inert(warning)}", err=True)
    counts = summary(frame)
    if fmt == "csv":
        text = "\ufeff" + to_csv_text(frame, list(REPORT_COLUMNS))
    elif fmt == "json":
        records = json.loads(frame.to_json(orient="records", force_ascii=False))
        text = json.dumps({"journals": [str(j) for j in journals], "counts": counts, "warnings": warnings,
                           "rows": records}, ensure_ascii=False, indent=1) + "\n"
    else:
        text = render_report_table(frame, counts)
        notes = {sandbox_note(_plan_source(j)) for j in journals if j.exists()} - {""}
        if notes:
            text = f"# {sorted(notes)[0].strip()[1:-1]}\n" + text
    write_output(text, out)
    sys.exit(exitcodes.OK)
