"""The one classifier: REST error JSON + status -> typed bridge errors (by type and status, not text)."""
from __future__ import annotations

import httpx
import pytest
from exocm.core.bridge.classify import classify_response, classify_transport_error, error_detail, retryable
from exocm.core.bridge.errors import (
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


def exo_error(detail: str, *, message: str = "Error executing request.") -> dict[str, object]:
    return {"error": {"code": "InternalServerError", "message": message,
                      "details": [{"code": "Context", "target": "", "message": detail}]}}


@pytest.mark.parametrize(("detail", "expected"), [
    ("Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"
     "The operation couldn't be performed because object 'x' couldn't be found.", NotFound),
    ("ExB0A1|Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException|"
     "The operation couldn't be performed because 'x' matches multiple entries.", Ambiguous),
    ("Ex1|System.Management.Automation.ParameterBindingException|A parameter cannot be found that "
     "matches parameter name 'Frobnicate'.", InvalidInput),
    ("Ex2|System.Management.Automation.CommandNotFoundException|The term 'Get-Nothing' is not recognized.",
     InvalidInput),
    # older "Type|Category|Message" order
    ("Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|ObjectNotFound|gone", NotFound),
])
def test_exchange_exception_types_map_to_typed_errors(detail: str, expected: type[BridgeError]) -> None:
    error = classify_response(400, exo_error(detail), cmdlet="Get-Mailbox")
    assert type(error) is expected
    assert error.cmdlet == "Get-Mailbox"
    assert error.message.startswith("Get-Mailbox: ")


def test_detail_message_is_split_into_type_and_text() -> None:
    detail = error_detail(exo_error("Ex9|Some.Namespace.ManagementObjectNotFoundException|Object 'a|b' missing"))
    assert detail.error_type == "ManagementObjectNotFoundException"
    assert detail.message == "Object 'a|b' missing"


def test_inner_exception_is_used_when_details_are_missing() -> None:
    body = {"error": {"code": "x", "message": "outer", "innererror": {
        "internalException": {"type": "Microsoft.Exchange.ManagementObjectAmbiguousException",
                              "message": "two of them"}}}}
    error = classify_response(400, body)
    assert isinstance(error, Ambiguous)
    assert "two of them" in error.message


def test_status_codes_map_to_auth_permission_and_throttle() -> None:
    assert isinstance(classify_response(401, None), AuthFailed)
    assert isinstance(classify_response(403, exo_error("x|y.UnknownException|no role")), PermissionDenied)
    throttled = classify_response(429, None, retry_after="7")
    assert isinstance(throttled, Throttled) and throttled.retry_after == 7.0
    for status in (503, 504, 408):
        assert isinstance(classify_response(status, None), Throttled)
    assert type(classify_response(500, None)) is Transient
    assert type(classify_response(502, None)) is Transient


def test_concurrency_body_is_a_throttle_even_with_another_status() -> None:
    body = {"error": {"code": "TooManyRequests", "message": "You have reached the maximum number of "
                      "concurrent requests per tenant. Please wait and try again."}}
    assert isinstance(classify_response(400, body), Throttled)


def test_writes_that_may_have_applied_become_applied_unknown() -> None:
    empty = {"error": {"code": "InternalServerError", "message": "", "details": []}}
    assert isinstance(classify_response(400, empty, is_write=True), AppliedUnknown)
    assert isinstance(classify_response(500, None, is_write=True), AppliedUnknown)
    assert isinstance(classify_response(503, None, is_write=True), AppliedUnknown)
    # refused before it ran: still a throttle, safe to resend
    assert isinstance(classify_response(429, None, is_write=True, retry_after="2"), Throttled)
    # a typed error is what it says, even for a write
    assert isinstance(classify_response(400, exo_error("E|x.ManagementObjectNotFoundException|"),
                                        is_write=True), NotFound)


def test_retryable_never_resends_an_applied_unknown_write() -> None:
    assert retryable(Transient("x"), is_write=False)
    assert retryable(Throttled("x"), is_write=True)
    assert not retryable(AppliedUnknown("x"), is_write=True)
    assert not retryable(InvalidInput("x"), is_write=False)


def test_connection_failures_split_on_whether_the_request_was_sent() -> None:
    request = httpx.Request("POST", "https://exo.example/x")
    assert type(classify_transport_error(httpx.ConnectError("refused", request=request), is_write=True)) \
        is Transient
    assert isinstance(classify_transport_error(httpx.ReadTimeout("slow", request=request), is_write=True),
                      AppliedUnknown)
    assert type(classify_transport_error(httpx.RemoteProtocolError("reset", request=request))) is Transient


def test_unknown_endpoint_is_a_protocol_error_not_a_missing_object() -> None:
    assert isinstance(classify_response(404, None), ProtocolError)
