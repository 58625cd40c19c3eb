"""The PowerShell remoting bridge (pypsrp over WinRM): on-prem Exchange, or EXO through a Windows host.

- One runspace pool per endpoint, opened on first use and reused across calls; calls on one
  bridge run one at a time (a pool of one runspace, as Exchange's endpoint hands out).
- Commands are built with `add_cmdlet` / `add_parameter`: an identity such as
  `O'Brien; Remove-Mailbox x` travels as a string parameter value and is never script text.
- Output objects are decoded to the same plain records as the REST transport: typed Exchange
  collections (ProxyAddressCollection, MultiValuedProperty) to lists, enums to their names,
  Guids to lower-case text, `<DT>` values to tz-aware UTC datetimes; then the shared
  `normalize_record`. Pipeline output is kept as raw CLIXML and decoded by `clixml` (pypsrp's
  object model costs ~1.7 ms per selected mailbox); objects that did go through pypsrp (where
  typed collections stay raw `<LST>` text and dates stay strings) are decoded with psrpcore.
- Errors: `had_errors` is only set by terminating errors, so the error stream is read too; both
  go through the REST classifier (`classify.classify_response`) so both transports raise the
  same typed errors for the same Exchange error type and category.
- For EXO through a management host the session first runs
  `Connect-ExchangeOnline -AccessToken <token from the MSAL layer> -Organization <tenant>`; a
  rejected token is refreshed (up to MAX_TOKEN_REFRESHES times per call).
- Reads are retried on Transient errors with the shared backoff (a fresh pool each time);
  writes are not: a write whose connection broke after the command was sent is AppliedUnknown.
- pypsrp logs every PSRP message and WSMan envelope at DEBUG, parameter values included (the
  access token of Connect-ExchangeOnline, in clear or base64): a filter on its loggers keeps
  those bodies out of the records, so turning logging on never writes a secret.
"""
from __future__ import annotations

import ipaddress
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import requests
from psrpcore import PSRemotingCrypto
from psrpcore.types import ErrorCategory
from psrpcore.types import deserialize as ps_deserialize
from pypsrp.complex_objects import GenericComplexObject, PSInvocationState
from pypsrp.exceptions import (
    AuthenticationError,
    InvalidPSRPOperation,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.serializer import Serializer
from pypsrp.wsman import WSMan
from spnego.exceptions import FeatureMissingError, SpnegoError

from . import clixml
from .base import (
    Call,
    CallResult,
    Record,
    counters,
    identity_of,
    is_read_cmdlet,
    plain_parameters,
)
from .classify import classify_response, retryable
from .errors import AppliedUnknown, AuthFailed, BridgeError, ProtocolError, Transient
from .normalize import normalize_record, parse_datetime
from .retry import Backoff, RetryPolicy, Sleep
from .tokens import TokenProvider

log = logging.getLogger(__name__)

#: Configurations: Exchange's IIS endpoint (/PowerShell) and a Windows host's default one (/wsman).
EXCHANGE_CONFIGURATION = "Microsoft.Exchange"
HOST_CONFIGURATION = "Microsoft.PowerShell"
AUTH_KINDS = ("basic", "negotiate", "kerberos", "ntlm", "certificate")
_WSMAN_TIMED_OUT = 2150858793
#: Tries of a call while the endpoint has never answered and cannot be reached (a wrong host or
#: port, a stopped server): one clear error in about a second, as the REST transport does.
FIRST_CONTACT_ATTEMPTS = 3
#: Token refreshes per call when the host's session rejects the access token. More than one: each
#: refresh costs a fresh pool and a new Connect-ExchangeOnline, a window in which a short-lived
#: token can lapse again; a credential that is really wrong fails in MSAL, or after these tries.
MAX_TOKEN_REFRESHES = 2
_DT_PROPERTY = re.compile(r'<DT N="([^"]+)"')
_RAW_COLLECTION = ("<LST", "<IE", "<QUE", "<STK")


@dataclass(frozen=True)
class PsrpEndpoint:
    """Where and how to reach a WinRM endpoint. The password is never printed (repr=False)."""

    url: str
    auth: str = "basic"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    configuration: str | None = None
    ca_file: str | None = None
    cert_validation: bool = True
    certificate_pem: str | None = None
    certificate_key_pem: str | None = None
    operation_timeout: int = 20
    read_timeout: int = 30

    @property
    def configuration_name(self) -> str:
        """The PSRP configuration: explicit, else by path (/PowerShell -> Microsoft.Exchange)."""
        if self.configuration:
            return self.configuration
        path = urlsplit(self.url).path.rstrip("/").lower()
        return EXCHANGE_CONFIGURATION if path.endswith("/powershell") else HOST_CONFIGURATION

    @property
    def host(self) -> str:
        """Host name of the endpoint."""
        return urlsplit(self.url).hostname or ""

    def validate(self) -> None:
        """Raise ValueError (one line) when the endpoint cannot work as written."""
        try:
            parts = urlsplit(self.url)
            host = parts.hostname
            port = parts.port
        except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range ..."
            raise ValueError(f"WinRM endpoint {self.url!r} is not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not host or port == 0:
            raise ValueError(f"WinRM endpoint must be an http(s) URL, not {self.url!r}")
        if self.auth not in AUTH_KINDS:
            raise ValueError(f"WinRM auth must be one of {', '.join(AUTH_KINDS)}, not {self.auth!r}")
        if self.auth == "basic" and not (self.username and self.password is not None):
            raise ValueError("WinRM basic auth needs a user name and a password")
        if self.auth == "kerberos" and not kerberos_available():
            raise ValueError("WinRM kerberos auth needs pypsrp's Kerberos extras (pip install 'exocm[kerberos]', "
                             "i.e. pypsrp[kerberos] with the system's Kerberos libraries), or use negotiate/ntlm")
        if self.auth == "certificate" and not (self.certificate_pem and self.certificate_key_pem):
            raise ValueError("WinRM certificate auth needs a certificate PEM and its key PEM")
        if not 1 <= self.operation_timeout < self.read_timeout:
            # a Receive is held up to OperationTimeout: the HTTP read must wait longer than that
            raise ValueError(f"WinRM read timeout ({self.read_timeout} s) must be longer than the operation "
                             f"timeout ({self.operation_timeout} s, at least 1)")
        if self.auth in ("basic", "certificate") and parts.scheme != "https" and not _is_loopback(host):
            raise ValueError(f"WinRM {self.auth} auth sends credentials: use https:// (TLS), not {self.url!r}")


def kerberos_available() -> bool:
    """True when pyspnego can do Kerberos here (Windows SSPI, or the Python gssapi library elsewhere)."""
    import importlib.util
    import sys

    return sys.platform == "win32" or importlib.util.find_spec("gssapi") is not None


def endpoint_url(host_or_url: str) -> str:
    """`exch01.contoso.com` -> `https://exch01.contoso.com/PowerShell`; URLs are kept as given."""
    text = host_or_url.strip()
    if "://" in text:
        return text
    return f"https://{text}/PowerShell"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- logging ---------------------------------------------------------------------------------
class _NoMessageBodies(logging.Filter):
    """Replaces the body of pypsrp's message dumps with its length (bodies carry parameter values)."""

    PREFIXES = ("Packing PSRP message", "Unpacking PSRP message", "Sending message on attempt", "Received message")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a message dump in place; every record is kept."""
        text = record.msg
        if isinstance(text, str) and text.startswith(self.PREFIXES):
            head, _, body = text.partition(":")
            record.msg = f"{head}: <{len(body)} characters, not logged: message bodies carry parameter values>"
            record.args = None
        return True


def _quiet_message_bodies() -> None:
    for name in ("pypsrp.messages", "pypsrp.wsman"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoMessageBodies) for f in logger.filters):
            logger.addFilter(_NoMessageBodies())


_quiet_message_bodies()


# -- decoding -------------------------------------------------------------------------------
_CIPHER = PSRemotingCrypto()


def _clixml(text: str) -> Any:
    return ps_deserialize(ET.fromstring(text), _CIPHER)


def _decode_collection(raw: str) -> list[Any]:
    """A typed collection pypsrp left as raw CLIXML (`<LST>...</LST>`) -> list of plain values."""
    try:
        items = _clixml(f'<Obj RefId="0">{raw}</Obj>')
    except (ET.ParseError, ValueError, KeyError):
        return [raw]
    return [_plain(v) for v in items]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, uuid.UUID):
        return str(value).lower()
    if isinstance(value, datetime):
        return value
    return str(value)


def _decode_value(value: Any, is_date: bool) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, uuid.UUID):
        return str(value).lower()
    if isinstance(value, str):
        if is_date:
            try:
                moment = _clixml(f"<DT>{value}</DT>")
            except (ET.ParseError, ValueError):
                return parse_datetime(value) or value
            return datetime.fromisoformat(moment.isoformat()) if isinstance(moment, datetime) else value
        if value.startswith(_RAW_COLLECTION):
            return _decode_collection(value)
        return value
    if isinstance(value, GenericComplexObject):
        for part in value.property_sets:
            if isinstance(part, str) and part.startswith(_RAW_COLLECTION):
                return _decode_collection(part)
            if isinstance(part, list):
                return [_plain(v) for v in part]
        if value.to_string is not None:
            return str(value)  # enums and ADObjectId-like values: their string form is the name
        props = {**value.adapted_properties, **value.extended_properties}
        return {k: _decode_value(v, False) for k, v in props.items()} if props else None
    if isinstance(value, list | tuple):
        return [_plain(_decode_value(v, False)) for v in value]
    if isinstance(value, dict):
        return {str(k): _decode_value(v, False) for k, v in value.items()}
    return str(value)


class RawOutput(str):
    """A pipeline output object kept as its CLIXML text (decoded by `clixml`, not by pypsrp)."""

    __slots__ = ()


class _RawOutputSerializer(Serializer):
    """pypsrp's serializer, except that pipeline output stays raw CLIXML.

    pypsrp deserialises PIPELINE_OUTPUT by calling `deserialize(text)` without metadata (every
    other message passes its metadata); its generic decode costs ~1.7 ms per selected mailbox,
    `clixml.decode_record` a small fraction of that, so only output takes the fast path.
    """

    def deserialize(self, element: ET.Element | str, metadata: Any = None, clear: bool = True) -> Any:
        """Raw text for pipeline output; pypsrp's own decoding for everything else."""
        if metadata is None and clear and isinstance(element, str) and element.startswith("<Obj"):
            return RawOutput(element)
        return super().deserialize(element, metadata, clear)


def decode_output(obj: Any) -> Record:
    """One output object -> a plain record (same shape and types as the REST transport)."""
    if isinstance(obj, RawOutput):
        return normalize_record(clixml.decode_record(obj))
    if isinstance(obj, GenericComplexObject):
        raw = getattr(obj, "_xml", "") or ""
        dates = set(_DT_PROPERTY.findall(raw)) if "<DT " in raw else set()
        props = {**obj.adapted_properties, **obj.extended_properties}
        return normalize_record({k: _decode_value(v, k in dates) for k, v in props.items()})
    return normalize_record({"Value": _decode_value(obj, False)})


# -- errors ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteError:
    """An error record as the remote session reported it."""

    error_type: str
    category: str
    message: str
    terminating: bool


def _error_of(record: Any, terminating: bool) -> RemoteError:
    exception = getattr(record, "exception", None)
    types: list[str] = list(getattr(exception, "types", []) or [])
    message = ""
    if isinstance(exception, GenericComplexObject):
        message = str(exception.adapted_properties.get("Message") or exception.extended_properties.get("Message")
                      or "")
    elif exception is not None:
        message = str(exception)
    message = message or str(getattr(record, "details_message", "") or "")
    error_type = next((t.removeprefix("Deserialized.") for t in types
                       if not t.removeprefix("Deserialized.").startswith("System.Object")), "")
    if not error_type or error_type in ("System.Exception", "System.Management.Automation.RemoteException"):
        error_type = str(getattr(record, "reason", "") or error_type)
    try:
        category = ErrorCategory(int(getattr(record, "category", 0) or 0)).name
    except ValueError:
        category = "NotSpecified"
    return RemoteError(error_type, category, message, terminating)


def classify_remote(error: RemoteError, *, cmdlet: str, identity: str | None, is_write: bool) -> BridgeError:
    """Map a remote error record to the typed error REST would give for the same Exchange error."""
    if error.category == "AuthenticationError":
        return TokenRejected(f"{cmdlet}: {error.message or 'the access token was rejected'}", cmdlet=cmdlet,
                             identity=identity)
    if is_write and not error.message.strip():
        # The known quirk (docs/exchange-facts.md#applied-but-errored): a write that fails with an empty message may have applied.
        # Said here, not left to the REST body parser: a remote record's type and category carry no
        # "|"-separated detail, so an empty message must not turn into a parsed, non-empty one.
        kind = f" ({error.error_type})" if error.error_type else ""
        return AppliedUnknown(f"{cmdlet}: the write failed with an empty error message{kind} — the change may "
                              "have been applied; read it back", cmdlet=cmdlet, identity=identity)
    # The same EXO error body shape the REST classifier reads: "Category|ExceptionType|Message".
    body = {"error": {"message": error.message,
                      "details": [{"message": f"{error.category}|{error.error_type}|{error.message}"}]}}
    return classify_response(400, body, cmdlet=cmdlet, identity=identity, is_write=is_write)


@dataclass
class PsrpStats:
    """Counters of one PSRP bridge."""

    pipelines: int = 0
    #: pipelines that ended in `Select-Object -Property` (only the asked properties came back)
    selected_pipelines: int = 0
    records: int = 0
    pools_opened: int = 0
    retries: int = 0
    transport_errors: int = 0
    receive_timeouts: int = 0
    token_refreshes: int = 0
    waits_s: list[float] = field(default_factory=list)


class TokenRejected(AuthFailed):
    """The management host's Connect-ExchangeOnline session refused the access token (refreshable)."""


class _Broken(Exception):
    """Internal: the connection failed; `sent` tells whether the command reached the server,
    `unreachable` that no connection could be made to an endpoint that never answered."""

    def __init__(self, error: BridgeError, sent: bool, unreachable: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.sent = sent
        self.unreachable = unreachable


WarningCallback = Callable[[str, str], None]


class PsrpBridge:
    """Bridge over PowerShell remoting (WinRM) to Exchange, with the REST transport's records and errors."""

    kind = "psrp"
    #: stream(properties=...) selects remotely (Select-Object -Property): a PropertySelectingBridge.
    selects_properties = True

    def __init__(
        self,
        endpoint: PsrpEndpoint,
        tenant: str,
        *,
        token_provider: TokenProvider | None = None,
        organization: str | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
        on_warning: WarningCallback | None = None,
        wsman_factory: Callable[..., WSMan] = WSMan,
    ) -> None:
        endpoint.validate()
        self.endpoint = endpoint
        self.tenant = tenant
        self._tokens = token_provider
        self.organization = organization or tenant
        self._backoff = Backoff(retry_policy or RetryPolicy(), sleep, rng or random.Random())
        self.on_warning = on_warning
        self.stats = PsrpStats()
        self._wsman_factory = wsman_factory
        self._lock = threading.RLock()
        self._wsman: WSMan | None = None
        self._pool: RunspacePool | None = None
        self._local = threading.local()
        self._answered = False  # has the endpoint ever answered (a pool opened, or any HTTP/WSMan reply)?

    # -- public API ------------------------------------------------------------------------
    def sibling(self) -> PsrpBridge:
        """Another bridge to the same endpoint with the same settings and its own runspace pool
        (one more shell on the server): parallel reads run one pipeline per bridge."""
        return PsrpBridge(self.endpoint, self.tenant, token_provider=self._tokens, organization=self.organization,
                          retry_policy=self._backoff.policy, sleep=self._backoff.sleep, on_warning=self.on_warning,
                          wsman_factory=self._wsman_factory)

    @property
    def needs_exo_connect(self) -> bool:
        """True when this bridge reaches EXO through a management host (Connect-ExchangeOnline)."""
        return self._tokens is not None

    @property
    def answered(self) -> bool:
        """True once the endpoint has answered (a runspace pool opened, or an HTTP or WSMan error came back)."""
        return self._answered

    @property
    def last_warnings(self) -> list[str]:
        """Warnings of this thread's last call."""
        warnings: list[str] = getattr(self._local, "warnings", [])
        return warnings

    def invoke(self, cmdlet: str, parameters: dict[str, Any] | None = None, *,
               properties: Sequence[str] | None = None) -> list[Record]:
        """Run one cmdlet and return all its records (`properties`: Select-Object -Property remotely)."""
        records: list[Record] = []
        for page in self.stream(cmdlet, parameters, properties=properties):
            records.extend(page)
        return records

    def stream(self, cmdlet: str, parameters: dict[str, Any] | None = None, *, page_size: int = 1000,
               properties: Sequence[str] | None = None) -> Iterator[list[Record]]:
        """Run one cmdlet and yield its records in pages as they arrive.

        `properties` adds `| Select-Object -Property ...` to the remote pipeline (Exchange's
        endpoint allows it), which cuts what crosses the wire and what must be deserialised.
        """
        return self._stream(cmdlet, parameters, page_size=page_size, properties=properties)

    def run_script(self, script: str, *, label: str) -> list[Record]:
        """Run a FIXED read-only script (a constant of the caller, never built from input: nothing is
        pasted into it) on a full-language endpoint; `label` names it in errors (e.g. the cmdlet it
        reads). A plain value comes back as a record {"Value": ...}."""
        records: list[Record] = []
        for page in self._stream(label, None, page_size=1000, properties=None, script=script):
            records.extend(page)
        return records

    def _stream(self, cmdlet: str, parameters: dict[str, Any] | None, *, page_size: int,
                properties: Sequence[str] | None, script: str | None = None) -> Iterator[list[Record]]:
        is_write = not is_read_cmdlet(cmdlet)
        identity = identity_of(parameters)
        attempt = 0
        refreshes = 0
        while True:
            attempt += 1
            yielded = False
            try:
                for page in self._run(cmdlet, parameters or {}, properties, max(1, page_size), script):
                    yielded = True
                    yield page
                return
            except _Broken as broken:
                error = broken.error
                if is_write and broken.sent and not isinstance(error, AuthFailed):
                    error = AppliedUnknown(f"{error.message} — the change may have been applied; read it back",
                                           cmdlet=cmdlet, identity=identity)
                if (yielded or not retryable(error, is_write=is_write and broken.sent)
                        or self._backoff.gives_up(attempt)
                        or (broken.unreachable and attempt >= FIRST_CONTACT_ATTEMPTS)):
                    raise error from None
            except TokenRejected:
                if refreshes >= MAX_TOKEN_REFRESHES or not self.needs_exo_connect or yielded:
                    raise
                refreshes += 1
                self._reset()
                assert self._tokens is not None
                with self._lock:
                    self.stats.token_refreshes += 1
                self._tokens.refresh()
                continue
            log.info("%s over PSRP: %s on attempt %d, retrying", cmdlet, type(error).__name__, attempt)
            with self._lock:
                self.stats.retries += 1
                self.stats.waits_s.append(self._backoff.wait(attempt))

    def invoke_many(self, calls: Sequence[Call]) -> list[CallResult]:
        """Run calls one after another on the shared pool; one CallResult per call, in order."""
        results: list[CallResult] = []
        for call in calls:
            result = CallResult(call)
            try:
                result.records = self.invoke(call.cmdlet, dict(call.parameters))
            except BridgeError as exc:
                result.error = exc
            result.warnings = list(self.last_warnings)
            results.append(result)
        return results

    def close(self) -> None:
        """Close the runspace pool (best effort) and the HTTP session."""
        with self._lock:
            pool, wsman = self._pool, self._wsman
            self._pool = self._wsman = None
        if pool is not None:
            try:
                pool.close()
            except Exception:  # closing a pool on a dead connection must not mask the real outcome
                pass
        if wsman is not None:
            wsman.close()

    def __enter__(self) -> PsrpBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> dict[str, Any]:
        """Counters for progress displays and benchmarks."""
        with self._lock:
            return counters(self.stats)

    # -- connection ------------------------------------------------------------------------
    def _new_wsman(self) -> WSMan:
        ep = self.endpoint
        parts = urlsplit(ep.url)
        ssl_on = parts.scheme == "https"
        cert_validation: bool | str = ep.ca_file if (ep.ca_file and ep.cert_validation) else ep.cert_validation
        kwargs: dict[str, Any] = {}
        if ep.auth == "certificate":
            kwargs = {"certificate_pem": ep.certificate_pem, "certificate_key_pem": ep.certificate_key_pem}
        return self._wsman_factory(
            parts.hostname or "",
            port=parts.port or (443 if ssl_on else 80),
            path=parts.path.lstrip("/") or "wsman",
            ssl=ssl_on,
            auth=ep.auth,
            username=ep.username,
            password=ep.password,
            cert_validation=cert_validation,
            # Message encryption needs Negotiate/Kerberos; Basic over plain HTTP is for loopback tests.
            encryption="never" if not ssl_on and ep.auth in ("basic", "certificate") else "auto",
            # With a named CA file nothing in the environment may redirect the connection.
            no_proxy=bool(ep.ca_file) or _is_loopback(parts.hostname or ""),
            operation_timeout=ep.operation_timeout,
            read_timeout=ep.read_timeout,
            **kwargs,
        )

    def _open(self) -> RunspacePool:
        with self._lock:
            if self._pool is not None:
                return self._pool
            wsman = self._new_wsman()
            pool = RunspacePool(wsman, configuration_name=self.endpoint.configuration_name)
            # Output stays raw CLIXML for the fast decoder (pypsrp keeps one serializer per pool,
            # shared with its fragmenter; both must see the same object).
            pool._serializer = pool._fragmenter.serializer = _RawOutputSerializer()
            try:
                pool.open()
            except BaseException:
                wsman.close()
                raise
            self._wsman, self._pool = wsman, pool
            self.stats.pools_opened += 1
            self._answered = True
        if self._tokens is not None:
            self._connect_exo(pool)
        return pool

    def _connect_exo(self, pool: RunspacePool) -> None:
        assert self._tokens is not None
        ps = PowerShell(pool)
        ps.add_cmdlet("Connect-ExchangeOnline")
        ps.add_parameter("AccessToken", self._tokens.token())
        ps.add_parameter("Organization", self.organization)
        ps.add_parameter("ShowBanner", False)
        ps.invoke()
        errors = list(ps.streams.error)
        ps.close()
        if errors:
            remote = _error_of(errors[0], ps.had_errors)
            self._reset()
            raise classify_remote(remote, cmdlet="Connect-ExchangeOnline", identity=None, is_write=False)

    def _reset(self) -> None:
        """Forget the pool after a failure (best-effort close; the next call opens a fresh one)."""
        self.close()

    def _transport_error(self, exc: BaseException, cmdlet: str, identity: str | None) -> BridgeError:
        ep = self.endpoint
        where = f"WinRM endpoint {ep.url}"
        kw: dict[str, str | None] = {"cmdlet": cmdlet, "identity": identity}
        if not isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            self._answered = True
        if isinstance(exc, AuthenticationError):
            who = f" the credentials of '{ep.username}'" if ep.username else " the credentials"
            return AuthFailed(f"{where} rejected{who} ({ep.auth} auth); check the user name and password", **kw)
        if isinstance(exc, requests.exceptions.SSLError | OSError) and ep.auth == "certificate" and any(
                hint in str(exc) for hint in ("PEM", "KEY_VALUES_MISMATCH", "No such file")):
            return AuthFailed(f"the client certificate or key for {where} cannot be used (not a PEM certificate "
                              "and its matching key?)", **kw)
        if isinstance(exc, requests.exceptions.SSLError):
            return AuthFailed(f"TLS verification of {where} failed (wrong or missing CA file?)", **kw)
        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return Transient(f"{cmdlet}: connection to {where} failed ({type(exc).__name__})", **kw)
        if isinstance(exc, WSManFaultError):
            return Transient(f"{cmdlet}: {where} answered a WSMan fault {exc.code}: {exc.reason}", **kw)
        if isinstance(exc, WinRMTransportError):
            if exc.code >= 500 or exc.code in (408, 429):
                return Transient(f"{cmdlet}: {where} answered HTTP {exc.code}", **kw)
            return ProtocolError(f"{cmdlet}: {where} answered HTTP {exc.code}; check the URL and configuration",
                                 **kw)
        if isinstance(exc, InvalidPSRPOperation):
            return Transient(f"{cmdlet}: the runspace pool on {where} broke ({exc})", **kw)
        return ProtocolError(f"{cmdlet}: {where}: {type(exc).__name__}: {exc}", **kw)

    # -- one pipeline ----------------------------------------------------------------------
    def _run(self, cmdlet: str, parameters: Mapping[str, Any], properties: Sequence[str] | None,
             page_size: int, script: str | None = None) -> Iterator[list[Record]]:
        identity = identity_of(parameters)
        is_write = not is_read_cmdlet(cmdlet)
        warnings: list[str] = []
        self._local.warnings = warnings
        sent = False
        with self._lock:
            try:
                pool = self._open()
                ps = PowerShell(pool)
                if script is not None:
                    ps.add_script(script)
                else:
                    ps.add_cmdlet(cmdlet)
                for name, value in parameters.items():
                    ps.add_parameter(name, plain_parameters(value))
                if properties:
                    ps.add_cmdlet("Select-Object").add_parameter("Property", list(properties))
                    self.stats.selected_pipelines += 1
                self.stats.pipelines += 1
                sent = True
                ps.begin_invoke()
                while True:
                    running = ps.state == PSInvocationState.RUNNING
                    if running:
                        ps.poll_invoke()
                    if ps.output and (len(ps.output) >= page_size or ps.state != PSInvocationState.RUNNING):
                        batch, ps.output = ps.output, []
                        records = [decode_output(o) for o in batch]
                        self.stats.records += len(records)
                        yield records
                    if not running:
                        break
            except GeneratorExit:
                # The caller stopped reading: stop the remote pipeline rather than leave it running.
                try:
                    if sent and ps.state == PSInvocationState.RUNNING:
                        ps.stop()
                except (WinRMError, requests.exceptions.RequestException):
                    self._reset()
                raise
            except (SpnegoError, FeatureMissingError) as exc:  # Negotiate/Kerberos sign-in (pyspnego)
                self._reset()
                raise AuthFailed(f"WinRM endpoint {self.endpoint.url}: {self.endpoint.auth} sign-in failed "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})",
                                 cmdlet=cmdlet, identity=identity) from None
            except (WinRMError, requests.exceptions.RequestException) as exc:
                self.stats.transport_errors += 1
                unreachable = isinstance(exc, requests.exceptions.ConnectionError) and not self._answered
                error = self._transport_error(exc, cmdlet, identity)
                self._reset()
                if isinstance(error, AuthFailed):
                    raise error from None
                raise _Broken(error, sent, unreachable) from None
            for record in ps.streams.warning:
                text = str(getattr(record, "message", record))
                warnings.append(text)
                if self.on_warning is not None:
                    self.on_warning(cmdlet, text)
            errors = list(ps.streams.error)
            failed = ps.had_errors or ps.state == PSInvocationState.FAILED
            try:
                ps.close()
            except (WinRMError, requests.exceptions.RequestException):
                self._reset()
        if errors:
            remote = _error_of(errors[-1] if failed else errors[0], failed)
            raise classify_remote(remote, cmdlet=cmdlet, identity=identity, is_write=is_write)
        if failed:
            raise BridgeError(f"{cmdlet}: the remote pipeline failed without an error record",
                              cmdlet=cmdlet, identity=identity)
