"""On-prem data, live over WinRM: the click options `inventory` and `findings` share, and the loader.

    --onprem-host HOST      Exchange server (or https://server/PowerShell URL) to read live
    --onprem-auth KIND      basic (default, over TLS) | negotiate | kerberos | ntlm | certificate
    --onprem-user U         DOMAIN\\user for basic/negotiate; password from EXOCM_ONPREM_PASSWORD
    --onprem-ca FILE        CA bundle that signed the server's TLS certificate
    --onprem-cert/--onprem-key PEM   client certificate for certificate auth
    --onprem-live           use the profile's on-prem endpoint (profile `extra`, or the sandbox's)

The records go to `onprem_frame_from_records`, the same normalisation the `--onprem-csv` path
ends in, so detection sees the same frame whichever way on-prem data came.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from exocm.core.access.config import ConfigError
from exocm.core.events import ProgressCallback, ignore_progress
from exocm.core.inventory.onprem_live import PASSWORD_ENV, OnPremSettings, settings_from

if TYPE_CHECKING:
    import pandas as pd
    from exocm.core.inventory.onprem import OnPremData

    from .connection import Connection

F = TypeVar("F", bound=Callable[..., Any])

#: Keys the options add to a command's keyword arguments.
ONPREM_OPTION_KEYS = ("onprem_host", "onprem_auth", "onprem_user", "onprem_ca", "onprem_cert", "onprem_key",
                      "onprem_live")


def onprem_options(func: F) -> F:
    """Add the --onprem-* live options to a click command."""
    options = [
        click.option("--onprem-host", "onprem_host", metavar="HOST", default=None,
                     help="Read the on-prem side live from this Exchange server over WinRM "
                          "(HOST or https://HOST/PowerShell)."),
        click.option("--onprem-auth", "onprem_auth", default=None,
                     type=click.Choice(["basic", "negotiate", "kerberos", "ntlm", "certificate"]),
                     help="WinRM authentication (default basic over TLS; negotiate/kerberos need pypsrp's "
                          "Kerberos extras)."),
        click.option("--onprem-user", "onprem_user", metavar="U", default=None,
                     help=f"WinRM user (DOMAIN\\user); the password comes from {PASSWORD_ENV}."),
        click.option("--onprem-ca", "onprem_ca", metavar="FILE", default=None,
                     type=click.Path(exists=True, dir_okay=False),
                     help="CA bundle for the Exchange server's TLS certificate."),
        click.option("--onprem-cert", "onprem_cert", metavar="PEM", default=None,
                     type=click.Path(exists=True, dir_okay=False), help="Client certificate (certificate auth)."),
        click.option("--onprem-key", "onprem_key", metavar="PEM", default=None,
                     type=click.Path(exists=True, dir_okay=False), help="Its private key (certificate auth)."),
        click.option("--onprem-live", "onprem_live", is_flag=True, default=False,
                     help="Read the on-prem side live from the profile's (or sandbox's) WinRM endpoint."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def pop_onprem_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the --onprem-* values out of a command's kwargs (so the rest can go to open_connection)."""
    return {key: kwargs.pop(key, None) for key in ONPREM_OPTION_KEYS}


def onprem_live_requested(options: Mapping[str, Any]) -> bool:
    """True when the options ask for live on-prem data."""
    return bool(options.get("onprem_live") or options.get("onprem_host"))


def _settings(options: Mapping[str, Any], connection: Connection,
              env: Mapping[str, str]) -> tuple[OnPremSettings, dict[str, str]]:
    env = dict(env)
    handle = connection.sandbox_handle
    settings: OnPremSettings | None
    if options.get("onprem_host") is None and handle is not None:
        info = handle.info
        if not info.get("winrm_onprem_url"):
            raise ConfigError("this sandbox serves no WinRM endpoint")
        settings = OnPremSettings(url=str(info["winrm_onprem_url"]), username=str(info["winrm_username"]),
                                  ca_file=str(info["ca_file"]))
        env.setdefault(PASSWORD_ENV, str(info["winrm_password"]))  # in memory only, never os.environ
    else:
        settings = settings_from(connection.profile, host=options.get("onprem_host"),
                                 auth=options.get("onprem_auth"), username=options.get("onprem_user"),
                                 ca_file=options.get("onprem_ca"))
    if settings is None:
        raise ConfigError(f"--onprem-live: profile {connection.profile.name!r} names no on-prem endpoint; "
                          "pass --onprem-host HOST (or set extra.onprem_url in the profile)")
    if options.get("onprem_auth") and options.get("onprem_auth") != settings.auth:
        settings = OnPremSettings(settings.url, str(options["onprem_auth"]), settings.username, settings.ca_file,
                                  settings.configuration, settings.sandbox_profile,
                                  settings.certificate_pem, settings.certificate_key_pem)
    if options.get("onprem_cert") or options.get("onprem_key"):
        settings = OnPremSettings(settings.url, settings.auth, settings.username, settings.ca_file,
                                  settings.configuration, settings.sandbox_profile,
                                  options.get("onprem_cert") or settings.certificate_pem,
                                  options.get("onprem_key") or settings.certificate_key_pem)
    return settings, env


def onprem_settings(options: Mapping[str, Any], connection: Connection,
                    env: Mapping[str, str]) -> tuple[OnPremSettings, dict[str, str]]:
    """The on-prem WinRM endpoint settings the options (or the profile / sandbox) describe, and the
    environment holding its password (a sandbox's in memory, never os.environ)."""
    return _settings(options, connection, env)


def onprem_live_loader(options: Mapping[str, Any], connection: Connection, *,
                       progress: ProgressCallback = ignore_progress,
                       env: Mapping[str, str] | None = None, **bridge_options: Any) -> Callable[[], OnPremData]:
    """A loader of the on-prem side over WinRM as the options (or the profile / sandbox) describe.

    The endpoint and its credentials are resolved now (a profile that names no endpoint, or a
    missing password, is a ConfigError here); each call opens the endpoint, fetches and closes it.
    `inventory`/`findings` call it at once; the TUI hands it to its Session, which calls it when
    detection first needs on-prem data.
    """
    from exocm.core.inventory.onprem_live import endpoint_for, load_onprem_live, open_onprem_bridge

    settings, env_map = _settings(options, connection, os.environ if env is None else env)
    endpoint_for(settings, env_map)  # fails now, not at the first fetch

    def load() -> OnPremData:
        bridge = open_onprem_bridge(settings, env=env_map, **bridge_options)
        try:
            return load_onprem_live(bridge, progress=progress)
        finally:
            bridge.close()

    return load


def load_onprem_live_data(options: Mapping[str, Any], connection: Connection, *,
                          progress: ProgressCallback = ignore_progress,
                          env: Mapping[str, str] | None = None, **bridge_options: Any) -> OnPremData:
    """Fetch the on-prem side over WinRM as the options (or the profile / sandbox) describe."""
    return onprem_live_loader(options, connection, progress=progress, env=env, **bridge_options)()


def check_onprem_sources(onprem_csv: Any, options: Mapping[str, Any]) -> None:
    """--onprem-csv and --onprem-host/--onprem-live name two sources of the same data: refuse both."""
    if onprem_csv is not None and onprem_live_requested(options):
        raise click.UsageError("--onprem-csv and --onprem-host/--onprem-live exclude each other")


def sandbox_onprem_data(connection: Any, workdir: Path) -> OnPremData | None:
    """The embedded sandbox's on-prem side, exported as an Export-Csv file and read back."""
    handle = connection.sandbox_handle
    tenant = getattr(handle, "tenant", None)
    if tenant is None:
        return None
    from exocm.core.inventory.onprem import load_onprem_csv
    from exocm.sandbox.onprem_export import write_onprem_csv  # cli may use the sandbox; core never does

    path = workdir / "sandbox-onprem.csv"
    write_onprem_csv(tenant, path)
    data = load_onprem_csv(path)
    data.source = "sandbox on-prem export (Export-Csv style)"
    return data


def onprem_csv_frame(path: Path, *, shown_notes: int = 20) -> pd.DataFrame:
    """The frame of an on-prem export (--onprem-csv); a file it cannot use is one error line and exit 2.

    Skipped rows (with their line numbers) and the loader's notes go to stderr, as `findings`
    prints them: nothing is dropped silently.
    """
    from exocm.core.inventory.onprem import load_onprem_csv
    from rich.markup import escape

    from .console import stderr_console
    from .errors import fail, inert

    try:
        data = load_onprem_csv(path)
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read the on-prem file {path}: {exc.strerror or exc}")
    notes = [f"on-prem line {bad.line} skipped: {bad.reason}" for bad in data.bad_rows] + list(data.notes)
    err = stderr_console()
    for note in notes[:shown_notes]:
        err.print(f"[yellow]note:[/] {escape(inert(note))}")
    if len(notes) > shown_notes:
        err.print(f"[yellow]note:[/] ... and {len(notes) - shown_notes} more ('exocm findings --onprem-csv "
                  f"{escape(inert(str(path)))} --format json' lists them all)")
    frame: pd.DataFrame = data.frame
    return frame
