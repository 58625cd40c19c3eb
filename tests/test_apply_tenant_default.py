"""The tenant-wide default: shown with its warnings, changed only after a typed confirmation, journaled."""
from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from exocm.cli.main import cli
from exocm.core.execute.journal import list_journals, read_journal
from exocm.core.execute.report import report_frame
from exocm.core.execute.tenant_default import set_tenant_default, show_tenant_default
from plan_support import add_profile, connect


def _default(sb: Any) -> bool:
    return bool(sb.tenant.invoke("Get-OrganizationConfig", {}, side="exo")[0]["ExchangeAttributesCloudManagedByDefault"])


def test_setting_the_default_needs_a_typed_confirmation_and_is_journaled_like_a_row(make_sandbox: Any) -> None:
    sb = make_sandbox(size=40, seed=31)
    name = add_profile(sb)
    runner = CliRunner()
    shown = runner.invoke(cli, ["tenant-default", "show", "--profile", name])
    assert shown.exit_code == 0 and "False (server)" in shown.output

    refused = runner.invoke(cli, ["tenant-default", "set", "cloud", "--profile", name], input="")
    assert refused.exit_code == 3 and "--yes" in refused.output
    assert "created on-premises" in " ".join(refused.output.split())  # the warning first, docs/exchange-facts.md#tenant-wide-default
    assert _default(sb) is False

    done = runner.invoke(cli, ["tenant-default", "set", "cloud", "--profile", name, "--yes"])
    assert done.exit_code == 0, done.output
    assert "verified: ExchangeAttributesCloudManagedByDefault False -> True" in done.output
    assert _default(sb) is True
    journal = list_journals()[0]
    rows = read_journal(journal.path).rows()
    assert [(r["identity"], r["status"], r["before"], r["after"]) for r in rows] == [
        ("OrganizationConfig", "verified", False, True)]
    frame, _ = report_frame([journal.path])
    assert frame.loc[0, "Mode"] == "TenantDefault=cloud"


def test_default_back_to_server_and_an_unchanged_default_is_recorded_as_already(make_sandbox: Any) -> None:
    sb = make_sandbox(size=40, seed=32)
    bridge = connect(sb)
    assert show_tenant_default(bridge).mode == "server"
    same = set_tenant_default(bridge, "server")
    assert same.status == "already" and same.verified
    on = set_tenant_default(bridge, "cloud")
    assert on.status == "verified" and show_tenant_default(bridge).cloud_managed_by_default is True
    assert any("NEW mailboxes only" in w for w in show_tenant_default(bridge).warnings)
    off = set_tenant_default(bridge, "server")
    assert (off.before, off.after, off.status) == (True, False, "verified")
    assert _default(sb) is False
