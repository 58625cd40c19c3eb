"""InvokeCommand?$select: the sandbox answers with only the named properties, on every page."""
from __future__ import annotations

from typing import Any

from sandbox_clients import app_token, cmdlet_body, headers, invoke_url, rest_client


def _pages(sandbox: Any, query: str, cmdlet: str = "Get-Mailbox", page_size: int = 200,
           **params: Any) -> list[list[dict[str, Any]]]:
    info = sandbox.info
    token = app_token(info)
    hdrs = headers(token, page_size=page_size, **{"X-CmdletName": cmdlet})
    body = cmdlet_body(cmdlet, **params)
    url: str | None = f"{invoke_url(info)}{query}"
    pages: list[list[dict[str, Any]]] = []
    with rest_client(info) as client:
        while url is not None and len(pages) < 1000:
            resp = client.post(url, json=body, headers=hdrs)
            assert resp.status_code == 200, resp.text
            data = resp.json()
            pages.append(data["value"])
            url = data.get("@odata.nextLink")
    return pages


def test_select_returns_only_the_named_properties_on_every_page(sandbox: Any) -> None:
    pages = _pages(sandbox, "?$select=externalDirectoryObjectId,UserPrincipalName,NoSuchProperty",
                   ResultSize="Unlimited")
    assert len(pages) >= 2
    for page in pages:
        assert page and all(set(r) == {"ExternalDirectoryObjectId", "UserPrincipalName"} for r in page)
    whole = [r for page in _pages(sandbox, "", ResultSize="Unlimited") for r in page]
    selected = [r for page in pages for r in page]
    assert selected == [{"ExternalDirectoryObjectId": r["ExternalDirectoryObjectId"],
                         "UserPrincipalName": r["UserPrincipalName"]} for r in whole]


def test_select_works_with_a_filter_and_an_encoded_dollar(sandbox: Any) -> None:
    flt = "ExternalDirectoryObjectId -like 'a*'"
    pages = _pages(sandbox, "?%24select=Guid", Filter=flt, ResultSize="Unlimited", page_size=1000)
    got = [r["Guid"] for page in pages for r in page]
    truth = [r.guid for r in sandbox.tenant.exo.values()
             if r.edoid.startswith("a") and r.rtd in ("UserMailbox", "SharedMailbox", "RoomMailbox",
                                                        "EquipmentMailbox")]
    assert got == truth and all(set(r) == {"Guid"} for page in pages for r in page)
