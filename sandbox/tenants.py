"""Many tenants on one sandbox port, as Microsoft's endpoints serve every customer tenant of an MSP.

    sbs = Sandbox.start(tenants=5, size=100)      # or SandboxTenants.start(5, size=100)
    sbs.info            # {"tenants": [<one Sandbox.info per tenant>], "base_url": ..., "sandbox": true}
    sbs.members[2].knobs.faults = {"503": 0.1}    # knobs, state and credentials are per tenant
    sbs.stop()

One HTTPS port answers all of them: the token endpoint by the tenant in its path
(`/{tenant}/oauth2/v2.0/token`, as login.microsoftonline.com does), EXO REST by the tenant in its
path (`/adminapi/beta/{tenant}/...`), Graph by the `tid` claim of the bearer token (Graph's URL names
no tenant; the token decides which directory answers, as graph.microsoft.com does). Each tenant is a
whole `Sandbox` of its own (tenant model, token service with its own app registration, client secret,
certificate and signing key, knobs, stats, write log, WinRM endpoint on a port of its own): nothing
one tenant's client does is visible to another, and a token of one tenant fails at every other
(signed by another key). Tenant k (1-based) is generated from seed + k - 1. The CA and the server
certificate are shared (one TLS identity for the port, one CA file for every profile).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt

from .http import Request, Response, SandboxHTTPServer, start_server
from .rest import simple_error
from .tls import TlsMaterial


class SandboxTenants:
    """N sandbox tenants behind one HTTPS port (see the module docstring)."""

    def __init__(self, material: TlsMaterial, *, host: str, port: int, own_dir: bool, verbose: bool) -> None:
        self.material = material
        #: The app registration every tenant shares (shared_app=True), else None (one app per tenant).
        self.app_material: TlsMaterial | None = None
        self._own_dir = own_dir
        self.members: list[Any] = []
        self._by_key: dict[str, Any] = {}
        self._server: SandboxHTTPServer
        self._server, self._thread = start_server(host, port, self._app, material.server_ssl_context(),
                                                  verbose=verbose)
        self.host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        self.port = int(self._server.server_address[1])
        self._stopped = False

    @classmethod
    def start(cls, tenants: int, *, size: int = 1000, seed: int = 42, host: str = "127.0.0.1", port: int = 0,
              tls_dir: str | Path | None = None, state_file: str | Path | None = None,
              verbose: bool = False, shared_app: bool = False, **options: Any) -> SandboxTenants:
        """Build `tenants` tenants (seeds seed .. seed+tenants-1) and serve them on one port.

        `options` are those of `Sandbox.start` and apply to every tenant; change one tenant's knobs
        afterwards through `members[i].knobs`. `state_file` NAME.json keeps tenant k in NAME-k.json.
        `shared_app`: one multi-tenant app registration (client id, secret, certificate) consented in
        every tenant, as an MSP's; else each tenant registers an app of its own.
        """
        from .server import Sandbox

        if tenants < 1:
            raise ValueError("tenants must be at least 1")
        if tls_dir is None and state_file is not None:
            tls_dir = Path(f"{state_file}.tls")  # a restarted sandbox keeps its CA and credentials
        own_dir = tls_dir is None
        directory = Path(tls_dir) if tls_dir is not None else Path(tempfile.mkdtemp(prefix="exocm-sandboxes-"))
        material = TlsMaterial.create(directory / "front")
        front = cls(material, host=host, port=port, own_dir=own_dir, verbose=verbose)
        if shared_app:
            front.app_material = material
        try:
            for k in range(1, tenants + 1):
                member_state = None
                if state_file is not None:
                    path = Path(state_file)
                    member_state = path.with_name(f"{path.stem}-{k}{path.suffix or '.json'}")
                member = Sandbox.start(size=size, seed=seed + k - 1, host=host,
                                       tls_dir=directory / f"tenant-{k}", state_file=member_state,
                                       verbose=verbose, front=front, **options)
                front._add(member)
        except BaseException:
            front.stop()
            raise
        return front

    def _add(self, member: Any) -> None:
        self.members.append(member)
        self._by_key[str(member.tenant.tenant_id).lower()] = member
        self._by_key[str(member.tenant.domain).lower()] = member

    # -- routing -------------------------------------------------------------------------
    def member(self, tenant: str) -> Any:
        """The tenant named by its id or initial domain (None when no tenant has that name)."""
        return self._by_key.get(tenant.lower())

    def _by_token(self, request: Request) -> Any:
        header = request.header("Authorization") or ""
        token = header.split(" ", 1)[1].strip() if " " in header else ""
        if not token:
            return None
        try:  # only to route; the tenant's own token service verifies the signature
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        return self._by_key.get(str(claims.get("tid") or "").lower())

    def _app(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        member = None
        if len(parts) > 2 and parts[0] == "adminapi":
            member = self.member(parts[2])
        elif parts and parts[0] in ("graph", "sandbox"):
            member = self._by_token(request)
        elif parts:
            member = self.member(parts[0])
        if member is None:
            member = self.members[0] if self.members else None
        if member is None:
            return Response.json(503, simple_error("ServiceUnavailable", "The sandbox is starting."))
        # An unknown tenant in a token path gets the first tenant's AADSTS90002 answer; an unknown
        # tenant in a REST path, or another tenant's token, is refused by the first tenant's checks.
        response: Response = member._app(request)
        return response

    # -- handle --------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """https://127.0.0.1:PORT, the one port of every tenant."""
        return f"https://{self.host}:{self.port}"

    @property
    def info(self) -> dict[str, Any]:
        """The `--print-json` object: one Sandbox.info per tenant under "tenants"."""
        return {"tenants": [m.info for m in self.members], "base_url": self.base_url,
                "ca_file": str(self.material.ca_file), "sandbox": True}

    def wait(self) -> None:
        """Block until stop()."""
        if self.members:
            self.members[0].wait()

    def stop(self) -> None:
        """Stop every tenant and the shared port."""
        if self._stopped:
            return
        self._stopped = True
        for member in self.members:
            member.stop()
        self._server.close_all()
        if self._own_dir:
            shutil.rmtree(self.material.directory.parent, ignore_errors=True)

    def __enter__(self) -> SandboxTenants:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
