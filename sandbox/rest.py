"""Exchange Online's admin REST API as ExchangeOnlineManagement V3 uses it.

  POST /adminapi/beta/{tenant}/InvokeCommand   {"CmdletInput": {"CmdletName", "Parameters"}}
  POST /adminapi/beta/{tenant}/$batch          {"requests": [<= 10 InvokeCommand requests]}

Facts modelled, with their sources:
- Request/response shapes, headers (Authorization, X-CmdletName, X-AnchorMailbox,
  `Prefer: odata.maxpagesize=N`, client-request-id) and `@adminapi.warnings`: docs/exchange-facts.md#rest-invokecommand,
  and public clients of the API (CIPP's New-ExoRequest, M365Permissions' New-ExOQuery).
- `$select` on InvokeCommand (`InvokeCommand?$select=UserPrincipalName,Guid`): CIPP's New-ExoRequest
  sends it with Get-Mailbox / Get-User and reads only those properties, page after page. The
  sandbox answers with only the named properties (case-insensitive) on every page of the call;
  what the service does with a name the cmdlet does not have is not known: the sandbox ignores it.
- Paging: those clients follow `@odata.nextLink` by POSTing the SAME body to the link
  until it is absent; the link is an absolute URL on the same host. The sandbox also
  answers a GET to it. The link's query (`$skiptoken=<cursor>.<page>`) is the sandbox's
  own choice of an opaque cursor; it names the page, so a retried link returns the same
  page again (a lost answer never skips records).
- Error JSON: `error.code` "InternalServerError", `error.message` "Error executing cmdlet",
  `error.details[].message` "ErrorId|ExceptionType|Message" (code "Client"), and
  `error.innererror` {message, type "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
  internalException {message}}: the shape seen in public client code that parses real
  answers (e.g. "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|...").
  The HTTP status is the cmdlet error's `http_status` (the cmdlet layer's choice: 400 for
  most cmdlet errors; public clients treat "404 (Not Found)" from InvokeCommand as a
  not-found object, so not-found may be 404). Error ids other than Ex6F9304 are made up.
- Throttling answers (429 bodies, 500/503 fault bodies, skiptoken errors, $batch limit
  errors): the concurrency text is EXO's (docs/exchange-facts.md#throttling); the other texts are the
  sandbox's own.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from .errors import CmdletError
from .http import Request, Response
from .knobs import ConcurrencyGate, FaultDice, Knobs, WriteBudget, retry_after_header
from .tokens import TokenRejected, TokenService

MAX_PAGE_SIZE = 1000
#: Page size when the client sends no `Prefer: odata.maxpagesize` (the V3 module always sends
#: 1000; the sandbox's choice for clients that do not).
DEFAULT_PAGE_SIZE = 1000
MAX_BATCH = 10
#: Variant error-with-text: every how-many-th flip / tenant-default write answers the quirk (from the first).
QUIRK_EVERY = 4
#: Variant adminapi-errors: the chance of each record of a multi-record page to be left out with an error.
ADMINAPI_ERROR_RATE = 0.02
#: Open paging cursors kept at most (least recently used are dropped first).
MAX_CURSORS = 1024

CONCURRENCY_MESSAGE = ("You have reached the maximum number of concurrent requests per tenant. "
                       "Please wait and try again.")
ODATA_EXCEPTION = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"
#: Error ids seen in real answers; others are derived (made up) from the exception type.
KNOWN_ERROR_IDS = {"ManagementObjectNotFoundException": "Ex6F9304"}
_JSON_OPTS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


class TenantLike(Protocol):
    """What the REST front needs from the tenant model (exocm.sandbox.tenant.Tenant)."""

    tenant_id: str
    domain: str
    lock: Any
    last_warnings: list[str]

    def invoke(self, cmdlet: str, params: dict[str, Any], side: str = "exo") -> list[dict[str, Any]]: ...


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def dumps(value: Any) -> bytes:
    """Serialise JSON-ready values the way the sandbox answers (ISO 8601 UTC datetimes)."""
    return orjson.dumps(value, default=_json_default, option=_JSON_OPTS)


def is_write(cmdlet: str) -> bool:
    """True for cmdlets that change state (everything but Get-*/Test-*)."""
    verb = cmdlet.split("-", 1)[0].lower()
    return verb not in ("get", "test")


def error_id(error_type: str) -> str:
    """The 'ErrorId' part of a detail message (Ex + 6 hex digits)."""
    short = error_type.rsplit(".", 1)[-1]
    known = KNOWN_ERROR_IDS.get(short)
    if known:
        return known
    return "Ex" + hashlib.sha1(short.encode()).hexdigest()[:6].upper()


def cmdlet_error_payload(err: CmdletError) -> dict[str, Any]:
    """EXO's error JSON for a failed cmdlet."""
    if not err.message:  # the "failed with an empty message" quirk: nothing to tell
        detail = ""
    else:
        detail = f"{error_id(err.error_type)}|{err.error_type}|{err.message}"
    return {"error": {
        "code": "InternalServerError",
        "message": "Error executing cmdlet" if err.message else "",
        "details": [{"code": "Client", "target": "", "message": detail}],
        "innererror": {
            "message": "Error executing cmdlet" if err.message else "",
            "type": ODATA_EXCEPTION,
            "internalException": {"message": err.message, "type": err.error_type,
                                  "category": err.category},
        },
    }}


def simple_error(code: str, message: str) -> dict[str, Any]:
    """An error body without cmdlet details."""
    return {"error": {"code": code, "message": message,
                      "innererror": {"message": message, "type": ODATA_EXCEPTION,
                                     "internalException": {"message": message}}}}


@dataclass
class _Cursor:
    tenant: str
    rows: Sequence[dict[str, Any]]
    page_size: int
    last_used: float
    #: Page indexes already answered (variant cursor-advances: a link sent again has moved on).
    served: set[int] = field(default_factory=set)


class CursorStore:
    """Results of paged calls under an opaque id. `rows` may be the tenant's lazy RecordSet:
    records are built when their page is read (state at read time, as a later EXO page)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()

    def put(self, tenant: str, rows: Sequence[dict[str, Any]], page_size: int, ttl_s: float) -> str:
        """Keep `rows`; return the cursor id."""
        cid = secrets.token_urlsafe(12)
        with self._lock:
            self._expire(ttl_s)
            self._cursors[cid] = _Cursor(tenant, rows, page_size, self._clock())
            while len(self._cursors) > MAX_CURSORS:
                self._cursors.popitem(last=False)
        return cid

    def get(self, cid: str, index: int, tenant: str,
            ttl_s: float) -> tuple[Sequence[dict[str, Any]], int, int, bool] | None:
        """(rows, start, end, more) of page `index` of cursor `cid`; None when gone."""
        got = self.page(cid, index, tenant, ttl_s)
        return None if got is None else got[:4]

    def page(self, cid: str, index: int, tenant: str, ttl_s: float,
             advances: bool = False) -> tuple[Sequence[dict[str, Any]], int, int, bool, int] | None:
        """(rows, start, end, more, index served) of page `index` of cursor `cid`; None when gone.

        `advances` (variant cursor-advances): a page asked for again is not served again; the
        cursor has moved on, and the answer is the page after the last one served."""
        with self._lock:
            self._expire(ttl_s)
            cur = self._cursors.get(cid)
            if cur is None or cur.tenant != tenant:
                return None
            if index < 1 or index * cur.page_size >= len(cur.rows):
                return None
            if advances and index in cur.served:
                index = max(cur.served) + 1
            start = index * cur.page_size
            cur.served.add(index)
            cur.last_used = self._clock()
            self._cursors.move_to_end(cid)
            start = min(start, len(cur.rows))
            end = min(len(cur.rows), start + cur.page_size)
            return cur.rows, start, end, end < len(cur.rows), index

    def _expire(self, ttl_s: float) -> None:
        now = self._clock()
        while self._cursors:
            cid, cur = next(iter(self._cursors.items()))
            if now - cur.last_used <= ttl_s:
                break
            del self._cursors[cid]

    def __len__(self) -> int:
        with self._lock:
            return len(self._cursors)


@dataclass
class Stats:
    """Thread-safe counters of what the sandbox served (tests and benchmarks read them)."""

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    http_429: int = 0
    writes: int = 0
    invoke_by_cmdlet: dict[str, int] = field(default_factory=dict)
    batch_requests: int = 0
    #: $batch items answered 429 (inside a batch that itself answered 200; not in http_429).
    batch_item_429: int = 0
    pages_served: int = 0
    resets: int = 0
    timeouts: int = 0
    #: Records left out of read pages with an @adminapi.errors entry (variant adminapi-errors).
    record_errors: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_request(self) -> None:
        """One HTTP request arrived."""
        with self._lock:
            self.requests += 1

    def count_status(self, status: int) -> None:
        """One answer with `status` went out."""
        with self._lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if status == 429:
                self.http_429 += 1

    def count_invoke(self, cmdlet: str, write: bool) -> None:
        """One cmdlet ran against the tenant."""
        with self._lock:
            self.invoke_by_cmdlet[cmdlet] = self.invoke_by_cmdlet.get(cmdlet, 0) + 1
            if write:
                self.writes += 1

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to the integer counter `name`."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def count_fault(self, kind: str) -> None:
        """One fault of `kind` was injected."""
        with self._lock:
            self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of every counter."""
        with self._lock:
            return {"requests": self.requests, "by_status": dict(self.by_status), "http_429": self.http_429,
                    "writes": self.writes, "invoke_by_cmdlet": dict(self.invoke_by_cmdlet),
                    "batch_requests": self.batch_requests, "batch_item_429": self.batch_item_429,
                    "pages_served": self.pages_served,
                    "resets": self.resets, "timeouts": self.timeouts, "record_errors": self.record_errors,
                    "faults_injected": dict(self.faults_injected)}

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.requests = self.http_429 = self.writes = self.batch_requests = self.batch_item_429 = 0
            self.pages_served = self.resets = self.timeouts = self.record_errors = 0
            self.by_status = {}
            self.invoke_by_cmdlet = {}
            self.faults_injected = {}


@dataclass
class _Outcome:
    """One InvokeCommand result before it is framed for HTTP or for a $batch slot."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class RestApi:
    """The EXO REST front of one tenant."""

    def __init__(self, tenant: TenantLike, tokens: TokenService, knobs: Knobs, dice: FaultDice,
                 stats: Stats, *, base_url: Callable[[], str], clock: Callable[[], float],
                 on_write: Callable[[], None] | None = None) -> None:
        self.tenant = tenant
        self.tokens = tokens
        self.knobs = knobs
        self.dice = dice
        self.stats = stats
        self._base_url = base_url
        self.gate = ConcurrencyGate()
        self.budget = WriteBudget(clock)
        self.cursors = CursorStore(clock)
        self._on_write = on_write
        self._quirk_lock = threading.Lock()
        self._quirk_writes = 0

    # -- routing ---------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        """Answer /adminapi/... paths; None for other paths."""
        parts = [unquote(p) for p in request.path.split("/") if p]
        if len(parts) < 3 or parts[0].lower() != "adminapi":
            return None
        if len(parts) != 4 or parts[1].lower() not in ("beta", "v1.0"):
            return Response.json(404, simple_error("NotFound", f"No HTTP resource was found that matches "
                                                               f"the request URI '{request.path}'."))
        tenant, action = parts[2], parts[3]
        if action.lower() not in ("invokecommand", "$batch"):
            return Response.json(404, simple_error("NotFound", f"No HTTP resource was found that matches "
                                                               f"the request URI '{request.path}'."))
        try:
            self.tokens.validate(request.header("Authorization"), self._base_url(), tenant)
        except TokenRejected as exc:
            return self._unauthorized(exc)
        if not self.gate.try_enter(self.knobs.concurrency_limit):
            return Response.json(429, simple_error("TooManyRequests", CONCURRENCY_MESSAGE),
                                 self._echo(request))
        batch = action.lower() == "$batch"
        read, body = (False, request.body) if batch else self._read_and_body(request)
        try:
            with self.dice.service_time(self.knobs, read=read):
                fault = self.dice.transport_fault(self.knobs.faults)
                if fault is not None:
                    self.stats.count_fault(fault)
                    early = self._early_fault(fault, request)
                    if early is not None:
                        return early
                if batch:
                    self.stats.count("batch_requests")
                    response = self._batch(request, tenant)
                else:
                    outcome = self._invoke_request(request.method, request.query, body, request.headers, tenant)
                    headers = self._echo(request)
                    headers.update(outcome.headers)
                    response = Response.raw_json(outcome.status, outcome.body, headers)
            if fault == "timeout":
                return Response.hold(self.knobs.fault_timeout_s)
            return response
        finally:
            self.gate.leave()

    @staticmethod
    def _read_and_body(request: Request) -> tuple[bool, bytes | dict[str, Any]]:
        """Whether an InvokeCommand only reads (a follow-up page, or a cmdlet that is not a write), and
        its body parsed once for _invoke_request (the raw bytes when it is no JSON object: that
        request is answered with an error, timed like a write)."""
        if request.query.get("$skiptoken") or request.query.get("%24skiptoken"):
            return True, request.body
        try:
            payload = orjson.loads(request.body or b"")
        except orjson.JSONDecodeError:
            return False, request.body
        if not isinstance(payload, dict):
            return False, request.body
        cmdlet_input = payload.get("CmdletInput")
        name = cmdlet_input.get("CmdletName") if isinstance(cmdlet_input, dict) else None
        return isinstance(name, str) and not is_write(name.strip()), payload

    def _early_fault(self, fault: str, request: Request) -> Response | None:
        if fault == "reset":
            return Response.reset()
        if fault == "500":
            # The sandbox's own text: a 500 before the cmdlet ran.
            return Response.json(500, simple_error("InternalServerError",
                                                   "An internal server error occurred. The operation failed."),
                                 self._echo(request))
        if fault == "503":
            headers = self._echo(request)
            if self.dice.chance(0.5):
                headers["Retry-After"] = "1"
            # The sandbox's own text.
            return Response.json(503, simple_error("ServiceUnavailable",
                                                   "The service is temporarily unavailable. Please try again later."),
                                 headers)
        return None  # "timeout": run the request, then hold the answer

    @staticmethod
    def _echo(request: Request) -> dict[str, str]:
        headers = {"request-id": secrets.token_hex(16)}
        crid = request.header("client-request-id")
        if crid:
            headers["client-request-id"] = crid
        return headers

    def _unauthorized(self, exc: TokenRejected) -> Response:
        # Header shape of Exchange Online's bearer challenge; the descriptions are the sandbox's.
        authority = self.tokens.authority
        challenge = (f'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
                     f'trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
                     f'token_types="app_asserted_user_v1 service_asserted_app_v1", '
                     f'authorization_uri="{authority}/oauth2/authorize", '
                     f'error="{exc.error}", error_description="{exc.description}"')
        return Response.json(401, {"error": {"code": "InvalidAuthenticationToken" if exc.error == "invalid_token"
                                             else "Unauthorized", "message": exc.description}},
                             {"WWW-Authenticate": challenge})

    # -- InvokeCommand ---------------------------------------------------------------------
    def _invoke_request(self, method: str, query: dict[str, str], body: bytes | dict[str, Any] | None,
                        headers: Any, tenant: str) -> _Outcome:
        skip = query.get("$skiptoken") or query.get("%24skiptoken")
        if skip:
            return self._next_page(skip, tenant)
        select = [n for n in (query.get("$select") or query.get("%24select") or "").split(",") if n.strip()]
        if method.upper() != "POST":
            return _Outcome(405, dumps(simple_error("MethodNotAllowed",
                                                    "The requested resource does not support http method "
                                                    f"'{method.upper()}'.")))
        try:
            payload = body if isinstance(body, dict) else orjson.loads(body or b"")
        except orjson.JSONDecodeError:
            return _Outcome(400, dumps(simple_error("BadRequest", "The request body is not valid JSON.")))
        cmdlet_input = payload.get("CmdletInput") if isinstance(payload, dict) else None
        if not isinstance(cmdlet_input, dict) or not isinstance(cmdlet_input.get("CmdletName"), str) \
                or not cmdlet_input["CmdletName"].strip():
            return _Outcome(400, dumps(simple_error(
                "BadRequest", "The request body must contain CmdletInput with a CmdletName.")))
        cmdlet = cmdlet_input["CmdletName"].strip()
        params = cmdlet_input.get("Parameters") or {}
        if not isinstance(params, dict):
            return _Outcome(400, dumps(simple_error("BadRequest", "CmdletInput.Parameters must be an object.")))
        page_size = _page_size(_header(headers, "Prefer"))
        write = is_write(cmdlet)
        if "bool-literals" in self.knobs.variants:
            refused = _bool_literal_param(params)
            if refused is not None:
                return _Outcome(400, dumps(cmdlet_error_payload(refused)))
        if write:
            wait = self.budget.take(self.knobs.write_budget)
            if wait > 0:
                seconds = retry_after_header(wait)
                # The sandbox's own text for a write over the budget.
                return _Outcome(429, dumps(simple_error(
                    "TooManyRequests", f"The request was throttled: too many write operations for this tenant. "
                                       f"Retry after {seconds} seconds.")), {"Retry-After": seconds})
        self.stats.count_invoke(cmdlet, write)
        try:
            with self.tenant.lock:
                rows = self._run(cmdlet, params)
                if select:
                    rows = _selected(rows, select)
                warnings = list(getattr(self.tenant, "last_warnings", None) or [])
                first = rows[:page_size]  # records are built under the lock, serialised outside
            errors: list[str] = []
            if not write and len(rows) > 1:
                first, errors = self._record_errors(first)
        except CmdletError as err:
            if write and self._on_write is not None:
                self._on_write()
            return _Outcome(err.http_status, dumps(cmdlet_error_payload(err)))
        except Exception as exc:  # a sandbox bug, not an Exchange behaviour: say so
            traceback.print_exc(file=sys.stderr)
            return _Outcome(500, dumps(simple_error(
                "InternalServerError", f"The sandbox failed running {cmdlet}: {type(exc).__name__} "
                                       "(a sandbox bug; see its stderr).")))
        if write:
            if self._on_write is not None:
                self._on_write()
            with_text = "error-with-text" in self.knobs.variants
            if self.dice.chance(self.knobs.faults.get("applied-error", 0.0)) or (
                    with_text and self._quirk_due(cmdlet, params)):
                self.stats.count_fault("applied-error")
                # The GA quirk: the write landed, the answer is an error with an empty message.
                empty = CmdletError("", "NotSpecified", "", http_status=400)
                payload = cmdlet_error_payload(empty)
                if with_text:
                    payload = quirk_with_text(payload, cmdlet)
                return _Outcome(400, dumps(payload))
        next_token = None
        if len(rows) > page_size:
            next_token = f"{self.cursors.put(tenant.lower(), rows, page_size, self.knobs.cursor_ttl_s)}.1"
        return _Outcome(200, self._frame(tenant, dumps(first), next_token, warnings, errors))

    def _quirk_due(self, cmdlet: str, params: dict[str, Any]) -> bool:
        """Variant error-with-text: every QUIRK_EVERY-th flip or tenant-default write answers the quirk."""
        low = cmdlet.lower()
        if not ((low == "set-mailbox" and "IsExchangeCloudManaged" in params) or low == "set-organizationconfig"):
            return False
        with self._quirk_lock:
            self._quirk_writes += 1
            return self._quirk_writes % QUIRK_EVERY == 1

    def _record_errors(self, page: Sequence[dict[str, Any]]) -> tuple[Sequence[dict[str, Any]], list[str]]:
        """Variant adminapi-errors: leave some records of a multi-record page out and name them in
        `@adminapi.errors` (the V3 module's ShowResultAndCheckForNextPage raises such errors; which
        records and the text are the sandbox's choice: each record of a page with a seeded chance)."""
        if "adminapi-errors" not in self.knobs.variants or len(page) < 2:
            return page, []
        kept: list[dict[str, Any]] = []
        errors: list[str] = []
        for record in page:
            ident = record.get("ExternalDirectoryObjectId") or record.get("Guid") or record.get("Identity")
            if ident and self.dice.chance(ADMINAPI_ERROR_RATE):
                errors.append(f"{error_id('ADTransientException')}|Microsoft.Exchange.Data.Directory."
                              f"ADTransientException|The object '{ident}' couldn't be read and was left out of "
                              "the results: an Active Directory operation failed. (sandbox message)")
                continue
            kept.append(record)
        self.stats.count("record_errors", len(errors))
        return kept, errors

    def _run(self, cmdlet: str, params: dict[str, Any]) -> Sequence[dict[str, Any]]:
        """Run a cmdlet; Get-* results stay lazy when the tenant offers query()."""
        query = getattr(self.tenant, "query", None)
        if query is not None:
            result: Sequence[dict[str, Any]] = query(cmdlet, params, side="exo")
            return result
        return self.tenant.invoke(cmdlet, params, side="exo")

    def _context(self, tenant: str) -> str:
        return f"{self._base_url()}/adminapi/beta/{tenant}/$metadata#Collection(Exchange.GenericHashTable)"

    def _frame(self, tenant: str, page: bytes, next_token: str | None, warnings: list[str],
               errors: list[str] | None = None) -> bytes:
        parts = [b'{"@odata.context":', dumps(self._context(tenant))]
        if warnings:
            parts += [b',"@adminapi.warnings":', dumps(warnings)]
        if errors:
            parts += [b',"@adminapi.errors":', dumps(errors)]
        parts += [b',"value":', page]
        if next_token is not None:
            base = (self.knobs.next_link_base_url or self._base_url()).rstrip("/")
            link = f"{base}/adminapi/beta/{tenant}/InvokeCommand?%24skiptoken={next_token}"
            parts += [b',"@odata.nextLink":', dumps(link)]
        parts.append(b"}")
        self.stats.count("pages_served")
        return b"".join(parts)

    def _next_page(self, token: str, tenant: str) -> _Outcome:
        cid, _, index_text = token.rpartition(".")
        got = None
        if cid and index_text.isdigit():
            got = self.cursors.page(cid, int(index_text), tenant.lower(), self.knobs.cursor_ttl_s,
                                    advances="cursor-advances" in self.knobs.variants)
        if got is None:
            # The sandbox's own text: an unknown or expired cursor.
            return _Outcome(400, dumps(simple_error(
                "BadRequest", "The skip token is not valid or has expired. Run the command again.")))
        rows, start, end, more, served = got
        with self.tenant.lock:
            page = rows[start:end]
        next_token = f"{cid}.{served + 1}" if more else None
        page, errors = self._record_errors(page)
        return _Outcome(200, self._frame(tenant, dumps(page), next_token, [], errors))

    # -- $batch ----------------------------------------------------------------------------
    def _batch(self, request: Request, tenant: str) -> Response:
        if request.method.upper() != "POST":
            return Response.json(405, simple_error("MethodNotAllowed", "Use POST for $batch."))
        try:
            payload = orjson.loads(request.body or b"")
        except orjson.JSONDecodeError:
            return Response.json(400, simple_error("BadRequest", "The request body is not valid JSON."))
        subs = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(subs, list) or not subs:
            return Response.json(400, simple_error("BadRequest", "The batch request must contain 'requests'."))
        if len(subs) > MAX_BATCH:
            # The sandbox's own text (OData JSON batch limit of the service: 10 requests).
            return Response.json(400, simple_error(
                "BadRequest", f"The batch contains {len(subs)} requests; the limit is {MAX_BATCH}."))
        ids = [str(sub["id"]) for sub in subs if isinstance(sub, dict) and sub.get("id") is not None]
        repeated = next((i for n, i in enumerate(ids) if i in ids[:n]), None)
        if repeated is not None:
            # OData JSON batch format (v4.01 section 19.1): a request id is unique within its batch,
            # since answers are matched to requests by id. The sandbox's own text.
            return Response.json(400, simple_error(
                "BadRequest", f"The batch request contains the request id '{repeated}' more than once."))
        continue_on_error = "odata.continue-on-error" in request.header("Prefer").lower()
        responses: list[dict[str, Any]] = []
        item_s = self.knobs.batch_item_s()
        for sub in subs:
            if item_s:
                # Each item costs server time in the batch's concurrency slot, one after the
                # other (docs/exchange-facts.md, "Cost of a $batch and of WinRM requests").
                time.sleep(item_s)
            outcome, sub_id = self._batch_item(sub, tenant)
            if outcome.status == 429:
                self.stats.count("batch_item_429")
            sub_headers = {"Content-Type": "application/json; charset=utf-8"}
            sub_headers.update(outcome.headers)
            responses.append({"id": sub_id, "status": outcome.status, "headers": sub_headers,
                              "body": orjson.Fragment(outcome.body)})
            if outcome.status >= 400 and not continue_on_error:
                break
        return Response.raw_json(200, orjson.dumps({"responses": responses}), self._echo(request))

    def _batch_item(self, sub: Any, tenant: str) -> tuple[_Outcome, str]:
        if not isinstance(sub, dict):
            return _Outcome(400, dumps(simple_error("BadRequest", "A batch item must be an object."))), ""
        sub_id = str(sub.get("id", ""))
        url = str(sub.get("url", ""))
        parts = urlsplit(url)
        path = unquote(parts.path)
        segments = [p for p in path.split("/") if p]
        if not segments or segments[-1].lower() != "invokecommand":
            return _Outcome(400, dumps(simple_error(
                "BadRequest", f"Batch item '{sub_id}': only InvokeCommand can be batched."))), sub_id
        if len(segments) >= 3 and segments[0].lower() == "adminapi" and segments[-2].lower() != tenant.lower() \
                and not self.tokens.knows_tenant(segments[-2]):
            return _Outcome(400, dumps(simple_error(
                "BadRequest", f"Batch item '{sub_id}' names another tenant."))), sub_id
        body = sub.get("body")
        if isinstance(body, str):
            body = body.encode()
        headers = sub.get("headers") if isinstance(sub.get("headers"), dict) else {}
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        outcome = self._invoke_request(str(sub.get("method", "POST")), query, body, headers, tenant)
        return outcome, sub_id


_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_BOOL_VAR = re.compile(r"\$(?:true|false)\b", re.IGNORECASE)
#: The filter parameters the V3 module sanitises (FilterParametersForBooleanParsing).
BOOL_FILTER_PARAMS = ("Filter", "RecipientFilter", "RecipientPreviewFilter")


def _bool_literal_param(params: dict[str, Any]) -> CmdletError | None:
    """Variant bool-literals: the error for a `$true`/`$false` outside quotes in a filter parameter.

    The V3 module rewrites them to 'True'/'False' before InvokeCommand (Get-SanitizedBoolValuesInFilter),
    so the service is assumed not to bind them; the error text is the sandbox's own."""
    for name in BOOL_FILTER_PARAMS:
        value = next((v for k, v in params.items() if k.lower() == name.lower()), None)
        if isinstance(value, str) and _BOOL_VAR.search(_QUOTED.sub("''", value)):
            return CmdletError(
                "ParameterBindingException", "InvalidArgument",
                f"Cannot bind parameter '{name}' to the target. Exception setting \"{name}\": \"The value "
                f"'$true' or '$false' can't be used in a filter sent to this endpoint; use 'True' or 'False'.\" "
                "(sandbox message)")
    return None


def quirk_with_text(payload: dict[str, Any], cmdlet: str) -> dict[str, Any]:
    """Variant error-with-text: the quirk's exception message stays empty, its ErrorDetails carry text
    (public notes on the Set-Mailbox quirk); the text is the sandbox's own."""
    text = (f"{error_id('TaskInvalidOperationException')}|Microsoft.Exchange.Configuration.Tasks."
            f"TaskInvalidOperationException|{cmdlet} failed while completing the change; the operation may "
            "have partially completed. (sandbox message)")
    payload["error"]["details"] = [{"code": "Client", "target": "", "message": text}]
    return payload


def _selected(rows: Sequence[dict[str, Any]], names: list[str]) -> Sequence[dict[str, Any]]:
    """`rows` with only the properties in `names` ($select): the tenant's lazy RecordSet projects
    itself (records then cost only those properties); plain records are filtered."""
    select = getattr(rows, "select", None)
    if callable(select):
        projected: Sequence[dict[str, Any]] = select(names)
        return projected
    wanted = {n.strip().lower() for n in names}
    return [{k: v for k, v in r.items() if k.lower() in wanted} for r in rows]


def _header(headers: Any, name: str) -> str:
    if headers is None:
        return ""
    if isinstance(headers, dict):
        for k, v in headers.items():
            if str(k).lower() == name.lower():
                return str(v)
        return ""
    value = headers.get(name)
    return "" if value is None else str(value)


def _page_size(prefer: str) -> int:
    """The page size asked for by `Prefer: odata.maxpagesize=N`, clamped to 1..1000."""
    for item in prefer.split(","):
        key, _, value = item.strip().partition("=")
        if key.strip().lower() == "odata.maxpagesize":
            try:
                return max(1, min(MAX_PAGE_SIZE, int(value.strip().strip('"'))))
            except ValueError:
                return DEFAULT_PAGE_SIZE
    return DEFAULT_PAGE_SIZE
