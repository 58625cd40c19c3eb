"""A minimal Microsoft Graph for what runbooks need: users, license details, license
assignment, groups and group membership. Served under `{base}/graph/v1.0/...` (also `/beta`),
with its own token audience (`{base}/graph`, scope `{base}/graph/.default`).

Shapes and errors follow Graph v1.0 (`{"error": {"code", "message", "innerError"}}`, 204 for
membership changes, 404 `Request_ResourceNotFound`); the operations themselves are the
tenant model's (graph_ops.py), so license changes reach EXO at the next sync cycle.
"""
from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import orjson

from .errors import CmdletError
from .http import Request, Response
from .knobs import FaultDice, Knobs
from .rest import Stats, dumps
from .tokens import TokenRejected, TokenService


class GraphApi:
    """The Graph front of one tenant."""

    def __init__(self, tenant: Any, tokens: TokenService, knobs: Knobs, dice: FaultDice, stats: Stats, *,
                 base_url: Callable[[], str], on_write: Callable[[], None] | None = None) -> None:
        self.tenant = tenant
        self.tokens = tokens
        self.knobs = knobs
        self.dice = dice
        self.stats = stats
        self._base_url = base_url
        self._on_write = on_write

    def handle(self, request: Request) -> Response | None:
        """Answer /graph/... paths; None for other paths."""
        parts = [unquote(p) for p in request.path.split("/") if p]
        if not parts or parts[0] != "graph":
            return None
        rid = secrets.token_hex(16)
        if len(parts) < 3 or parts[1] not in ("v1.0", "beta"):
            return self._error(400, "BadRequest", "Invalid version.", rid, request)
        try:
            self.tokens.validate(request.header("Authorization"), self._base_url(), self.tokens.tenant_id)
        except TokenRejected as exc:
            # Graph's code for a bad bearer token (InvalidAuthenticationToken).
            resp = self._error(401, "InvalidAuthenticationToken", exc.description, rid, request)
            resp.headers["WWW-Authenticate"] = f'Bearer error="{exc.error}", error_description="{exc.description}"'
            return resp
        delay = self.dice.latency(self.knobs)
        if delay:
            time.sleep(delay)
        version = parts[1]
        route = parts[2:]
        try:
            return self._route(request, version, route, rid)
        except CmdletError as err:
            return self._error(err.http_status, err.error_type, err.message, rid, request)

    # -- routes ----------------------------------------------------------------------------
    def _route(self, request: Request, version: str, route: list[str], rid: str) -> Response:
        method = request.method.upper()
        t = self.tenant
        ctx = f"{self._base_url()}/{version}/$metadata"
        if method == "GET":
            from . import graph_directory

            link = f"{self._base_url()}/{version}/" + "/".join(route)
            with t.lock:
                answer = graph_directory.route(t, version, route, dict(request.query), link)
            if isinstance(answer, str):
                return Response(200, answer.encode(), {"Content-Type": "text/plain", "request-id": rid})
            if answer is not None:
                return self._ok({"@odata.context": f"{ctx}#{route[0]}", **answer}, rid)
        if route[0] == "users" and len(route) >= 2:
            user = route[1]
            if len(route) == 2 and method == "GET":
                return self._ok({"@odata.context": f"{ctx}#users/$entity", **t.graph_get_user(user)}, rid)
            if route[2:] == ["licenseDetails"] and method == "GET":
                return self._ok({"@odata.context": f"{ctx}#users('{user}')/licenseDetails",
                                 "value": t.graph_license_details(user)}, rid)
            if route[2:] == ["memberOf"] and method == "GET":
                return self._ok({"@odata.context": f"{ctx}#directoryObjects",
                                 "value": t.graph_user_groups(user)}, rid)
            if route[2:] == ["assignLicense"] and method == "POST":
                return self._assign_license(request, user, ctx, rid)
        if route[0] == "groups":
            if len(route) == 1 and method == "GET":
                return self._ok({"@odata.context": f"{ctx}#groups", "value": t.graph_groups()}, rid)
            group = route[1] if len(route) > 1 else ""
            if len(route) == 2 and method == "GET":
                return self._ok({"@odata.context": f"{ctx}#groups/$entity", **t.graph_group(group)}, rid)
            if route[2:] == ["members"] and method == "GET":
                return self._ok({"@odata.context": f"{ctx}#directoryObjects",
                                 "value": t.graph_group_members(group)}, rid)
            if route[2:] == ["members", "$ref"] and method == "POST":
                body = self._json(request)
                ref = str(body.get("@odata.id", "")) if isinstance(body, dict) else ""
                member = ref.rstrip("/").rsplit("/", 1)[-1]
                if not member:
                    return self._error(400, "Request_BadRequest",
                                       "Invalid object identifier ''.", rid, request)
                t.graph_add_group_member(group, member)
                self._wrote()
                return Response(204, b"", {"request-id": rid})
            if len(route) == 5 and route[2] == "members" and route[4] == "$ref" and method == "DELETE":
                t.graph_remove_group_member(group, route[3])
                self._wrote()
                return Response(204, b"", {"request-id": rid})
        # Graph's answer for an unknown segment (text from Microsoft Graph).
        return self._error(400, "BadRequest",
                           f"Resource not found for the segment '{route[-1]}'.", rid, request)

    def _assign_license(self, request: Request, user: str, ctx: str, rid: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict) or not isinstance(body.get("addLicenses"), list) \
                or not isinstance(body.get("removeLicenses"), list):
            # Graph's validation text for assignLicense (both lists are required).
            return self._error(400, "Request_BadRequest",
                               "Invalid value specified for property 'addLicenses' or 'removeLicenses'.",
                               rid, request)
        add = [str(x.get("skuId", "")) for x in body["addLicenses"] if isinstance(x, dict)]
        remove = [str(x) for x in body["removeLicenses"]]
        from . import graph_ops

        with self.tenant.lock:
            record = graph_ops.assign_license(self.tenant, user, add=add, remove=remove)
        self._wrote()
        return self._ok({"@odata.context": f"{ctx}#users/$entity", **record}, rid)

    # -- plumbing --------------------------------------------------------------------------
    def _wrote(self) -> None:
        self.stats.count_invoke("graph", True)
        if self._on_write is not None:
            self._on_write()

    @staticmethod
    def _json(request: Request) -> Any:
        try:
            return orjson.loads(request.body or b"{}")
        except orjson.JSONDecodeError:
            return None

    @staticmethod
    def _ok(payload: dict[str, Any], rid: str) -> Response:
        return Response.raw_json(200, dumps(payload), {"request-id": rid})

    @staticmethod
    def _error(status: int, code: str, message: str, rid: str, request: Request) -> Response:
        inner = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": rid,
                 "client-request-id": request.header("client-request-id") or rid}
        return Response.raw_json(status, dumps({"error": {"code": code, "message": message, "innerError": inner}}),
                                 {"request-id": rid})
