"""Where a profile's Microsoft Graph lives, and a Graph bridge for it.

Microsoft's clouds serve Graph at their own host (access/clouds.py: `graph.microsoft.com`,
`graph.microsoft.us`, `dod-graph.microsoft.us`, `microsoftgraph.chinacloudapi.cn`) with the token
scope `<host>/.default`; a profile may name another (`extra.graph_base_url`, the sandbox's
`{base}/graph`) with its own scope (`extra.graph_scope`).
"""
from __future__ import annotations

import time
from collections.abc import Mapping

from ..bridge.graph import GraphBridge
from ..bridge.retry import RetryPolicy, Sleep
from ..bridge.tokens import TokenProvider
from .clouds import CUSTOM, get_cloud
from .config import ConfigError, Profile


def graph_endpoint(profile: Profile) -> tuple[str, str]:
    """(Graph base URL, token scope) for a profile: its `extra.graph_base_url`, else its cloud's Graph."""
    extra = profile.extra or {}
    base = extra.get("graph_base_url")
    if isinstance(base, str) and base:
        base = base.rstrip("/")
        scope = extra.get("graph_scope")
        return base, str(scope) if isinstance(scope, str) and scope else f"{base}/.default"
    if profile.cloud == CUSTOM:
        raise ConfigError(f"profile {profile.name!r} names no Graph endpoint: set extra.graph_base_url "
                          "(groups, contacts, users and runbooks are reached through Microsoft Graph)")
    cloud = get_cloud(profile.cloud)
    return cloud.graph_base_url, f"{cloud.graph_base_url}/.default"


def open_graph(profile: Profile, *, env: Mapping[str, str] | None = None, persist_tokens: bool = True,
               token_provider: TokenProvider | None = None, sleep: Sleep = time.sleep,
               max_concurrency: int = 8, retry_policy: RetryPolicy | None = None,
               timeout: float = 60.0) -> GraphBridge:
    """A Graph bridge for the profile's tenant (no network until the first call)."""
    base, scope = graph_endpoint(profile)
    if token_provider is None:
        from .auth import MsalTokenProvider
        from .token_cache import build_token_cache, memory_token_cache

        profile.validate()
        cache = build_token_cache() if persist_tokens else memory_token_cache()
        token_provider = MsalTokenProvider.from_profile(profile, env=env, token_cache=cache, scope=scope)
    return GraphBridge(base, token_provider, tenant=profile.tenant, ca_file=profile.ca_file, sleep=sleep,
                       max_concurrency=max_concurrency, retry_policy=retry_policy, timeout=timeout)
