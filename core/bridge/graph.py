"""The Microsoft Graph bridge: exocm's one Graph client (runbooks and object-level SOA).

Same rules as the REST bridge (docs/architecture.md "Bridges"): one httpx client, TLS verified
against the profile's CA bundle with `trust_env=False` when one is named, bearer tokens from a
TokenProvider for the Graph audience, `@odata.nextLink` followed only to the configured origin,
reads retried with backoff (Retry-After honoured), writes retried only when Graph refused them
before running (429) or nothing was sent; anything else that fails after a write was sent is
AppliedUnknown and the caller reads back. Every request holds a slot of the tenant's shared AIMD
limiter (bridge/concurrency.py), so parallel readers and writers stay inside Graph's budget.

Graph facts used here (docs/exchange-facts.md "Object-level SOA through Graph"; Microsoft Graph
docs "Use query parameters", "Advanced query capabilities on Microsoft Entra ID objects",
"Combine multiple requests in one HTTP call using JSON batching", "Microsoft Graph throttling
guidance"):
- list pages follow `@odata.nextLink`; `$top` is at most 999 for directory objects;
- `$count=true` and `$filter` on some properties need `ConsistencyLevel: eventual` (advanced
  queries);
- `POST /$batch` takes at most 20 requests; each answer carries its own status, headers and
  body, and a throttled sub-request answers 429 with its own Retry-After;
- errors are `{"error": {"code", "message", "innerError"}}`; a missing permission is 403
  `Authorization_RequestDenied`.
"""
from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urljoin, urlsplit

import httpx

from .base import counters
from .concurrency import AdaptiveLimiter, limiter_for
from .errors import (
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
from .http_client import http_client, origin
from .retry import Backoff, RetryPolicy, Sleep, parse_retry_after
from .tokens import TokenProvider

Record = dict[str, Any]
#: Graph's generally available API version (groups' onPremisesSyncBehavior, runbooks).
API_VERSION: Final = "v1.0"
#: Graph's preview version (contacts' and users' onPremisesSyncBehavior).
BETA: Final = "beta"
#: Requests per JSON batch (Graph's limit).
BATCH_LIMIT: Final = 20
#: Largest $top Graph accepts for directory objects.
MAX_TOP: Final = 999
_MAX_PAGES: Final = 100_000
#: What the runbooks' Graph calls need when Graph answers 403.
RUNBOOK_PERMISSIONS: Final = "User.ReadWrite.All, Group.ReadWrite.All, Directory.Read.All or an equivalent role"
def classify_graph(status: int, body: Any, *, what: str, retry_after: float | None,
                   is_write: bool, permission: str | None = None) -> BridgeError:
    """Turn a Graph error answer into a typed bridge error (by status and error code, not text).

    A 403 names the permission to grant: `permission` when the caller knows it (object SOA
    names the exact application permission), else the runbooks' set.
    """
    error = body.get("error") if isinstance(body, Mapping) else None
    code = str(error.get("code") or "") if isinstance(error, Mapping) else ""
    message = str(error.get("message") or "") if isinstance(error, Mapping) else ""
    text = f"{what}: Graph answered {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if status == 429:
        return Throttled(text, retry_after=retry_after)
    if status >= 500 or status == 408:
        if is_write:
            return AppliedUnknown(f"{text} - the change may have been applied; read it back")
        return Transient(text) if status != 503 else Throttled(text, retry_after=retry_after)
    if status == 401:
        return AuthFailed(text)
    if status == 403:
        if permission:
            return PermissionDenied(f"{what}: Graph refused it (403 {code or 'Forbidden'}): grant the app the "
                                    f"Microsoft Graph application permission {permission} (admin consent), "
                                    "or sign in as a Hybrid Administrator")
        return PermissionDenied(text + f" (the app needs {RUNBOOK_PERMISSIONS})")
    if status == 404:
        return NotFound(text)
    if status in (400, 409, 412, 422):
        return InvalidInput(text)
    return ProtocolError(text)


@dataclass(frozen=True)
class GraphCall:
    """One request inside a JSON batch: method, path under the version (`/groups/{id}/...`), body."""

    method: str
    path: str
    body: Any = None
    headers: Mapping[str, str] | None = None


@dataclass
class GraphResult:
    """The answer to one GraphCall: status and body, or a typed error."""

    call: GraphCall
    status: int = 0
    body: Any = None
    error: BridgeError | None = None


@dataclass
class GraphStats:
    """Counters of one Graph bridge (thread-safe via the bridge's lock)."""

    requests: int = 0
    pages: int = 0
    records: int = 0
    batches: int = 0
    sub_requests: int = 0
    http_429: int = 0
    throttled: int = 0
    #: 429s answered to writes (PATCH/POST/DELETE) inside a $batch: the write budget apply paces on.
    write_429: int = 0
    retries: int = 0
    token_refreshes: int = 0
    transport_errors: int = 0
    waits_s: list[float] = field(default_factory=list)


class GraphBridge:
    """Microsoft Graph over httpx: reads, pages, JSON batches, typed errors, shared pacing (thread-safe)."""

    kind = "graph"

    def __init__(self, base_url: str, token_provider: TokenProvider, *, tenant: str = "",
                 ca_file: str | None = None, timeout: float = 60.0, retry_policy: RetryPolicy | None = None,
                 sleep: Sleep = time.sleep, rng: random.Random | None = None, max_concurrency: int = 8,
                 limiter: AdaptiveLimiter | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"Graph base URL must be an absolute https URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self._origin = origin(self.base_url)
        self._tokens = token_provider
        self._backoff = Backoff(retry_policy or RetryPolicy(max_attempts=6), sleep, rng or random.Random())
        self.limiter = limiter or limiter_for(self.base_url, tenant or "graph", max_concurrency)
        self._client = http_client(ca_file, timeout, pool=max(max_concurrency, self.limiter.max_limit) + 2)
        self.stats = GraphStats()
        self._lock = threading.Lock()

    @property
    def requests(self) -> int:
        """HTTP requests sent (for tests and progress displays)."""
        return self.stats.requests

    def api(self, version: str = API_VERSION) -> str:
        """The base URL of one API version."""
        return f"{self.base_url}/{version}"

    # -- runbook reads ---------------------------------------------------------------------------
    def get_user(self, user: str, *, select: tuple[str, ...] = ()) -> Record:
        """GET /users/{id | userPrincipalName}."""
        params = {"$select": ",".join(select)} if select else None
        return self._json("GET", f"/users/{quote(user, safe='@')}", what=f"read user {user}", params=params)

    def license_details(self, user: str) -> list[Record]:
        """GET /users/{id}/licenseDetails (skuId, skuPartNumber, servicePlans)."""
        return self.list_all(f"/users/{quote(user, safe='@')}/licenseDetails", what=f"read licenses of {user}")

    def member_of(self, user: str) -> list[Record]:
        """GET /users/{id}/memberOf, groups only."""
        items = self.list_all(f"/users/{quote(user, safe='@')}/memberOf", what=f"read groups of {user}")
        return [g for g in items if str(g.get("@odata.type", "#microsoft.graph.group")).endswith(".group")]

    def get_group(self, group: str) -> Record:
        """GET /groups/{id} (incl. onPremisesSyncEnabled and assignedLicenses)."""
        return self._json("GET", f"/groups/{quote(group)}", what=f"read group {group}")

    def group_members(self, group: str) -> list[Record]:
        """GET /groups/{id}/members."""
        return self.list_all(f"/groups/{quote(group)}/members", what=f"read members of group {group}")

    def read(self, path: str, *, params: Mapping[str, str] | None = None, version: str = API_VERSION,
             headers: Mapping[str, str] | None = None) -> Any:
        """GET one resource of `version` (v1.0 or beta): the parsed JSON, or the text of a text answer
        (a `$count`)."""
        response = self._request("GET", f"{self.api(version)}{path}", what=f"GET {path}", params=params,
                                 headers=headers)
        if response.headers.get("Content-Type", "").startswith("text/plain"):
            return response.text
        return self._parse(response, f"GET {path}")

    def read_all(self, path: str, *, params: Mapping[str, str] | None = None, version: str = API_VERSION,
                 headers: Mapping[str, str] | None = None) -> list[Record]:
        """GET a collection of `version` and every page after it (nextLinks only to the same origin)."""
        out: list[Record] = []
        url: str | None = f"{self.api(version)}{path}"
        first = True
        seen: set[str] = set()
        what = f"GET {path}"
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
            url = self._next_url(data.get("@odata.nextLink"), what, seen)
        raise ProtocolError(f"{what}: more than {_MAX_PAGES} pages")

    # -- runbook writes --------------------------------------------------------------------------
    def assign_license(self, user: str, *, add: list[str] | None = None, remove: list[str] | None = None) -> Record:
        """POST /users/{id}/assignLicense (direct assignments; both lists are always sent)."""
        body = {"addLicenses": [{"skuId": s, "disabledPlans": []} for s in (add or [])],
                "removeLicenses": list(remove or [])}
        return self._json("POST", f"/users/{quote(user, safe='@')}/assignLicense", body=body,
                          what=f"assignLicense for {user}")

    def add_group_member(self, group: str, user: str) -> None:
        """POST /groups/{id}/members/$ref (cloud groups only; Graph refuses synced groups)."""
        ref = {"@odata.id": f"{self.api()}/directoryObjects/{user}"}
        self._request("POST", f"/groups/{quote(group)}/members/$ref", body=ref,
                      what=f"add {user} to group {group}")

    def remove_group_member(self, group: str, user: str) -> None:
        """DELETE /groups/{id}/members/{user}/$ref (cloud groups only)."""
        self._request("DELETE", f"/groups/{quote(group)}/members/{quote(user)}/$ref",
                      what=f"remove {user} from group {group}")

    # -- listing ---------------------------------------------------------------------------------
    def pages(self, path: str, *, what: str, version: str = API_VERSION, select: Sequence[str] = (),
              filter: str | None = None, top: int | None = None, advanced: bool = False,
              permission: str | None = None) -> Iterator[list[Record]]:
        """GET a collection and yield it page by page (follows `@odata.nextLink` to this origin only).

        `advanced` sends `ConsistencyLevel: eventual` with `$count=true` (Graph's advanced
        queries); `select`, `filter` and `top` become `$select`, `$filter` and `$top`.
        """
        params: dict[str, str] = {}
        if select:
            params["$select"] = ",".join(select)
        if filter:
            params["$filter"] = filter
        if top:
            params["$top"] = str(max(1, min(top, MAX_TOP)))
        headers: dict[str, str] = {}
        if advanced:
            params["$count"] = "true"
            headers["ConsistencyLevel"] = "eventual"
        url: str | None = f"{self.api(version)}{path}"
        first = True
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            response = self._request("GET", url, what=what, params=params if first else None, headers=headers,
                                     permission=permission)
            first = False
            data = self._parse(response, what)
            value = data.get("value") if isinstance(data, dict) else None
            if not isinstance(value, list):
                raise ProtocolError(f"{what}: Graph answered no 'value' list")
            page = [v for v in value if isinstance(v, dict)]
            with self._lock:
                self.stats.pages += 1
                self.stats.records += len(page)
            yield page
            url = self._next_url(data.get("@odata.nextLink") if isinstance(data, dict) else None, what, seen)
        raise ProtocolError(f"{what}: more than {_MAX_PAGES} pages")

    def list_all(self, path: str, *, what: str, **kwargs: Any) -> list[Record]:
        """Every record of a collection (all pages); see `pages` for the options."""
        out: list[Record] = []
        for page in self.pages(path, what=what, **kwargs):
            out.extend(page)
        return out

    def _next_url(self, link: Any, what: str, seen: set[str]) -> str | None:
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise ProtocolError(f"{what}: Graph sent an unusable page link")
        absolute = urljoin(self.base_url + "/", link.strip())
        if origin(absolute) != self._origin:
            # Tokens go only to the configured endpoint.
            raise ProtocolError(f"{what}: Graph sent a nextLink to another host; not followed")
        if absolute in seen:
            raise ProtocolError(f"{what}: Graph repeated a page link; stopping")
        seen.add(absolute)
        return absolute

    # -- JSON batching ---------------------------------------------------------------------------
    def batch(self, calls: Sequence[GraphCall], *, what: str, version: str = API_VERSION,
              permission: str | None = None, parallel: bool = True) -> list[GraphResult]:
        """Run calls in `POST /$batch` requests of <= 20, one GraphResult per call, in order.

        Batches run in parallel (each holds a limiter slot). Sub-requests Graph throttled (429)
        are sent again after the longest Retry-After; reads that failed transiently too; a write
        that failed after it was sent ends as AppliedUnknown (the caller reads back).
        """
        results: list[GraphResult | None] = [None] * len(calls)
        pending = list(range(len(calls)))
        attempt = 0
        while pending:
            attempt += 1
            chunks = [pending[i:i + BATCH_LIMIT] for i in range(0, len(pending), BATCH_LIMIT)]
            outcomes: dict[int, GraphResult] = {}
            workers = max(1, min(len(chunks), self.limiter.max_limit)) if parallel else 1
            if workers == 1:
                for chunk in chunks:
                    outcomes.update(self._run_batch(chunk, calls, what, version, permission))
            else:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="exocm-graph") as pool:
                    for part in pool.map(lambda c: self._run_batch(c, calls, what, version, permission), chunks):
                        outcomes.update(part)
            retry: list[int] = []
            retry_after: float | None = None
            for index, outcome in outcomes.items():
                error = outcome.error
                write = calls[index].method.upper() != "GET"
                again = isinstance(error, Throttled) or (isinstance(error, Transient) and not write)
                if again and not self._backoff.gives_up(attempt):
                    retry.append(index)
                    if isinstance(error, Throttled) and error.retry_after is not None:
                        retry_after = max(retry_after or 0.0, error.retry_after)
                else:
                    results[index] = outcome
            if retry:
                with self._lock:
                    self.stats.retries += len(retry)
                seconds = self._backoff.wait(attempt, retry_after)
                with self._lock:
                    self.stats.waits_s.append(seconds)
            pending = sorted(retry)
        return [r if r is not None else GraphResult(calls[i], error=Transient(f"{what}: no answer"))
                for i, r in enumerate(results)]

    def _run_batch(self, indices: list[int], calls: Sequence[GraphCall], what: str, version: str,
                   permission: str | None) -> dict[int, GraphResult]:
        requests = []
        for position, index in enumerate(indices):
            call = calls[index]
            item: dict[str, Any] = {"id": str(position + 1), "method": call.method.upper(), "url": call.path}
            if call.body is not None:
                item["body"] = call.body
                item["headers"] = {"Content-Type": "application/json", **(call.headers or {})}
            elif call.headers:
                item["headers"] = dict(call.headers)
            requests.append(item)
        with self._lock:
            self.stats.batches += 1
            self.stats.sub_requests += len(indices)
        out: dict[int, GraphResult] = {}
        any_write = any(calls[i].method.upper() != "GET" for i in indices)
        try:
            response = self._request("POST", f"{self.api(version)}/$batch", what=f"{what} ($batch)",
                                     body={"requests": requests}, batch_writes=any_write, permission=permission)
            data = self._parse(response, what)
        except BridgeError as exc:
            for index in indices:
                write = calls[index].method.upper() != "GET"
                error = exc
                if write and isinstance(exc, Transient) and not isinstance(exc, Throttled):
                    error = AppliedUnknown(f"{exc.message} - the change may have been applied; read it back")
                out[index] = GraphResult(calls[index], error=error)
            return out
        answers = data.get("responses") if isinstance(data, dict) else None
        by_id: dict[str, Mapping[str, Any]] = {}
        if isinstance(answers, list):
            for item in answers:
                if isinstance(item, Mapping) and item.get("id") is not None:
                    by_id[str(item["id"])] = item
        throttled = False
        for position, index in enumerate(indices):
            call = calls[index]
            write = call.method.upper() != "GET"
            answer = by_id.get(str(position + 1))
            if answer is None:
                missing: BridgeError = (AppliedUnknown(f"{what}: no answer in the batch - the change may have "
                                                       "been applied; read it back") if write
                                        else Transient(f"{what}: no answer in the batch"))
                out[index] = GraphResult(call, error=missing)
                continue
            try:
                status = int(answer.get("status", 0))
            except (TypeError, ValueError):
                status = 0
            body = answer.get("body")
            if 200 <= status < 300:
                out[index] = GraphResult(call, status=status, body=body)
                continue
            headers = answer.get("headers") if isinstance(answer.get("headers"), Mapping) else {}
            assert isinstance(headers, Mapping)
            raw_after = next((str(v) for k, v in headers.items() if str(k).lower() == "retry-after"), None)
            if status == 429:
                throttled = True
                with self._lock:
                    self.stats.http_429 += 1
                    self.stats.throttled += 1
                    if write:
                        self.stats.write_429 += 1
            out[index] = GraphResult(call, status=status, body=body, error=classify_graph(
                status, body, what=f"{what} {call.path}", retry_after=parse_retry_after(raw_after),
                is_write=write, permission=permission))
        if throttled:  # sub-request throttling counts against the tenant's concurrency too
            ticket = self.limiter.acquire()
            self.limiter.release(ticket, throttled=True)
        return out

    # -- lifecycle -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Counters and the tenant's current concurrency limit, for progress displays and benchmarks."""
        with self._lock:
            data = counters(self.stats)
        data.update(self.limiter.snapshot())
        return data

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> GraphBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------
    def _json(self, method: str, path: str, *, what: str, body: Any = None,
              params: Mapping[str, str] | None = None) -> Record:
        response = self._request(method, path, what=what, body=body, params=params)
        data = self._parse(response, what)
        if not isinstance(data, dict):
            raise ProtocolError(f"{what}: Graph answered something that is not a JSON object")
        return data

    @staticmethod
    def _parse(response: httpx.Response, what: str) -> Any:
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ProtocolError(f"{what}: Graph answered {response.status_code} with a body that is not JSON") \
                from None

    def _request(self, method: str, path_or_url: str, *, what: str, body: Any = None,
                 params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                 permission: str | None = None, batch_writes: bool = False) -> httpx.Response:
        url = path_or_url if path_or_url.startswith("https://") else f"{self.api()}{path_or_url}"
        # A $batch POST is a read unless it carries writes; a failed write batch is resolved per row.
        is_write = method != "GET" and (batch_writes or not url.endswith("/$batch"))
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            try:
                token = self._tokens.token()
            except BridgeError:
                raise
            request_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                               "client-request-id": str(uuid.uuid4()), **(headers or {})}
            sent = False
            ticket = self.limiter.acquire()
            throttled = False
            try:
                with self._lock:
                    self.stats.requests += 1
                request = self._client.build_request(method, url, json=body, params=params, headers=request_headers)
                sent = True
                response = self._client.send(request)
            except httpx.ConnectError:
                self.limiter.release(ticket, success=False)
                error: BridgeError = Transient(f"{what}: cannot connect to Graph at {self.base_url}")
                with self._lock:
                    self.stats.transport_errors += 1
            except httpx.HTTPError as exc:
                self.limiter.release(ticket, success=False)
                with self._lock:
                    self.stats.transport_errors += 1
                error = Transient(f"{what}: connection to Graph failed ({type(exc).__name__})")
                if is_write and sent:
                    raise AppliedUnknown(f"{error.message} - the change may have been applied; read it back") \
                        from None
            else:
                throttled = response.status_code in (429, 503)
                self.limiter.release(ticket, throttled=throttled, success=response.status_code < 400)
                if response.status_code < 400:
                    return response
                if throttled:
                    with self._lock:
                        self.stats.throttled += 1
                        if response.status_code == 429:
                            self.stats.http_429 += 1
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                error = classify_graph(response.status_code, self._parse_quiet(response), what=what,
                                       retry_after=retry_after, is_write=is_write, permission=permission)
                if isinstance(error, AuthFailed) and not refreshed:
                    refreshed = True
                    with self._lock:
                        self.stats.token_refreshes += 1
                    self._tokens.refresh()
                    continue
            if not isinstance(error, Transient) or self._backoff.gives_up(attempt):
                raise error
            with self._lock:
                self.stats.retries += 1
            seconds = self._backoff.wait(attempt, error.retry_after if isinstance(error, Throttled) else None)
            with self._lock:
                self.stats.waits_s.append(seconds)

    @staticmethod
    def _parse_quiet(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None
