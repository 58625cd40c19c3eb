"""Profiles in config.toml: typed, validated, written 0600 atomically; secrets never in it."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from exocm.cli.main import cli
from exocm.core.access.clouds import get_cloud
from exocm.core.access.config import (
    ConfigError,
    Profile,
    config_path,
    load_config,
    remove_profile,
    sandbox_secret,
    sandbox_secrets_path,
    save_profile,
)


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_profile_round_trips_and_files_are_private() -> None:
    prof = Profile(name="prod", tenant="contoso.onmicrosoft.com", client_id="app-id", cloud="gcchigh",
                   auth="secret", secret_env="EXOCM_SECRET_PROD")
    save_profile(prof)
    loaded = load_config()
    assert loaded.default == "prod"
    assert loaded.profiles["prod"] == prof
    assert _mode(config_path()) == 0o600
    assert _mode(config_path().parent) == 0o700
    assert prof.resolved_rest_base_url() == "https://outlook.office365.us"
    assert prof.resolved_authority() == "https://login.microsoftonline.us/contoso.onmicrosoft.com"
    assert prof.resolved_scope() == "https://outlook.office365.us/.default"
    assert remove_profile("prod") and load_config().profiles == {}


def test_clouds_table_names_every_cloud() -> None:
    assert get_cloud("commercial").rest_host == "outlook.office365.com"
    assert get_cloud("GCC").authority_host == "login.microsoftonline.com"
    assert get_cloud("dod").rest_host == "outlook-dod.office365.us"
    assert get_cloud("21Vianet").authority_host == "login.chinacloudapi.cn"
    with pytest.raises(ValueError, match="known"):
        get_cloud("mars")


@pytest.mark.parametrize(("toml", "needle"), [
    ('[profiles.a]\ntenant = 5\nclient_id = "x"\n', "'tenant' must be a string, got an integer"),
    ('[profiles.a]\ntenant = "t"\nclient_id = "x"\nsandbox = "yes"\n', "'sandbox' must be true or false"),
    ('[profiles.a]\ntenant = "t"\nclient_id = "x"\nsecret = "hunter2"\n', "unknown key 'secret'"),
    ('[profiles.a]\ntenant = "t"\nclient_id = "x"\nclient_secret = "hunter2"\n',
     "name that variable in 'secret_env'"),
    ('profiles = 3\n', "'profiles' must be a table"),
    ('[profiles.a\n', "not valid TOML"),
])
def test_wrong_config_gives_one_clear_line(toml: str, needle: str) -> None:
    config_path().parent.mkdir(parents=True)
    config_path().write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config()
    assert needle in str(info.value) and "\n" not in str(info.value) and "hunter2" not in str(info.value)


def test_wrong_config_in_the_cli_is_one_line_and_exit_2() -> None:
    config_path().parent.mkdir(parents=True)
    config_path().write_text('[profiles.a]\ntenant = 5\nclient_id = "x"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["profiles", "list"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "must be a string" in lines[0] and "Traceback" not in result.output


def test_profiles_validate_endpoints_and_credentials() -> None:
    with pytest.raises(ConfigError, match="https"):
        Profile(name="x", tenant="t", client_id="c", cloud="custom", authority="http://a/t",
                rest_base_url="https://r", secret_env="S").validate()
    with pytest.raises(ConfigError, match="secret_env"):
        Profile(name="x", tenant="t", client_id="c").validate()
    with pytest.raises(ConfigError, match="pfx_file"):
        Profile(name="x", tenant="t", client_id="c", auth="certificate").validate()


SANDBOX_LINE = {
    "tenant": "sandbox.onmicrosoft.com", "authority": "https://127.0.0.1:1/tid",
    "client_id": "cid", "client_secret": "throwaway-s3cret", "scope": "https://127.0.0.1:1/.default",
    "rest_base_url": "https://127.0.0.1:1", "ca_file": "CA", "graph_base_url": "https://127.0.0.1:1/graph",
    "device_client_id": "dev", "sandbox": True,
}


def test_profiles_add_from_sandbox_keeps_the_secret_out_of_config(private_dirs: Path) -> None:
    ca = private_dirs / "ca.pem"
    ca.write_text("dummy", encoding="utf-8")
    line = dict(SANDBOX_LINE, ca_file=str(ca))
    info_file = private_dirs / "sandbox.json"
    info_file.write_text("serving...\n" + json.dumps(line) + "\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["profiles", "add", "lab", "--from-sandbox", str(info_file)])
    assert result.exit_code == 0, result.output
    assert "throwaway-s3cret" not in config_path().read_text(encoding="utf-8")
    assert "throwaway-s3cret" not in result.output
    assert sandbox_secret("lab") == "throwaway-s3cret"
    assert _mode(sandbox_secrets_path()) == 0o600
    prof = load_config().profiles["lab"]
    assert prof.sandbox and prof.cloud == "custom" and prof.secret_env == "EXOCM_SECRET_LAB"
    assert prof.extra == {"graph_base_url": "https://127.0.0.1:1/graph"}

    listed = runner.invoke(cli, ["profiles", "list"])
    assert listed.exit_code == 0 and "lab" in listed.output and "SANDBOX" in listed.output
    as_json = runner.invoke(cli, ["profiles", "list", "--format", "json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output.splitlines()[0])["name"] == "lab"
    deprecated = runner.invoke(cli, ["profiles", "list", "--json"])
    assert deprecated.output == as_json.output and "--json" not in runner.invoke(
        cli, ["profiles", "list", "--help"]).output
    shown = runner.invoke(cli, ["profiles", "show", "lab"])
    assert shown.exit_code == 0 and "sandbox.onmicrosoft.com" in shown.output
    assert "throwaway-s3cret" not in shown.output
    removed = runner.invoke(cli, ["profiles", "remove", "lab"])
    assert removed.exit_code == 0 and sandbox_secret("lab") is None
    missing = runner.invoke(cli, ["profiles", "show", "lab"])
    assert missing.exit_code == 2 and "no profile named 'lab'" in missing.output


def test_config_written_atomically_keeps_comments() -> None:
    config_path().parent.mkdir(parents=True, mode=0o700)
    config_path().write_text("# my notes\n", encoding="utf-8")
    os.chmod(config_path(), 0o644)
    save_profile(Profile(name="a", tenant="t", client_id="c", secret_env="S"))
    text = config_path().read_text(encoding="utf-8")
    assert text.startswith("# my notes") and "[profiles.a]" in text
    assert _mode(config_path()) == 0o600
    assert not [p for p in config_path().parent.iterdir() if p.name.endswith(".tmp")]
