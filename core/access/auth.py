"""Sign-in with MSAL: client secret, certificate (PFX or PEM + thumbprint), device code.

`TokenProvider` is what the bridge needs: a bearer token that is refreshed before it
expires and on demand after a 401. `MsalTokenProvider` implements it with msal:

- client secret: read from the environment variable the profile names (never from argv or
  config; a sandbox profile may fall back to its throwaway secret, see core.config);
- certificate: a PFX with its passphrase from an environment variable, or a PEM private
  key + the certificate's SHA-1 thumbprint;
- device code: the callback receives the code and URL (CLI prints, TUI shows them); later
  runs refresh silently from the persisted cache.

Custom authorities (the sandbox, test rigs) use `instance_discovery=False`, and when a CA
bundle is named msal gets a requests session with `trust_env=False` and `verify=ca_file`,
so REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE cannot override it (docs/exchange-facts.md#msal-and-the-ca-bundle-trap, trap).
Tokens, secrets and passphrases never appear in messages or logs.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msal
import requests

from .. import logs
from ..bridge.errors import AuthFailed, Transient
from .config import ConfigError, Profile, sandbox_secret

log = logging.getLogger(__name__)

#: Refresh this long before expiry at most (msal itself treats < 5 min left as expired).
DEFAULT_REFRESH_MARGIN_S = 300.0




@dataclass(frozen=True)
class DeviceCode:
    """What a person needs to finish a device-code sign-in."""

    user_code: str
    verification_uri: str
    message: str
    expires_at: float


DeviceCodeCallback = Callable[[DeviceCode], None]


class _SessionWithTimeout(requests.Session):
    """A requests session with a default timeout (msal passes none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._default_timeout = timeout

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._default_timeout)
        return super().request(method, url, *args, **kwargs)


def msal_http_session(ca_file: str | None, *, timeout: float = 30.0) -> requests.Session:
    """The session msal talks through: with a CA bundle, env variables cannot override it."""
    session = _SessionWithTimeout(timeout)
    if ca_file:
        session.trust_env = False  # REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE/proxies ignored
        session.verify = str(Path(ca_file).expanduser())
    return session


def _first_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.strip().split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _Redactor:
    """Removes known secret values from text that may reach a user."""

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def add(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self._secrets.append(value)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class MsalTokenProvider:
    """TokenProvider over msal (thread-safe; one instance per profile and process)."""

    def __init__(
        self,
        *,
        client_id: str,
        authority: str,
        scope: str,
        auth: str,
        client_credential: str | dict[str, Any] | None = None,
        token_cache: msal.TokenCache | None = None,
        ca_file: str | None = None,
        custom_authority: bool = False,
        device_code_callback: DeviceCodeCallback | None = None,
        username_hint: str | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        timeout: float = 30.0,
        secrets: tuple[str | None, ...] = (),
    ) -> None:
        if auth not in ("secret", "certificate", "device_code"):
            raise ValueError(f"unknown auth kind {auth!r}")
        self.client_id = client_id
        self.authority = authority
        self.scope = scope
        self.auth = auth
        self.ca_file = ca_file
        self._credential = client_credential
        self._cache = token_cache if token_cache is not None else msal.TokenCache()
        self._custom = custom_authority
        self._device_code_callback = device_code_callback
        self._username = username_hint
        self._clock = clock
        self._margin = refresh_margin_s
        self._timeout = timeout
        self._lock = threading.RLock()
        self._app: msal.ClientApplication | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._redact = _Redactor()
        for secret in secrets:
            self._redact.add(secret)
        if isinstance(client_credential, str):
            self._redact.add(client_credential)
        #: Number of tokens obtained from the authority or the cache (for tests and benchmarks).
        self.acquisitions = 0

    # -- construction from a profile -----------------------------------------------------
    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        *,
        env: Mapping[str, str] | None = None,
        token_cache: msal.TokenCache | None = None,
        device_code_callback: DeviceCodeCallback | None = None,
        clock: Callable[[], float] = time.time,
        scope: str | None = None,
    ) -> MsalTokenProvider:
        """Build the provider a profile describes; secrets come from `env` (default os.environ).

        `scope` overrides the profile's Exchange scope (e.g. Microsoft Graph for runbooks).
        """
        env = os.environ if env is None else env
        credential: str | dict[str, Any] | None = None
        secrets: list[str | None] = []
        if profile.auth == "secret":
            credential = _client_secret(profile, env)
        elif profile.auth == "certificate":
            credential = _certificate_credential(profile, env)
            secrets.append(credential.get("passphrase"))
        return cls(
            client_id=profile.client_id,
            authority=profile.resolved_authority(),
            scope=scope or profile.resolved_scope(),
            auth=profile.auth,
            client_credential=credential,
            token_cache=token_cache,
            ca_file=profile.ca_file,
            custom_authority=profile.is_custom or bool(profile.authority),
            device_code_callback=device_code_callback,
            username_hint=profile.username,
            clock=clock,
            secrets=tuple(secrets),
        )

    # -- TokenProvider ----------------------------------------------------------------------
    @property
    def expires_at(self) -> float:
        """Epoch seconds when the current token expires (0 before the first token)."""
        return self._expires_at

    @property
    def username(self) -> str | None:
        """UPN of the signed-in user (device code); None for app-only credentials."""
        return self._username if self.auth == "device_code" else None

    def token(self) -> str:
        """A valid access token; refreshed when within the margin of expiry."""
        with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            return self._acquire(force=self._token is not None and self._clock() >= self._expires_at)

    def refresh(self) -> str:
        """Get a new token even though the current one looks valid (the service said 401)."""
        with self._lock:
            return self._acquire(force=True)

    # -- internals --------------------------------------------------------------------------
    def _build_app(self) -> msal.ClientApplication:
        http = msal_http_session(self.ca_file, timeout=self._timeout)
        common: dict[str, Any] = {
            "authority": self.authority,
            "token_cache": self._cache,
            "http_client": http,
        }
        if self._custom:
            common["instance_discovery"] = False
        try:
            if self.auth == "device_code":
                return msal.PublicClientApplication(self.client_id, **common)
            return msal.ConfidentialClientApplication(
                self.client_id, client_credential=self._credential, **common)
        except requests.exceptions.SSLError:
            raise AuthFailed(f"TLS verification of the sign-in authority {self.authority} failed "
                             "(wrong CA bundle?)") from None
        except requests.exceptions.RequestException as exc:
            raise Transient(f"cannot reach the sign-in authority {self.authority} "
                            f"({exc.__class__.__name__})") from None
        except ValueError as exc:
            text = self._redact(str(exc))
            if "authority" in text.lower() or "discovery" in text.lower() or "tenant" in text.lower():
                raise AuthFailed(f"the sign-in authority {self.authority} does not know this tenant "
                                 "(check the tenant and the cloud)") from None
            raise AuthFailed(f"cannot use the configured credential: {_first_line(text)}") from None

    def _app_or_build(self) -> msal.ClientApplication:
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _acquire(self, *, force: bool) -> str:
        app = self._app_or_build()
        log.debug("signing in (%s%s) at %s", self.auth, ", forced" if force else "", self.authority)
        try:
            if self.auth == "device_code":
                result = self._acquire_delegated(app, force=force)
            else:
                assert isinstance(app, msal.ConfidentialClientApplication)
                if force:
                    self._drop_cached_app_tokens()
                result = app.acquire_token_for_client(scopes=[self.scope])
        except requests.exceptions.SSLError:
            raise AuthFailed(f"TLS verification of the sign-in authority {self.authority} failed") from None
        except requests.exceptions.RequestException as exc:
            raise Transient(f"cannot reach the sign-in authority {self.authority} "
                            f"({exc.__class__.__name__})") from None
        except ValueError as exc:
            raise AuthFailed(f"sign-in failed: {_first_line(self._redact(str(exc)))}") from None
        return self._accept(result)

    def _accept(self, result: dict[str, Any] | None) -> str:
        if not result or "access_token" not in result:
            raise AuthFailed(self._describe_failure(result or {}))
        now = self._clock()
        lifetime = float(result.get("expires_in") or 3600)
        self._token = str(result["access_token"])
        logs.register_secret(self._token)
        log.info("signed in (%s); the access token is valid for %d s", self.auth, int(lifetime))
        self._expires_at = now + lifetime
        self._refresh_at = now + max(lifetime - min(self._margin, lifetime * 0.2), 0.0)
        claims = result.get("id_token_claims") or {}
        upn = claims.get("preferred_username") or claims.get("upn")
        if isinstance(upn, str) and upn:
            self._username = upn
        self.acquisitions += 1
        return self._token

    def _describe_failure(self, result: Mapping[str, Any]) -> str:
        error = str(result.get("error") or "no token")
        description = str(result.get("error_description") or "").split(" Trace ID:")[0]
        description = _first_line(self._redact(description))
        hint = {
            "invalid_client": "check the client id and the secret or certificate",
            "unauthorized_client": "check the client id and that the app exists in this tenant",
            "invalid_request": "check the tenant and the client id",
            "invalid_grant": "sign in again with 'exocm login'",
            "authorization_declined": "the sign-in was declined",
            "expired_token": "the device code expired before sign-in; run 'exocm login' again",
        }.get(error, "")
        parts = [f"sign-in to {self.authority} failed: {error}"]
        if description:
            parts.append(description)
        if hint:
            parts.append(hint)
        return " — ".join(parts)

    def _drop_cached_app_tokens(self) -> None:
        """Client credentials cannot force_refresh in msal: remove our cached access tokens."""
        for entry in list(self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN,
                                             query={"client_id": self.client_id})):
            self._cache.remove_at(entry)

    def _acquire_delegated(self, app: msal.ClientApplication, *, force: bool) -> dict[str, Any] | None:
        assert isinstance(app, msal.PublicClientApplication)
        accounts = app.get_accounts(username=self._username) if self._username else app.get_accounts()
        if accounts:
            result = app.acquire_token_silent_with_error(
                [self.scope], account=accounts[0], force_refresh=force)
            if result and "access_token" in result:
                return dict(result)
        return self._device_flow(app)

    def _device_flow(self, app: msal.PublicClientApplication) -> dict[str, Any] | None:
        if self._device_code_callback is None:
            raise AuthFailed("no valid sign-in in the token cache; run 'exocm login' to sign in "
                             "with a device code")
        flow = app.initiate_device_flow(scopes=[self.scope])
        if "user_code" not in flow:
            raise AuthFailed(self._describe_failure(flow))
        self._device_code_callback(DeviceCode(
            user_code=str(flow["user_code"]),
            verification_uri=str(flow.get("verification_uri") or flow.get("verification_url") or ""),
            message=str(flow.get("message") or ""),
            expires_at=float(flow.get("expires_at") or 0.0),
        ))
        result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
        return result

    def sign_in(self) -> str:
        """Get a token now from the authority, never from the cache alone; for `exocm login`.

        Proves the credential: an app-only token cached by an earlier sign-in would otherwise
        hide a wrong or rotated secret or certificate. A device-code sign-in redeems its cached
        refresh token, or shows a code when there is none (or it no longer works).
        """
        return self.refresh()


# -- credentials from a profile --------------------------------------------------------------
def _client_secret(profile: Profile, env: Mapping[str, str]) -> str:
    if profile.secret_env:
        value = env.get(profile.secret_env)
        if value:
            logs.register_secret(value)  # never in the log file, whatever a library prints
            return value
    if profile.sandbox:
        stored = sandbox_secret(profile.name)
        if stored:
            logs.register_secret(stored)
            return stored
    if not profile.secret_env:
        raise ConfigError(f"profile {profile.name!r}: auth 'secret' needs 'secret_env'")
    raise AuthFailed(f"the client secret is not set: export it in the environment variable "
                     f"{profile.secret_env} (profile {profile.name!r})")


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} {path!r} ({exc.__class__.__name__})") from None


def _certificate_credential(profile: Profile, env: Mapping[str, str]) -> dict[str, Any]:
    passphrase = env.get(profile.pfx_passphrase_env) if profile.pfx_passphrase_env else None
    if passphrase is None and profile.pfx_passphrase_env and profile.sandbox:
        passphrase = sandbox_secret(profile.name, kind="pfx_passphrase")
    logs.register_secret(passphrase)
    if profile.pfx_passphrase_env and passphrase is None:
        raise AuthFailed(f"the certificate passphrase is not set: export it in the environment variable "
                         f"{profile.pfx_passphrase_env} (profile {profile.name!r})")
    if profile.pfx_file:
        pfx = Path(profile.pfx_file).expanduser()
        if not pfx.is_file():
            raise ConfigError(f"profile {profile.name!r}: PFX file {profile.pfx_file!r} does not exist")
        credential: dict[str, Any] = {"private_key_pfx_path": str(pfx)}
        if passphrase is not None:
            credential["passphrase"] = passphrase
        return credential
    assert profile.cert_pem_file and profile.cert_thumbprint  # Profile.validate() ensures it
    cert_text = _read_text(profile.cert_pem_file, "certificate PEM file")
    key_text = _read_text(profile.key_pem_file, "private key PEM file") if profile.key_pem_file else cert_text
    if "PRIVATE KEY-----" not in key_text:
        raise ConfigError(f"profile {profile.name!r}: no private key in "
                          f"{profile.key_pem_file or profile.cert_pem_file!r} (set key_pem_file)")
    credential = {
        "private_key": key_text,
        "thumbprint": profile.cert_thumbprint.replace(":", "").replace(" ", "").upper(),
    }
    if "BEGIN CERTIFICATE" in cert_text:
        start = cert_text.index("-----BEGIN CERTIFICATE-----")
        end = cert_text.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
        credential["public_certificate"] = cert_text[start:end]
    if passphrase is not None:
        credential["passphrase"] = passphrase
    return credential
