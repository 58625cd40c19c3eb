"""Open a bridge for a profile: the one function faces call to reach a tenant."""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msal

from .auth import DeviceCodeCallback, MsalTokenProvider, TokenProvider
from .bridge.rest import RestBridge, WarningCallback
from .bridge.retry import Clock, RetryPolicy, Sleep
from .config import Profile
from .token_cache import build_token_cache, memory_token_cache


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
    max_concurrency: int = 8,
    page_size: int = 1000,
    timeout: float = 120.0,
    retry_policy: RetryPolicy | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    on_warning: WarningCallback | None = None,
    **extra: Any,
) -> RestBridge:
    """A REST bridge to the profile's tenant (no network until the first call)."""
    tokens = token_provider or token_provider_for(
        profile, persist_tokens=persist_tokens, token_cache=token_cache,
        device_code_callback=device_code_callback, env=env)
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
