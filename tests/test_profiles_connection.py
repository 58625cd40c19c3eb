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
from exocm.core.config import Profile, config_path, load_config, save_profile
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
