"""An Entra-like token endpoint: OIDC discovery, client credentials (secret or certificate
assertion), device code (with refresh tokens), and the validation of the tokens it issues.

Paths are those of login.microsoftonline.com, under the sandbox's own host:
  /{tenant}/v2.0/.well-known/openid-configuration   (and /{tenant}/.well-known/...)
  /{tenant}/oauth2/v2.0/token    /{tenant}/oauth2/v2.0/devicecode
  /{tenant}/discovery/v2.0/keys  /common/discovery/instance   /devicelogin (approval page)
`{tenant}` is the tenant id (GUID) or its initial domain. Error bodies follow Entra's shape
({"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
"error_uri"}); the AADSTS codes and texts are Entra's documented ones where noted, else the
sandbox's own approximations (said so at each).

Access tokens are v1-style JWTs (RS256, signed by the sandbox key): iss, aud (the resource,
e.g. the REST base URL: scope is f"{resource}/.default"), tid, exp/nbf/iat, appid, oid,
roles (app-only: Exchange.ManageAsApp) or scp + upn (delegated), uti (unique token id).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from .http import Request, Response
from .tls import TlsMaterial, b64url

#: OIDC scopes msal adds to delegated requests; they name no resource.
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
#: App role an app needs to run Exchange cmdlets app-only (Exchange.ManageAsApp).
APP_ROLE = "Exchange.ManageAsApp"
#: Delegated permission of the EXO V3 module (Exchange.Manage).
DELEGATED_SCOPE = "Exchange.Manage"
#: Seconds a device code stays valid (Entra: 900).
DEVICE_CODE_LIFETIME_S = 900
#: Seconds between device-code polls the sandbox asks for (Entra asks 5; 1 keeps tests quick).
DEVICE_CODE_INTERVAL_S = 1
#: Allowed clock skew for client assertions.
ASSERTION_SKEW_S = 300

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class TokenRejected(Exception):
    """A bearer token the resource must refuse (401)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass
class _DeviceFlow:
    device_code: str
    user_code: str
    client_id: str
    scopes: list[str]
    expires_at: float
    approved: bool = False
    redeemed: bool = False


@dataclass
class _Grant:
    """What a refresh token stands for."""

    client_id: str
    resource: str
    scopes: list[str] = field(default_factory=list)


class TokenService:
    """Entra stand-in for one tenant: one confidential app (secret + certificate) and one
    public client (device code) registered, one admin user for delegated sign-ins."""

    def __init__(self, material: TlsMaterial, *, tenant_id: str, tenant_domain: str,
                 base_url: Callable[[], str], resources: Callable[[], list[str]],
                 clock: Callable[[], float], token_lifetime_s: Callable[[], int],
                 auto_approve_device_code: bool = True,
                 app_roles: Callable[[str], list[str]] | None = None) -> None:
        self.material = material
        self.tenant_id = tenant_id.lower()
        self.tenant_domain = tenant_domain.lower()
        self._base_url = base_url
        self._resources = resources
        self._clock = clock
        self._lifetime = token_lifetime_s
        self.auto_approve_device_code = auto_approve_device_code
        # The app roles granted to the app for a resource (admin consent); default Exchange.ManageAsApp.
        self._app_roles = app_roles or (lambda resource: [APP_ROLE])
        self._key = material.signing_key()
        self._public_key = self._key.public_key()
        self._cert = material.client_certificate()
        cert_key = self._cert.public_key()
        if not isinstance(cert_key, rsa.RSAPublicKey):
            raise ValueError("the sandbox's client certificate must hold an RSA key")
        self._cert_key = cert_key
        self._cert_x5t = b64url(self._cert.fingerprint(hashes.SHA1()))
        self._cert_x5t256 = b64url(self._cert.fingerprint(hashes.SHA256()))
        self._lock = threading.Lock()
        self._issued: set[str] = set()
        self._revoked: set[str] = set()
        self._valid_cache: dict[str, dict[str, Any]] = {}
        self._flows: dict[str, _DeviceFlow] = {}
        self._user_codes: dict[str, str] = {}
        self._refresh: dict[str, _Grant] = {}
        self.admin_upn = f"admin@{self.tenant_domain}"
        self.admin_oid = str(uuid.uuid5(uuid.UUID(self.tenant_id), "sandbox-admin"))
        self.app_oid = str(uuid.uuid5(uuid.UUID(self.tenant_id), "sandbox-app-sp"))

    # -- URLs ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """https://host:port of the sandbox."""
        return self._base_url()

    @property
    def authority(self) -> str:
        """The MSAL authority URL."""
        return f"{self.base_url}/{self.tenant_id}"

    @property
    def token_endpoint(self) -> str:
        """The v2.0 token endpoint (also the audience of client assertions)."""
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def issuer(self) -> str:
        """Issuer of access tokens (v1 style: {authority}/)."""
        return f"{self.authority}/"

    def knows_tenant(self, tenant: str) -> bool:
        """True when `tenant` (GUID or domain) names this tenant."""
        return tenant.lower() in (self.tenant_id, self.tenant_domain)

    # -- routing ---------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        """Answer token-endpoint paths; None when the path is not one of ours."""
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return None
        if parts[0] == "devicelogin":
            return self._device_login(request)
        if parts[:3] == ["common", "discovery", "instance"]:
            return self._instance_discovery(request)
        if len(parts) < 2:
            return None
        tenant, rest = parts[0], parts[1:]
        known_paths = (["v2.0", ".well-known", "openid-configuration"], [".well-known", "openid-configuration"],
                       ["oauth2", "v2.0", "token"], ["oauth2", "v2.0", "devicecode"], ["oauth2", "token"],
                       ["discovery", "v2.0", "keys"], ["discovery", "keys"])
        if rest not in known_paths:
            return None
        if not self.knows_tenant(tenant):
            # Entra, documented: AADSTS90002 for a tenant that does not exist.
            return self._error(400, "invalid_request", 90002,
                               f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                               "and are signing into the correct cloud. Check with your subscription "
                               "administrator, this may happen if there are no active subscriptions for the tenant.")
        if rest[-1] == "openid-configuration":
            return Response.json(200, self.openid_configuration())
        if rest[-1] == "keys":
            return Response.json(200, self.jwks())
        if request.method != "POST":
            return self._error(405, "invalid_request", 900561,  # Entra: AADSTS900561, POST required
                               "The endpoint only accepts POST requests. Received a GET request.")
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        if not form.get("scope") and form.get("resource"):
            # The v1 endpoint names a resource instead of a scope (Entra, documented).
            form["scope"] = f"{form['resource'].rstrip('/')}/.default"
        if rest[-1] == "devicecode":
            return self._device_code(form)
        return self._token(form)

    # -- discovery -------------------------------------------------------------------------
    def openid_configuration(self) -> dict[str, Any]:
        """The OIDC discovery document (shape of Entra's v2.0 document)."""
        a = self.authority
        return {
            "token_endpoint": f"{a}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "jwks_uri": f"{a}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{a}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{a}/openid/userinfo",
            "authorization_endpoint": f"{a}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{a}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{a}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid",
                                 "preferred_username", "upn"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "sandbox.local",
        }

    def jwks(self) -> dict[str, Any]:
        """The signing key set (JWKS) that verifies the sandbox's tokens."""
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._public_key))
        jwk.update({"kid": self.material.signing_key_id, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def _instance_discovery(self, request: Request) -> Response:
        """Answer msal's instance discovery when a client points it at the sandbox."""
        host = self.base_url.split("://", 1)[1]
        return Response.json(200, {
            "tenant_discovery_endpoint": f"{self.authority}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        })

    # -- token grants ----------------------------------------------------------------------
    def _token(self, form: dict[str, str]) -> Response:
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            return self._client_credentials(form)
        if grant == DEVICE_CODE_GRANT:
            return self._device_code_grant(form)
        if grant == "refresh_token":
            return self._refresh_grant(form)
        # Entra, documented: AADSTS70003 unsupported grant type.
        return self._error(400, "unsupported_grant_type", 70003,
                           "The app requested an unsupported grant type ." if not grant else
                           f"The app requested an unsupported grant type '{grant}'.")

    def _client_credentials(self, form: dict[str, str]) -> Response:
        client_id = form.get("client_id", "")
        if client_id.lower() == self.material.device_client_id.lower():
            # Entra, documented: AADSTS7000218 when a public client sends no credential.
            return self._error(401, "invalid_client", 7000218,
                               "The request body must contain the following parameter: "
                               "'client_assertion' or 'client_secret'.")
        if client_id.lower() != self.material.client_id.lower():
            return self._unknown_client(client_id)
        failure = self._authenticate_client(form)
        if failure is not None:
            return failure
        resource, failure = self._resource_from_scope(form.get("scope", ""), app_only=True)
        if failure is not None:
            return failure
        assert resource is not None
        token = self.issue_access_token(resource, appid=self.material.client_id, oid=self.app_oid,
                                        roles=list(self._app_roles(resource)))
        lifetime = self._lifetime()
        return Response.json(200, {"token_type": "Bearer", "expires_in": lifetime,
                                   "ext_expires_in": lifetime, "access_token": token})

    def _authenticate_client(self, form: dict[str, str]) -> Response | None:
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret is not None:
            if secrets.compare_digest(secret.encode(), self.material.client_secret.encode()):
                return None
            # Entra, documented: AADSTS7000215.
            return self._error(401, "invalid_client", 7000215,
                               "Invalid client secret provided. Ensure the secret being sent in the request "
                               "is the client secret value, not the client secret ID, for a secret added to "
                               f"app '{self.material.client_id}'.")
        if assertion is not None:
            if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
                # Entra, documented: AADSTS50027-ish; the sandbox's wording.
                return self._error(401, "invalid_client", 7000219,
                                   "'client_assertion_type' must be "
                                   f"'{CLIENT_ASSERTION_TYPE}'.")
            return self._check_assertion(assertion)
        return self._error(401, "invalid_client", 7000218,
                           "The request body must contain the following parameter: "
                           "'client_assertion' or 'client_secret'.")

    def _check_assertion(self, assertion: str) -> Response | None:
        """Verify a private_key_jwt client assertion against the registered certificate."""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            # Entra: AADSTS50027 invalid JWT token (documented code; wording approximated).
            return self._error(401, "invalid_client", 50027,
                               "JWT token is invalid or malformed.")
        # msal pads the base64url thumbprint ("...="); JOSE says no padding: accept both.
        x5t = str(header.get("x5t") or "").rstrip("=")
        x5t256 = str(header.get("x5t#S256") or "").rstrip("=")
        if not ((x5t and x5t == self._cert_x5t) or (x5t256 and x5t256 == self._cert_x5t256)):
            # Entra, documented: AADSTS700027 (certificate not registered on the application).
            return self._error(401, "invalid_client", 700027,
                               "The certificate with identifier used to sign the client assertion is not "
                               f"registered on application. [Reason - The key was not found., Thumbprint of key "
                               f"used by client: '{x5t or x5t256 or ''}', Please visit the Azure Portal, Graph "
                               "Explorer or directly use MS Graph to see configured keys for app Id "
                               f"'{self.material.client_id}'.]")
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            return self._error(401, "invalid_client", 700027,
                               f"Client assertion contains an invalid signature algorithm '{alg}'.")
        try:
            claims = jwt.decode(assertion, self._cert_key, algorithms=["RS256", "PS256"],
                                options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                                         "verify_nbf": False, "verify_iss": False})
        except jwt.PyJWTError:
            # Entra, documented: AADSTS700027 signature validation failure.
            return self._error(401, "invalid_client", 700027,
                               "Client assertion failed signature validation.")
        audiences = claims.get("aud")
        aud_list = audiences if isinstance(audiences, list) else [audiences]
        valid_auds = {self.token_endpoint.lower(),
                      f"{self.base_url}/{self.tenant_domain}/oauth2/v2.0/token".lower()}
        if not any(isinstance(a, str) and a.lower() in valid_auds for a in aud_list):
            # Entra, documented code AADSTS700212 (no matching audience); wording approximated.
            return self._error(401, "invalid_client", 700212,
                               f"The audience claim of the client assertion must be '{self.token_endpoint}'.")
        cid = self.material.client_id.lower()
        if str(claims.get("iss", "")).lower() != cid or str(claims.get("sub", "")).lower() != cid:
            # Entra, documented: AADSTS700021/700023 family; wording approximated.
            return self._error(401, "invalid_client", 700021,
                               "Client assertion application identifier doesn't match 'client_id' parameter.")
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, (int, float)) or exp + ASSERTION_SKEW_S < now or (
                isinstance(nbf, (int, float)) and nbf - ASSERTION_SKEW_S > now):
            # Entra, documented: AADSTS700024.
            return self._error(401, "invalid_client", 700024,
                               "Client assertion is not within its valid time range.")
        return None

    def _resource_from_scope(self, scope: str, *, app_only: bool) -> tuple[str | None, Response | None]:
        scopes = [s for s in scope.split() if s and s not in _OIDC_SCOPES]
        if not scopes:
            # Entra, documented: AADSTS90014 missing required field.
            return None, self._error(400, "invalid_request", 90014,
                                     "The required field 'scope' is missing from the credential. "
                                     "Ensure that you have all the necessary parameters for the login request.")
        resources = {r.rstrip("/").lower(): r.rstrip("/") for r in self._resources()}
        chosen: str | None = None
        for s in scopes:
            if app_only and not s.endswith("/.default"):
                # Entra, documented: AADSTS1002012.
                return None, self._error(400, "invalid_scope", 1002012,
                                         f"The provided value for scope {s} is not valid. Client credential flows "
                                         "must have a scope value with /.default suffixed to the resource "
                                         "identifier (application ID URI).")
            res = s.rsplit("/", 1)[0] if "/" in s.split("://", 1)[-1] else s
            match = resources.get(res.rstrip("/").lower())
            if match is None:
                # Entra, documented: AADSTS500011.
                return None, self._error(400, "invalid_resource", 500011,
                                         f"The resource principal named {res} was not found in the tenant named "
                                         f"{self.tenant_domain}. This can happen if the application has not been "
                                         "installed by the administrator of the tenant or consented to by any user "
                                         "in the tenant. You might have sent your authentication request to the "
                                         "wrong tenant.")
            if chosen is not None and chosen != match:
                # Entra, documented: AADSTS28000 (scopes for more than one resource).
                return None, self._error(400, "invalid_request", 28000,
                                         "Provided value for the input parameter scope is not valid because it "
                                         "contains more than one resource.")
            chosen = match
        return chosen, None

    # -- device code -----------------------------------------------------------------------
    def _device_code(self, form: dict[str, str]) -> Response:
        client_id = form.get("client_id", "")
        if client_id.lower() not in (self.material.device_client_id.lower(), self.material.client_id.lower()):
            return self._unknown_client(client_id)
        resource, failure = self._resource_from_scope(form.get("scope", ""), app_only=False)
        if failure is not None:
            return failure
        assert resource is not None
        alphabet = string.ascii_uppercase + string.digits
        with self._lock:
            self._expire_flows()
            user_code = "".join(secrets.choice(alphabet) for _ in range(9))
            device_code = secrets.token_urlsafe(48)
            flow = _DeviceFlow(device_code, user_code, client_id,
                               [s for s in form.get("scope", "").split() if s],
                               self._clock() + DEVICE_CODE_LIFETIME_S,
                               approved=self.auto_approve_device_code)
            self._flows[device_code] = flow
            self._user_codes[user_code] = device_code
        uri = f"{self.base_url}/devicelogin"
        return Response.json(200, {
            "user_code": user_code, "device_code": device_code, "verification_uri": uri,
            "expires_in": DEVICE_CODE_LIFETIME_S, "interval": DEVICE_CODE_INTERVAL_S,
            # Entra's message, with the sandbox's URL.
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
                       f"{user_code} to authenticate.",
        })

    def _expire_flows(self) -> None:
        now = self._clock()
        for code, flow in list(self._flows.items()):
            if flow.expires_at + 60 < now:
                del self._flows[code]
                self._user_codes.pop(flow.user_code, None)

    def approve_device_code(self, user_code: str) -> bool:
        """Approve a pending device code as the tenant admin; False when unknown or expired."""
        code = user_code.strip().upper().replace("-", "")
        with self._lock:
            device_code = self._user_codes.get(code)
            flow = self._flows.get(device_code) if device_code else None
            if flow is None or flow.expires_at < self._clock():
                return False
            flow.approved = True
            return True

    def pending_user_codes(self) -> list[str]:
        """User codes waiting for approval (for the CLI and tests)."""
        with self._lock:
            return [f.user_code for f in self._flows.values() if not f.approved and not f.redeemed]

    def _device_login(self, request: Request) -> Response:
        """A minimal stand-in for microsoft.com/devicelogin: POST user_code=... approves."""
        if request.method == "POST":
            form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
            code = form.get("user_code") or request.query.get("user_code", "")
            if self.approve_device_code(code):
                return Response(200, b"Approved. You can close this window.\n",
                                {"Content-Type": "text/plain; charset=utf-8"})
            return Response(400, b"That code is unknown or has expired.\n",
                            {"Content-Type": "text/plain; charset=utf-8"})
        page = (b"<html><body><h1>exocm sandbox sign-in</h1><form method='post'>"
                b"<input name='user_code'/><button>Approve</button></form></body></html>")
        return Response(200, page, {"Content-Type": "text/html; charset=utf-8"})

    def _device_code_grant(self, form: dict[str, str]) -> Response:
        code = form.get("device_code", "")
        with self._lock:
            flow = self._flows.get(code)
            if flow is None or flow.redeemed:
                # Entra, documented: AADSTS70000 invalid grant (device code unknown or used).
                return self._error(400, "invalid_grant", 70000,
                                   "The provided value for the input parameter 'device_code' is not valid.")
            if flow.expires_at < self._clock():
                # Entra, documented: expired_token / AADSTS70020.
                return self._error(400, "expired_token", 70020, "The device code has expired.")
            if not flow.approved:
                # Entra, documented: authorization_pending / AADSTS70016.
                return self._error(400, "authorization_pending", 70016,
                                   "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
            flow.redeemed = True
        resource, failure = self._resource_from_scope(" ".join(flow.scopes), app_only=False)
        if failure is not None:
            return failure
        assert resource is not None
        return self._delegated_tokens(flow.client_id, resource, flow.scopes)

    def _refresh_grant(self, form: dict[str, str]) -> Response:
        rt = form.get("refresh_token", "")
        with self._lock:
            grant = self._refresh.get(rt)
        if grant is None or grant.client_id.lower() != form.get("client_id", "").lower():
            # Entra, documented: AADSTS9002313 invalid request / invalid_grant for a bad refresh token.
            return self._error(400, "invalid_grant", 9002313,
                               "Invalid request. Request is malformed or invalid.")
        scope = form.get("scope", "")
        resource = grant.resource
        if scope.strip():
            resource_or_none, failure = self._resource_from_scope(scope, app_only=False)
            if failure is not None:
                return failure
            assert resource_or_none is not None
            resource = resource_or_none
        return self._delegated_tokens(grant.client_id, resource, scope.split() or grant.scopes)

    def _delegated_tokens(self, client_id: str, resource: str, scopes: list[str]) -> Response:
        token = self.issue_access_token(resource, appid=client_id, oid=self.admin_oid,
                                        scp=DELEGATED_SCOPE, upn=self.admin_upn)
        refresh = secrets.token_urlsafe(48)
        with self._lock:
            self._refresh[refresh] = _Grant(client_id, resource, scopes)
        now = int(self._clock())
        lifetime = self._lifetime()
        id_token = jwt.encode({
            "aud": client_id, "iss": f"{self.authority}/v2.0", "iat": now, "nbf": now, "exp": now + 3600,
            "name": "Sandbox Admin", "oid": self.admin_oid, "preferred_username": self.admin_upn,
            "sub": hashlib.sha256(f"{self.admin_oid}:{client_id}".encode()).hexdigest()[:43],
            "tid": self.tenant_id, "ver": "2.0",
        }, self._key, algorithm="RS256", headers={"kid": self.material.signing_key_id})
        client_info = b64url(json.dumps({"uid": self.admin_oid, "utid": self.tenant_id}).encode())
        granted = " ".join([f"{resource}/{DELEGATED_SCOPE}"] + [s for s in scopes if s in _OIDC_SCOPES])
        return Response.json(200, {
            "token_type": "Bearer", "scope": granted, "expires_in": lifetime, "ext_expires_in": lifetime,
            "access_token": token, "refresh_token": refresh, "id_token": id_token, "client_info": client_info,
        })

    # -- access tokens ---------------------------------------------------------------------
    def issue_access_token(self, resource: str, *, appid: str, oid: str, roles: list[str] | None = None,
                           scp: str | None = None, upn: str | None = None,
                           lifetime_s: int | None = None) -> str:
        """Sign an access token for `resource` (its audience)."""
        now = int(self._clock())
        uti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "aud": resource, "iss": self.issuer, "iat": now, "nbf": now,
            "exp": now + (self._lifetime() if lifetime_s is None else lifetime_s),
            "appid": appid, "appidacr": "2" if roles is not None else "0", "idp": self.issuer, "oid": oid,
            "sub": oid, "tid": self.tenant_id, "uti": uti, "ver": "1.0",
        }
        if roles is not None:  # app-only: even an empty list says "no roles granted"
            claims["roles"] = roles
        if scp:
            claims["scp"] = scp
        if upn:
            claims["upn"] = upn
            claims["unique_name"] = upn
        with self._lock:
            self._issued.add(uti)
        return jwt.encode(claims, self._key, algorithm="RS256",
                          headers={"kid": self.material.signing_key_id, "x5t": self.material.signing_key_id})

    def revoke_tokens(self) -> int:
        """Make every access token issued so far fail as expired; returns how many."""
        with self._lock:
            count = len(self._issued)
            self._revoked |= self._issued
            self._issued = set()
            self._valid_cache.clear()
        return count

    def validate(self, authorization: str, audience: str, tenant: str) -> dict[str, Any]:
        """Check an Authorization header for `audience` and `tenant`; raises TokenRejected."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected("invalid_request", "The request does not carry a bearer token.")
        token = token.strip()
        claims = self._valid_cache.get(token)
        if claims is None:
            try:
                claims = jwt.decode(token, self._public_key, algorithms=["RS256"],
                                    options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                                             "verify_nbf": False, "verify_iss": False})
            except jwt.PyJWTError:
                raise TokenRejected("invalid_token", "The token signature is invalid.") from None
            if len(self._valid_cache) > 4096:
                self._valid_cache.clear()
            self._valid_cache[token] = claims
        if claims.get("uti") in self._revoked:
            raise TokenRejected("invalid_token", "The token has expired.")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= self._clock():
            raise TokenRejected("invalid_token", "The token has expired.")
        aud = str(claims.get("aud", "")).rstrip("/").lower()
        if aud != audience.rstrip("/").lower():
            raise TokenRejected("invalid_token", f"The audience '{claims.get('aud')}' is invalid.")
        tid = str(claims.get("tid", "")).lower()
        if tid != self.tenant_id or not self.knows_tenant(tenant):
            raise TokenRejected("invalid_token", "The token was issued for another tenant.")
        return claims

    # -- errors ----------------------------------------------------------------------------
    def _unknown_client(self, client_id: str) -> Response:
        # Entra, documented: AADSTS700016.
        return self._error(400, "unauthorized_client", 700016,
                           f"Application with identifier '{client_id}' was not found in the directory "
                           f"'{self.tenant_domain}'. This can happen if the application has not been installed "
                           "by the administrator of the tenant or consented to by any user in the tenant. "
                           "You may have sent your authentication request to the wrong tenant.")

    def _error(self, status: int, error: str, code: int, text: str) -> Response:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        stamp_text = stamp.strftime("%Y-%m-%d %H:%M:%SZ")
        description = (f"AADSTS{code}: {text} Trace ID: {trace_id} Correlation ID: {correlation_id} "
                       f"Timestamp: {stamp_text}")
        return Response.json(status, {
            "error": error, "error_description": description, "error_codes": [code],
            "timestamp": stamp_text, "trace_id": trace_id, "correlation_id": correlation_id,
            "error_uri": f"{self.base_url}/error?code={code}",
        })


def default_clock() -> float:
    """Wall-clock seconds since the epoch (the sandbox's default clock)."""
    return time.time()
