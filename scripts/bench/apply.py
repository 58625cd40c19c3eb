#!/usr/bin/env python3
"""Benchmark: exocm apply vs a sequential Set-Mailbox + read-back loop, on one throttled sandbox.

    scripts/bench/apply.py --size 5000 --latency-ms 150 --concurrency-limit 10 --write-budget 50 --json OUT

One in-process sandbox tenant (latency, per-tenant concurrency limit and write budget as
given) serves both runs, through the real REST bridge, MSAL and TLS:

(a) what the peer scripts do: for each of the first `--sequential-rows` (300) targets,
    one `Set-Mailbox -IsExchangeCloudManaged $true` and one `Get-Mailbox` read-back, one
    after the other; its rate is what counts;
(b) `exocm`: a plan for the rest of the dir-synced mailboxes, applied by the engine
    (batched reads, $batch writes, paced to the learned write budget, read-back, journal).

Afterwards the sandbox's state is checked: every verified row must read true.
Writes {"rows", "sequential_rows_per_s", "exocm_rows_per_s", "speedup", "budget_rows_per_s",
"budget_utilisation", "http_429", "requests", "failed", ...}. `http_429` counts every 429
the client saw (whole requests and $batch items); `requests` counts HTTP requests of the
exocm run.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import sandbox_bridge, write_figures
from exocm.core.execute.apply import apply_plan
from exocm.core.inventory.fetch import fetch_inventory
from exocm.core.plan.planfile import build_plan
from exocm.core.plan.selection import select_all_dirsynced


def _delta(after: dict[str, Any], before: dict[str, Any], key: str) -> int:
    return int(after.get(key, 0) or 0) - int(before.get(key, 0) or 0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run both appliers against one sandbox and return the figures."""
    from exocm.sandbox.server import Sandbox

    os.environ.setdefault("EXOCM_DATA_DIR", tempfile.mkdtemp(prefix="exocm-bench-apply-"))
    result: dict[str, Any] = {
        "size": args.size, "seed": args.seed, "latency_ms": args.latency_ms,
        "concurrency_limit": args.concurrency_limit, "write_budget": args.write_budget,
    }
    sb = Sandbox.start(args.size, args.seed, port=0, latency_ms=args.latency_ms,
                       concurrency_limit=args.concurrency_limit, write_budget=args.write_budget)
    try:
        bridge = sandbox_bridge(sb.info, max_concurrency=args.concurrency_limit)
        try:
            inv = fetch_inventory(bridge)
            selection = select_all_dirsynced(inv.frame)
            full = build_plan(inv.frame, selection.identities, True, tenant=str(bridge.tenant), bridge="rest")
            targets = [r.identity for r in full.set_rows()]
            seq_ids, rest_ids = targets[: args.sequential_rows], targets[args.sequential_rows:]

            # (a) sequential: one write and one read-back at a time.
            seq_failed = 0
            start = time.perf_counter()
            for identity in seq_ids:
                try:
                    bridge.invoke("Set-Mailbox", {"Identity": identity, "IsExchangeCloudManaged": True})
                except Exception:  # noqa: BLE001 - the peers log and go on; the read-back decides
                    pass
                back = bridge.invoke("Get-Mailbox", {"Identity": identity})
                if not back or back[0].get("IsExchangeCloudManaged") is not True:
                    seq_failed += 1
            seq_s = time.perf_counter() - start
            result["sequential_rows"] = len(seq_ids)
            result["sequential_s"] = round(seq_s, 3)
            result["sequential_failed"] = seq_failed
            seq_rate = len(seq_ids) / seq_s if seq_s > 0 else 0.0

            # (b) exocm: a plan for the rest, applied by the engine.
            plan = build_plan(inv.frame, rest_ids, True, tenant=str(bridge.tenant), bridge="rest")
            time.sleep(1.0)  # let the write bucket refill after the sequential run
            before = bridge.snapshot()
            server_before = sb.stats.snapshot()
            start = time.perf_counter()
            res = apply_plan(bridge, plan, concurrency=args.workers)
            exocm_s = time.perf_counter() - start
            after = bridge.snapshot()
            server_after = sb.stats.snapshot()
        finally:
            bridge.close()

        verified = res.counts.get("verified", 0)
        wrong = 0
        for row in plan.set_rows():
            found = sb.tenant.invoke("Get-Mailbox", {"Identity": row.identity}, side="exo")
            if not found or found[0].get("IsExchangeCloudManaged") is not True:
                wrong += 1
        exocm_rate = verified / exocm_s if exocm_s > 0 else 0.0
        requests = _delta(after, before, "requests")
        http_429 = _delta(after, before, "http_429")
        result.update(
            rows=len(plan.set_rows()),
            verified=verified,
            failed=res.counts.get("failed", 0) + res.counts.get("applied_unverified", 0),
            stale=res.counts.get("stale", 0),
            not_applied_in_sandbox=wrong,
            exocm_s=round(exocm_s, 3),
            sequential_rows_per_s=round(seq_rate, 3),
            exocm_rows_per_s=round(exocm_rate, 3),
            speedup=round(exocm_rate / seq_rate, 2) if seq_rate else None,
            budget_rows_per_s=args.write_budget,
            budget_utilisation=round(exocm_rate / args.write_budget, 3) if args.write_budget else None,
            http_429=http_429,
            requests=requests,
            http_429_share=round(http_429 / requests, 4) if requests else None,
            throttled_exchanges=_delta(after, before, "throttled"),
            server_requests=int(server_after["requests"]) - int(server_before["requests"]),
            server_writes=int(server_after["writes"]) - int(server_before["writes"]),
            final_concurrency_limit=after.get("limit"),
            journal=str(res.journal_path),
        )
    finally:
        sb.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--concurrency-limit", type=int, default=10)
    parser.add_argument("--write-budget", type=float, default=50.0)
    parser.add_argument("--sequential-rows", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8, help="apply worker threads (exocm apply --concurrency)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    write_figures(run(args), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
