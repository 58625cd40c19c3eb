"""HTTPS plumbing shared by the sandbox's endpoints: one threading server on one port.

HTTP/1.1 with keep-alive, Content-Length on every answer, TCP_NODELAY, daemon threads, the
TLS handshake done in the connection's own thread (a slow client never blocks accept()).
Endpoints are plain functions from `Request` to `Response`; a `Response` may instead ask the
plumbing to reset the connection (TCP RST, no answer) or to hold it and close it without an
answer (a request that times out on the client side).
"""
from __future__ import annotations

import http.server
import socket
import ssl
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

#: Idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT_S = 120.0
#: Largest request body accepted (a $batch of 10 writes is a few KB).
MAX_BODY = 8 * 1024 * 1024


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    client: tuple[str, int]

    def header(self, name: str, default: str = "") -> str:
        """A header's value (case-insensitive name), or `default`."""
        value = self.headers.get(name)
        return default if value is None else str(value)


@dataclass
class Response:
    """An answer, or an instruction to misbehave (`action` "reset" or "hold")."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None
    hold_s: float = 0.0

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        """A JSON answer (UTF-8, compact)."""
        hdrs = {"Content-Type": "application/json; charset=utf-8"}
        if headers:
            hdrs.update(headers)
        return cls(status, orjson.dumps(payload), hdrs)

    @classmethod
    def raw_json(cls, status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
        """An already-serialised JSON answer."""
        hdrs = {"Content-Type": "application/json; charset=utf-8"}
        if headers:
            hdrs.update(headers)
        return cls(status, body, hdrs)

    @classmethod
    def reset(cls) -> Response:
        """Close the connection abruptly (RST), sending nothing."""
        return cls(0, action="reset")

    @classmethod
    def hold(cls, seconds: float) -> Response:
        """Keep the connection silent for `seconds`, then close it without an answer."""
        return cls(0, action="hold", hold_s=seconds)


Handler = Callable[[Request], Response]


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "exocm-sandbox"
    sys_version = ""
    server: SandboxHTTPServer

    def setup(self) -> None:
        conn = self.request
        conn.settimeout(IDLE_TIMEOUT_S)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if isinstance(conn, ssl.SSLSocket):
            conn.do_handshake()
        self.server.track(conn, True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.request, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)

    def _dispatch(self) -> None:
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            length = int(length_text) if length_text and length_text.isdigit() else 0
            if length > MAX_BODY:
                self._send(Response.json(413, {"error": {"code": "RequestEntityTooLarge",
                                                         "message": "The request body is too large."}}))
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command, target=self.path, path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=self.headers, body=body, client=self.client_address)
        try:
            response = self.server.app(request)
        except Exception:  # a bug in the sandbox: answer 500 and say so on stderr
            traceback.print_exc(file=sys.stderr)
            response = Response.json(500, {"error": {
                "code": "InternalServerError",
                "message": "The sandbox failed to process the request (a sandbox bug; see its stderr)."}})
        if response.action == "reset":
            self._reset()
            return
        if response.action == "hold":
            self.server.stopping.wait(response.hold_s)
            self.close_connection = True
            try:
                self.request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(response)
        if self.server.after_response is not None:
            self.server.after_response(request, response)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("chunked body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def _reset(self) -> None:
        """Abort the TCP connection with a RST."""
        self.close_connection = True
        reset_connection(self.request)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch
    do_DELETE = _dispatch
    do_HEAD = _dispatch
    do_OPTIONS = _dispatch


class SandboxHTTPServer(http.server.ThreadingHTTPServer):
    """A threading HTTP(S) server calling `app` for every request."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Handler, ssl_context: ssl.SSLContext | None,
                 *, verbose: bool = False) -> None:
        self.app = app
        self.verbose = verbose
        self.stopping = threading.Event()
        self.after_response: Callable[[Request, Response], None] | None = None
        self._ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self._ssl_context is not None:
            sock = self._ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ssl.SSLError, ValueError)) or self.stopping.is_set():
            return  # client went away, bad TLS, garbage request line: nothing to report
        super().handle_error(request, client_address)

    def track(self, conn: socket.socket, alive: bool) -> None:
        """Remember open connections so stop() can close them."""
        with self._conn_lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_all(self) -> None:
        """Stop serving and drop every open connection."""
        self.stopping.set()
        self.shutdown()
        with self._conn_lock:
            conns = list(self._connections)
            self._connections.clear()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()


def start_server(host: str, port: int, app: Handler, ssl_context: ssl.SSLContext | None,
                 *, verbose: bool = False) -> tuple[SandboxHTTPServer, threading.Thread]:
    """Bind, and serve in a daemon thread; returns the server and its thread."""
    server = SandboxHTTPServer((host, port), app, ssl_context, verbose=verbose)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name=f"sandbox-https-{server.server_address[1]}", daemon=True)
    thread.start()
    return server, thread


def reset_connection(sock: socket.socket) -> None:
    """Abort a TCP connection: SO_LINGER 0 makes close() send a RST (no TLS close_notify)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw = socket.socket(fileno=sock.detach()) if isinstance(sock, ssl.SSLSocket) else sock
        raw.close()
    except OSError:
        pass
