"""Benchmark the sandbox's groups for object-level SOA: generation, planted_objects(), a sync
cycle, save/load, and reading every group through the sandbox's Graph (one sequential pager,
$top=999, in process over loopback TLS with an msal token).

    python scripts/bench/sandbox_groups.py --size 1000 --groups 50000 --json OUT

Writes {"users", "groups", "contacts", "generate_s", "planted_objects_s", "sync_s", "full_sync_s",
"save_s", "load_s", "state_mb", "graph_list_s", "graph_pages", "graph_groups_per_s", "peak_rss_mb"}.
"""
from __future__ import annotations

import argparse
import ssl
import sys
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb, write_figures


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 3)


def _list_groups(info: dict[str, object]) -> tuple[int, int]:
    import httpx
    import msal
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = str(info["ca_file"])
    app = msal.ConfidentialClientApplication(str(info["client_id"]), authority=str(info["authority"]),
                                             client_credential=str(info["client_secret"]),
                                             instance_discovery=False, http_client=session)
    token = app.acquire_token_for_client([str(info["graph_scope"])])["access_token"]
    ctx = ssl.create_default_context(cafile=str(info["ca_file"]))
    rows = pages = 0
    with httpx.Client(verify=ctx, trust_env=False, timeout=120,
                      headers={"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual"}) as client:
        url: str | None = f"{info['graph_base_url']}/v1.0/groups"
        params: dict[str, str] | None = {"$top": "999", "$count": "true", "$select": (
            "id,displayName,mail,mailEnabled,securityEnabled,groupTypes,onPremisesSyncEnabled,"
            "onPremisesLastSyncDateTime,onPremisesExtensionAttributes,assignedLicenses")}
        while url:
            resp = client.get(url, params=params)
            resp.raise_for_status()
            body = resp.json()
            rows += len(body["value"])
            pages += 1
            url, params = body.get("@odata.nextLink"), None
    return rows, pages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", dest="json_out", type=Path, default=None)
    args = ap.parse_args(argv)

    from exocm.sandbox.generator import generate_tenant
    from exocm.sandbox.server import Sandbox
    from exocm.sandbox.tenant import Tenant

    tenant, gen_s = _timed(lambda: generate_tenant(args.size, args.seed, groups=args.groups))
    result: dict[str, object] = {"users": args.size, "groups": len(tenant.entra_groups),
                                 "contacts": len(tenant.entra_contacts), "generate_s": gen_s}
    _, result["planted_objects_s"] = _timed(tenant.planted_objects)
    _, result["sync_s"] = _timed(tenant.run_sync_cycle)
    _, result["full_sync_s"] = _timed(lambda: tenant.run_sync_cycle(full=True))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "state.sqlite"
        _, result["save_s"] = _timed(lambda: tenant.save(path))
        result["state_mb"] = round(path.stat().st_size / 2**20, 1)
        _, result["load_s"] = _timed(lambda: Tenant.load(path))
    with Sandbox.start(tenant=tenant, winrm=False) as sb:
        (rows, pages), result["graph_list_s"] = _timed(lambda: _list_groups(sb.info))
    assert rows == len(tenant.entra_groups), (rows, len(tenant.entra_groups))
    result["graph_pages"] = pages
    result["graph_groups_per_s"] = round(rows / max(float(result["graph_list_s"]), 1e-9))  # type: ignore[arg-type]
    result["peak_rss_mb"] = peak_rss_mb()
    write_figures(result, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
