"""THE one place that turns an Exchange Online REST failure into a typed bridge error.

Inputs are an HTTP status, the parsed JSON body (or None), the Retry-After header, and
whether the call was a write. Classification is by status and by the .NET exception type
or PowerShell error category that EXO reports, never by free message text, with one
documented exception: EXO's concurrency error body "...maximum number of concurrent
requests..." (docs/exchange-facts.md#throttling) is a throttle.

EXO's error JSON (what ExchangeOnlineManagement V3 and CIPP read, in this order):
`error.details[].message` as "ErrorId|ExceptionType|Message" (older clients saw
"ExceptionType|Category|Message"), else `error.innererror.internalException.message`
(with `.type`), else `error.message`.

Writes: an error that may have happened after the cmdlet ran (5xx, 503/504/408, reset or
timeout after the request was sent, or a failure with an empty message, the known
Set-Mailbox quirk) becomes AppliedUnknown: the caller reads back, never retries blindly.
A 429 or the concurrency error is raised before the cmdlet runs, so it stays Throttled
(safe to retry) for writes too. Connect failures (nothing sent) stay Transient.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .errors import (
    Ambiguous,
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
from .retry import parse_retry_after

#: Statuses EXO uses for throttling / overload (docs/exchange-facts.md#throttling).
THROTTLE_STATUSES = frozenset({429, 503, 504, 408})
#: The one message text we classify on: EXO's per-tenant concurrency error (docs/exchange-facts.md#throttling).
CONCURRENCY_TEXT = "maximum number of concurrent requests"

_NOT_FOUND_TYPES = frozenset({
    "ManagementObjectNotFoundException", "RecipientNotFoundException", "ObjectNotFoundException",
})
_AMBIGUOUS_TYPES = frozenset({"ManagementObjectAmbiguousException", "AmbiguousRecipientException"})
_INVALID_TYPES = frozenset({
    "ParameterBindingException", "ParameterBindingValidationException", "CommandNotFoundException",
    "ParameterBindingArgumentTransformationException", "ArgumentException", "ArgumentNullException",
    "ArgumentOutOfRangeException", "InvalidFilterException", "FilterParsingException",
    "ParserException", "InvalidCastException", "FormatException", "DataValidationException",
    "PSArgumentException", "ValidationMetadataException",
})
_PERMISSION_TYPES = frozenset({"UnauthorizedAccessException", "SecurityException",
                               "AccessDeniedException"})
_TRANSIENT_TYPES = frozenset({"TimeoutException", "ServerBusyException", "TransientException",
                              "ConnectionFailedTransientException", "ADTransientException"})

_CATEGORY_CLASSES: dict[str, type[BridgeError]] = {
    "ObjectNotFound": NotFound,
    "InvalidArgument": InvalidInput,
    "InvalidData": InvalidInput,
    "InvalidType": InvalidInput,
    "SyntaxError": InvalidInput,
    "ParserError": InvalidInput,
    "PermissionDenied": PermissionDenied,
    "SecurityError": PermissionDenied,
    "ResourceBusy": Transient,
    "OperationTimeout": Transient,
    "ConnectionError": Transient,
    "LimitsExceeded": Throttled,
    "QuotaExceeded": Throttled,
}

_TYPE_NAME = re.compile(r"^[A-Za-z_][\w.`]*(Exception|Error)$")


@dataclass(frozen=True)
class ErrorDetail:
    """What EXO said about a failure: exception type (short name), category, message."""

    error_type: str | None
    category: str | None
    message: str
    code: str | None = None
    #: The exception's own message was present and empty (the Set-Mailbox quirk), whatever the
    #: error details say: public notes on the quirk show an empty exception message with text in
    #: ErrorDetails (docs/exchange-facts.md#applied-but-errored).
    exception_message_empty: bool = False


def _short_type(name: str | None) -> str | None:
    if not name:
        return None
    return name.strip().rsplit(".", 1)[-1] or None


def _split_detail(text: str) -> tuple[str | None, str | None, str]:
    """Split "ErrorId|ExceptionType|Message" or "ExceptionType|Category|Message"."""
    parts = text.split("|", 2)
    if len(parts) < 3:
        return None, None, text.strip()
    first, second, message = (p.strip() for p in parts)
    if _TYPE_NAME.match(second):
        return second, (first if first in _CATEGORY_CLASSES else None), message
    if _TYPE_NAME.match(first):
        return first, second or None, message
    return None, None, text.strip()


def error_detail(body: Any) -> ErrorDetail:
    """Pull the exception type, category and message out of an EXO error body."""
    if not isinstance(body, Mapping):
        return ErrorDetail(None, None, "")
    error = body.get("error")
    if not isinstance(error, Mapping):
        return ErrorDetail(None, None, "")
    code = error.get("code") if isinstance(error.get("code"), str) else None
    error_type: str | None = None
    category: str | None = None
    message = ""
    empty_exception = False
    details = error.get("details")
    if isinstance(details, list):
        for item in details:
            if isinstance(item, Mapping) and isinstance(item.get("message"), str) and item["message"].strip():
                error_type, category, message = _split_detail(item["message"])
                break
    inner = error.get("innererror")
    internal = inner.get("internalException") if isinstance(inner, Mapping) else None
    if isinstance(internal, Mapping):
        if not error_type and isinstance(internal.get("type"), str) and internal["type"].strip():
            error_type = internal["type"]
        if not category and isinstance(internal.get("category"), str) and internal["category"].strip():
            category = internal["category"]
        if isinstance(internal.get("message"), str):
            empty_exception = not internal["message"].strip()
            if not message:
                message = internal["message"].strip()
    # innererror.type itself is only the OData wrapper (ODataServiceException): not used.
    if not message and isinstance(error.get("message"), str):
        text = error["message"].strip()
        t, c, m = _split_detail(text)
        error_type, category, message = error_type or t, category or c, m
    return ErrorDetail(_short_type(error_type), category, message, code, empty_exception)


def _is_concurrency_error(detail: ErrorDetail, raw_text: str) -> bool:
    return CONCURRENCY_TEXT in detail.message.lower() or CONCURRENCY_TEXT in raw_text.lower()


def _type_class(detail: ErrorDetail) -> type[BridgeError] | None:
    name = detail.error_type or ""
    if name in _NOT_FOUND_TYPES:
        return NotFound
    if name in _AMBIGUOUS_TYPES:
        return Ambiguous
    if name in _INVALID_TYPES:
        return InvalidInput
    if name in _PERMISSION_TYPES:
        return PermissionDenied
    if name in _TRANSIENT_TYPES:
        return Transient
    if detail.category in _CATEGORY_CLASSES:
        return _CATEGORY_CLASSES[detail.category]
    return None


def _describe(status: int, detail: ErrorDetail, cmdlet: str | None) -> str:
    what = f"{cmdlet}: " if cmdlet else ""
    kind = f" ({detail.error_type})" if detail.error_type else ""
    text = " ".join(detail.message.split()) or f"HTTP {status} with an empty error message"
    if len(text) > 500:
        text = text[:499] + "…"
    return f"{what}{text}{kind}"


def classify_response(
    status: int,
    body: Any,
    *,
    retry_after: str | None = None,
    raw_text: str = "",
    cmdlet: str | None = None,
    identity: str | None = None,
    is_write: bool = False,
) -> BridgeError:
    """Map one failed REST answer (or $batch sub-answer) to a typed bridge error."""
    detail = error_detail(body)
    message = _describe(status, detail, cmdlet)
    kw: dict[str, str | None] = {"cmdlet": cmdlet, "identity": identity}
    if status == 401:
        return AuthFailed(f"{cmdlet + ': ' if cmdlet else ''}the service rejected the access token "
                          f"(HTTP 401){': ' + detail.message if detail.message else ''}", **kw)
    if status == 403:
        return PermissionDenied(message, **kw)
    if status == 429 or _is_concurrency_error(detail, raw_text):
        return Throttled(message, retry_after=parse_retry_after(retry_after), **kw)
    cls = _type_class(detail)
    if cls is not None and cls not in (Transient, Throttled):
        return cls(message, **kw)
    if is_write and (status >= 500 or status in THROTTLE_STATUSES or not detail.message
                     or detail.exception_message_empty or cls in (Transient, Throttled)):
        return AppliedUnknown(f"{message} — the change may have been applied; read it back", **kw)
    if status in THROTTLE_STATUSES or cls is Throttled:
        return Throttled(message, retry_after=parse_retry_after(retry_after), **kw)
    if status >= 500 or cls is Transient:
        return Transient(message, **kw)
    if status == 404 and detail.error_type is None:
        return ProtocolError(f"{message} — the endpoint was not found; check the REST base URL and tenant",
                             **kw)
    if status == 400 and detail.error_type is None and not detail.message:
        return InvalidInput(message, **kw)
    return BridgeError(message, **kw)


def classify_transport_error(
    exc: httpx.HTTPError, *, cmdlet: str | None = None, identity: str | None = None, is_write: bool = False
) -> BridgeError:
    """Map a connection failure (reset, timeout, TLS) to a typed bridge error."""
    kw: dict[str, str | None] = {"cmdlet": cmdlet, "identity": identity}
    name = exc.__class__.__name__
    prefix = f"{cmdlet}: " if cmdlet else ""
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return AuthFailed(f"{prefix}TLS verification of the REST endpoint failed (wrong CA bundle?)", **kw)
    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if is_write and not not_sent:
        return AppliedUnknown(f"{prefix}connection failed after the request was sent ({name}) — "
                              "the change may have been applied; read it back", **kw)
    return Transient(f"{prefix}connection failed ({name})", **kw)


def retryable(error: BridgeError, *, is_write: bool) -> bool:
    """May this call simply be sent again? Reads: any Transient. Writes: only when not applied."""
    if isinstance(error, AppliedUnknown):
        return False
    return isinstance(error, Transient)
