"""A Microsoft Graph front for what runbooks and object-level SOA need: users, license details,
license assignment, groups, organizational contacts, members and owners, onPremisesSyncBehavior,
and JSON $batch. Served under `{base}/graph/v1.0/...` and `/beta`, with its own token audience
(`{base}/graph`, scope `{base}/graph/.default`).

Shapes and errors follow Graph (`{"error": {"code", "message", "innerError"}}`, 204 for
writes without a body, 404 `Request_ResourceNotFound`); the operations are the tenant model's
(graph_ops.py, graph_directory.py), so changes reach EXO and AD at the next sync cycle.
Routes: /users/{id} (+ licenseDetails, memberOf, assignLicense), /groups, /contacts, /users
(lists), /{groups|contacts|users}/$count, /groups/{id} (GET, PATCH), /groups/{id}/members,
/owners, /transitiveMembers, /memberOf (O(groups) per call), members/$ref (POST, DELETE),
/{groups|contacts|users}/{id}/onPremisesSyncBehavior (GET, PATCH), /$batch.
Facts and their sources (docs/exchange-facts.md, "Object-level SOA through Graph"):
- collections page with `@odata.nextLink` ($skiptoken), `$top` 1..999, `$select`, `$count`
  with the advanced-query rules (graph_query.py);
- `onPremisesSyncBehavior` is on v1.0 for groups; contacts and users have it on beta only
  (Graph docs `onpremisessyncbehavior-get`/`-update`: the v1.0 pages list groups only). v1.0
  answers an unknown navigation segment with 400 BadRequest "Resource not found for the segment
  '...'" (Graph's usual OData text);
- permissions: GET and PATCH of onPremisesSyncBehavior need Group-/Contacts-/User-
  OnPremisesSyncBehavior.ReadWrite.All (no read-only permission exists); without it 403
  Authorization_RequestDenied "Insufficient privileges to complete the operation.";
- JSON batching: at most 20 requests (Graph docs "Combine multiple requests in one HTTP call
  using JSON batching"); the over-limit text is the sandbox's own;
- throttling: 429 with Retry-After (Graph docs "Microsoft Graph throttling guidance"), under
  the same concurrency-limit and write-budget knobs as EXO REST (counted separately: Graph and
  Exchange Online are separate services).
"""
from __future__ import annotations

import datetime as dt
import secrets
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import orjson

from . import graph_directory as gd
from . import graph_org
from . import graph_query as gq
from .errors import CmdletError
from .http import Request, Response
from .knobs import GRAPH_APP_ROLES, ConcurrencyGate, FaultDice, Knobs, WriteBudget, retry_after_header
from .rest import CursorStore, Stats, dumps
from .tokens import TokenRejected, TokenService

#: Graph JSON batching limit (Graph docs: "JSON batch requests are currently limited to 20").
MAX_BATCH = 20
#: Permission per onPremisesSyncBehavior collection (Graph docs `onpremisessyncbehavior-update`).
SOA_PERMISSION = {
    "groups": "Group-OnPremisesSyncBehavior.ReadWrite.All",
    "contacts": "Contacts-OnPremisesSyncBehavior.ReadWrite.All",
    "users": "User-OnPremisesSyncBehavior.ReadWrite.All",
}
#: Permissions any one of which lets an app list a collection (Graph docs, `group-list`,
#: `orgcontact-list`, `user-list`; ReadWrite and Directory permissions imply read).
READ_PERMISSIONS = {
    "groups": ("GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All",
               "Directory.Read.All", "Directory.ReadWrite.All"),
    "contacts": ("OrgContact.Read.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    "users": ("User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All",
              "Directory.ReadWrite.All"),
}
#: Versions on which each collection has onPremisesSyncBehavior.
SOA_VERSIONS = {"groups": ("v1.0", "beta"), "contacts": ("beta",), "users": ("beta",)}

Headers = Callable[[str], str]


class GraphApi:
    """The Graph front of one tenant."""

    def __init__(self, tenant: Any, tokens: TokenService, knobs: Knobs, dice: FaultDice, stats: Stats, *,
                 base_url: Callable[[], str], on_write: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tenant = tenant
        self.tokens = tokens
        self.knobs = knobs
        self.dice = dice
        self.stats = stats
        self._base_url = base_url
        self._on_write = on_write
        self.gate = ConcurrencyGate()
        self.budget = WriteBudget(clock)
        self.cursors = CursorStore(clock)

    def handle(self, request: Request) -> Response | None:
        """Answer /graph/... paths; None for other paths."""
        parts = [unquote(p) for p in request.path.split("/") if p]
        if not parts or parts[0] != "graph":
            return None
        rid = secrets.token_hex(16)
        crid = request.header("client-request-id") or rid
        if len(parts) < 3 or parts[1] not in ("v1.0", "beta"):
            return self._error(400, "BadRequest", "Invalid version.", rid, crid)
        try:
            claims = self.tokens.validate(request.header("Authorization"), self._base_url(), self.tokens.tenant_id)
        except TokenRejected as exc:
            # Graph's code for a bad bearer token (InvalidAuthenticationToken).
            resp = self._error(401, "InvalidAuthenticationToken", exc.description, rid, crid)
            resp.headers["WWW-Authenticate"] = f'Bearer error="{exc.error}", error_description="{exc.description}"'
            return resp
        if not self.gate.try_enter(self.knobs.concurrency_limit):
            return self._throttled(1.0, rid, crid)
        version, route = parts[1], parts[2:]
        try:
            with self.dice.service_time(self.knobs, read=request.method.upper() == "GET" and route != ["$batch"]):
                fault = self.dice.transport_fault(self.knobs.graph_faults)
                if fault is not None:
                    self.stats.count_fault(fault)
                    early = self._early_fault(fault, rid, crid)
                    if early is not None:
                        return early
                if route == ["$batch"]:
                    response = self._batch(request, version, claims, rid, crid)
                else:
                    response = self._dispatch(request.method.upper(), version, route, request.query,
                                              request.header, request.body, claims, rid, crid)
            if fault == "timeout":  # the request ran; its answer never comes
                return Response.hold(self.knobs.fault_timeout_s)
            return response
        finally:
            self.gate.leave()

    def _early_fault(self, fault: str, rid: str, crid: str) -> Response | None:
        """500, 503 (Retry-After on about half) or a reset before the request runs; the texts are
        the sandbox's own (Graph's bodies for these are generic)."""
        if fault == "reset":
            return Response.reset()
        if fault == "500":
            return self._error(500, "InternalServerError", "An internal server error occurred.", rid, crid)
        if fault == "503":
            resp = self._error(503, "ServiceUnavailable", "The service is temporarily unavailable.", rid, crid)
            if self.dice.chance(0.5):
                resp.headers["Retry-After"] = "1"
            return resp
        return None

    # -- dispatch ----------------------------------------------------------------------------
    def _dispatch(self, method: str, version: str, route: list[str], query: dict[str, str], header: Headers,
                  body: bytes | None, claims: dict[str, Any], rid: str, crid: str) -> Response:
        if method in ("POST", "PATCH", "DELETE", "PUT"):
            wait = self.budget.take(self.knobs.write_budget)
            if wait > 0:
                return self._throttled(wait, rid, crid)
        try:
            return self._route(method, version, route, query, header, body, claims, rid, crid)
        except CmdletError as err:
            return self._error(err.http_status, err.error_type, err.message, rid, crid)
        except Exception as exc:  # a sandbox bug, not a Graph behaviour: say so
            traceback.print_exc(file=sys.stderr)
            return self._error(500, "InternalServerError",
                               f"The sandbox failed: {type(exc).__name__} (a sandbox bug; see its stderr).", rid, crid)

    def _route(self, method: str, version: str, route: list[str], query: dict[str, str], header: Headers,
               body: bytes | None, claims: dict[str, Any], rid: str, crid: str) -> Response:
        t = self.tenant
        ctx = f"{self._base_url()}/{version}/$metadata"
        head, rest = route[0], route[1:]
        if "$skiptoken" in query and head in ("groups", "contacts", "users"):
            return self._next_page(query["$skiptoken"], version, route, query, rid, crid)
        if head in ("groups", "contacts", "users") and not rest and method == "GET":
            self._require(claims, READ_PERMISSIONS[head])
            return self._list(head, version, query, header, ctx, rid, crid)
        if head in ("groups", "contacts", "users") and rest == ["$count"] and method == "GET":
            self._require(claims, READ_PERMISSIONS[head])
            if header("ConsistencyLevel").strip().lower() != "eventual":
                # Graph docs, advanced queries: "$count is not currently supported." without the header.
                raise gq.bad_request("Request_BadRequest", "$count is not currently supported.")
            with t.lock:
                objs, _, resource = gd.collection(t, head)
                text = query.get("$filter", "").strip()
                if text:  # $count honours $filter (an advanced query: the header is there)
                    pred = gq.FilterParser(head, resource, True).parse(text)
                    objs = [o for o in objs if pred(o)]
            return Response(200, str(len(objs)).encode(), {"Content-Type": "text/plain", "request-id": rid})
        if head in ("groups", "contacts", "users") and len(rest) == 2 and rest[1] == "onPremisesSyncBehavior":
            return self._sync_behavior(method, version, head, rest[0], body, claims, ctx, rid, crid)
        if head == "users" and len(rest) == 1 and method == "GET" and "$select" in query:
            # GET /users/{id}?$select=...: the directory record, only the selected properties (as the
            # listing answers them; Graph docs "Use the $select query parameter").
            self._require(claims, READ_PERMISSIONS["users"])
            with t.lock:
                record = gd.user_record(t, gd.find_user(t, rest[0]))
            return self._ok(self._selected({"@odata.context": f"{ctx}#users/$entity", **record}, query), rid)
        if head == "users" and rest:
            return self._user_route(method, rest, body, ctx, rid, crid)
        if head == "contacts" and len(rest) == 1 and method == "GET":
            self._require(claims, READ_PERMISSIONS["contacts"])
            with t.lock:
                record = gd.contact_record(t, gd.find_contact(t, rest[0]))
            return self._ok(self._selected({"@odata.context": f"{ctx}#contacts/$entity", **record}, query), rid)
        if head == "groups" and len(rest) == 3 and rest[1] in ("members", "transitiveMembers") \
                and rest[2] == "$count" and method == "GET":
            self._require(claims, READ_PERMISSIONS["groups"])
            with t.lock:
                text = graph_org.member_count(t, rest[0], header("ConsistencyLevel"))
            return Response(200, text.encode(), {"Content-Type": "text/plain", "request-id": rid})
        if head == "groups" and rest:
            return self._group_route(method, version, rest, query, header, body, claims, ctx, rid, crid)
        if head == "servicePrincipals" and method == "GET":
            return self._service_principals(rest, query, claims, ctx, rid, crid)
        if head in graph_org.HEADS and method == "GET":
            with t.lock:
                answer = graph_org.route(t, version, route, query)
            if answer is not None:
                return self._ok({"@odata.context": f"{ctx}#{head}", **answer}, rid)
        # Graph's answer for an unknown segment (text from Microsoft Graph).
        return self._error(400, "BadRequest", f"Resource not found for the segment '{route[-1]}'.", rid, crid)

    def _service_principals(self, rest: list[str], query: dict[str, str], claims: dict[str, Any], ctx: str,
                            rid: str, crid: str) -> Response:
        """GET servicePrincipals[?$filter=appId eq '...'] and servicePrincipals/{id}/synchronization/jobs
        (Graph "List servicePrincipals": Application.Read.All or Directory.Read.All; "List
        synchronizationJobs": Synchronization.Read.All). The Cloud Sync job model is cloudsync.py's.
        Only an `appId eq` filter is understood (others: the whole list)."""
        from . import cloudsync

        t = self.tenant
        with t.lock:
            principals = cloudsync.service_principals(t)
            if not rest:
                self._require(claims, ("Application.Read.All", "Directory.Read.All"))
                wanted = query.get("$filter", "")
                if "appid eq" in wanted.lower():
                    app = wanted.split("'")[1].lower() if wanted.count("'") >= 2 else ""
                    principals = [p for p in principals if p["appId"] == app]
                return self._ok({"@odata.context": f"{ctx}#servicePrincipals", "value": principals}, rid)
            if len(rest) == 5 and rest[1:3] == ["synchronization", "jobs"] and rest[4] == "schema":
                self._require(claims, ("Synchronization.Read.All", "Synchronization.ReadWrite.All"))
                jobs = cloudsync.synchronization_jobs(t, rest[0]) or []
                if not any(j["id"] == rest[3] for j in jobs):
                    return self._error(404, "Request_ResourceNotFound",
                                       f"Resource '{rest[3]}' does not exist or one of its queried "
                                       "reference-property objects are not present.", rid, crid)
                return self._ok({"@odata.context": f"{ctx}#synchronizationSchema", **cloudsync.job_schema(t)}, rid)
            if rest[1:] == ["synchronization", "jobs"]:
                self._require(claims, ("Synchronization.Read.All", "Synchronization.ReadWrite.All"))
                jobs = cloudsync.synchronization_jobs(t, rest[0])
                if jobs is None:
                    return self._error(404, "Request_ResourceNotFound",
                                       f"Resource '{rest[0]}' does not exist or one of its queried "
                                       "reference-property objects are not present.", rid, crid)
                return self._ok({"@odata.context": f"{ctx}#servicePrincipals('{rest[0]}')/synchronization/jobs",
                                 "value": jobs}, rid)
        return self._error(400, "BadRequest", f"Resource not found for the segment '{rest[-1] if rest else ''}'.",
                           rid, crid)

    def _user_route(self, method: str, rest: list[str], body: bytes | None, ctx: str, rid: str,
                    crid: str) -> Response:
        t = self.tenant
        user = rest[0]
        if len(rest) == 1 and method == "GET":
            return self._ok({"@odata.context": f"{ctx}#users/$entity", **t.graph_get_user(user)}, rid)
        if rest[1:] == ["licenseDetails"] and method == "GET":
            return self._ok({"@odata.context": f"{ctx}#users('{user}')/licenseDetails",
                             "value": t.graph_license_details(user)}, rid)
        if rest[1:] == ["memberOf"] and method == "GET":
            return self._ok({"@odata.context": f"{ctx}#directoryObjects", "value": t.graph_user_groups(user)}, rid)
        if rest[1:] == ["assignLicense"] and method == "POST":
            return self._assign_license(body, user, ctx, rid, crid)
        return self._error(400, "BadRequest", f"Resource not found for the segment '{rest[-1]}'.", rid, crid)

    def _group_route(self, method: str, version: str, rest: list[str], query: dict[str, str], header: Headers,
                     body: bytes | None, claims: dict[str, Any], ctx: str, rid: str, crid: str) -> Response:
        t = self.tenant
        group = rest[0]
        if len(rest) == 1 and method == "GET":
            with t.lock:
                record = gd.group_record(t, gd.find_group(t, group), version == "beta")
            return self._ok(self._selected({"@odata.context": f"{ctx}#groups/$entity", **record}, query), rid)
        if len(rest) == 1 and method == "PATCH":
            payload = self._json(body)
            if not isinstance(payload, dict):
                raise gq.bad_request("Request_BadRequest", "The request body is not a JSON object.")
            with t.lock:
                gd.edit_group(t, group, payload)
            self._wrote()
            return Response(204, b"", {"request-id": rid})
        if len(rest) == 2 and rest[1] in ("members", "owners", "transitiveMembers", "memberOf") and method == "GET":
            self._require(claims, READ_PERMISSIONS["groups"])
            with t.lock:
                objs, build = gd.members(t, group, rest[1], version == "beta", _wanted(query))
            return self._page(gd.lazy(objs, build), version, ["groups", group, rest[1]], query, header,
                              f"{ctx}#directoryObjects", rid)
        if rest[1:] == ["members", "$ref"] and method == "POST":
            payload = self._json(body)
            ref = str(payload.get("@odata.id", "")) if isinstance(payload, dict) else ""
            member = ref.rstrip("/").rsplit("/", 1)[-1]
            if not member:
                return self._error(400, "Request_BadRequest", "Invalid object identifier ''.", rid, crid)
            with t.lock:
                if member.lower() in t.entra_groups or member.lower() in t.entra_contacts:
                    gd.cloud_add_member(t, group, member)
                else:
                    t.graph_add_group_member(group, member)
            self._wrote()
            return Response(204, b"", {"request-id": rid})
        if len(rest) == 4 and rest[1] == "members" and rest[3] == "$ref" and method == "DELETE":
            t.graph_remove_group_member(group, rest[2])
            self._wrote()
            return Response(204, b"", {"request-id": rid})
        return self._error(400, "BadRequest", f"Resource not found for the segment '{rest[-1]}'.", rid, crid)

    # -- collections -------------------------------------------------------------------------
    def _list(self, name: str, version: str, query: dict[str, str], header: Headers, ctx: str, rid: str,
              crid: str) -> Response:
        t = self.tenant
        advanced = gq.is_advanced(query, header("ConsistencyLevel"))
        with t.lock:
            objs, build, resource = gd.collection(t, name, version == "beta", _wanted(query))
            text = query.get("$filter", "").strip()
            if text:
                pred = gq.FilterParser(name, resource, advanced).parse(text)  # validates as Graph would
                indexed = graph_org.synced_users_by_prefix(t, text) if name == "users" else None
                objs = indexed if indexed is not None else [o for o in objs if pred(o)]
        return self._page(gd.lazy(objs, build), version, [name], query, header, f"{ctx}#{name}", rid)

    def _page(self, rows: Any, version: str, route: list[str], query: dict[str, str], header: Headers,
              context: str, rid: str) -> Response:
        size = gq.page_size(query)
        names = gq.select_names(query)
        wanted = {n.lower() for n in names}
        with self.tenant.lock:
            first = rows[:size]
        if wanted:
            first = [gq.project(r, wanted) for r in first]
        out: dict[str, Any] = {"@odata.context": context}
        if gq.is_advanced(query, header("ConsistencyLevel")):
            out["@odata.count"] = len(rows)  # $count=true is ignored without ConsistencyLevel (Graph docs)
        if len(rows) > size:
            cid = self.cursors.put("graph", cast(Sequence[dict[str, Any]], _Projected(rows, wanted)), size,
                                   self.knobs.cursor_ttl_s)
            out["@odata.nextLink"] = self._next_link(version, route, query, f"{cid}.1")
        out["value"] = first
        self.stats.count("pages_served")
        return Response.raw_json(200, dumps(out), {"request-id": rid})

    def _next_link(self, version: str, route: list[str], query: dict[str, str], token: str) -> str:
        base = (self.knobs.next_link_base_url or self._base_url()).rstrip("/")
        if not base.endswith("/graph"):
            base = f"{base}/graph"
        keep = [(k, v) for k, v in query.items() if k in ("$select", "$top", "$filter")]
        keep.append(("$skiptoken", token))
        qs = "&".join(f"{k}={quote(v, safe=',$')}" for k, v in keep)
        return f"{base}/{version}/{'/'.join(quote(p) for p in route)}?{qs}"

    def _next_page(self, token: str, version: str, route: list[str], query: dict[str, str], rid: str,
                   crid: str) -> Response:
        cid, _, index_text = token.rpartition(".")
        got = None
        if cid and index_text.isdigit():
            got = self.cursors.get(cid, int(index_text), "graph", self.knobs.cursor_ttl_s)
        if got is None:
            # The sandbox's own text: an unknown or expired skip token.
            return self._error(400, "Request_BadRequest", "The skip token is not valid or has expired.", rid, crid)
        rows, start, end, more = got
        with self.tenant.lock:
            page = rows[start:end]
        out: dict[str, Any] = {"@odata.context": f"{self._base_url()}/{version}/$metadata#{route[0]}"}
        if more:
            out["@odata.nextLink"] = self._next_link(version, route, query, f"{cid}.{int(index_text) + 1}")
        out["value"] = page
        self.stats.count("pages_served")
        return Response.raw_json(200, dumps(out), {"request-id": rid})

    # -- onPremisesSyncBehavior --------------------------------------------------------------
    def _sync_behavior(self, method: str, version: str, collection: str, ident: str, body: bytes | None,
                       claims: dict[str, Any], ctx: str, rid: str, crid: str) -> Response:
        if version not in SOA_VERSIONS[collection]:
            # Not on v1.0 for contacts and users: Graph's text for an unknown segment.
            return self._error(400, "BadRequest", "Resource not found for the segment 'onPremisesSyncBehavior'.",
                               rid, crid)
        self._require(claims, (SOA_PERMISSION[collection],))
        t = self.tenant
        if method == "GET":
            with t.lock:
                record = gd.get_sync_behavior(t, collection, ident)
            return self._ok({"@odata.context": f"{ctx}#{collection}('{record['id']}')/onPremisesSyncBehavior/$entity",
                             **record}, rid)
        if method == "PATCH":
            payload = self._json(body)
            value = payload.get("isCloudManaged") if isinstance(payload, dict) else None
            if not isinstance(value, bool):
                # The sandbox's own text (Graph rejects a body without a boolean isCloudManaged).
                raise gq.bad_request("Request_BadRequest",
                                     "Invalid value specified for property 'isCloudManaged' of resource "
                                     "'OnPremisesSyncBehavior'.")
            with t.lock:
                gd.set_sync_behavior(t, collection, ident, value)
            self._wrote()
            return Response(204, b"", {"request-id": rid})
        return self._error(405, "Request_BadRequest", f"Method '{method}' is not allowed on this resource.", rid, crid)

    def _require(self, claims: dict[str, Any], any_of: tuple[str, ...]) -> None:
        """403 unless the token grants one of `any_of` (app roles; a delegated token gets what the
        graph_roles knob grants: the sandbox's admin consent)."""
        roles = claims.get("roles")
        if isinstance(roles, list):
            granted = {str(r) for r in roles}
        else:
            knob = self.knobs.graph_roles
            granted = set(GRAPH_APP_ROLES if knob is None else knob)
            granted |= set(str(claims.get("scp", "")).split())
        if not granted & set(any_of):
            # Entra's 403 text for a missing permission (Microsoft Graph, Authorization_RequestDenied).
            raise CmdletError("Authorization_RequestDenied", "PermissionDenied",
                              "Insufficient privileges to complete the operation.", http_status=403)

    # -- $batch ------------------------------------------------------------------------------
    def _batch(self, request: Request, version: str, claims: dict[str, Any], rid: str, crid: str) -> Response:
        if request.method.upper() != "POST":
            return self._error(405, "BadRequest", "Use POST for $batch.", rid, crid)
        payload = self._json(request.body)
        subs = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(subs, list):
            return self._error(400, "BadRequest", "Invalid batch payload format.", rid, crid)
        if len(subs) > MAX_BATCH:
            # The sandbox's own text for Graph's documented limit of 20 requests per batch.
            return self._error(400, "BadRequest",
                               f"Batch request contains {len(subs)} requests; the limit is {MAX_BATCH}.", rid, crid)
        self.stats.count("batch_requests")
        responses = [self._batch_item(sub, version, claims, rid) for sub in subs]
        return Response.raw_json(200, dumps({"responses": responses}), {"request-id": rid})

    def _batch_item(self, sub: Any, version: str, claims: dict[str, Any], rid: str) -> dict[str, Any]:
        if not isinstance(sub, dict) or not isinstance(sub.get("url"), str) or not isinstance(sub.get("method"), str):
            err = {"error": {"code": "BadRequest", "message": "A batch request needs id, method and url."}}
            return {"id": str(sub.get("id", "")) if isinstance(sub, dict) else "", "status": 400, "body": err}
        sub_id = str(sub.get("id", ""))
        if self.knobs.graph_batch_item_ms > 0:
            time.sleep(self.knobs.graph_batch_item_ms / 1000.0)
        split = urlsplit(sub["url"] if sub["url"].startswith("/") else f"/{sub['url']}")
        route = [unquote(p) for p in split.path.split("/") if p]
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {str(k).lower(): str(v) for k, v in (sub.get("headers") or {}).items()}
        raw = sub.get("body")
        body = orjson.dumps(raw) if raw is not None else b""
        if not route:
            resp = self._error(400, "BadRequest", "Invalid request URL.", rid, rid)
        else:
            resp = self._dispatch(sub["method"].upper(), version, route, query,
                                  lambda name: headers.get(name.lower(), ""), body, claims, rid, rid)
        out: dict[str, Any] = {"id": sub_id, "status": resp.status,
                               "headers": {k: v for k, v in resp.headers.items() if k != "request-id"}}
        if resp.body:
            ctype = resp.headers.get("Content-Type", "application/json")
            out["body"] = orjson.loads(resp.body) if "json" in ctype else resp.body.decode()
        if resp.status == 429:
            self.stats.count_status(429)
        return out

    # -- plumbing ----------------------------------------------------------------------------
    def _assign_license(self, body: bytes | None, user: str, ctx: str, rid: str, crid: str) -> Response:
        payload = self._json(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("addLicenses"), list) \
                or not isinstance(payload.get("removeLicenses"), list):
            # Graph's validation text for assignLicense (both lists are required).
            return self._error(400, "Request_BadRequest",
                               "Invalid value specified for property 'addLicenses' or 'removeLicenses'.", rid, crid)
        add = [str(x.get("skuId", "")) for x in payload["addLicenses"] if isinstance(x, dict)]
        remove = [str(x) for x in payload["removeLicenses"]]
        from . import graph_ops

        with self.tenant.lock:
            record = graph_ops.assign_license(self.tenant, user, add=add, remove=remove)
        self._wrote()
        return self._ok({"@odata.context": f"{ctx}#users/$entity", **record}, rid)

    def _wrote(self) -> None:
        self.stats.count_invoke("graph", True)
        if self._on_write is not None:
            self._on_write()

    @staticmethod
    def _selected(record: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        names = gq.select_names(query)
        if not names:
            return record
        wanted = {n.lower() for n in names} | {"@odata.context"}
        return {k: v for k, v in record.items() if k.lower() in wanted}

    @staticmethod
    def _json(body: bytes | None) -> Any:
        try:
            return orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return None

    @staticmethod
    def _ok(payload: dict[str, Any], rid: str) -> Response:
        return Response.raw_json(200, dumps(payload), {"request-id": rid})

    def _throttled(self, seconds: float, rid: str, crid: str) -> Response:
        # Body shape of Graph's throttling answer (Graph docs, "Microsoft Graph throttling guidance");
        # the message wording is the sandbox's.
        after = retry_after_header(seconds)
        resp = self._error(429, "TooManyRequests", f"Too many requests. Retry after {after} seconds.", rid, crid)
        resp.headers["Retry-After"] = after
        return resp

    @staticmethod
    def _error(status: int, code: str, message: str, rid: str, crid: str) -> Response:
        inner = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": rid,
                 "client-request-id": crid}
        return Response.raw_json(status, dumps({"error": {"code": code, "message": message, "innerError": inner}}),
                                 {"request-id": rid})


def _wanted(query: dict[str, str]) -> set[str] | None:
    """The lower-case $select names, or None for every property."""
    names = gq.select_names(query)
    return {n.lower() for n in names} if names else None


class _Projected:
    """Rows of a paging cursor, reduced to the $select names when read."""

    __slots__ = ("_rows", "_wanted")

    def __init__(self, rows: Any, wanted: set[str]) -> None:
        self._rows = rows
        self._wanted = wanted

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: slice) -> list[dict[str, Any]]:
        page = self._rows[i]
        return [gq.project(r, self._wanted) for r in page] if self._wanted else page
