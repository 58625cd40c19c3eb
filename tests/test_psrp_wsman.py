"""The sandbox's WSMan front behaves like WinRM where clients depend on it: RelatesTo, held Receives
answered with the TimedOut fault, envelope sizes, HTTP/1.1 keep-alive and 401s."""
from __future__ import annotations

import base64
import http.client
import re
import ssl
import uuid
from typing import Any

from exocm.sandbox.server import Sandbox
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

_NS = ('xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
       'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
       'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"')


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _connection(info: dict[str, Any]) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    return http.client.HTTPSConnection("127.0.0.1", _port(info["winrm_onprem_url"]), context=ctx, timeout=30)


def _auth(info: dict[str, Any], password: str | None = None) -> str:
    raw = f"{info['winrm_username']}:{info['winrm_password'] if password is None else password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _envelope(action: str, message_id: str, body: str, *, shell_id: str | None = None,
              timeout: str = "PT20S", max_envelope: int = 153600) -> bytes:
    selector = (f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
                if shell_id else "")
    return (
        f"<s:Envelope {_NS}><s:Header><a:Action>{action}</a:Action><a:MessageID>{message_id}</a:MessageID>"
        f"<w:MaxEnvelopeSize>{max_envelope}</w:MaxEnvelopeSize><w:OperationTimeout>{timeout}</w:OperationTimeout>"
        "<w:ResourceURI>http://schemas.microsoft.com/powershell/Microsoft.Exchange</w:ResourceURI>"
        f"{selector}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _post(conn: http.client.HTTPSConnection, body: bytes, auth: str) -> tuple[int, dict[str, str], bytes]:
    conn.request("POST", "/PowerShell", body=body,
                 headers={"Authorization": auth, "Content-Type": "application/soap+xml;charset=UTF-8"})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def test_bad_credentials_get_a_401_with_content_length_and_the_connection_stays_usable(sandbox: Sandbox) -> None:
    info = sandbox.info
    conn = _connection(info)
    try:
        status, headers, data = _post(conn, b"<x/>", _auth(info, "wrong"))
        assert status == 401 and headers["content-length"] == "0" and data == b""
        assert headers["www-authenticate"].startswith("Basic")
        # Same TCP connection (keep-alive): a Receive for an unknown shell is a SOAP fault whose
        # RelatesTo echoes our MessageID, uuid: prefix included.
        message_id = f"uuid:{str(uuid.uuid4()).upper()}"
        body = _envelope("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive", message_id,
                         '<rsp:Receive><rsp:DesiredStream>stdout</rsp:DesiredStream></rsp:Receive>',
                         shell_id=str(uuid.uuid4()).upper())
        status, headers, data = _post(conn, body, _auth(info))
        assert status == 500 and int(headers["content-length"]) == len(data)
        assert headers["content-type"].startswith("application/soap+xml")
        assert re.search(rb"<a:RelatesTo>" + re.escape(message_id.encode()) + rb"</a:RelatesTo>", data)
        assert b'Code="2150858843"' in data  # shell not found
    finally:
        conn.close()


def _pool(info: dict[str, Any], **kw: Any) -> RunspacePool:
    wsman = WSMan("127.0.0.1", port=_port(info["winrm_onprem_url"]), path="PowerShell", ssl=True, auth="basic",
                  username=info["winrm_username"], password=info["winrm_password"],
                  cert_validation=info["ca_file"], no_proxy=True, **kw)
    return RunspacePool(wsman, configuration_name="Microsoft.Exchange")


def test_an_idle_receive_is_held_then_answered_with_the_timedout_fault(sandbox: Sandbox) -> None:
    info = sandbox.info
    timeouts_before = sandbox.winrm.service.stats["timeouts"]
    with _pool(info, operation_timeout=2) as pool:
        # Nothing is pending for the pool itself: the Receive waits ~1 s, then faults.
        try:
            pool._receive(timeout=2)
        except Exception as exc:  # pypsrp raises the fault; its code is what clients retry on
            assert getattr(exc, "code", None) == 2150858793
        else:
            raise AssertionError("an idle Receive must end in the TimedOut fault")
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-User").add_parameter("ResultSize", 2)
        assert len(ps.invoke()) == 2  # and the pool is still fine
    assert sandbox.winrm.service.stats["timeouts"] == timeouts_before + 1


def test_replies_fit_the_clients_max_envelope_size(sandbox: Sandbox) -> None:
    info = sandbox.info
    sizes: list[int] = []
    with _pool(info, max_envelope_size=20000) as pool:
        session = pool.connection.transport.session
        assert session is not None
        session.hooks["response"].append(lambda r, *a, **k: sizes.append(len(r.content)))
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Mailbox").add_parameter("ResultSize", "Unlimited")
        out = ps.invoke()
    expected = len(sandbox.tenant.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, side="onprem"))
    assert len(out) == expected and expected > 5
    assert sizes and max(sizes) <= 20000
    assert len(sizes) > 3  # the output really was spread over several Receives


def test_plain_http_endpoint_with_encryption_never_for_loopback_tests() -> None:
    from exocm.core.bridge.psrp import PsrpBridge, PsrpEndpoint
    from exocm.sandbox.generator import generate_tenant
    from exocm.sandbox.psrp import WinRMEndpoint

    tenant = generate_tenant(30, 9)
    endpoint = WinRMEndpoint.start(tenant, password="loopback-only")
    try:
        assert endpoint.onprem_url.startswith("http://127.0.0.1:")
        psrp = PsrpEndpoint(endpoint.onprem_url, username=endpoint.username, password="loopback-only")
        with PsrpBridge(psrp, "lab") as bridge:
            assert len(bridge.invoke("Get-User", {"ResultSize": "Unlimited"})) == len(
                tenant.invoke("Get-User", {"ResultSize": "Unlimited"}, side="onprem"))
    finally:
        endpoint.stop()
