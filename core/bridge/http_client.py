"""How exocm builds its HTTPS clients for Microsoft's endpoints (EXO REST, Graph), in one place.

With a CA bundle named (a profile's `ca_file`: the sandbox, a TLS-inspecting proxy's CA) the
client verifies against that bundle only and nothing in the environment may override it
(`trust_env=False`: REQUESTS_CA_BUNDLE, SSL_CERT_FILE and proxy variables are ignored,
docs/exchange-facts.md#msal-and-the-ca-bundle-trap); for Microsoft's clouds the admin's proxy settings are kept. Redirects are never
followed, and page links are checked against the configured origin (`origin`), so a token
goes only where it was meant to.
"""
from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx


def http_client(ca_file: str | None, timeout: float, *, pool: int | None = None) -> httpx.Client:
    """A client that verifies against `ca_file` when named (environment ignored), else the system store.

    `timeout` applies per read/write (connecting gets at most 15 s); `pool` caps the
    connections (and keep-alive connections) when given, else httpx's defaults apply.
    """
    verify: ssl.SSLContext | bool = True
    if ca_file:
        verify = ssl.create_default_context(cafile=str(Path(ca_file).expanduser()))
    limits = (httpx.Limits(max_connections=pool, max_keepalive_connections=pool) if pool
              else httpx.Limits(max_connections=100, max_keepalive_connections=20))  # httpx's defaults
    return httpx.Client(
        verify=verify,
        trust_env=ca_file is None,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        limits=limits,
        follow_redirects=False,
    )


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, lower-cased, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)
