"""Sign-in through real msal against the sandbox's Entra-like endpoint over loopback TLS:
secret, certificate (PFX and PEM), device code; failures are one line and exit code 4."""
from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from cli_support import add_sandbox_profile
from click.testing import CliRunner
from exocm.cli.connection import connection_options, open_connection
from exocm.cli.errors import handle_errors
from exocm.cli.main import cli
from exocm.core.access.auth import DeviceCode, MsalTokenProvider
from exocm.core.access.config import Profile, sandbox_profile
from exocm.core.access.connect import open_bridge
from exocm.core.access.token_cache import build_token_cache, memory_token_cache
from exocm.core.bridge.errors import AuthFailed
from exocm.sandbox.server import Sandbox
from exocm.sandbox.tenant import Tenant


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox.start(tenant=Tenant(seed=7), port=0)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXOCM_TOKEN_CACHE", "file")
    # These machines set them (and admin workstations often do): they must not override the
    # profile's CA bundle, or sign-in to the sandbox would fail TLS verification.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    return tmp_path


def _profile_and_env(info: dict[str, Any], kind: str) -> tuple[Profile, dict[str, str]]:
    if kind == "certificate-pem":
        prof = sandbox_profile("lab", info, auth="certificate")
        prof.pfx_file = prof.pfx_passphrase_env = None
        prof.cert_pem_file = info["client_cert_pem_file"]
        prof.key_pem_file = info["client_key_pem_file"]
        prof.cert_thumbprint = info["client_cert_thumbprint"]
        return prof, {}
    prof = sandbox_profile("lab", info, auth=kind)
    env: dict[str, str] = {}
    if prof.secret_env:
        env[prof.secret_env] = info["client_secret"]
    if prof.pfx_passphrase_env:
        env[prof.pfx_passphrase_env] = info["client_pfx_passphrase"]
    return prof, env


@pytest.mark.parametrize("kind", ["secret", "certificate", "certificate-pem", "device_code"])
def test_each_sign_in_kind_reaches_exchange_through_msal_and_tls(sb: Sandbox, kind: str) -> None:
    prof, env = _profile_and_env(sb.info, kind)
    codes: list[DeviceCode] = []
    with open_bridge(prof, env=env, persist_tokens=False, device_code_callback=codes.append) as bridge:
        org = bridge.invoke("Get-OrganizationConfig")
        anchor = bridge.anchor_mailbox
    assert org and org[0]["ExchangeAttributesCloudManagedByDefault"] in (True, False)
    if kind == "device_code":
        assert len(codes) == 1 and codes[0].user_code and codes[0].verification_uri.startswith("https://")
        assert anchor.startswith("UPN:admin@")
    else:
        assert not codes
        assert anchor == f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{sb.info['tenant']}"


def test_device_code_sign_in_is_reused_from_a_private_token_cache(sb: Sandbox, private_dirs: Path) -> None:
    prof, _ = _profile_and_env(sb.info, "device_code")
    cache_file = private_dirs / "data" / "tokens" / "cache.json"
    codes: list[DeviceCode] = []
    first = MsalTokenProvider.from_profile(prof, token_cache=build_token_cache(cache_file),
                                           device_code_callback=codes.append)
    token = first.token()
    assert len(codes) == 1 and first.username and first.username.startswith("admin@")
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_file.parent.stat().st_mode) == 0o700
    # A later run (new provider, no way to prompt) signs in silently from the cache.
    later = MsalTokenProvider.from_profile(prof, token_cache=build_token_cache(cache_file))
    assert later.token() and later.refresh() != token
    assert len(codes) == 1


def test_without_a_cached_sign_in_device_code_needs_login(sb: Sandbox) -> None:
    prof, _ = _profile_and_env(sb.info, "device_code")
    provider = MsalTokenProvider.from_profile(prof, token_cache=memory_token_cache())
    with pytest.raises(AuthFailed, match="exocm login"):
        provider.token()


def test_bad_secret_and_wrong_tenant_are_auth_failures_without_the_secret(sb: Sandbox) -> None:
    prof, _ = _profile_and_env(sb.info, "secret")
    assert prof.secret_env
    with pytest.raises(AuthFailed) as bad:
        MsalTokenProvider.from_profile(prof, env={prof.secret_env: "not-the-secret"}).token()
    assert "invalid_client" in bad.value.message and "not-the-secret" not in bad.value.message
    wrong = sandbox_profile("lab", dict(sb.info, authority=sb.info["authority"].rsplit("/", 1)[0]
                                        + "/nosuch.onmicrosoft.com"))
    with pytest.raises(AuthFailed, match="does not know this tenant"):
        MsalTokenProvider.from_profile(wrong, env={prof.secret_env: sb.info["client_secret"]}).token()


def test_tls_verification_stays_on_for_the_sign_in_endpoint(sb: Sandbox) -> None:
    prof, env = _profile_and_env(sb.info, "secret")
    prof.ca_file = "/etc/ssl/certs/ca-certificates.crt"  # a bundle that does not trust the sandbox
    with pytest.raises(AuthFailed, match="TLS verification"):
        MsalTokenProvider.from_profile(prof, env=env).token()


@click.command()
@connection_options
@handle_errors
def probe(profile: str | None, sandbox: bool, size: int, seed: int) -> None:
    """A command shaped like every exocm command: connection options, one call."""
    with open_connection(profile, sandbox, size, seed) as connection:
        click.echo(f"{connection.label} {len(connection.bridge.invoke('Get-OrganizationConfig'))}")


def test_cli_sign_in_works_with_a_sandbox_profile_and_says_sandbox(sb: Sandbox, private_dirs: Path) -> None:
    add_sandbox_profile(sb.info, "lab", private_dirs)
    result = CliRunner().invoke(probe, ["--profile", "lab"])
    assert result.exit_code == 0, result.output
    assert "SANDBOX" in result.output
    login = CliRunner().invoke(cli, ["login", "--profile", "lab"])
    assert login.exit_code == 0 and "signed in" in login.output


@pytest.mark.parametrize("what", ["bad secret", "wrong tenant"])
def test_cli_auth_failure_is_one_line_and_exit_code_4(sb: Sandbox, private_dirs: Path,
                                                      monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    info = dict(sb.info)
    if what == "wrong tenant":
        info["authority"] = info["authority"].rsplit("/", 1)[0] + "/nosuch.onmicrosoft.com"
    add_sandbox_profile(info, "lab", private_dirs)
    if what == "bad secret":
        monkeypatch.setenv("EXOCM_SECRET_LAB", "wrong-secret-value")
    for args, command in ((["--profile", "lab"], probe), (["login", "--profile", "lab"], cli)):
        result = CliRunner().invoke(command, args)
        assert result.exit_code == 4, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("exocm: error:")]
        assert len(errors) == 1 and "authentication failed" in errors[0]
        assert "Traceback" not in result.output and "wrong-secret-value" not in result.output
        assert sb.info["client_secret"] not in result.output


def test_login_proves_the_credential_even_when_a_token_is_cached(sb: Sandbox, private_dirs: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    add_sandbox_profile(sb.info, "lab", private_dirs)
    first = CliRunner().invoke(cli, ["login", "--profile", "lab"])
    assert first.exit_code == 0 and "signed in" in first.output
    # The persisted cache now holds an app token; a rotated (wrong) secret must still be caught.
    monkeypatch.setenv("EXOCM_SECRET_LAB", "rotated-wrong-secret")
    again = CliRunner().invoke(cli, ["login", "--profile", "lab"])
    assert again.exit_code == 4, again.output
    assert "signed in" not in again.output and "rotated-wrong-secret" not in again.output
    monkeypatch.setenv("EXOCM_SECRET_LAB", sb.info["client_secret"])
    assert CliRunner().invoke(cli, ["login", "--profile", "lab"]).exit_code == 0


def test_token_is_renewed_before_it_expires(make_sandbox: Any) -> None:
    sb = make_sandbox(tenant=Tenant(seed=8), token_lifetime_s=60)
    prof, env = _profile_and_env(sb.info, "secret")
    now = [1_000_000.0]
    provider = MsalTokenProvider.from_profile(prof, env=env, token_cache=memory_token_cache(),
                                              clock=lambda: now[0])
    with open_bridge(prof, token_provider=provider) as bridge:
        bridge.invoke("Get-OrganizationConfig")
        first = provider.token()
        now[0] += 30  # half-way: the token is reused
        assert provider.token() == first and provider.acquisitions == 1
        now[0] += 20  # within the margin before expiry: renewed without waiting for a 401
        bridge.invoke("Get-OrganizationConfig")
        assert provider.acquisitions == 2 and provider.token() != first
        assert bridge.snapshot()["token_refreshes"] == 0


def test_wrong_pfx_passphrase_is_an_auth_failure_that_does_not_echo_it(sb: Sandbox) -> None:
    prof, env = _profile_and_env(sb.info, "certificate")
    assert prof.pfx_passphrase_env
    env[prof.pfx_passphrase_env] = "wrong-passphrase-123"
    with pytest.raises(AuthFailed) as info:
        MsalTokenProvider.from_profile(prof, env=env).token()
    assert "certificate" in info.value.message or "credential" in info.value.message
    assert "wrong-passphrase-123" not in info.value.message
