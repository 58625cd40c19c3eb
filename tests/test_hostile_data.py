"""Hostile data from the service stays inert: terminal escapes, Rich markup, bidi, long strings, odd records.

The sandbox tenant is edited directly (under its lock) so Exchange itself serves display
names and attributes holding ESC sequences (clear screen, OSC 8 links, OSC 52 clipboard
writes), BEL, NUL, Rich markup, RTL overrides, Arabic and emoji, and 20,000-character
values; a second tenant serves records with properties missing or of unexpected types
(the stand-in's answers are rewritten on the way out, the product is untouched). Then
`exocm inventory / findings / plan / show / apply / report` and the TUI show them:
- no control sequence leaves exocm raw (table output, CSV, the TUI's terminal output);
- markup is shown as the text it is, never interpreted;
- JSON keeps every value exactly (escaped), long values are cut in tables;
- records with missing or mistyped properties never cause a traceback or a wrong "verified".

A nextLink to another host is refused with the token kept home: proved by
`tests/test_bridge_rest.py::test_a_next_link_to_another_host_is_refused_and_gets_no_token` (every
paging path of the bridge checks the link's origin; the CLI's inventory reads stay within one page
per partition, so that bridge test is the place it is exercised).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from exocm.cli.main import cli
from exocm.core.execute.journal import read_journal
from exocm.core.plan.planfile import load_plan
from plan_support import add_profile, cloud_managed

HOSTILE: dict[str, str] = {
    "clear": "\x1b[2J\x1b[31mRED",
    "osc8": "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "osc52": "\x1b]52;c;ZXhvY20taG9zdGlsZQ==\x07",
    "markup": "[bold]bold[/bold]",
    "link": "[link=http://evil.example]L[/link]",
    "rtl": "\u202egnp.exe",
    "emoji": "مرحبا 👩‍💻🏳️‍🌈",
    "controls": "a\nb\rc\x00d\x07e\x9bf",
    "long": "x" * 20_000,
    "html": "<img src=x onerror=alert(1)>",
}
#: What must never appear in text meant for a terminal.
RAW = ("\x1b", "\x07", "\x00", "\x9b", "\u202e")
TAG = "zqx"  # every hostile display name starts with it (the TUI search finds them)


def hostile_tenant(sb: Any) -> dict[str, str]:
    """Give dir-synced user mailboxes hostile display names and CustomAttribute1; returns edoid -> kind."""
    chosen: dict[str, str] = {}
    with sb.tenant.lock:
        mailboxes = [r for r in sb.tenant.exo.values() if r.dir_synced and r.rtd == "UserMailbox"
                     and not r.cloud_managed]
        for r, (kind, text) in zip(mailboxes, HOSTILE.items(), strict=False):
            r.display_name = TAG + text
            r.ca = {**(r.ca or {}), 1: text, 2: "[red]x[/red]"}
            chosen[r.edoid] = kind
        sb.tenant.exo_changed()
    assert len(chosen) == len(HOSTILE)
    return chosen


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from exocm.sandbox.server import Sandbox

    base = tmp_path_factory.mktemp("hostile")
    sb = Sandbox.start(size=80, seed=5, winrm=False)
    try:
        chosen = hostile_tenant(sb)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("EXOCM_CONFIG_DIR", str(base / "config"))
            mp.setenv("EXOCM_DATA_DIR", str(base / "data"))
            profile = add_profile(sb, "hostile")
        yield {"sb": sb, "base": base, "profile": profile, "chosen": chosen}
    finally:
        sb.stop()


@pytest.fixture
def cli_env(tenant: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tenant["base"] / "config"))
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tenant["base"] / "data"))
    return tenant


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"exocm {args[0]} raised {result.exception!r}") from result.exception
    return result


def assert_inert(text: str, where: str, *, data: bool = False) -> None:
    """No control character raw. `data` formats (CSV, HTML, JSON) keep values as data: no C0 control
    (ESC, BEL, NUL) raw, while bidi marks and C1 code points may stay (as UTF-8 text they drive no terminal)."""
    for raw in RAW:
        if data and raw in ("\u202e", "\x9b"):
            continue
        assert raw not in text, f"{where}: {raw!r} reached the output raw"


def assert_markup_shown_as_text(text: str, where: str) -> None:
    assert "[bold]bold[/bold]" in text, f"{where}: markup was interpreted (or the row is missing)"


# --- the command line ------------------------------------------------------------------------


def test_inventory_table_csv_and_json_keep_hostile_values_inert_and_exact(cli_env: dict[str, Any]) -> None:
    profile = cli_env["profile"]
    table = run("inventory", "--profile", profile, "--format", "table", "--refresh")
    assert table.exit_code == 0, table.output[-800:]
    assert_inert(table.output, "inventory table")
    assert_markup_shown_as_text(table.stdout, "inventory table")
    assert max(len(line) for line in table.stdout.splitlines()) < 1000  # 20,000-character values are cut

    csv_out = run("inventory", "--profile", profile, "--format", "csv")
    assert csv_out.exit_code == 0
    assert_inert(csv_out.stdout, "inventory csv", data=True)  # control characters become U+FFFD in CSV cells
    assert "[bold]bold[/bold]" in csv_out.stdout and "\ufffd]52;c;" in csv_out.stdout

    doc = run("inventory", "--profile", profile, "--format", "json")
    assert doc.exit_code == 0
    assert_inert(doc.stdout, "inventory json", data=True)  # JSON escapes C0 control characters
    records = json.loads(doc.stdout)
    records = records.get("records", records) if isinstance(records, dict) else records
    names = {r["ExternalDirectoryObjectId"]: r["DisplayName"] for r in records}
    for edoid, kind in cli_env["chosen"].items():
        assert names[edoid] == TAG + HOSTILE[kind]  # data is kept exactly where it is data


def test_findings_plan_show_apply_and_report_render_hostile_values_inert(cli_env: dict[str, Any]) -> None:
    profile, base = cli_env["profile"], cli_env["base"]
    from exocm.sandbox.onprem_export import write_onprem_csv

    onprem = base / "onprem.csv"  # on-prem still holds the old values: ATTRIBUTE_DRIFT shows the hostile ones
    write_onprem_csv(cli_env["sb"].tenant, onprem)
    found = run("findings", "--profile", profile, "--onprem-csv", str(onprem), "--severity", "info")
    assert found.exit_code in (0, 1), found.output[-800:]
    assert_inert(found.output, "findings")
    assert "[red]x[/red]" in found.stdout or "ATTRIBUTE_DRIFT" in found.stdout
    html = run("findings", "--profile", profile, "--onprem-csv", str(onprem), "--format", "html")
    assert html.exit_code in (0, 1)
    assert all(edoid in html.stdout for edoid in cli_env["chosen"])  # the hostile rows are in the report
    assert "<img src=x" not in html.stdout and "&lt;img src=x" in html.stdout  # values are HTML-escaped
    assert_inert(html.stdout, "findings html", data=True)

    plan_path = base / "hostile-plan.json"
    ids = ",".join(cli_env["chosen"])
    csv_in = base / "hostile-ids.csv"
    csv_in.write_text("Identity\n" + ids.replace(",", "\n") + "\n", encoding="utf-8")
    made = run("plan", "--profile", profile, "--set-cloud-managed", "true", "--csv", str(csv_in),
               "--no-detect", "-o", str(plan_path))
    assert made.exit_code == 0, made.output[-800:]
    assert_inert(made.output, "plan")
    assert len(load_plan(plan_path).set_rows()) == len(HOSTILE)
    for fmt in ("table", "csv"):
        shown = run("show", str(plan_path), "--format", fmt)
        assert shown.exit_code == 1
        assert_inert(shown.stdout, f"show {fmt}", data=fmt == "csv")
        assert_markup_shown_as_text(shown.stdout, f"show {fmt}")
    applied = run("apply", "--profile", profile, str(plan_path), "--yes")
    assert applied.exit_code == 0, applied.output[-800:]
    assert_inert(applied.output, "apply")
    journal = next(p for p in (base / "data" / "journals").glob("*.jsonl")
                   if read_journal(p).plan_digest == load_plan(plan_path).digest)
    rows = read_journal(journal).rows()
    assert {r["display_name"] for r in rows} == {TAG + t for t in HOSTILE.values()}  # journal keeps data
    for fmt in ("table", "csv"):
        report = run("report", str(journal), "--format", fmt)
        assert report.exit_code == 0
        assert_inert(report.stdout, f"report {fmt}", data=fmt == "csv")
        assert_markup_shown_as_text(report.stdout, f"report {fmt}")


# --- records that miss properties or carry the wrong types -------------------------------------

ODD: list[tuple[str, str, Any]] = [
    ("drop", "DisplayName", None), ("drop", "IsExchangeCloudManaged", None), ("drop", "WhenChanged", None),
    ("set", "RecipientTypeDetails", 5), ("set", "EmailAddresses", "SMTP:a@b"), ("set", "WhenChanged", "not a date"),
    ("set", "IsDirSynced", "yes"), ("set", "CustomAttribute1", {"nested": [1, 2]}), ("set", "DisplayName", ["a", "b"]),
    ("set", "IsExchangeCloudManaged", "maybe"), ("set", "WhenChanged", 12345), ("set", "ExchangeGuid", None),
    ("drop", "ExternalDirectoryObjectId", None),
]


def test_records_missing_properties_or_with_wrong_types_never_break_a_command_or_get_verified(
        make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = make_sandbox(size=80, seed=8, winrm=False)
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    profile = add_profile(sb, "odd")
    victims = [r.edoid for r in sb.tenant.exo.values() if r.dir_synced and r.rtd == "UserMailbox"
               and not r.cloud_managed][:len(ODD)]
    original = sb.rest._run
    served: set[str] = set()

    def odd_answers(cmdlet: str, params: dict[str, Any]) -> Any:
        rows = original(cmdlet, params)
        if not cmdlet.lower().startswith("get-"):
            return rows
        out = []
        for record in rows:
            record = dict(record)
            edoid = str(record.get("ExternalDirectoryObjectId") or "")
            if edoid in victims:
                how, name, value = ODD[victims.index(edoid)]
                served.add(name)
                if how == "drop":
                    record.pop(name, None)
                else:
                    record[name] = value
            out.append(record)
        return out

    sb.rest._run = odd_answers
    for args in (["inventory", "--profile", profile, "--format", "table"],
                 ["inventory", "--profile", profile, "--format", "json"],
                 ["findings", "--profile", profile, "--format", "json"]):
        result = run(*args)
        assert result.exit_code in (0, 1), result.output[-800:]
    plan_path = tmp_path / "plan.json"
    made = run("plan", "--profile", profile, "--set-cloud-managed", "true", "--all-dirsynced", "--no-detect",
               "-o", str(plan_path))
    assert made.exit_code == 0, made.output[-800:]
    plan = load_plan(plan_path)
    reasons = {r.identity: r.reason for r in plan.rows}
    unreadable = [v for v, (_, name, _) in zip(victims, ODD, strict=False) if name == "IsExchangeCloudManaged"]
    assert all(reasons[v] == "state_unknown" for v in unreadable)  # never planned blind
    applied = run("apply", "--profile", profile, str(plan_path), "--yes")
    assert applied.exit_code in (0, 1), applied.output[-800:]
    journal = next((tmp_path / "data" / "journals").glob("*.jsonl"))
    for row in read_journal(journal).rows():
        if row["status"] == "verified":  # whatever the read said, "verified" means the tenant holds it
            assert cloud_managed(sb, row["identity"]) is True, row
        elif row["status"] != "skipped":
            assert row.get("reason") or row.get("error"), row
    assert {"IsExchangeCloudManaged", "WhenChanged", "DisplayName"} <= served


# --- the TUI -----------------------------------------------------------------------------------


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def terminal_output(app: Any) -> str:
    """What the app would write to the terminal for a full repaint of the current screen."""
    update = app.screen._compositor.render_update(full=True)
    return str(update.render_segments(app.console))


@pytest.mark.anyio
async def test_the_tui_draws_hostile_names_attributes_and_messages_inert(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from exocm.cli.connection import open_connection
    from exocm.core.app.session import Session
    from exocm.sandbox.generator import generate_tenant
    from exocm.tui.app import ExocmApp
    from exocm.tui.screens.findings import FindingsScreen
    from tui_support import frozen_age_clock, frozen_clock, screen_text, wait_for

    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))

    class Handle:  # hostile_tenant() wants something with .tenant
        def __init__(self, tenant: Any) -> None:
            self.tenant = tenant

    tenant = generate_tenant(120, 7, clock=frozen_clock)
    hostile_tenant(Handle(tenant))
    with open_connection(None, True, 120, 7, quiet=True, clock=frozen_clock, tenant=tenant) as connection:
        session = Session(connection.bridge, label=connection.label, is_sandbox=connection.is_sandbox,
                          profile_name=connection.profile.name, data_dir=tmp_path / "data",
                          onprem_records=connection.sandbox_handle.tenant.onprem_records, snapshot_first=False,
                          clock=frozen_clock)
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True, clock=frozen_age_clock(session))
        async with app.run_test(size=(160, 50), notifications=True) as pilot:
            await wait_for(pilot, lambda: app.session is not None, what="connection")
            screen = app.mailboxes_screen()
            await wait_for(pilot, lambda: screen.view is not None and screen.view.findings is not None,
                           what="inventory")
            await pilot.press("slash", *TAG)
            await wait_for(pilot, lambda: screen.text == TAG, what="search")
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert len(screen.shown) == len(HOSTILE)
            text, raw = screen_text(app), terminal_output(app)
            assert_markup_shown_as_text(text, "mailbox table")
            assert "[link=http://evil.example]L[/link]" in text
            assert "مرحبا" in text
            for sequence in ("\x1b]8;;http://evil.example", "\x1b]52;", "\x1b[2J", "\x07", "\u202e", "\x00"):
                assert sequence not in raw, f"mailbox table wrote {sequence!r} raw"

            # the findings screen: ATTRIBUTE_DRIFT evidence carries the hostile CustomAttribute1 values
            app.push_screen(FindingsScreen())
            await pilot.pause(0.2)
            findings = app.screen
            assert isinstance(findings, FindingsScreen)
            await wait_for(pilot, lambda: findings.rows is not None, what="findings")
            findings.show_code("ATTRIBUTE_DRIFT")
            hostile_rows = [i for i, (_, row) in enumerate(findings.rows.iterrows())
                            if str(row.get("ExternalDirectoryObjectId", "")) in
                            {r.edoid for r in tenant.exo.values() if r.display_name.startswith(TAG)}]
            assert hostile_rows, "no drift finding for the hostile attributes"
            for index in hostile_rows:
                findings.show_evidence(index)
                await pilot.pause(0.05)
                raw = terminal_output(app)
                for sequence in ("\x1b]8;;http://evil.example", "\x1b]52;", "\x1b[2J", "\x07", "\u202e"):
                    assert sequence not in raw, f"findings evidence wrote {sequence!r} raw"
            assert "[red]x[/red]" in screen_text(app)  # markup in evidence is text

            # a toast with a message from the service is text too
            from textual.widgets._toast import Toast

            app.notify("[link=http://evil.example]boom[/link] \x1b]52;c;eA==\x07")
            await wait_for(pilot, lambda: len(app.screen.query(Toast)) > 0, what="toast")
            await pilot.pause(0.1)
            raw = terminal_output(app)
            assert "\x1b]8;;http://evil.example" not in raw and "\x1b]52;" not in raw
            toast = str(app.screen.query(Toast).first().render())
            assert "[link=http://evil.example]boom[/link]" in toast, toast
