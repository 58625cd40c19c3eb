"""Open a bridge for a profile: the one function faces call to reach a tenant.

Exchange Online is reached over REST by default. A profile whose `extra.exo_transport` is
`"psrp"` reaches it through a Windows management host instead (PowerShell remoting, the
session runs `Connect-ExchangeOnline -AccessToken` with a token from the same MSAL sign-in;
see `exo_host`): every caller above the bridge stays transport-blind.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msal

from ..bridge.concurrency import DEFAULT_MAX_CONCURRENCY
from ..bridge.rest import RestBridge, WarningCallback
from ..bridge.retry import Clock, RetryPolicy, Sleep
from ..bridge.tokens import TokenProvider
from .auth import DeviceCodeCallback, MsalTokenProvider
from .config import ConfigError, Profile
from .exo_host import open_exo_host_bridge
from .token_cache import build_token_cache, memory_token_cache

if TYPE_CHECKING:  # pypsrp loads only for a profile that uses it
    from ..bridge.psrp import PsrpBridge

#: How a profile reaches Exchange Online: `extra.exo_transport` (default "rest").
EXO_TRANSPORTS: Final = ("rest", "psrp")


def exo_transport(profile: Profile) -> str:
    """The profile's EXO transport ("rest" or "psrp"); a wrong value is one ConfigError line."""
    value = profile.extra.get("exo_transport", "rest")
    if not isinstance(value, str) or value.lower() not in EXO_TRANSPORTS:
        raise ConfigError(f"profile {profile.name!r}: extra.exo_transport must be one of "
                          f"{', '.join(EXO_TRANSPORTS)}, not {value!r}")
    return value.lower()


def token_provider_for(
    profile: Profile,
    *,
    persist_tokens: bool = True,
    token_cache: msal.TokenCache | None = None,
    device_code_callback: DeviceCodeCallback | None = None,
    env: Mapping[str, str] | None = None,
) -> MsalTokenProvider:
    """The MSAL token provider a profile describes (persisted cache unless told otherwise)."""
    profile.validate()
    if token_cache is None:
        token_cache = build_token_cache() if persist_tokens else memory_token_cache()
    return MsalTokenProvider.from_profile(
        profile, env=env, token_cache=token_cache, device_code_callback=device_code_callback)


def open_bridge(
    profile: Profile,
    *,
    token_provider: TokenProvider | None = None,
    persist_tokens: bool = True,
    token_cache: msal.TokenCache | None = None,
    device_code_callback: DeviceCodeCallback | None = None,
    env: Mapping[str, str] | None = None,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    page_size: int = 1000,
    timeout: float = 120.0,
    retry_policy: RetryPolicy | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    on_warning: WarningCallback | None = None,
    **extra: Any,
) -> RestBridge | PsrpBridge:
    """A bridge to the profile's tenant (no network until the first call): REST, or PSRP through the
    profile's management host when `extra.exo_transport = "psrp"` (then the REST-only options
    `max_concurrency`, `page_size`, `timeout`, `clock` and `extra` do not apply)."""
    transport = exo_transport(profile)
    tokens = token_provider or token_provider_for(
        profile, persist_tokens=persist_tokens, token_cache=token_cache,
        device_code_callback=device_code_callback, env=env)
    if transport == "psrp":
        return open_exo_host_bridge(profile, token_provider=tokens, env=env, retry_policy=retry_policy,
                                    sleep=sleep, on_warning=on_warning)
    return RestBridge(
        profile.resolved_rest_base_url(),
        profile.tenant,
        tokens,
        ca_file=profile.ca_file,
        max_concurrency=max_concurrency,
        page_size=page_size,
        timeout=timeout,
        retry_policy=retry_policy,
        sleep=sleep,
        clock=clock,
        on_warning=on_warning,
        **extra,
    )
