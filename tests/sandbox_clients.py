"""Real clients for the sandbox servers (msal for tokens, httpx for REST), as a product would
configure them: explicit CA file, and never the environment's CA bundle variables."""
from __future__ import annotations

import ssl
from typing import Any

import httpx
import msal
import requests


def requests_session(info: dict[str, Any]) -> requests.Session:
    """A requests session for msal that trusts only the sandbox CA (REQUESTS_CA_BUNDLE ignored)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_file"]
    return session


def confidential_app(info: dict[str, Any], credential: Any = None) -> msal.ConfidentialClientApplication:
    """msal app for the sandbox's registered app (default credential: the client secret)."""
    return msal.ConfidentialClientApplication(
        info["client_id"], authority=info["authority"],
        client_credential=info["client_secret"] if credential is None else credential,
        instance_discovery=False, http_client=requests_session(info))


def app_token(info: dict[str, Any], scope: str | None = None) -> str:
    """An app-only access token from the sandbox's token endpoint (client secret)."""
    result = confidential_app(info).acquire_token_for_client([scope or info["scope"]])
    assert "access_token" in result, result
    return str(result["access_token"])


def rest_client(info: dict[str, Any], timeout: float = 30.0) -> httpx.Client:
    """An httpx client for the sandbox's REST endpoint."""
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    return httpx.Client(base_url=info["rest_base_url"], verify=ctx, trust_env=False, timeout=timeout)


def invoke_url(info: dict[str, Any], tenant: str | None = None) -> str:
    """Path of InvokeCommand for the tenant."""
    return f"/adminapi/beta/{tenant or info['tenant']}/InvokeCommand"


def batch_url(info: dict[str, Any]) -> str:
    """Path of $batch for the tenant."""
    return f"/adminapi/beta/{info['tenant']}/$batch"


def cmdlet_body(cmdlet: str, **params: Any) -> dict[str, Any]:
    """An InvokeCommand body."""
    return {"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}}


def headers(token: str, *, page_size: int | None = None, **extra: str) -> dict[str, str]:
    """The headers the EXO V3 module sends (app-only anchor)."""
    hdrs = {"Authorization": f"Bearer {token}", "X-CmdletName": "", "Accept": "application/json"}
    if page_size is not None:
        hdrs["Prefer"] = f"odata.maxpagesize={page_size}"
    hdrs.update(extra)
    return hdrs


def invoke(client: httpx.Client, info: dict[str, Any], token: str, cmdlet: str,
           page_size: int | None = None, **params: Any) -> httpx.Response:
    """POST one InvokeCommand (first page only)."""
    hdrs = headers(token, page_size=page_size)
    hdrs["X-CmdletName"] = cmdlet
    return client.post(invoke_url(info), json=cmdlet_body(cmdlet, **params), headers=hdrs)


def invoke_all(client: httpx.Client, info: dict[str, Any], token: str, cmdlet: str,
               page_size: int | None = None, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Run a cmdlet and follow @odata.nextLink (POSTing the same body, as the V3 module does).

    Returns (records, pages). Fails the test on any non-200 answer.
    """
    hdrs = headers(token, page_size=page_size)
    hdrs["X-CmdletName"] = cmdlet
    body = cmdlet_body(cmdlet, **params)
    url: str | None = invoke_url(info)
    records: list[dict[str, Any]] = []
    pages = 0
    while url is not None and pages < 10_000:
        resp = client.post(url, json=body, headers=hdrs)
        assert resp.status_code == 200, resp.text
        data = resp.json()
        records.extend(data["value"])
        pages += 1
        url = data.get("@odata.nextLink")
    return records, pages


def detail_message(resp: httpx.Response) -> str:
    """error.details[0].message of an EXO error answer."""
    return str(resp.json()["error"]["details"][0]["message"])
