"""The sandbox handle: one tenant served over loopback TLS on one HTTPS port.

    sb = Sandbox.start(size=1000, seed=42, latency_ms=150, concurrency_limit=10)
    sb.info            # the --print-json object: tenant, authority, client_id, client_secret, scope,
                       # rest_base_url, ca_file, and more (certificates, device client, graph)
    sb.knobs.faults = {"503": 0.05}   # change behaviour at run time
    sb.stats.snapshot(); sb.revoke_tokens(); sb.stop()

Paths on the port: the Entra-like token endpoint under /{tenant}/ (tokens.py), EXO REST under
/adminapi/ (rest.py), a minimal Graph under /graph/ (graph.py), and POST /sandbox/sync (a sync
cycle on demand, for a token of the tenant's app; `exocm sandbox sync`).
"""
from __future__ import annotations

import datetime as dt
import gc
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from .http import Request, Response, SandboxHTTPServer, start_server
from .knobs import GRAPH_APP_ROLES, FaultDice, Knobs, validate_faults
from .rest import RestApi, Stats, simple_error
from .tls import TlsMaterial
from .tokens import APP_ROLE, TokenRejected, TokenService

#: Tenants with at least this many EXO recipients are frozen out of the cyclic GC after loading.
FREEZE_HEAP_AT = 20_000
#: The cyclic GC's young-generation threshold of a sandbox serving from its own process.
YOUNG_GC_THRESHOLD = 50_000
#: The sandbox's own control path for an on-demand sync cycle (no Microsoft counterpart).
SYNC_PATH = "/sandbox/sync"
#: Seconds between state saves while writes keep coming (a save also happens on stop).
SAVE_EVERY_S = 0.5

ClockLike = Callable[[], Any]


def _epoch_clock(clock: ClockLike | None) -> Callable[[], float]:
    """Turn a clock returning epoch seconds or an aware datetime into epoch seconds."""
    if clock is None:
        return time.time

    def now() -> float:
        value = clock()
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return value.timestamp()
        return float(value)

    return now


def tune_for_serving() -> None:
    """Collect young objects less often in a process that only serves (`exocm sandbox serve`).

    A 1000-record page allocates ~7,000 dicts and lists that refcounting frees once it is sent; at
    the default young threshold (700) each page ran ~10 young and one middle collection. At 50,000
    the sandbox's CPU per 100k-record read (10 requests at once, issue 17's bench; 9 reads each
    way, alternated) fell by a quarter (medians 1.58 -> 1.19 s). Not done by Sandbox.start: an
    in-process sandbox shares its process (and the GC) with whatever embeds it.
    (A shorter GIL switch interval, 1 ms, made one tenant's read ~5 % faster but cost a 20-tenant
    set ~10-30 % more CPU on both sides; not kept.)
    """
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


class Sandbox:
    """A running sandbox (token endpoint + EXO REST + Graph on one HTTPS port)."""

    def __init__(self, tenant: Any, *, host: str, port: int, knobs: Knobs, seed: int,
                 clock: ClockLike | None, tls_dir: Path | None, state_file: Path | None,
                 sync_interval: float | None, auto_approve_device_code: bool, verbose: bool,
                 winrm: bool = False, durable_writes: bool = False, winrm_port: int = 0,
                 front: Any = None) -> None:
        """`front`: the SandboxTenants whose one HTTPS port serves this tenant among others
        (sandbox/tenants.py); None serves this tenant on a port of its own."""
        self.tenant = tenant
        self.knobs = knobs
        tenant.variants = knobs.variants
        self.stats = Stats()
        self.state_file = state_file
        self._epoch = _epoch_clock(clock)
        self._own_tls_dir = tls_dir is None
        directory = tls_dir or Path(tempfile.mkdtemp(prefix="exocm-sandbox-"))
        self.material = TlsMaterial.create(directory, server_from=front.material if front is not None else None,
                                           app_from=front.app_material if front is not None else None)
        self._base_url = ""
        self.tokens = TokenService(
            self.material, tenant_id=str(tenant.tenant_id), tenant_domain=str(tenant.domain),
            base_url=lambda: self._base_url, resources=self._resources, clock=self._epoch,
            token_lifetime_s=lambda: int(self.knobs.token_lifetime_s),
            auto_approve_device_code=auto_approve_device_code, app_roles=self._app_roles)
        self._dirty = threading.Event()
        self.durable_writes = durable_writes
        self._stopping = threading.Event()
        self.rest = RestApi(tenant, self.tokens, knobs, FaultDice(seed), self.stats,
                            base_url=lambda: self._base_url, clock=self._epoch, on_write=self._wrote)
        self.graph: Any = None
        try:
            from .graph import GraphApi
        except ImportError:  # graph.py is optional
            pass
        else:
            self.graph = GraphApi(tenant, self.tokens, knobs, self.rest.dice, self.stats,
                                  base_url=lambda: self.graph_base_url, on_write=self._wrote,
                                  clock=self._epoch)
        self._server: SandboxHTTPServer | None = None
        if front is None:
            self._server, self._thread = start_server(host, port, self._app, self.material.server_ssl_context(),
                                                      verbose=verbose)
            self.host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
            self.port = int(self._server.server_address[1])
        else:
            self.host, self.port = front.host, front.port
        self._base_url = f"https://{self.host}:{self.port}"
        self._threads: list[threading.Thread] = []
        self.sync_server: Any = None
        self.winrm: Any = self._start_winrm(winrm_port) if winrm else None
        if sync_interval:
            self._spawn(self._sync_loop, float(sync_interval), name="sandbox-sync")
        if state_file is not None:
            self._spawn(self._save_loop, name="sandbox-save")
        self._stopped = False

    # -- construction --------------------------------------------------------------------
    @classmethod
    def start(cls, size: int = 1000, seed: int = 42, *, host: str = "127.0.0.1", port: int = 0,
              latency_ms: float = 0, latency_jitter_ms: float = 0, concurrency_limit: int | None = None,
              batch_item_ms: float | None = None, write_budget: float | None = None, faults: dict[str, float] | None = None,
              token_lifetime_s: int = 3600, sync_interval: float | None = None,
              state_file: str | Path | None = None, tenant: Any = None,
              auto_approve_device_code: bool = True, clock: ClockLike | None = None,
              fault_timeout_s: float = 30.0, tls_dir: str | Path | None = None,
              durable_writes: bool = False, verbose: bool = False, winrm: bool = True,
              winrm_port: int = 0, groups: int | None = None,
              graph_roles: list[str] | None = None, variants: Any = None, strict: bool = False,
              tenants: int | None = None, front: Any = None, shared_app: bool = False) -> Any:
        """Build (or load) a tenant and serve it; returns once the port accepts connections.

        `tenants`: serve that many tenants on one port instead (seeds seed, seed+1, ...; each with its
        own state, knobs and credentials) and return a `SandboxTenants` (sandbox/tenants.py);
        `shared_app`: the tenants share one multi-tenant app registration.

        `state_file`: load the tenant from it when it exists (else generate and save), save
        after writes (at most every SAVE_EVERY_S; with `durable_writes`, before a write is answered,
        so even kill -9 loses no acknowledged write) and on stop; TLS material and credentials
        then live in `<state_file>.tls/` so a restarted sandbox is trusted by the same CA file.
        `clock`: returns epoch seconds or an aware datetime; tokens, the write budget, paging
        cursors and (for a tenant built here) the tenant's own clock follow it.
        `groups`: how many groups a generated tenant gets (default size // 5; generator_objects.py).
        `graph_roles`: the Graph app roles tokens carry (default knobs.GRAPH_APP_ROLES).
        `winrm`: also serve WinRM/PSRP (on-prem Exchange and an EXO management host) on a
        second loopback TLS port (sandbox/psrp; `winrm_port`, 0 = any free port); its URLs and
        credentials join `info`.
        `variants`: conformance variants (`NAME[,NAME...]` or names; sandbox/variants.py);
        `strict` adds the STRICT set. ValueError for an unknown name.
        Readiness variants (readiness_state.VARIANTS, accepted by the same parser) also put the tenant
        in their state, once (the tenant remembers the ones applied).
        """
        if tenants is not None:
            from .tenants import SandboxTenants

            return SandboxTenants.start(
                tenants, size=size, seed=seed, host=host, port=port, latency_ms=latency_ms,
                latency_jitter_ms=latency_jitter_ms, concurrency_limit=concurrency_limit,
                batch_item_ms=batch_item_ms, write_budget=write_budget, faults=faults,
                token_lifetime_s=token_lifetime_s, sync_interval=sync_interval, state_file=state_file,
                auto_approve_device_code=auto_approve_device_code, clock=clock,
                fault_timeout_s=fault_timeout_s, tls_dir=tls_dir, durable_writes=durable_writes,
                verbose=verbose, winrm=winrm, groups=groups, graph_roles=graph_roles, variants=variants,
                strict=strict, shared_app=shared_app)
        from .variants import parse_variants

        chosen = parse_variants(variants, strict=strict)
        knobs = Knobs(latency_ms=float(latency_ms), latency_jitter_ms=float(latency_jitter_ms),
                      batch_item_ms=None if batch_item_ms is None else float(batch_item_ms),
                      concurrency_limit=concurrency_limit, write_budget=write_budget,
                      faults=validate_faults(faults), fault_timeout_s=float(fault_timeout_s),
                      token_lifetime_s=int(token_lifetime_s), graph_roles=graph_roles, variants=chosen)
        state_path = Path(state_file) if state_file is not None else None
        if tenant is None:
            tenant = _load_or_generate(size, seed, state_path, groups)
            if clock is not None and hasattr(tenant, "set_clock"):
                epoch = _epoch_clock(clock)
                tenant.set_clock(lambda: dt.datetime.fromtimestamp(epoch(), dt.UTC))
            if len(getattr(tenant, "exo", ())) >= FREEZE_HEAP_AT:
                tenant.warm()
                # A big tenant is ~7 objects per user, all long-lived: move them out of the cyclic
                # GC's sight, or every full collection walks them while a page is being built
                # (seen as 10 -> 30+ ms spikes per 1000-record page at 100,000 users).
                gc.collect()
                gc.freeze()
        readiness = getattr(tenant, "readiness", None)
        if readiness is not None:
            from .readiness_state import VARIANTS as READINESS_VARIANTS
            from .readiness_state import apply_variants

            names = [n for n in sorted(chosen) if n in READINESS_VARIANTS and n not in readiness.applied]
            if names:
                apply_variants(tenant, names)
        tls_path = Path(tls_dir) if tls_dir is not None else (
            Path(f"{state_path}.tls") if state_path is not None else None)
        return cls(tenant, host=host, port=port, knobs=knobs, seed=seed, clock=clock, tls_dir=tls_path,
                   state_file=state_path, sync_interval=sync_interval,
                   auto_approve_device_code=auto_approve_device_code, verbose=verbose, winrm=winrm,
                   durable_writes=durable_writes, winrm_port=winrm_port, front=front)

    def _start_winrm(self, port: int = 0) -> Any:
        import ssl

        from .psrp import WinRMEndpoint

        ctx = self.material.server_ssl_context()
        # WinRM certificate auth: the app's client certificate maps to the WinRM admin user.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(str(self.material.client_cert_pem_file))
        user = f"{str(self.tenant.org_name).upper()}\\exocm-admin"
        tenant_id = str(self.tenant.tenant_id)

        def verify(token: str, organization: str | None) -> Any:
            return self.tokens.validate(f"Bearer {token}", self.rest_base_url, organization or tenant_id)

        # A restarted host keeps its credentials: the WinRM password is derived from the app's client
        # secret, which lives with the TLS material (`<state_file>.tls/` when there is a state file).
        # The derivation is the sandbox's own; a real host's password is whatever its admin set.
        import base64
        import hashlib
        import hmac

        digest = hmac.new(self.material.client_secret.encode(), b"exocm-sandbox winrm password",
                          hashlib.sha256).digest()
        password = base64.urlsafe_b64encode(digest[:18]).decode()
        # The same knobs (latency, concurrency limit, faults), seeded dice and write budget as the REST
        # front; faults are counted in the same stats.
        # Writes through WinRM are saved like REST writes (durable_writes: before the pipeline answers).
        endpoint = WinRMEndpoint.start(self.tenant, host=self.host, port=port, ssl_context=ctx, username=user,
                                       password=password,
                                       verifier=verify, cert_users={"exocm-sandbox-app": user},
                                       knobs=self.knobs, dice=self.rest.dice, on_fault=self.stats.count_fault,
                                       on_write=self._wrote, write_budget=self.rest.budget)
        readiness = getattr(self.tenant, "readiness", None)
        if readiness is not None and readiness.sync_server:
            # The Entra Connect Sync server: another Windows host (its own port), same credentials.
            from .psrp.sessions import SyncServerSession

            self.sync_server = WinRMEndpoint.start(
                self.tenant, host=self.host, port=0, ssl_context=ctx, username=user, password=password,
                cert_users={"exocm-sandbox-app": user}, machine="SYNC01",
                session_types={"microsoft.powershell": SyncServerSession})
        return endpoint

    # -- endpoints -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """https://127.0.0.1:PORT"""
        return self._base_url

    @property
    def rest_base_url(self) -> str:
        """Base URL of the EXO REST endpoint (also the token audience)."""
        return self._base_url

    @property
    def graph_base_url(self) -> str:
        """Base URL of the minimal Graph endpoint (its own token audience)."""
        return f"{self._base_url}/graph"

    def _app_roles(self, resource: str) -> list[str]:
        """App roles in an app-only token for `resource`: Graph's from the graph_roles knob."""
        if self.graph is not None and resource.rstrip("/").lower() == self.graph_base_url.lower():
            roles = self.knobs.graph_roles
            return list(GRAPH_APP_ROLES if roles is None else roles)
        return [APP_ROLE]

    def _resources(self) -> list[str]:
        resources = [self.rest_base_url]
        if self.graph is not None:
            resources.append(self.graph_base_url)
        return resources

    @property
    def info(self) -> dict[str, Any]:
        """Everything a client needs; the first keys are the `--print-json` contract."""
        m = self.material
        info: dict[str, Any] = {
            "tenant": str(self.tenant.tenant_id),
            "authority": self.tokens.authority,
            "client_id": m.client_id,
            "client_secret": m.client_secret,
            "scope": f"{self.rest_base_url}/.default",
            "rest_base_url": self.rest_base_url,
            "ca_file": str(m.ca_file),
            "client_cert_pem_file": str(m.client_cert_pem_file),
            "client_key_pem_file": str(m.client_key_pem_file),
            "client_cert_thumbprint": m.client_cert_thumbprint,
            "client_pfx_file": str(m.client_pfx_file),
            "client_pfx_passphrase": m.client_pfx_passphrase,
            "device_client_id": m.device_client_id,
            "tenant_domain": str(self.tenant.domain),
            "sandbox": True,
            "variants": sorted(self.knobs.variants),
        }
        if self.graph is not None:
            info["graph_base_url"] = self.graph_base_url
            info["graph_scope"] = f"{self.graph_base_url}/.default"
        if self.winrm is not None:
            info.update(self.winrm.info())
        if self.sync_server is not None:
            info["winrm_sync_url"] = self.sync_server.exo_url
        return info

    def _app(self, request: Request) -> Response:
        self.stats.count_request()
        response = self._sync_on_demand(request) if request.path.rstrip("/") == SYNC_PATH else None
        if response is None:
            response = self.tokens.handle(request)
        if response is None:
            response = self.rest.handle(request)
        if response is None and self.graph is not None:
            response = self.graph.handle(request)
        if response is None:
            response = Response.json(404, simple_error("NotFound", f"No resource at '{request.path}'."))
        if response.action == "reset":
            self.stats.count("resets")
        elif response.action == "hold":
            self.stats.count("timeouts")
        else:
            self.stats.count_status(response.status)
        return response

    # -- controls ------------------------------------------------------------------------
    def set_variants(self, variants: Any, *, strict: bool = False) -> frozenset[str]:
        """Switch the conformance variants in force (tests flip them between calls)."""
        from .variants import parse_variants

        chosen = parse_variants(variants, strict=strict)
        with self.tenant.lock:
            self.knobs.variants = chosen
            self.tenant.variants = chosen
            self.tenant.view_cache.clear()
        return chosen

    def revoke_tokens(self) -> int:
        """Every access token issued so far now fails with 401 (as expired)."""
        return self.tokens.revoke_tokens()

    def approve_device_code(self, user_code: str) -> bool:
        """Approve a pending device-code sign-in (as the tenant admin)."""
        return self.tokens.approve_device_code(user_code)

    def issue_token(self, *, audience: str | None = None, lifetime_s: int | None = None,
                    roles: list[str] | None = None) -> str:
        """An app-only access token for `audience` (default: the REST endpoint), for tests;
        `roles` replaces the app roles the audience's token would carry."""
        resource = audience or self.rest_base_url
        return self.tokens.issue_access_token(resource, appid=self.material.client_id,
                                              oid=self.tokens.app_oid,
                                              roles=self._app_roles(resource) if roles is None else list(roles),
                                              lifetime_s=lifetime_s)

    def run_sync_cycle(self, *, full: bool = False) -> Any:
        """Run one sync cycle now (and mark the state for saving)."""
        result = self.tenant.run_sync_cycle(full=full)
        self._dirty.set()
        return result

    def _sync_on_demand(self, request: Request) -> Response:
        """POST /sandbox/sync[?full=true]: a sync cycle now, for a bearer token of this tenant's app.

        The sandbox made this path up: it stands in for `Start-ADSyncSyncCycle -PolicyType Delta`
        (or `Initial` with full=true) run on the Entra Connect server, which has no web API.
        """
        if request.method != "POST":
            return Response.json(405, simple_error("MethodNotAllowed", "POST starts a sync cycle."))
        try:
            self.tokens.validate(request.header("Authorization"), self.rest_base_url,
                                 str(self.tenant.tenant_id))
        except TokenRejected as exc:
            return Response.json(401, simple_error("Unauthorized", exc.description))
        full = request.query.get("full", "").lower() in ("1", "true")
        result = self.run_sync_cycle(full=full)
        return Response.json(200, {"policy": "Initial" if full else "Delta", "result": result})

    def _wrote(self) -> None:
        """A write ran: save now (durable_writes) or soon."""
        if self.durable_writes and self.state_file is not None:
            self.save()
        else:
            self._dirty.set()

    def save(self) -> None:
        """Persist the tenant to the state file now (no-op without one)."""
        if self.state_file is None:
            return
        self._dirty.clear()
        with self.tenant.lock:
            self.tenant.save(self.state_file)

    def wait(self) -> None:
        """Block until stop() (Ctrl-C raises KeyboardInterrupt out of it)."""
        while not self._stopping.wait(0.5):
            pass

    def stop(self) -> None:
        """Stop serving, save the state (if any), and remove a temporary TLS directory."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._dirty.set()  # wakes the save loop at once (stop() saves below)
        if self.winrm is not None:
            self.winrm.stop()
        if self.sync_server is not None:
            self.sync_server.stop()
        if self._server is not None:
            self._server.close_all()
        for thread in self._threads:
            thread.join(timeout=30)
        if self.state_file is not None:
            self.save()
        if self._own_tls_dir:
            shutil.rmtree(self.material.directory, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- background work -----------------------------------------------------------------
    def _spawn(self, target: Callable[..., None], *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _sync_loop(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.run_sync_cycle()
            except Exception:  # keep serving; the traceback goes to stderr
                import traceback

                traceback.print_exc()

    def _save_loop(self) -> None:
        while not self._stopping.is_set():
            if self._dirty.wait(0.5) and not self._stopping.wait(SAVE_EVERY_S):
                try:
                    self.save()
                except Exception:
                    import traceback

                    traceback.print_exc()


def _load_or_generate(size: int, seed: int, state_file: Path | None, groups: int | None = None) -> Any:
    from .tenant import Tenant

    if state_file is not None and state_file.exists():
        return Tenant.load(state_file)
    from .generator import generate_tenant

    tenant = generate_tenant(size, seed, groups=groups)
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        tenant.save(state_file)
    return tenant
