"""The WSMan (WinRM) HTTP(S) front of the sandbox: Create, Command, Send, Receive, Signal, Delete.

What it does the way Windows' WinRM service does it (MS-WSMV; behaviour checked against pypsrp
0.9.1 as the client):
- every reply's `wsa:RelatesTo` is the request's `wsa:MessageID`, `uuid:` prefix included;
- a Receive is held until there is data or the request's `wsman:OperationTimeout` is nearly
  spent, then answered with the `w:TimedOut` fault (WSManFault code 2150858793), which clients
  retry;
- replies fit the request's `wsman:MaxEnvelopeSize`; PSRP fragments are never split across two
  Receives (psrpcore's `data_to_send(n)` emits whole fragments);
- HTTP/1.1 keep-alive, `Content-Length` on every reply (401 and faults too), request body read
  before replying, Nagle disabled, TLS handshake in the per-connection thread;
- Basic auth (over TLS, or plain HTTP when the client sets `encryption="never"`), 401 with
  `WWW-Authenticate` on bad credentials; client-certificate auth when a client CA is configured.

The sandbox's fault knobs (`--fault KIND=RATE`, shared with the REST front and drawn from the
same seeded dice) apply to every authenticated WSMan request too (see `WSManService.draw_fault`):
- "500": HTTP 500 with a SOAP fault, before the request is acted on. WinRM sends every fault
  as HTTP 500 with a WSManFault detail (MS-WSMV); the code (E_FAIL) and text are the sandbox's.
- "503": HTTP 503 with HTTP.sys's plain "Service Unavailable" page, before the request is acted
  on: what a Windows host answers when the WinRM/IIS request queue is full or the application
  pool is down (HTTP.sys behaviour; the page text is HTTP.sys's). No SOAP body, no Retry-After.
- "reset": the TCP connection is aborted (RST) before the request is acted on.
- "timeout": no answer; the connection is held `fault_timeout_s` and closed. A Receive is held
  before any output is taken from the shell (the request was lost on the way; pypsrp resends
  the same Receive, as its own comment says WinRM allows); every other request (Create,
  Command, Send, Signal, Delete) is acted on first and only its answer is lost, so a Command
  whose answer never came may still have run its cmdlet. Which of the two a real network loss
  is cannot be known by the client; the split is the sandbox's choice.
- latency, concurrency limit and write budget (`--latency-ms`, `--concurrency-limit`,
  `--write-budget`, the knobs the REST front honours): every authenticated WSMan request waits
  the latency before it is acted on; a Create beyond `concurrency_limit` open shells gets the
  wsman:QuotaLimit fault (MS-WSMV 3.1.4.5.2.1, MaxShellsPerUser: the text is the spec's); a
  write cmdlet takes a token of the tenant's write budget (the REST front's bucket) and, when
  there is none, waits for one (a delayed cmdlet, not an error; docs/exchange-facts.md, "Cost
  of a $batch and of WinRM requests", says why and what is unknown).
- "applied-error": in an EXO management-host session, a write cmdlet runs and then writes an
  error record with an EMPTY message: the GA quirk of `Set-Mailbox -IsExchangeCloudManaged`
  (docs/exchange-facts.md#applied-but-errored; the V3 module runs its cmdlets over the same REST API, so the quirk reaches
  a remote session as a PowerShell error). Non-terminating, as the module's cmdlet errors are.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from ..http import reset_connection
from ..knobs import FaultDice, Knobs, WriteBudget
from .runspace import Shell
from .sessions import SESSION_TYPES, Session, Tenant, TokenVerifier

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmv": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "pwsh": "http://schemas.microsoft.com/powershell",
}
_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
ACTION_CREATE = _TRANSFER + "Create"
ACTION_DELETE = _TRANSFER + "Delete"
ACTION_COMMAND = _SHELL + "Command"
ACTION_SEND = _SHELL + "Send"
ACTION_RECEIVE = _SHELL + "Receive"
ACTION_SIGNAL = _SHELL + "Signal"
_FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
_RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"
_DONE = _SHELL + "CommandState/Done"
_RUNNING = _SHELL + "CommandState/Running"

#: WSManFault codes (winerror.h ERROR_WSMAN_*): operation timed out; shell not found; access denied.
TIMED_OUT = 2150858793
SHELL_NOT_FOUND = 2150858843
ACCESS_DENIED = 5
#: E_FAIL, the code of the sandbox's injected "500" fault (and of its own internal errors).
E_FAIL = 2147500037
#: HTTP.sys's 503 page (the text Windows' kernel HTTP listener answers with).
HTTP_SYS_503 = (b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
                b'<HTML><HEAD><TITLE>Service Unavailable</TITLE>\r\n<META HTTP-EQUIV="Content-Type" '
                b'Content-Type="text/html; charset=us-ascii"></HEAD>\r\n<BODY><h2>Service Unavailable</h2>\r\n'
                b"<hr><p>HTTP Error 503. The service is unavailable.</p>\r\n</BODY></HTML>\r\n")
_ENVELOPE_SLACK = 2048  # bytes for header + body skeleton of a ReceiveResponse
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$")
_CERT_MUTUAL = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"


class WSManFault(Exception):
    """A SOAP fault to answer with (HTTP 500, like WinRM)."""

    def __init__(self, code: int, subcode: str, reason: str, value: str = "s:Receiver") -> None:
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.value = value


@dataclass
class Faults:
    """Knobs for failure tests: drop the connection on the next N pipeline Receives."""

    drop_receives: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_drop(self) -> bool:
        """Consume one pending connection drop, if any."""
        with self.lock:
            if self.drop_receives > 0:
                self.drop_receives -= 1
                return True
            return False


@dataclass
class Request:
    """The parts of a WSMan request the sandbox acts on."""

    action: str
    message_id: str
    resource_uri: str
    shell_id: str | None
    max_envelope: int
    timeout_s: float
    body: ET.Element


def _seconds(text: str | None, default: float) -> float:
    m = _DURATION.match(text or "")
    if not m:
        return default
    h, mi, s = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def parse_request(raw: bytes) -> Request:
    """Parse a WSMan SOAP envelope."""
    try:
        env = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise WSManFault(2150858817, "wsman:InvalidMessageInformationHeader", f"malformed envelope: {exc}",
                         "s:Sender") from None
    header = env.find("s:Header", NS)
    body = env.find("s:Body", NS)
    if header is None or body is None:
        raise WSManFault(2150858817, "wsman:InvalidMessageInformationHeader", "envelope without header or body",
                         "s:Sender")
    shell_id = None
    for sel in header.findall("wsman:SelectorSet/wsman:Selector", NS):
        if sel.attrib.get("Name") == "ShellId":
            shell_id = (sel.text or "").upper()
    max_env = header.findtext("wsman:MaxEnvelopeSize", "153600", NS)
    return Request(
        action=header.findtext("wsa:Action", "", NS),
        message_id=header.findtext("wsa:MessageID", "", NS),
        resource_uri=header.findtext("wsman:ResourceURI", "", NS),
        shell_id=shell_id,
        max_envelope=max(int(max_env or 153600), 8192),
        timeout_s=_seconds(header.findtext("wsman:OperationTimeout", None, NS), 60.0),
        body=body,
    )


def envelope(action: str, relates_to: str, body: str, resource_uri: str | None = None) -> bytes:
    """A SOAP reply envelope whose RelatesTo echoes the request's MessageID."""
    resource = f"<w:ResourceURI>{escape(resource_uri)}</w:ResourceURI>" if resource_uri else ""
    return (
        '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
        'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" '
        'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
        f"<s:Header><a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>{resource}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def fault_envelope(fault: WSManFault, relates_to: str, machine: str) -> bytes:
    """The SOAP fault WinRM sends, with the WSManFault detail pypsrp reads the code from."""
    reason = escape(fault.reason)
    body = (
        f"<s:Fault><s:Code><s:Value>{fault.value}</s:Value><s:Subcode><s:Value>{fault.subcode}</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason>'
        '<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
        f'Code="{fault.code}" Machine="{escape(machine)}"><f:Message>{reason}</f:Message></f:WSManFault>'
        "</s:Detail></s:Fault>"
    )
    return envelope(_FAULT_ACTION, relates_to, body)


def _timed_out() -> WSManFault:
    # Source: WinRM's text for ERROR_WSMAN_OPERATION_TIMEDOUT.
    return WSManFault(TIMED_OUT, "w:TimedOut",
                      "The WS-Management service cannot complete the operation within the time specified in "
                      "OperationTimeout.")


def _shell_not_found(shell_id: str | None) -> WSManFault:
    # Source: WinRM's text for ERROR_WINRS_SHELL_NOT_FOUND.
    return WSManFault(SHELL_NOT_FOUND, "w:InvalidSelectors",
                      f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell "
                      "was not found on the server. Possible causes are: the specified ShellId is incorrect or the "
                      "shell no longer exists on the server. Provide the correct ShellId or create a new shell and "
                      "retry the operation.", "s:Sender")


class _DropConnection(Exception):
    """Close the TCP connection without answering (fault injection)."""


def _injected_internal_error() -> WSManFault:
    # The sandbox's own text and code: a WinRM-side failure before the request was acted on.
    return WSManFault(E_FAIL, "w:InternalError",
                      "The WS-Management service cannot process the request because of an internal error. "
                      "The operation was not performed.")


class WSManService:
    """Shells, credentials and dispatch: everything but HTTP."""

    def __init__(self, tenant: Tenant, *, username: str, password: str,
                 verifier: TokenVerifier | None = None, cert_users: dict[str, str] | None = None,
                 idle_timeout_s: float = 7200.0, machine: str = "EXOCM-SANDBOX",
                 knobs: Knobs | None = None, dice: FaultDice | None = None,
                 on_fault: Callable[[str], None] | None = None,
                 on_write: Callable[[], None] | None = None,
                 write_budget: WriteBudget | None = None,
                 session_types: dict[str, type[Session]] | None = None) -> None:
        self.tenant = tenant
        self.write_budget = write_budget if write_budget is not None else WriteBudget()
        self.on_write = on_write
        self.session_types = session_types or SESSION_TYPES
        self.username = username
        self._password = password
        self.verifier = verifier
        self.cert_users = {k.lower(): v for k, v in (cert_users or {}).items()}
        self.idle_timeout_s = idle_timeout_s
        self.machine = machine
        self.shells: dict[str, Shell] = {}
        self.lock = threading.Lock()
        self.faults = Faults()
        self.knobs = knobs
        self.dice = dice
        self._on_fault = on_fault
        self.stats: dict[str, int] = {"requests": 0, "receives": 0, "timeouts": 0, "auth_failures": 0}
        self.faults_injected: dict[str, int] = {}

    # -- fault knobs (module docstring) --------------------------------------------------------
    def _count_fault(self, kind: str) -> None:
        with self.lock:
            self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1
        if self._on_fault is not None:
            self._on_fault(kind)

    def draw_fault(self) -> str | None:
        """The transport fault ("500", "503", "reset", "timeout") to inject into this request, or None."""
        if self.knobs is None or self.dice is None or not self.knobs.faults:
            return None
        fault = self.dice.transport_fault(self.knobs.faults)
        if fault is not None:
            self._count_fault(fault)
        return fault

    def applied_error(self) -> bool:
        """Should this write answer with the empty-message error although it ran ("applied-error")?"""
        if self.knobs is None or self.dice is None:
            return False
        if not self.dice.chance(self.knobs.faults.get("applied-error", 0.0)):
            return False
        self._count_fault("applied-error")
        return True

    def latency(self) -> None:
        """Wait the knobs' latency before acting on a request (as the REST front does)."""
        if self.knobs is None or self.dice is None:
            return
        delay = self.dice.latency(self.knobs)
        if delay:
            time.sleep(delay)

    def before_write(self) -> None:
        """Take one token of the write budget, waiting for it when the bucket is empty."""
        while self.knobs is not None:
            wait = self.write_budget.take(self.knobs.write_budget)
            if wait <= 0:
                return
            time.sleep(wait)

    def _check_quota(self) -> None:
        limit = self.knobs.concurrency_limit if self.knobs is not None else None
        if limit is None:
            return
        with self.lock:
            open_shells = sum(1 for sh in self.shells.values() if not sh.closed)
        if open_shells >= limit:
            self.stats["quota_faults"] = self.stats.get("quota_faults", 0) + 1
            # MS-WSMV 3.1.4.5.2.1: wsman:QuotaLimit on Create, with this text for MaxShellsPerUser.
            # The code is the sandbox's choice.
            raise WSManFault(2150859173, "w:QuotaLimit",
                             "The Windows Remote Shell cannot process the request. The server is already "
                             "executing the maximum number of concurrent shells a user can remotely open on "
                             "the same system. Retry later.")

    @property
    def fault_timeout_s(self) -> float:
        """How long a "timeout" fault holds a connection before closing it unanswered."""
        return self.knobs.fault_timeout_s if self.knobs is not None else 30.0

    # -- auth --------------------------------------------------------------------------------
    def authenticate(self, header: str | None, peer_cert: dict[str, Any] | None) -> str | None:
        """The user a request runs as, or None (-> 401)."""
        if header and header.strip() == _CERT_MUTUAL and peer_cert:
            for kind, value in peer_cert.get("subjectAltName", ()):
                if kind in ("email", "othername") and value.lower() in self.cert_users:
                    return self.cert_users[value.lower()]
            for rdn in peer_cert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName" and value.lower() in self.cert_users:
                        return self.cert_users[value.lower()]
            return None
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        ok_user = hmac.compare_digest(user.lower().encode(), self.username.lower().encode())
        ok_pass = hmac.compare_digest(password.encode(), self._password.encode())
        return user if ok_user and ok_pass else None

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, req: Request, user: str, client_ip: str, path: str) -> bytes:
        """Answer one authenticated WSMan request (raises WSManFault or _DropConnection)."""
        self.stats["requests"] += 1
        if req.action == ACTION_CREATE:
            return self._create(req, user, client_ip, path)
        shell = self._shell(req.shell_id)
        if req.action == ACTION_COMMAND:
            return self._command(req, shell)
        if req.action == ACTION_SEND:
            return self._send(req, shell)
        if req.action == ACTION_RECEIVE:
            return self._receive(req, shell)
        if req.action == ACTION_SIGNAL:
            return self._signal(req, shell)
        if req.action == ACTION_DELETE:
            with self.lock:
                self.shells.pop(shell.shell_id, None)
            shell.close()
            return envelope(_TRANSFER + "DeleteResponse", req.message_id, "")
        raise WSManFault(2150858771, "w:ActionNotSupported", f"The action {req.action} is not supported.",
                         "s:Sender")

    def _shell(self, shell_id: str | None) -> Shell:
        with self.lock:
            shell = self.shells.get(shell_id or "")
        if shell is None or shell.closed:
            raise _shell_not_found(shell_id)
        return shell

    def _sweep(self) -> None:
        now = time.monotonic()
        with self.lock:
            idle = [sid for sid, sh in self.shells.items() if now - sh.last_used > self.idle_timeout_s]
            gone = [self.shells.pop(sid) for sid in idle]
        for sh in gone:
            sh.close()

    def _create(self, req: Request, user: str, client_ip: str, path: str) -> bytes:
        self._sweep()
        self._check_quota()
        if not req.resource_uri.startswith(_RESOURCE_PREFIX):
            raise WSManFault(2150858811, "w:DestinationUnreachable",
                             f"The WS-Management service cannot process the request. The resource URI "
                             f"{req.resource_uri} was not found.", "s:Sender")
        configuration = req.resource_uri[len(_RESOURCE_PREFIX):]
        session_type = self.session_types.get(configuration.lower())
        if session_type is None or not self._path_allows(path, configuration):
            # Source: WinRM's text when no session configuration of that name is registered.
            raise WSManFault(2150858811, "w:DestinationUnreachable",
                             f"The WS-Management service cannot process the request. Cannot find the "
                             f"{configuration} session configuration in the WSMan: drive on the "
                             f"{self.machine} computer.", "s:Sender")
        shell_el = req.body.find("rsp:Shell", NS)
        if shell_el is None:
            raise WSManFault(2150858817, "w:InvalidMessage", "Create without rsp:Shell", "s:Sender")
        shell_id = (shell_el.attrib.get("ShellId") or str(uuid.uuid4())).upper()
        session: Session
        if session_type.side == "exo":
            session = session_type(self.tenant, self.verifier)  # type: ignore[call-arg]
        else:
            session = session_type(self.tenant)
        session.applied_error = self.applied_error
        session.on_write = self.on_write
        session.before_write = self.before_write
        shell = Shell(shell_id, session, user, client_ip)
        creation = shell_el.find("pwsh:creationXml", NS)
        if creation is not None and creation.text:
            shell.feed(base64.b64decode(creation.text))
        with self.lock:
            self.shells[shell_id] = shell
        streams_in = escape(shell_el.findtext("rsp:InputStreams", "stdin pr", NS))
        streams_out = escape(shell_el.findtext("rsp:OutputStreams", "stdout", NS))
        resource = escape(req.resource_uri)
        body = (
            "<x:ResourceCreated><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
            f"</a:Address><a:ReferenceParameters><w:ResourceURI>{resource}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
            "</x:ResourceCreated>"
            f'<rsp:Shell xmlns:rsp="{NS["rsp"]}"><rsp:ShellId>{shell_id}</rsp:ShellId>'
            f"<rsp:ResourceUri>{resource}</rsp:ResourceUri><rsp:Owner>{escape(user)}</rsp:Owner>"
            f"<rsp:ClientIP>{escape(client_ip)}</rsp:ClientIP><rsp:IdleTimeOut>PT{self.idle_timeout_s:.3f}S"
            f"</rsp:IdleTimeOut><rsp:InputStreams>{streams_in}</rsp:InputStreams>"
            f"<rsp:OutputStreams>{streams_out}</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
            "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"
        )
        return envelope(_TRANSFER + "CreateResponse", req.message_id, body)

    @staticmethod
    def _path_allows(path: str, configuration: str) -> bool:
        # /PowerShell is Exchange's IIS endpoint (Microsoft.Exchange only); /wsman is the WinRM
        # service of a Windows host (its own configurations).
        if path.lower().rstrip("/") == "/powershell":
            return configuration.lower() == "microsoft.exchange"
        return configuration.lower() != "microsoft.exchange"

    def _command(self, req: Request, shell: Shell) -> bytes:
        line = req.body.find("rsp:CommandLine", NS)
        if line is None:
            raise WSManFault(2150858817, "w:InvalidMessage", "Command without rsp:CommandLine", "s:Sender")
        command_id = (line.attrib.get("CommandId") or str(uuid.uuid4())).upper()
        data = b"".join(base64.b64decode(a.text or "") for a in line.findall("rsp:Arguments", NS))
        shell.feed(data, uuid.UUID(command_id))
        body = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
        return envelope(_SHELL + "CommandResponse", req.message_id, body)

    def _send(self, req: Request, shell: Shell) -> bytes:
        for stream in req.body.findall("rsp:Send/rsp:Stream", NS):
            cid = stream.attrib.get("CommandId")
            shell.feed(base64.b64decode(stream.text or ""), uuid.UUID(cid) if cid else None)
        return envelope(_SHELL + "SendResponse", req.message_id, "<rsp:SendResponse />")

    def _receive(self, req: Request, shell: Shell) -> bytes:
        self.stats["receives"] += 1
        desired = req.body.find("rsp:Receive/rsp:DesiredStream", NS)
        cid = desired.attrib.get("CommandId") if desired is not None else None
        target = uuid.UUID(cid) if cid else None
        if target is not None and self.faults.take_drop():
            raise _DropConnection()
        budget = max((req.max_envelope - _ENVELOPE_SLACK) // 4 * 3, 64)
        # Answer a little before the client's OperationTimeout (pypsrp adds 2 s of HTTP slack).
        deadline = time.monotonic() + max(req.timeout_s - 1.0, 0.2)
        payload, done = shell.receive(target, budget, deadline)
        if payload is None and not done:
            self.stats["timeouts"] += 1
            raise _timed_out()
        cmd_attr = f' CommandId="{cid.upper()}"' if cid else ""
        parts = ["<rsp:ReceiveResponse>"]
        if payload:
            parts.append(f'<rsp:Stream Name="stdout"{cmd_attr}>{base64.b64encode(payload).decode()}</rsp:Stream>')
        if cid:
            state = _DONE if done else _RUNNING
            parts.append(f'<rsp:CommandState{cmd_attr} State="{state}">'
                         + ("<rsp:ExitCode>0</rsp:ExitCode>" if done else "") + "</rsp:CommandState>")
        parts.append("</rsp:ReceiveResponse>")
        return envelope(_SHELL + "ReceiveResponse", req.message_id, "".join(parts))

    def _signal(self, req: Request, shell: Shell) -> bytes:
        sig = req.body.find("rsp:Signal", NS)
        if sig is not None and sig.attrib.get("CommandId"):
            shell.signal(uuid.UUID(sig.attrib["CommandId"]), sig.findtext("rsp:Code", "", NS))
        return envelope(_SHELL + "SignalResponse", req.message_id, "<rsp:SignalResponse />")

    def close(self) -> None:
        """Close every shell (wakes held Receives)."""
        with self.lock:
            shells = list(self.shells.values())
            self.shells.clear()
        for sh in shells:
            sh.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections are closed after this
    server: _HTTPServer

    def setup(self) -> None:
        ctx = self.server.ssl_context
        if ctx is not None:
            self.request.settimeout(30)
            self.request = ctx.wrap_socket(self.request, server_side=True)  # handshake in this thread
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: tests and `sandbox serve` keep stderr for real problems

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if body and "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _hold(self, seconds: float) -> None:
        """Say nothing for `seconds` (or until the endpoint stops), then close the connection."""
        self.server.stopping.wait(seconds)
        self._drop()

    def _reset(self) -> None:
        """Abort the TCP connection: SO_LINGER 0 makes close() send a RST (no TLS close_notify)."""
        self.close_connection = True
        reset_connection(self.connection)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        service = self.server.service
        path = self.path.split("?", 1)[0]
        if path.lower().rstrip("/") not in ("/wsman", "/powershell"):
            self._reply(404)
            return
        peer = None
        if isinstance(self.connection, ssl.SSLSocket):
            peer = self.connection.getpeercert() or None
        user = service.authenticate(self.headers.get("Authorization"), peer)
        if user is None:
            service.stats["auth_failures"] += 1
            self._reply(401, headers={"WWW-Authenticate": 'Basic realm="WSMAN"'})
            return
        if not raw:
            self._reply(200)  # pypsrp's empty priming request for message encryption
            return
        message_id = ""
        fault: str | None = None
        try:
            req = parse_request(raw)
            message_id = req.message_id
            fault = service.draw_fault()
            if fault == "reset":
                self._reset()
                return
            if fault == "503":
                self._reply(503, HTTP_SYS_503, {"Content-Type": "text/html; charset=us-ascii"})
                return
            if fault == "500":
                raise _injected_internal_error()
            service.latency()
            if fault == "timeout" and req.action == ACTION_RECEIVE:
                self._hold(service.fault_timeout_s)  # lost on the way: no output was taken
                return
            body = service.handle(req, user, self.client_address[0], path)
            if fault == "timeout":
                self._hold(service.fault_timeout_s)  # acted on; only the answer is lost
                return
        except _DropConnection:
            self._drop()
            return
        except WSManFault as fault:
            self._reply(500, fault_envelope(fault, message_id, service.machine))
            return
        except Exception as exc:  # a sandbox bug answers as a fault, not as a dropped connection
            internal = WSManFault(2147500037, "w:InternalError", f"sandbox internal error: {type(exc).__name__}: {exc}")
            self._reply(500, fault_envelope(internal, message_id, service.machine))
            return
        self._reply(200, body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: WSManService, ssl_context: ssl.SSLContext | None) -> None:
        self.service = service
        self.ssl_context = ssl_context
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client goes away or fails its TLS handshake (a bad client certificate,
        a wrong CA): a real endpoint logs nothing to the client's terminal; anything else is reported."""
        if isinstance(sys.exc_info()[1], OSError):  # ssl.SSLError and ConnectionError are OSErrors
            return
        super().handle_error(request, client_address)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conns_lock:
            (self._conns.add if alive else self._conns.discard)(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class WinRMEndpoint:
    """The sandbox's WinRM endpoint: one port, `/PowerShell` (on-prem Exchange) and `/wsman` (EXO host).

    Start with `WinRMEndpoint.start(tenant, ...)`; `onprem_url` / `exo_url` / `username` /
    `password` are what a client needs; `faults` holds failure knobs; `stop()` ends it.
    """

    def __init__(self, server: _HTTPServer, thread: threading.Thread, scheme: str, host: str) -> None:
        self._server = server
        self._thread = thread
        self.scheme = scheme
        self.host = host
        self.port = int(server.server_address[1])

    @classmethod
    def start(cls, tenant: Tenant, *, host: str = "127.0.0.1", port: int = 0,
              ssl_context: ssl.SSLContext | None = None, username: str = "SANDBOX\\exocm-admin",
              password: str | None = None, verifier: TokenVerifier | None = None,
              cert_users: dict[str, str] | None = None, knobs: Knobs | None = None,
              dice: FaultDice | None = None, on_fault: Callable[[str], None] | None = None,
              on_write: Callable[[], None] | None = None, machine: str = "EXOCM-SANDBOX",
              write_budget: WriteBudget | None = None,
              session_types: dict[str, type[Session]] | None = None) -> WinRMEndpoint:
        """Serve `tenant` over WSMan on host:port (0 = any free port); TLS when `ssl_context` is given.

        `knobs` / `dice`: the sandbox's fault knobs and seeded dice (module docstring); `on_fault`
        is told the kind of every fault injected; `on_write` is called after every write cmdlet ran
        (the sandbox saves its state)."""
        import secrets

        service = WSManService(tenant, username=username, password=password or secrets.token_urlsafe(18),
                               verifier=verifier, cert_users=cert_users, knobs=knobs, dice=dice,
                               on_fault=on_fault, on_write=on_write, machine=machine,
                               write_budget=write_budget, session_types=session_types)
        server = _HTTPServer((host, port), service, ssl_context)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                  daemon=True, name="sandbox-winrm")
        thread.start()
        return cls(server, thread, "https" if ssl_context else "http", host)

    @property
    def service(self) -> WSManService:
        """Shells, stats and fault knobs."""
        return self._server.service

    @property
    def faults(self) -> Faults:
        """Failure knobs (e.g. `faults.drop_receives = 1`)."""
        return self._server.service.faults

    @property
    def username(self) -> str:
        """The Basic-auth user name the endpoint accepts."""
        return self._server.service.username

    @property
    def password(self) -> str:
        """The Basic-auth password (a per-start random secret unless given)."""
        return self._server.service._password

    @property
    def base_url(self) -> str:
        """scheme://host:port"""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def onprem_url(self) -> str:
        """On-prem Exchange endpoint (configuration `Microsoft.Exchange`)."""
        return f"{self.base_url}/PowerShell"

    @property
    def exo_url(self) -> str:
        """Windows management host endpoint (configuration `Microsoft.PowerShell`, then Connect-ExchangeOnline)."""
        return f"{self.base_url}/wsman"

    def info(self) -> dict[str, str]:
        """The keys `exocm sandbox serve --print-json` adds."""
        return {
            "winrm_onprem_url": self.onprem_url,
            "winrm_exo_url": self.exo_url,
            "winrm_username": self.username,
            "winrm_password": self.password,
        }

    def stop(self) -> None:
        """Stop serving, close shells and open connections."""
        self._server.stopping.set()
        self._server.service.close()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
