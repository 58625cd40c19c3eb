"""`exocm inventory`: CSV for Excel, JSON and table output, SANDBOX labels, snapshots."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from exocm.cli.main import cli
from exocm.core.access.config import sandbox_profile, save_profile, store_sandbox_secret
from exocm.core.model import INVENTORY_COLUMNS
from exocm.sandbox.server import Sandbox


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EXOCM_PROFILE", raising=False)
    return tmp_path


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def test_sandbox_inventory_as_csv_has_a_bom_every_column_and_says_sandbox() -> None:
    result = CliRunner().invoke(cli, ["inventory", "--sandbox", "--size", "300", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("\ufeff\"Tenant\",\"ExternalDirectoryObjectId\"")
    assert "SANDBOX" in result.stderr  # the header line on stderr
    rows = _rows(result.stdout)
    assert len(rows) > 250 and {r["Tenant"] for r in rows} == {"SANDBOX"}
    assert list(rows[0]) == ["Tenant", *INVENTORY_COLUMNS]
    assert len({r["ExternalDirectoryObjectId"] for r in rows}) == len(rows)
    assert b"\r\n" in result.stdout_bytes  # Excel's line ends


def test_csv_escapes_formula_cells_and_table_output_is_inert(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(size=60, seed=5)
    with sb.tenant.lock:
        victim = next(r for r in sb.tenant.exo.values() if r.rtd == "UserMailbox")
        with sb.tenant.editing_exo(victim):
            victim.display_name = "=HYPERLINK(\"http://evil\",\"x\")\x1b[31m"
            victim.ca = {1: "+1-555", 2: "@SUM(A1)", 3: "-2"}
    save_profile(sandbox_profile("lab", sb.info))
    store_sandbox_secret("lab", str(sb.info["client_secret"]))
    out = tmp_path / "inv.csv"

    result = CliRunner().invoke(cli, ["inventory", "--profile", "lab", "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    row = next(r for r in _rows(data.decode("utf-8")) if r["ExternalDirectoryObjectId"] == victim.edoid)
    assert row["DisplayName"].startswith("'=HYPERLINK(")
    assert (row["CustomAttribute1"], row["CustomAttribute2"], row["CustomAttribute3"]) == ("'+1-555", "'@SUM(A1)", "'-2")
    assert row["Tenant"] == "SANDBOX"  # a sandbox profile is labelled too

    table = CliRunner().invoke(cli, ["inventory", "--profile", "lab"])  # from the snapshot now
    assert table.exit_code == 0, table.output
    assert table.stdout.startswith("# SANDBOX: tenant ")
    assert "\x1b" not in table.stdout and "=HYPERLINK(" in table.stdout
    assert "snapshot from" in table.stderr


def test_json_output_names_the_sandbox_and_carries_every_record() -> None:
    result = CliRunner().invoke(cli, ["inventory", "--sandbox", "--size", "80", "--format", "json",
                                      "--dirsynced-only"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["sandbox"] is True and doc["label"] == "SANDBOX" and doc["dirsynced_only"] is True
    assert doc["count"] == len(doc["records"]) > 0
    record = doc["records"][0]
    assert record["IsDirSynced"] is True and isinstance(record["EmailAddresses"], list)
    assert record["WhenChanged"].endswith("Z")


def test_no_profile_configured_means_the_embedded_sandbox() -> None:
    result = CliRunner().invoke(cli, ["inventory", "--size", "50"])
    assert result.exit_code == 0, result.output
    assert "SANDBOX" in result.stderr and result.stdout.startswith("# SANDBOX: ")


@pytest.mark.parametrize("args", [["inventory", "--sandbox", "--size", "5"],
                                  ["inventory", "--size", "400000"],
                                  ["sandbox", "serve", "--size", "5"]])
def test_a_sandbox_size_the_generator_cannot_build_is_a_usage_error_not_a_traceback(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "10<=x<=300000" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
