"""A small Microsoft Graph client: just what the runbooks need (users, licenses, groups).

Same rules as the REST bridge: one httpx client, TLS verified against the profile's CA
bundle with `trust_env=False` when one is named (REQUESTS_CA_BUNDLE and proxies cannot
override it), tokens from core.auth for the Graph audience, `@odata.nextLink` followed only
to the configured origin, reads retried with backoff (Retry-After honoured), writes retried
only when Graph refused them before running (429) or nothing was sent. Anything else that
fails after a write was sent is AppliedUnknown: the caller reads back.

Graph answers errors as `{"error": {"code", "message", "innerError"}}` (Microsoft Graph
"Error responses"); this module is the one place that maps them to the bridge's typed errors.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx
import orjson

from ..access.clouds import CUSTOM, get_cloud
from ..access.config import ConfigError, Profile
from ..bridge.errors import (
    AppliedUnknown,
    AuthFailed,
    BridgeError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ProtocolError,
    Throttled,
    Transient,
)
from ..bridge.http_client import http_client, origin
from ..bridge.retry import Backoff, RetryPolicy, Sleep, parse_retry_after
from ..bridge.tokens import TokenProvider
from ..detect.prerequisites.model import CLOUD_SYNC_APP_ID
from ..detect.prerequisites.model import is_exo_to_ad_template as _is_exo_to_ad
from ..model import PHASE2_WRITEBACK_ATTRIBUTES, Writeback

Record = dict[str, Any]

#: Graph's API version the runbooks use.
API_VERSION: Final = "v1.0"
_MAX_PAGES: Final = 1000


def graph_endpoint(profile: Profile) -> tuple[str, str]:
    """(Graph base URL, token scope) for a profile: its `extra.graph_base_url`, else its cloud's Graph.

    A sandbox profile's Graph lives under `{base}/graph` with its own audience; Microsoft's
    clouds use `https://graph.microsoft.com` (or the national cloud's host) and `<host>/.default`.
    """
    extra = profile.extra or {}
    base = extra.get("graph_base_url")
    if isinstance(base, str) and base:
        base = base.rstrip("/")
        scope = extra.get("graph_scope")
        return base, str(scope) if isinstance(scope, str) and scope else f"{base}/.default"
    if profile.cloud == CUSTOM:
        raise ConfigError(f"profile {profile.name!r} names no Graph endpoint: set extra.graph_base_url "
                          "(runbooks change licenses and group membership through Microsoft Graph)")
    cloud = get_cloud(profile.cloud)
    return cloud.graph_base_url, f"{cloud.graph_base_url}/.default"


def classify_graph(status: int, body: Any, *, what: str, retry_after: float | None,
                   is_write: bool) -> BridgeError:
    """Turn a Graph error answer into a typed bridge error (by status and error code, not text)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    code = str(error.get("code") or "") if isinstance(error, Mapping) else ""
    message = str(error.get("message") or "") if isinstance(error, Mapping) else ""
    text = f"{what}: Graph answered {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if status == 429:
        return Throttled(text, retry_after=retry_after)
    if status in (503, 504) or status >= 500 or status == 408:
        if is_write:
            return AppliedUnknown(f"{text} - the change may have been applied; read it back")
        return Transient(text) if status != 503 else Throttled(text, retry_after=retry_after)
    if status == 401:
        return AuthFailed(text)
    if status == 403:
        return PermissionDenied(text + " (the app needs User.ReadWrite.All, Group.ReadWrite.All, "
                                       "Directory.Read.All or an equivalent role)")
    if status == 404:
        return NotFound(text)
    if status in (400, 409, 412, 422):
        return InvalidInput(text)
    return ProtocolError(text)


class GraphClient:
    """Users, license assignment and group membership over Microsoft Graph (thread-safe httpx client)."""

    def __init__(self, base_url: str, token_provider: TokenProvider, *, ca_file: str | None = None,
                 timeout: float = 60.0, retry_policy: RetryPolicy | None = None, sleep: Sleep = time.sleep,
                 rng: random.Random | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"Graph base URL must be an absolute https URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._api = f"{self.base_url}/{API_VERSION}"
        self._origin = origin(self.base_url)
        self._tokens = token_provider
        self._backoff = Backoff(retry_policy or RetryPolicy(max_attempts=6), sleep, rng or random.Random())
        self._client = http_client(ca_file, timeout)
        #: Requests sent (for tests and progress displays).
        self.requests = 0

    # -- reads -------------------------------------------------------------------------------
    def get_user(self, user: str, *, select: tuple[str, ...] = ()) -> Record:
        """GET /users/{id | userPrincipalName}."""
        params = {"$select": ",".join(select)} if select else None
        return self._json("GET", f"/users/{quote(user, safe='@')}", what=f"read user {user}", params=params)

    def license_details(self, user: str) -> list[Record]:
        """GET /users/{id}/licenseDetails (skuId, skuPartNumber, servicePlans)."""
        return self._list(f"/users/{quote(user, safe='@')}/licenseDetails", what=f"read licenses of {user}")

    def member_of(self, user: str) -> list[Record]:
        """GET /users/{id}/memberOf, groups only."""
        items = self._list(f"/users/{quote(user, safe='@')}/memberOf", what=f"read groups of {user}")
        return [g for g in items if str(g.get("@odata.type", "#microsoft.graph.group")).endswith(".group")]

    def get_group(self, group: str) -> Record:
        """GET /groups/{id} (incl. onPremisesSyncEnabled and assignedLicenses)."""
        return self._json("GET", f"/groups/{quote(group)}", what=f"read group {group}")

    def group_members(self, group: str) -> list[Record]:
        """GET /groups/{id}/members."""
        return self._list(f"/groups/{quote(group)}/members", what=f"read members of group {group}")

    # -- writes ------------------------------------------------------------------------------
    def assign_license(self, user: str, *, add: list[str] | None = None, remove: list[str] | None = None) -> Record:
        """POST /users/{id}/assignLicense (direct assignments; both lists are always sent)."""
        body = {"addLicenses": [{"skuId": s, "disabledPlans": []} for s in (add or [])],
                "removeLicenses": list(remove or [])}
        return self._json("POST", f"/users/{quote(user, safe='@')}/assignLicense", body=body,
                          what=f"assignLicense for {user}")

    def add_group_member(self, group: str, user: str) -> None:
        """POST /groups/{id}/members/$ref (cloud groups only; Graph refuses synced groups)."""
        ref = {"@odata.id": f"{self._api}/directoryObjects/{user}"}
        self._request("POST", f"/groups/{quote(group)}/members/$ref", body=ref,
                      what=f"add {user} to group {group}")

    def remove_group_member(self, group: str, user: str) -> None:
        """DELETE /groups/{id}/members/{user}/$ref (cloud groups only)."""
        self._request("DELETE", f"/groups/{quote(group)}/members/{quote(user)}/$ref",
                      what=f"remove {user} from group {group}")

    def writeback(self) -> Writeback:
        """Is Cloud Sync's "EXO to AD attribute sync" configured? (Graph: the Cloud Sync service
        principal's synchronization jobs; docs/exchange-facts.md#writeback-to-ad).

        A job whose templateId names EXO-to-AD attribute sync means Phase 2 writeback of
        PHASE2_WRITEBACK_ATTRIBUTES; none means nothing reaches AD. Any Graph failure: unknown.
        Kept small and self-contained so it can move to a general Graph bridge."""
        try:
            principals = self._list(f"/servicePrincipals?$filter=appId eq '{CLOUD_SYNC_APP_ID}'",
                                    what="list the Cloud Sync service principal")
            for sp in principals:
                if str(sp.get("appId", "")).lower() != CLOUD_SYNC_APP_ID:
                    continue
                jobs = self._list(f"/servicePrincipals/{quote(str(sp.get('id', '')), safe='')}/synchronization/jobs",
                                  what="list Cloud Sync jobs")
                for job in jobs:
                    template = str(job.get("templateId") or job.get("id") or "")
                    if _is_exo_to_ad(template):
                        return Writeback(True, PHASE2_WRITEBACK_ATTRIBUTES,
                                         f"Cloud Sync job {template} (Graph)")
        except BridgeError as exc:
            return Writeback(None, (), f"could not read Cloud Sync jobs from Graph ({exc.message})")
        return Writeback(False, (), "no Cloud Sync EXO-to-AD job (Graph)")

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, path: str, *, params: Mapping[str, str] | None = None, version: str = API_VERSION,
             headers: Mapping[str, str] | None = None) -> Any:
        """GET one resource of `version` (v1.0 or beta): the parsed JSON, or the text of a text answer
        (a `$count`)."""
        response = self._request("GET", f"{self.base_url}/{version}{path}", what=f"GET {path}", params=params,
                                 headers=headers)
        if response.headers.get("Content-Type", "").startswith("text/plain"):
            return response.text
        return self._parse(response, f"GET {path}")

    def read_all(self, path: str, *, params: Mapping[str, str] | None = None, version: str = API_VERSION,
                 headers: Mapping[str, str] | None = None) -> list[Record]:
        """GET a collection of `version` and every page after it (nextLinks only to the same origin)."""
        return self._list(path, what=f"GET {path}", params=params, version=version, headers=headers)

    # -- plumbing ----------------------------------------------------------------------------
    def _json(self, method: str, path: str, *, what: str, body: Any = None,
              params: Mapping[str, str] | None = None) -> Record:
        response = self._request(method, path, what=what, body=body, params=params)
        data = self._parse(response, what)
        if not isinstance(data, dict):
            raise ProtocolError(f"{what}: Graph answered something that is not a JSON object")
        return data

    def _list(self, path: str, *, what: str, params: Mapping[str, str] | None = None,
              version: str = API_VERSION, headers: Mapping[str, str] | None = None) -> list[Record]:
        out: list[Record] = []
        url: str | None = f"{self.base_url}/{version}{path}"
        first = True
        for _ in range(_MAX_PAGES):
            if url is None:
                return out
            data = self._parse(self._request("GET", url, what=what, params=params if first else None,
                                             headers=headers), what)
            first = False
            value = data.get("value") if isinstance(data, dict) else None
            if not isinstance(value, list):
                raise ProtocolError(f"{what}: Graph answered no 'value' list")
            out.extend(v for v in value if isinstance(v, dict))
            link = data.get("@odata.nextLink")
            if link is not None and (not isinstance(link, str) or origin(link) != self._origin):
                # Tokens go only to the configured endpoint.
                raise ProtocolError(f"{what}: Graph sent a nextLink to another host; not followed")
            url = link
        raise ProtocolError(f"{what}: more than {_MAX_PAGES} pages")

    @staticmethod
    def _parse(response: httpx.Response, what: str) -> Any:
        if not response.content:
            return {}
        try:
            return orjson.loads(response.content)  # ~3x faster than json on 100,000-user listings
        except ValueError:
            raise ProtocolError(f"{what}: Graph answered {response.status_code} with a body that is not JSON") \
                from None

    def _request(self, method: str, path_or_url: str, *, what: str, body: Any = None,
                 params: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> httpx.Response:
        url = path_or_url if path_or_url.startswith("https://") else f"{self._api}{path_or_url}"
        is_write = method != "GET"
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            token = self._tokens.token()
            sent_headers = {**(headers or {}), "Authorization": f"Bearer {token}", "Accept": "application/json",
                            "client-request-id": str(uuid.uuid4())}
            sent = False
            try:
                self.requests += 1
                request = self._client.build_request(method, url, json=body, params=params, headers=sent_headers)
                sent = True
                response = self._client.send(request)
            except httpx.ConnectError:
                error: BridgeError = Transient(f"{what}: cannot connect to Graph at {self.base_url}")
                sent = False
            except httpx.HTTPError as exc:
                error = Transient(f"{what}: connection to Graph failed ({type(exc).__name__})")
                if is_write and sent:
                    raise AppliedUnknown(f"{error.message} - the change may have been applied; read it back") \
                        from None
            else:
                if response.status_code < 400:
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                error = classify_graph(response.status_code, self._parse_quiet(response), what=what,
                                       retry_after=retry_after, is_write=is_write)
                if isinstance(error, AuthFailed) and not refreshed:
                    refreshed = True
                    self._tokens.refresh()
                    continue
            if not isinstance(error, Transient) or self._backoff.gives_up(attempt):
                raise error
            self._backoff.wait(attempt, error.retry_after if isinstance(error, Throttled) else None)

    @staticmethod
    def _parse_quiet(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None


def open_graph(profile: Profile, *, env: Mapping[str, str] | None = None, persist_tokens: bool = True,
               token_provider: TokenProvider | None = None, sleep: Sleep = time.sleep) -> GraphClient:
    """A Graph client for the profile's tenant (no network until the first call)."""
    base, scope = graph_endpoint(profile)
    if token_provider is None:
        from ..access.auth import MsalTokenProvider
        from ..access.token_cache import build_token_cache, memory_token_cache

        profile.validate()
        cache = build_token_cache() if persist_tokens else memory_token_cache()
        token_provider = MsalTokenProvider.from_profile(profile, env=env, token_cache=cache, scope=scope)
    return GraphClient(base, token_provider, ca_file=profile.ca_file, sleep=sleep)
