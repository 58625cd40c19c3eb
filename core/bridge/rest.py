"""The Exchange Online REST bridge (what ExchangeOnlineManagement V3 speaks), over httpx.

`POST {base}/adminapi/beta/{tenant}/InvokeCommand` with
`{"CmdletInput": {"CmdletName": ..., "Parameters": {...}}}`; pages follow
`@odata.nextLink` (POSTed again with the same body, as the V3 module and CIPP do), only
to the configured endpoint; `@adminapi.warnings` are surfaced. Batches go to `$batch`
(<= 10 InvokeCommand requests, `Prefer: odata.continue-on-error`). Headers per
docs/exchange-facts.md#rest-invokecommand. Failures are classified in `classify` only; reads are retried with backoff
(full jitter, Retry-After honoured); writes are retried only when the service refused
them before running (429) or nothing was sent, otherwise they end as AppliedUnknown and
the caller reads back. All callers of one tenant share one AIMD concurrency limiter.
"""
from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import httpx
import orjson

from .base import (
    Call,
    CallResult,
    Record,
    counters,
    identity_of,
    is_read_cmdlet,
    plain_parameters,
)
from .classify import CONCURRENCY_TEXT, classify_response, classify_transport_error, retryable
from .concurrency import DEFAULT_MAX_CONCURRENCY, AdaptiveLimiter, Ticket, limiter_for
from .errors import (
    AppliedUnknown,
    AuthFailed,
    BridgeError,
    IncompleteRead,
    PageLost,
    ProtocolError,
    Throttled,
    Transient,
)
from .http_client import http_client, origin
from .normalize import normalize_records
from .retry import Backoff, Clock, RetryPolicy, Sleep
from .tokens import TokenProvider

log = logging.getLogger(__name__)

#: X-AnchorMailbox for app-only calls (what ExchangeOnlineManagement V3 sends).
APP_ANCHOR_MAILBOX = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}"
#: $batch holds at most this many requests (EXO, as CIPP's New-ExoBulkRequest uses it).
BATCH_LIMIT = 10
MAX_PAGE_SIZE = 1000
#: Tries of a call while the service has never answered and cannot be reached (a wrong URL, a
#: stopped sandbox, no network): one clear error in about a second, not minutes of backoff.
FIRST_CONTACT_ATTEMPTS = 3

WarningCallback = Callable[[str, str], None]
T = TypeVar("T")
#: Filter parameters whose $true/$false the V3 module rewrites to 'True'/'False' before it calls
#: InvokeCommand (its own Get-SanitizedBoolValuesInFilter over FilterParametersForBooleanParsing;
#: docs/exchange-facts.md#booleans-in-rest-filters). PSRP keeps PowerShell's $true.
BOOL_FILTER_PARAMETERS = frozenset({"filter", "recipientfilter", "recipientpreviewfilter"})
_QUOTED_OR_BOOL = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$(true|false)\b", re.IGNORECASE)
#: GUIDs named in an @adminapi.errors text: the records to read again by identity.
_GUID_IN_TEXT = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
#: How often a whole read is started again after a follow-up page was lost (PageLost).
PAGE_LOST_RESTARTS = 5


def sanitize_bool_literals(text: str) -> str:
    """`$true`/`$false` outside quotes become 'True'/'False' (as the V3 module sends REST filters)."""
    def swap(match: re.Match[str]) -> str:
        word = match.group(1)
        if word is None:
            return match.group(0)
        return "'True'" if word.lower() == "true" else "'False'"
    return _QUOTED_OR_BOOL.sub(swap, text)


def rest_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters as InvokeCommand gets them: plain values, filters with 'True'/'False' for booleans."""
    plain: dict[str, Any] = plain_parameters(dict(parameters or {}))
    for name, value in plain.items():
        if name.lower() in BOOL_FILTER_PARAMETERS and isinstance(value, str):
            plain[name] = sanitize_bool_literals(value)
    return plain


def _key(record: Mapping[str, Any]) -> str:
    """A record's key for de-duplication after a restarted read: ExternalDirectoryObjectId, else Guid ('' if none)."""
    for name in ("ExternalDirectoryObjectId", "Guid"):
        value = record.get(name)
        if value:
            return str(value).strip().lower()
    return ""


def guids_in(texts: Sequence[str]) -> list[str]:
    """The GUIDs named in `texts` (lower case, first-seen order, no repeats)."""
    seen: dict[str, None] = {}
    for text in texts:
        for match in _GUID_IN_TEXT.findall(text):
            seen.setdefault(match.lower(), None)
    return list(seen)


@dataclass
class BridgeStats:
    """Counters of one bridge (thread-safe via the bridge's lock)."""

    requests: int = 0
    pages: int = 0
    records: int = 0
    batches: int = 0
    http_429: int = 0
    throttled: int = 0
    #: 429s answered to write cmdlets inside a $batch: the tenant's write budget (apply paces on it)
    write_429: int = 0
    retries: int = 0
    token_refreshes: int = 0
    transport_errors: int = 0
    #: Records named in @adminapi.errors and read again by identity.
    recovered: int = 0
    #: Follow-up pages whose answer was lost (not re-sent; the read starts again).
    pages_lost: int = 0
    waits_s: list[float] = field(default_factory=list)


@dataclass
class _Raw:
    """One HTTP exchange before classification."""

    status: int = 0
    body: Any = None
    content: bytes | None = None  # a 2xx body left undecoded (stream_bodies)
    text: str = ""
    retry_after: str | None = None
    exc: httpx.HTTPError | None = None


class RestBridge:
    """Bridge over Exchange Online's REST InvokeCommand API."""

    kind = "rest"

    def __init__(
        self,
        base_url: str,
        tenant: str,
        token_provider: TokenProvider,
        *,
        ca_file: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        page_size: int = MAX_PAGE_SIZE,
        anchor_mailbox: str | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        timeout: float = 120.0,
        retry_policy: RetryPolicy | None = None,
        limiter: AdaptiveLimiter | None = None,
        on_warning: WarningCallback | None = None,
        rng: random.Random | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"REST base URL must be an absolute https URL, not {base_url!r}")
        self.tenant = tenant
        self.base_url = base_url.rstrip("/")
        self._api = f"{self.base_url}/adminapi/beta/{quote(tenant, safe='')}"
        self.invoke_url = f"{self._api}/InvokeCommand"
        self.batch_url = f"{self._api}/$batch"
        self._origin = origin(self.base_url)
        self._tokens = token_provider
        self.page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        self._anchor = anchor_mailbox
        self._clock = clock
        self.limiter = limiter or limiter_for(self.base_url, tenant, max_concurrency)
        self._backoff = Backoff(retry_policy or RetryPolicy(), sleep, rng or random.Random())
        self.on_warning = on_warning
        self.stats = BridgeStats()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._answered = False  # has the service ever answered (any HTTP status)?
        # With a named CA bundle nothing in the environment may override it (http_client).
        self._client = http_client(ca_file, timeout, pool=max(max_concurrency, self.limiter.max_limit))

    # -- public API ------------------------------------------------------------------------
    @property
    def last_warnings(self) -> list[str]:
        """Warnings of this thread's last invoke/stream call."""
        warnings: list[str] = getattr(self._local, "warnings", [])
        return warnings

    def invoke(self, cmdlet: str, parameters: dict[str, Any] | None = None) -> list[Record]:
        """Run one cmdlet and return all its records (follows paging; a lost follow-up page restarts
        the read, see _pages; records named in `@adminapi.errors` are read again by identity, and
        IncompleteRead says when that does not bring them back)."""
        records: list[Record] = []
        for page in self._pages(cmdlet, parameters, self.page_size):
            records.extend(page)
        return records

    def stream(
        self, cmdlet: str, parameters: dict[str, Any] | None = None, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[list[Record]]:
        """Run one read cmdlet and yield its records page by page."""
        return self._pages(cmdlet, parameters, page_size)

    def stream_raw(
        self, cmdlet: str, parameters: dict[str, Any] | None = None, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[list[Record]]:
        """Like stream(), but each record is the service's JSON object as parsed, values NOT normalised.

        For callers that normalise column-wise over whole pages (the inventory): per-value
        normalisation costs ~5x the JSON parse on 1000-record pages.
        """
        return self._pages(cmdlet, parameters, page_size, normalize=False)

    def stream_bodies(
        self, cmdlet: str, parameters: dict[str, Any] | None, *, page_size: int = MAX_PAGE_SIZE,
        parse: Callable[[bytes], tuple[T, str | None, list[str]]], select: Sequence[str] | None = None,
    ) -> Iterator[T]:
        """Like stream(), but each page's JSON body is handed to `parse` undecoded.

        `parse(body)` returns (page, its @odata.nextLink or None, its @adminapi.warnings); it
        may raise ProtocolError. For callers that decode pages straight into columns (the
        inventory decodes with pyarrow.json, off the GIL and only the properties it keeps).
        `select` asks the service for only those properties (`InvokeCommand?$select=A,B`, as
        CIPP's New-ExoRequest does): smaller pages to build, send and parse.
        Paging, retries, token refresh, the limiter and next-link checks stay here.
        """
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": rest_parameters(parameters)}}
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        self._local.warnings = []
        url: str | None = self.invoke_url
        if select:
            url = f"{self.invoke_url}?$select={quote(','.join(select), safe=',')}"
        seen: set[str] = set()
        first = True
        while url is not None:
            content = self._post(url, body, cmdlet=cmdlet, identity=None, is_write=False, page_size=size,
                                 decode=False, replayable=first)
            first = False
            page, next_link, warnings = parse(content)
            if warnings:
                self._take_warnings(cmdlet, {"@adminapi.warnings": warnings}, self._local.warnings)
            with self._lock:
                self.stats.pages += 1
            url = self._next_url(next_link, cmdlet, seen)
            yield page

    def invoke_many(self, calls: Sequence[Call]) -> list[CallResult]:
        """Run calls in `$batch` requests of <= 10, one CallResult per call, in order."""
        results = [CallResult(call) for call in calls]
        pending = list(range(len(calls)))
        refreshed: set[int] = set()
        attempt = 0
        while pending:
            attempt += 1
            chunks = [pending[i:i + BATCH_LIMIT] for i in range(0, len(pending), BATCH_LIMIT)]
            outcomes: dict[int, CallResult] = {}
            workers = max(1, min(len(chunks), self.limiter.max_limit))
            if workers == 1:
                for chunk in chunks:
                    outcomes.update(self._run_batch(chunk, calls))
            else:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="exocm-batch") as pool:
                    for part in pool.map(lambda chunk: self._run_batch(chunk, calls), chunks):
                        outcomes.update(part)
            retry: list[int] = []
            retry_after: float | None = None
            need_refresh = False
            for index, outcome in outcomes.items():
                error = outcome.error
                call = calls[index]
                if isinstance(error, AuthFailed) and index not in refreshed:
                    refreshed.add(index)
                    need_refresh = True
                    retry.append(index)
                elif (error is not None and retryable(error, is_write=not is_read_cmdlet(call.cmdlet))
                      and not self._backoff.gives_up(attempt)):
                    retry.append(index)
                    if isinstance(error, Throttled) and error.retry_after is not None:
                        retry_after = max(retry_after or 0.0, error.retry_after)
                else:
                    results[index] = outcome
            if need_refresh:
                self._refresh_token()
            if retry and any(isinstance(outcomes[i].error, Transient) for i in retry):
                first = next(outcomes[i].error for i in retry if isinstance(outcomes[i].error, Transient))
                log.info("$batch: %d of %d calls to retry (attempt %d): %s", len(retry), len(pending), attempt,
                         first)
                self._count(retries=len(retry))
                self._wait(attempt, retry_after)
            pending = sorted(retry)
        return results

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> RestBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> dict[str, Any]:
        """Counters and the tenant's current concurrency limit, for progress displays and benchmarks."""
        with self._lock:
            data = counters(self.stats)
        data.update(self.limiter.snapshot())
        return data

    # -- paging ----------------------------------------------------------------------------
    def _pages(self, cmdlet: str, parameters: dict[str, Any] | None, page_size: int,
               normalize: bool = True) -> Iterator[list[Record]]:
        """Pages of one call. When a follow-up page's answer is lost (PageLost) the call starts again
        from its first page, and records already yielded are dropped by key (ExternalDirectoryObjectId,
        else Guid): pages never skip nor repeat a keyed record, whatever the service's cursor did
        (docs/exchange-facts.md#retried-pages). Up to PAGE_LOST_RESTARTS restarts."""
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": rest_parameters(parameters)}}
        is_write = not is_read_cmdlet(cmdlet)
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        identity = identity_of(parameters)
        self._local.warnings = []
        yielded: set[str] = set()
        restarts = 0
        while True:
            url: str | None = self.invoke_url
            seen: set[str] = set()
            first = True
            try:
                while url is not None:
                    data = self._post(url, body, cmdlet=cmdlet, identity=identity, is_write=is_write,
                                      page_size=size, replayable=first)
                    first = False
                    records = self._records_of(data) if normalize else self._raw_records_of(data)
                    self._take_warnings(cmdlet, data, self._local.warnings)
                    errors = self.adminapi_errors(data)
                    if errors and not is_write:
                        records.extend(self.recover_records(cmdlet, errors, normalize=normalize))
                    if restarts:
                        records = [r for r in records if (_key(r) or "\0") not in yielded]
                    yielded.update(k for k in map(_key, records) if k)
                    with self._lock:
                        self.stats.pages += 1
                        self.stats.records += len(records)
                    next_link = data.get("@odata.nextLink") if isinstance(data, Mapping) else None
                    url = self._next_url(next_link, cmdlet, seen)
                    yield records
                return
            except PageLost:
                restarts += 1
                if restarts > PAGE_LOST_RESTARTS:
                    raise
                self._count(retries=1)
                self._wait(restarts, None)

    def _next_url(self, link: Any, cmdlet: str, seen: set[str]) -> str | None:
        """The next page's URL, None when there is no link. Tokens go only to the configured
        endpoint: a nextLink elsewhere is refused, and so is one already followed (a loop)."""
        if not link:
            return None
        if not isinstance(link, str) or not link.strip():
            raise ProtocolError(f"{cmdlet}: the service sent an unusable page link", cmdlet=cmdlet)
        absolute = urljoin(self.invoke_url, link.strip())
        if origin(absolute) != self._origin:
            host = urlsplit(absolute).hostname or "?"
            raise ProtocolError(
                f"{cmdlet}: refused a page link to another host ({host}); exocm sends its token only "
                f"to {urlsplit(self.base_url).netloc}", cmdlet=cmdlet)
        if absolute in seen:
            raise ProtocolError(f"{cmdlet}: the service repeated a page link; stopping", cmdlet=cmdlet)
        seen.add(absolute)
        return absolute

    @staticmethod
    def _raw_records_of(data: Any) -> list[Record]:
        if not isinstance(data, Mapping):
            raise ProtocolError("the service answered with something that is not a JSON object")
        value = data.get("value")
        if isinstance(value, list):
            return [v for v in value if isinstance(v, dict)]
        if isinstance(value, dict):
            return [value]
        if value is not None:
            return []
        rest = {k: v for k, v in data.items() if "@" not in k}
        return [rest] if rest else []

    @staticmethod
    def _records_of(data: Any) -> list[Record]:
        if not isinstance(data, Mapping):
            raise ProtocolError("the service answered with something that is not a JSON object")
        value = data.get("value")
        if isinstance(value, list):
            return normalize_records(value)
        if value is not None:
            return normalize_records([value])
        rest = {k: v for k, v in data.items() if "@" not in k}
        return normalize_records([rest]) if rest else []

    @staticmethod
    def adminapi_errors(data: Any) -> list[str]:
        """The `@adminapi.errors` of a 200 answer (records the service left out; the V3 module raises
        them in ShowResultAndCheckForNextPage; docs/exchange-facts.md#errors-in-a-200-answer)."""
        raw = data.get("@adminapi.errors") if isinstance(data, Mapping) else None
        if not raw:
            return []
        return [str(item) for item in (raw if isinstance(raw, list) else [raw])]

    def recover_records(self, cmdlet: str, errors: Sequence[str], *, normalize: bool = True) -> list[Record]:
        """Read the records named (by GUID) in `errors` again, one `-Identity` read each.

        Raises IncompleteRead when an error names no GUID or a record does not come back."""
        ids = guids_in(errors)
        missing = [e for e in errors if not _GUID_IN_TEXT.search(e)]
        records: list[Record] = []
        for ident in ids:
            body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": {"Identity": ident}}}
            try:
                data = self._post(self.invoke_url, body, cmdlet=cmdlet, identity=ident, is_write=False,
                                  page_size=self.page_size)
            except BridgeError as exc:
                missing.append(f"{ident}: {exc.message}")
                continue
            got = self._records_of(data) if normalize else self._raw_records_of(data)
            if not got or self.adminapi_errors(data):
                missing.append(f"{ident}: not returned when read again")
            records.extend(got)
        with self._lock:
            self.stats.recovered += len(records)
        if missing:
            raise IncompleteRead(f"{cmdlet}: {len(missing)} record(s) the service left out with @adminapi.errors "
                                 f"could not be read again (first: {missing[0]})", errors=tuple(missing),
                                 cmdlet=cmdlet)
        return records

    def _take_warnings(self, cmdlet: str, data: Any, sink: list[str]) -> None:
        raw = data.get("@adminapi.warnings") if isinstance(data, Mapping) else None
        if not raw:
            return
        items = raw if isinstance(raw, list) else [raw]
        for item in items:
            text = str(item)
            sink.append(text)
            if self.on_warning is not None:
                self.on_warning(cmdlet, text)

    # -- one request with retries --------------------------------------------------------------
    def _post(self, url: str, body: Any, *, cmdlet: str, identity: str | None, is_write: bool,
              page_size: int | None, decode: bool = True, replayable: bool = True) -> Any:
        """One request with retries. `replayable=False` (a follow-up page link): a failure after the
        request was sent (timeout, reset) raises PageLost instead of sending the link again."""
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            try:
                raw = self._send(url, body, cmdlet=cmdlet, page_size=page_size, batch=False, decode=decode)
            except Transient as exc:  # the sign-in endpoint was unreachable: nothing was sent
                if self._gives_up(attempt, unreachable=True):
                    log.warning("%s: sign-in endpoint unreachable, giving up after %d attempts", cmdlet, attempt)
                    raise
                log.info("%s: sign-in endpoint unreachable (attempt %d): %s", cmdlet, attempt, exc)
                self._count(retries=1)
                self._wait(attempt, None)
                continue
            if raw.exc is None and 200 <= raw.status < 300:
                if not decode and raw.content:
                    return raw.content
                if raw.body is None:
                    raise ProtocolError(f"{cmdlet}: the service answered HTTP {raw.status} without JSON",
                                        cmdlet=cmdlet, identity=identity)
                return raw.body
            if raw.exc is None and raw.status == 401 and not refreshed:
                refreshed = True
                log.info("%s: HTTP 401, refreshing the access token once", cmdlet)
                self._refresh_token()
                continue
            error = self._classify(raw, cmdlet=cmdlet, identity=identity, is_write=is_write)
            unreachable = isinstance(raw.exc, httpx.ConnectError)
            if not replayable and raw.exc is not None and not isinstance(
                    raw.exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
                with self._lock:
                    self.stats.pages_lost += 1
                raise PageLost(f"{cmdlet}: the answer to a follow-up page was lost "
                               f"({type(raw.exc).__name__}); the read starts again", cmdlet=cmdlet)
            if not retryable(error, is_write=is_write) or self._gives_up(attempt, unreachable=unreachable):
                log.debug("%s: not retried after attempt %d: %s: %s", cmdlet, attempt, type(error).__name__, error)
                raise error
            log.info("%s: %s (HTTP %s) on attempt %d, retrying%s", cmdlet, type(error).__name__,
                     raw.status or "-", attempt,
                     f" after Retry-After {error.retry_after}s" if isinstance(error, Throttled)
                     and error.retry_after is not None else "")
            self._count(retries=1)
            if attempt == 1 and raw.status == 429 and CONCURRENCY_TEXT in (raw.text or "").lower() \
                    and not (isinstance(error, Throttled) and error.retry_after):
                # One too many in flight: the limiter has already lowered the limit below the refused
                # level, so the retry waits for one of our own requests to end rather than sleeping.
                continue
            self._wait(attempt, error.retry_after if isinstance(error, Throttled) else None)

    def _gives_up(self, attempt: int, *, unreachable: bool) -> bool:
        """Out of tries; sooner when the service cannot be reached and never answered yet."""
        if unreachable and not self._answered and attempt >= FIRST_CONTACT_ATTEMPTS:
            return True
        return self._backoff.gives_up(attempt)

    def _classify(self, raw: _Raw, *, cmdlet: str, identity: str | None, is_write: bool) -> BridgeError:
        if raw.exc is not None:
            return classify_transport_error(raw.exc, cmdlet=cmdlet, identity=identity, is_write=is_write)
        return classify_response(raw.status, raw.body, retry_after=raw.retry_after, raw_text=raw.text,
                                 cmdlet=cmdlet, identity=identity, is_write=is_write)

    def _send(self, url: str, body: Any, *, cmdlet: str, page_size: int | None, batch: bool,
              decode: bool = True) -> _Raw:
        token = self._tokens.token()
        headers = self._headers(cmdlet, page_size=page_size, batch=batch)
        headers["Authorization"] = f"Bearer {token}"
        ticket = self.limiter.acquire()
        raw = _Raw()
        throttled = at_limit = False
        try:
            response = self._client.post(url, content=orjson.dumps(body), headers=headers)
            raw.status = response.status_code
            self._answered = True
            raw.retry_after = response.headers.get("Retry-After")
            content = response.content
            if not decode and 200 <= raw.status < 300 and content:
                raw.content = content  # decoded by the caller, outside the concurrency slot
                return raw
            try:
                raw.body = orjson.loads(content) if content else None
            except orjson.JSONDecodeError:
                raw.body = None
            if raw.body is None or not (200 <= raw.status < 300):
                raw.text = content[:4096].decode("utf-8", "replace")
            # Only the tenant's concurrency refusal (or a 503) says "fewer requests in flight": a
            # 429 for the write budget (whole or inside a $batch) is the write pacer's business.
            at_limit = raw.status == 429 and CONCURRENCY_TEXT in (raw.text or "").lower()
            throttled = raw.status in (429, 503) or self._has_throttled_subresponse(raw.body, batch)
        except httpx.HTTPError as exc:
            raw.exc = exc
        finally:
            self._release(ticket, raw, throttled, at_limit, write=not batch and not is_read_cmdlet(cmdlet))
        return raw

    def _release(self, ticket: Ticket, raw: _Raw, throttled: bool, at_limit: bool = False,
                 write: bool = False) -> None:
        success = raw.exc is None and 200 <= raw.status < 300 and not throttled
        concurrency = at_limit or raw.status == 503
        self.limiter.release(ticket, throttled=concurrency and not at_limit, success=success, at_limit=at_limit)
        with self._lock:
            self.stats.requests += 1
            if raw.exc is not None:
                self.stats.transport_errors += 1
            if raw.status == 429:
                self.stats.http_429 += 1
                if write and not at_limit:  # a single write the write budget refused
                    self.stats.write_429 += 1
            if throttled:
                self.stats.throttled += 1

    @staticmethod
    def _has_throttled_subresponse(body: Any, batch: bool) -> bool:
        if not batch or not isinstance(body, Mapping) or not isinstance(body.get("responses"), list):
            return False
        return any(isinstance(r, Mapping) and r.get("status") == 429 for r in body["responses"])

    def _headers(self, cmdlet: str, *, page_size: int | None, batch: bool) -> dict[str, str]:
        prefer = "odata.continue-on-error" if batch else f"odata.maxpagesize={page_size or self.page_size}"
        return {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-ResponseFormat": "json",
            "X-SerializationLevel": "Partial",
            "X-ClientApplication": "exocm",
            "X-CmdletName": cmdlet,
            "X-AnchorMailbox": self.anchor_mailbox,
            "Prefer": prefer,
            "client-request-id": str(uuid.uuid4()),
            "return-client-request-id": "true",
        }

    @property
    def answered(self) -> bool:
        """True once the service has answered a request (any HTTP status)."""
        return self._answered

    @property
    def anchor_mailbox(self) -> str:
        """X-AnchorMailbox: explicit, else UPN:{user} for delegated tokens, else the app-only system mailbox."""
        if self._anchor:
            return self._anchor
        upn = self._tokens.username
        if upn:
            return f"UPN:{upn}"
        return APP_ANCHOR_MAILBOX.format(tenant=self.tenant)

    def _refresh_token(self) -> None:
        with self._lock:
            self.stats.token_refreshes += 1
        self._tokens.refresh()

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        seconds = self._backoff.wait(attempt, retry_after)
        log.debug("waited %.2f s before attempt %d", seconds, attempt + 1)
        with self._lock:
            self.stats.waits_s.append(seconds)

    def _count(self, *, retries: int = 0) -> None:
        with self._lock:
            self.stats.retries += retries

    # -- $batch ------------------------------------------------------------------------------
    def _run_batch(self, indices: list[int], calls: Sequence[Call]) -> dict[int, CallResult]:
        """Send one $batch of <= 10 calls once; one CallResult per index (errors classified)."""
        requests = []
        for position, index in enumerate(indices):
            call = calls[index]
            sub_headers = self._headers(call.cmdlet, page_size=self.page_size, batch=False)
            for name in ("Accept", "X-ResponseFormat", "X-SerializationLevel", "X-ClientApplication",
                         "return-client-request-id"):
                sub_headers.pop(name, None)
            requests.append({
                "id": str(position),
                "method": "POST",
                "url": self.invoke_url,
                "headers": sub_headers,
                "body": {"CmdletInput": {"CmdletName": call.cmdlet,
                                         "Parameters": rest_parameters(call.parameters)}},
            })
        with self._lock:
            self.stats.batches += 1
        out: dict[int, CallResult] = {}
        try:
            raw = self._send(self.batch_url, {"requests": requests}, cmdlet="$batch", page_size=None, batch=True)
        except Transient as exc:  # no token (sign-in endpoint unreachable): nothing was sent
            for index in indices:
                out[index] = CallResult(calls[index], error=Transient(exc.message, cmdlet=calls[index].cmdlet))
            return out
        if raw.exc is not None or not (200 <= raw.status < 300) or not isinstance(raw.body, Mapping):
            for index in indices:
                call = calls[index]
                write = not is_read_cmdlet(call.cmdlet)
                if raw.exc is None and 200 <= raw.status < 300:
                    error: BridgeError = (
                        AppliedUnknown(f"{call.cmdlet}: the batch answer was not JSON — the change may "
                                       "have been applied; read it back", cmdlet=call.cmdlet,
                                       identity=identity_of(call.parameters))
                        if write else Transient(f"{call.cmdlet}: the batch answer was not JSON",
                                                cmdlet=call.cmdlet))
                else:
                    error = self._classify(raw, cmdlet=call.cmdlet, identity=identity_of(call.parameters), is_write=write)
                out[index] = CallResult(call, error=error)
            return out
        responses = raw.body.get("responses")
        by_id: dict[str, Mapping[str, Any]] = {}
        if isinstance(responses, list):
            for item in responses:
                if isinstance(item, Mapping) and item.get("id") is not None:
                    by_id[str(item["id"])] = item
        for position, index in enumerate(indices):
            call = calls[index]
            out[index] = self._sub_result(call, by_id.get(str(position)))
        return out

    def _sub_result(self, call: Call, item: Mapping[str, Any] | None) -> CallResult:
        write = not is_read_cmdlet(call.cmdlet)
        identity = identity_of(call.parameters)
        if item is None:
            error: BridgeError = (
                AppliedUnknown(f"{call.cmdlet}: no answer in the batch — the change may have been applied; "
                               "read it back", cmdlet=call.cmdlet, identity=identity)
                if write else Transient(f"{call.cmdlet}: no answer in the batch", cmdlet=call.cmdlet))
            return CallResult(call, error=error)
        try:
            status = int(item.get("status", 0))
        except (TypeError, ValueError):
            status = 0
        body = item.get("body")
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                pass
        headers = item.get("headers") if isinstance(item.get("headers"), Mapping) else {}
        assert isinstance(headers, Mapping)
        if 200 <= status < 300:
            warnings: list[str] = []
            try:
                records = self._records_of(body) if body is not None else []
                self._take_warnings(call.cmdlet, body, warnings)
                errors = self.adminapi_errors(body)
                if errors and not write:
                    records.extend(self.recover_records(call.cmdlet, errors))
                next_link = body.get("@odata.nextLink") if isinstance(body, Mapping) else None
                if next_link:
                    records.extend(self._rest_of_pages(call, next_link, warnings))
            except BridgeError as exc:
                return CallResult(call, error=exc, warnings=warnings)
            with self._lock:
                self.stats.records += len(records)
            return CallResult(call, records=records, warnings=warnings)
        if status == 429:
            with self._lock:
                self.stats.http_429 += 1
                if write:
                    self.stats.write_429 += 1
        retry_after = next((str(v) for k, v in headers.items() if str(k).lower() == "retry-after"), None)
        raw_text = body if isinstance(body, str) else ""
        error = classify_response(status, body, retry_after=retry_after, raw_text=raw_text,
                                  cmdlet=call.cmdlet, identity=identity, is_write=write)
        return CallResult(call, error=error)

    def _rest_of_pages(self, call: Call, next_link: Any, warnings: list[str]) -> list[Record]:
        """A read inside a batch that has more pages: follow them with plain InvokeCommand posts."""
        body = {"CmdletInput": {"CmdletName": call.cmdlet, "Parameters": rest_parameters(call.parameters)}}
        records: list[Record] = []
        seen: set[str] = set()
        url = self._next_url(next_link, call.cmdlet, seen)
        while url is not None:
            data = self._post(url, body, cmdlet=call.cmdlet, identity=identity_of(call.parameters), is_write=False,
                              page_size=self.page_size, replayable=False)
            records.extend(self._records_of(data))
            self._take_warnings(call.cmdlet, data, warnings)
            link = data.get("@odata.nextLink") if isinstance(data, Mapping) else None
            url = self._next_url(link, call.cmdlet, seen)
        return records
