"""Benchmark the sandbox tenant model: generation, index build, filters, paging, planted(), save/load.

    python scripts/bench/sandbox_generate.py --size 300000 --json OUT

Writes {"users", "generate_s", "generate_cpu_s", "warm_s", "filter_s", "page_1000_s",
"materialise_all_s", "planted_s", "sync_s", "save_s", "load_s", "peak_rss_mb"}.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb, write_figures


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", dest="json_out", type=Path, default=None)
    ap.add_argument("--skip-state", action="store_true", help="skip save/load (large files)")
    args = ap.parse_args(argv)

    from exocm.sandbox.generator import generate_tenant
    from exocm.sandbox.tenant import Tenant

    cpu0 = time.process_time()
    tenant, gen_s = _timed(lambda: generate_tenant(args.size, args.seed))
    result: dict[str, object] = {"users": args.size, "generate_s": gen_s,
                                 "generate_cpu_s": round(time.process_time() - cpu0, 3)}
    _, result["warm_s"] = _timed(tenant.warm)
    flt = {"Filter": "IsDirSynced -eq $true -and IsExchangeCloudManaged -eq $false", "ResultSize": "Unlimited"}
    rows, result["filter_s"] = _timed(lambda: tenant.query("Get-Mailbox", flt))
    _, result["page_1000_s"] = _timed(lambda: rows[:1000])
    _, result["materialise_all_s"] = _timed(lambda: tenant.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}))
    _, result["planted_s"] = _timed(tenant.planted)
    _, result["sync_s"] = _timed(tenant.run_sync_cycle)
    if not args.skip_state:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "state.sqlite"
            _, result["save_s"] = _timed(lambda: tenant.save(path))
            result["state_mb"] = round(path.stat().st_size / 2**20, 1)
            _, result["load_s"] = _timed(lambda: Tenant.load(path))
    result["peak_rss_mb"] = peak_rss_mb()
    write_figures(result, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
