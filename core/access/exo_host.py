"""Exchange Online through a Windows management host: a PSRP bridge whose session runs
`Connect-ExchangeOnline -AccessToken` with a token from the profile's MSAL sign-in.

For admins whose network only lets PowerShell remoting out (or who must run from a jump host
with ExchangeOnlineManagement installed). Settings live in the profile's `extra`:
`exo_host_url` (or a sandbox's `winrm_exo_url`), `exo_host_user` (or `winrm_username`),
`exo_host_auth` (default basic over TLS), `exo_host_ca_file`, and optionally
`exo_host_operation_timeout` / `exo_host_read_timeout` (whole seconds, WSMan OperationTimeout and
the HTTP read timeout; defaults 20 / 30, the read timeout must be the longer). The host's password comes from
`EXOCM_EXO_HOST_PASSWORD`, or for a sandbox profile from the sandbox secrets file.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import logs
from .config import ConfigError, Profile, sandbox_secret

if TYPE_CHECKING:
    from ..bridge.psrp import PsrpBridge
    from ..bridge.tokens import TokenProvider

#: Environment variable holding the management host's WinRM password.
PASSWORD_ENV = "EXOCM_EXO_HOST_PASSWORD"


def host_url(host_or_url: str) -> str:
    """`jump01.contoso.com` -> `https://jump01.contoso.com:5986/wsman` (WinRM's HTTPS listener port and
    path by default, Microsoft Learn "Installation and configuration for Windows Remote Management");
    URLs are kept as given."""
    text = host_or_url.strip()
    return text if "://" in text else f"https://{text}:5986/wsman"


def exo_host_url(profile: Profile) -> str:
    """The profile's management host URL (`extra.exo_host_url`, or a sandbox's `winrm_exo_url`);
    ConfigError when it names none."""
    url = profile.extra.get("exo_host_url") or profile.extra.get("winrm_exo_url")
    if not url:
        raise ConfigError(f"profile {profile.name!r} names no management host (extra.exo_host_url)")
    return str(url)


def open_exo_host_bridge(profile: Profile, *, token_provider: TokenProvider,
                         env: Mapping[str, str] | None = None, **options: Any) -> PsrpBridge:
    """A PSRP bridge to EXO through the profile's management host (no network until the first call)."""
    import os

    from ..bridge.psrp import PsrpBridge, PsrpEndpoint

    env = os.environ if env is None else env
    extra = profile.extra
    url = exo_host_url(profile)
    password = env.get(PASSWORD_ENV)
    logs.register_secret(password)
    if password is None and profile.sandbox:
        password = sandbox_secret(profile.name, kind="winrm_password")
    timeouts: dict[str, int] = {}
    for key, option in (("exo_host_operation_timeout", "operation_timeout"), ("exo_host_read_timeout", "read_timeout")):
        value = extra.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"profile {profile.name!r}: extra.{key} must be a whole number of seconds >= 1, "
                              f"not {value!r}")
        timeouts[option] = value
    endpoint = PsrpEndpoint(
        url=url,
        auth=str(extra.get("exo_host_auth") or "basic"),
        username=extra.get("exo_host_user") or extra.get("winrm_username"),
        password=password,
        ca_file=extra.get("exo_host_ca_file") or profile.ca_file,
        operation_timeout=timeouts.get("operation_timeout", PsrpEndpoint.operation_timeout),
        read_timeout=timeouts.get("read_timeout", PsrpEndpoint.read_timeout),
    )
    try:
        endpoint.validate()
    except ValueError as exc:
        raise ConfigError(f"profile {profile.name!r}: {exc} (password from {PASSWORD_ENV})") from None
    return PsrpBridge(endpoint, profile.tenant, token_provider=token_provider, **options)
