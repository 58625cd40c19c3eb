#!/usr/bin/env python3
"""Benchmark: group inventory and object-SOA apply through Microsoft Graph, exocm vs a sequential pager.

    scripts/bench/groups.py --groups 50000 --latency-ms 150 --concurrency-limit 10 --write-budget 50 --json OUT

One sandbox tenant served by a child process (`exocm sandbox serve --groups N` with the latency,
per-tenant concurrency limit and write budget given) is read through the real Graph bridge, msal
and TLS:

(a) a sequential Graph pager, what a script does: list `/groups` page by page, then per group
    `GET /groups/{id}/members`, `/owners` and `/onPremisesSyncBehavior`, one request after the
    other. The listing is timed in full; the per-group reads on the first `--sequential-groups`
    groups, and `sequential_s` extrapolates them to every group (the whole run would take hours
    at 150 ms per request);
(b) `exocm`: `fetch_objects(graph, "group")`, the product's inventory (JSON batches of 20, many
    at once under the shared limiter, while the listing pages keep coming);
(c) apply: a plan for up to `--apply-groups` convertible synced groups (children before parents),
    applied by the engine (batched read, batched PATCH paced to the learned write budget,
    read-back, journal); `order_violations` counts parents verified before one of their
    children (from the journal).

Writes {"groups", "sequential_s", "exocm_s", "speedup", "apply_rows", "apply_rows_per_s",
"budget_utilisation", "order_violations", "http_429", "requests", "peak_rss_mb", ...}; `http_429`
and `requests` count what the product's client saw in (b) and (c).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, sandbox_process, write_figures


def _graph(info: dict[str, Any], concurrency: int) -> Any:
    from exocm.core.access.config import sandbox_profile
    from exocm.core.access.graph_host import open_graph

    profile = sandbox_profile("bench", info)
    assert profile.secret_env is not None
    return open_graph(profile, env={profile.secret_env: str(info["client_secret"])}, persist_tokens=False,
                      max_concurrency=concurrency)


def sequential(graph: Any, sample: int) -> dict[str, Any]:
    """The sequential pager: every page of /groups, then the per-group reads of the first `sample` groups."""
    start = time.perf_counter()
    groups: list[dict[str, Any]] = []
    for page in graph.pages("/groups", what="list groups", select=("id", "displayName", "onPremisesSyncEnabled"),
                            top=999):
        groups.extend(page)
    list_s = time.perf_counter() - start
    start = time.perf_counter()
    measured = groups[:sample]
    for group in measured:
        gid = group["id"]
        graph.list_all(f"/groups/{gid}/members", what="members", select=("id",), top=999)
        graph.list_all(f"/groups/{gid}/owners", what="owners", select=("id",), top=999)
        if group.get("onPremisesSyncEnabled"):
            graph._json("GET", f"/groups/{gid}/onPremisesSyncBehavior", what="sync behavior")
    per_group = (time.perf_counter() - start) / max(1, len(measured))
    return {"groups": len(groups), "list_s": round(list_s, 3), "measured_groups": len(measured),
            "per_group_s": round(per_group, 4), "sequential_s": round(list_s + per_group * len(groups), 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the three parts against one sandbox and return the figures."""
    from exocm.core.detect.objects import detect_objects
    from exocm.core.execute.apply import apply_plan
    from exocm.core.execute.journal import read_journal
    from exocm.core.execute.objects_io import ObjectIO
    from exocm.core.inventory.objects import fetch_objects
    from exocm.core.plan.objects import build_object_plan

    os.environ.setdefault("EXOCM_DATA_DIR", tempfile.mkdtemp(prefix="exocm-bench-groups-"))
    result: dict[str, Any] = {"groups": args.groups, "size": args.size, "latency_ms": args.latency_ms,
                              "concurrency_limit": args.concurrency_limit, "write_budget": args.write_budget}
    serve = ["--groups", str(args.groups), "--latency-ms", str(args.latency_ms),
             "--concurrency-limit", str(args.concurrency_limit), "--write-budget", str(args.write_budget)]
    with sandbox_process(args.size, args.seed, *serve, start_timeout=1800) as info:
        graph = _graph(info, args.concurrency_limit)
        try:
            seq = sequential(graph, args.sequential_groups)
            result.update({("sequential_listed_groups" if k == "groups" else k if k == "sequential_s" else f"sequential_{k}"): v
                           for k, v in seq.items()})

            before = graph.snapshot()
            start = time.perf_counter()
            inv = fetch_objects(graph, "group")
            exocm_s = time.perf_counter() - start
            after_inventory = graph.snapshot()
            frame = inv.frame
            result.update(groups=len(frame), exocm_s=round(exocm_s, 3),
                          speedup=round(seq["sequential_s"] / exocm_s, 2) if exocm_s > 0 else None,
                          inventory_requests=after_inventory["requests"] - before["requests"],
                          inventory_sub_requests=after_inventory["sub_requests"] - before["sub_requests"],
                          synced_groups=int(frame["OnPremisesSyncEnabled"].astype(bool).sum()))

            synced = [str(i) for i in frame.index[frame["OnPremisesSyncEnabled"].astype(bool)]]
            plan = build_object_plan("group", frame, synced, True, tenant=graph.tenant,
                                     findings=detect_objects("group", frame), max_changes=args.apply_groups)
            rows = plan.set_rows()
            time.sleep(1.0)  # let the write budget refill after the reads
            start = time.perf_counter()
            applied = apply_plan(graph, plan, io=ObjectIO(graph, "group"), concurrency=args.workers)
            apply_s = time.perf_counter() - start
            after = graph.snapshot()
        finally:
            graph.close()
    verified = applied.counts.get("verified", 0)
    order = {r["identity"]: n for n, r in enumerate(read_journal(applied.journal_path).rows())
             if r["status"] == "verified"}
    violations = sum(1 for parent in order for child in frame.at[parent, "ChildGroups"]
                     if child in order and order[child] > order[parent])
    rate = verified / apply_s if apply_s > 0 else 0.0
    result.update(
        apply_rows=len(rows), apply_waves=len({r.wave for r in rows}), verified=verified,
        failed=applied.counts.get("failed", 0) + applied.counts.get("applied_unverified", 0),
        stale=applied.counts.get("stale", 0), apply_s=round(apply_s, 3), apply_rows_per_s=round(rate, 2),
        budget_utilisation=round(rate / args.write_budget, 3) if args.write_budget else None,
        order_violations=violations,
        http_429=after["http_429"] - before["http_429"], write_429=after["write_429"] - before["write_429"],
        requests=after["requests"] - before["requests"], batches=after["batches"] - before["batches"],
        final_concurrency_limit=after.get("limit"), peak_rss_mb=peak_rss_mb(), journal=str(applied.journal_path),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--groups", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=5000, help="users of the sandbox tenant")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--concurrency-limit", type=int, default=10)
    parser.add_argument("--write-budget", type=float, default=50.0)
    parser.add_argument("--sequential-groups", type=int, default=100,
                        help="groups the sequential pager reads one by one (the rest is extrapolated)")
    parser.add_argument("--apply-groups", type=int, default=3000, help="groups the apply converts at most")
    parser.add_argument("--workers", type=int, default=8, help="apply worker threads (exocm apply --concurrency)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    write_figures(run(args), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
