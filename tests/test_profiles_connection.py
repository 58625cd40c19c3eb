"""How commands pick a tenant: the embedded SANDBOX by default, a profile when one is named or
configured, and `exocm login` writing a profile after a real sign-in."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pytest
from cli_support import private_env
from click.testing import CliRunner
from exocm.cli.connection import connection_options, open_connection
from exocm.cli.errors import handle_errors
from exocm.cli.main import cli
from exocm.core.access.config import Profile, config_path, load_config, save_profile
from exocm.sandbox.server import Sandbox
from exocm.sandbox.tenant import Tenant


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_env(monkeypatch, tmp_path)


@click.command()
@connection_options
@handle_errors
def probe(profile: str | None, sandbox: bool, size: int, seed: int) -> None:
    """A command shaped like every exocm command: connection options, then reads."""
    with open_connection(profile, sandbox, size, seed) as connection:
        mailboxes = connection.bridge.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
        click.echo(f"label={connection.label} sandbox={connection.is_sandbox} mailboxes={len(mailboxes)}")


def test_with_no_profile_commands_use_an_embedded_sandbox_labelled_sandbox() -> None:
    result = CliRunner().invoke(probe, ["--size", "40", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "SANDBOX (embedded, 40 users, seed 3, state: " in result.output
    assert "`exocm sandbox reset --size 40 --seed 3` starts over" in result.output
    assert "label=SANDBOX sandbox=True" in result.output
    assert not config_path().exists()  # nothing written


def test_several_profiles_without_a_default_ask_for_one() -> None:
    for name in ("a", "b"):
        save_profile(Profile(name=name, tenant="t", client_id="c", secret_env="S"), make_default=False)
    result = CliRunner().invoke(probe, [])
    assert result.exit_code == 2
    assert "several profiles and no default: pass --profile NAME (known: a, b)" in result.output


def test_sandbox_and_profile_exclude_each_other() -> None:
    result = CliRunner().invoke(probe, ["--sandbox", "--profile", "x"])
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_login_signs_in_then_saves_a_profile_without_the_secret(
        make_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch) -> None:
    sb = make_sandbox(tenant=Tenant(seed=9))
    info = sb.info
    monkeypatch.setenv("EXOCM_SECRET_RIG", info["client_secret"])
    args = ["login", "--profile", "rig", "--tenant", info["tenant"], "--cloud", "custom", "--auth", "secret",
            "--client-id", info["client_id"], "--secret-env", "EXOCM_SECRET_RIG",
            "--authority", info["authority"], "--rest-base-url", info["rest_base_url"],
            "--ca-file", info["ca_file"]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "signed in" in result.output and "profile 'rig' saved" in result.output
    config = load_config()
    assert config.default == "rig" and config.profiles["rig"].secret_env == "EXOCM_SECRET_RIG"
    text = config_path().read_text(encoding="utf-8")
    assert info["client_secret"] not in text
    # --profile from now on, or nothing at all: the default profile, not the embedded sandbox
    used = CliRunner().invoke(probe, [])
    assert used.exit_code == 0 and f"label={info['tenant']} sandbox=False" in used.output


def test_login_with_an_unset_secret_variable_says_what_to_export() -> None:
    result = CliRunner().invoke(cli, ["login", "--profile", "p", "--tenant", "t.onmicrosoft.com",
                                      "--cloud", "commercial", "--auth", "secret", "--client-id", "c",
                                      "--secret-env", "EXOCM_SECRET_NOT_SET_ANYWHERE"])
    assert result.exit_code == 2
    assert "export the client secret in EXOCM_SECRET_NOT_SET_ANYWHERE" in result.output
    assert load_config().profiles == {}


def test_login_sets_the_exo_transport_psrp_through_a_management_host_and_back_to_rest(
        make_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch) -> None:
    sb = make_sandbox(tenant=Tenant(seed=9))
    info = sb.info
    monkeypatch.setenv("EXOCM_SECRET_RIG", info["client_secret"])
    monkeypatch.setenv("EXOCM_EXO_HOST_PASSWORD", info["winrm_password"])
    args = ["login", "--profile", "rig", "--tenant", info["tenant"], "--cloud", "custom", "--auth", "secret",
            "--client-id", info["client_id"], "--secret-env", "EXOCM_SECRET_RIG",
            "--authority", info["authority"], "--rest-base-url", info["rest_base_url"], "--ca-file", info["ca_file"],
            "--exo-transport", "psrp", "--exo-host", info["winrm_exo_url"], "--exo-host-user", info["winrm_username"]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    extra = load_config().profiles["rig"].extra
    assert extra == {"exo_transport": "psrp", "exo_host_url": info["winrm_exo_url"],
                     "exo_host_user": info["winrm_username"]}
    assert info["winrm_password"] not in config_path().read_text(encoding="utf-8")
    expected = len(sb.tenant.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, side="exo"))
    with open_connection("rig") as connection:
        assert connection.bridge.kind == "psrp"
        assert len(connection.bridge.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})) == expected
    # only the transport given: the saved profile is updated (not just signed in again)
    back = CliRunner().invoke(cli, ["login", "--profile", "rig", "--exo-transport", "rest", "--no-check"])
    assert back.exit_code == 0, back.output
    assert "exo_transport" not in load_config().profiles["rig"].extra
    with open_connection("rig") as connection:
        assert connection.bridge.kind == "rest"
        assert len(connection.bridge.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})) == expected


def test_login_with_exo_transport_psrp_and_no_management_host_asks_for_exo_host() -> None:
    result = CliRunner().invoke(cli, ["login", "--profile", "p", "--tenant", "t.onmicrosoft.com", "--cloud",
                                      "commercial", "--auth", "device_code", "--client-id", "c",
                                      "--exo-transport", "psrp", "--no-check"])
    assert result.exit_code == 2 and "missing --exo-host" in result.output, result.output
    assert load_config().profiles == {}
    named = CliRunner().invoke(cli, ["login", "--profile", "p", "--tenant", "t.onmicrosoft.com", "--cloud",
                                     "commercial", "--auth", "device_code", "--client-id", "c",
                                     "--exo-transport", "psrp", "--exo-host", "jump01.contoso.com", "--no-check"])
    assert named.exit_code == 0, named.output
    assert load_config().profiles["p"].extra["exo_host_url"] == "https://jump01.contoso.com:5986/wsman"
