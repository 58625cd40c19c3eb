"""Benchmark of the REST bridge against one in-process sandbox over loopback TLS.

    python scripts/bench/bridge.py --size 20000 --latency-ms 50 --concurrency-limit 10 --json OUT

Measures (a) a sequential paged read (Get-User, 1000 per page), (b) `invoke_many` of
`--calls` Get-User -Identity reads batched by 10, run with the bridge's concurrency, and
(c) the AIMD limiter when the bridge asks for more concurrency than the tenant allows:
429s seen, final limit, and whether every answer still arrived.
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import sandbox_bridge, write_figures
from exocm.core.bridge.base import Call
from exocm.core.bridge.concurrency import forget_limiters
from exocm.sandbox.server import Sandbox


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the three measurements and return the figures."""
    out: dict[str, Any] = {"size": args.size, "latency_ms": args.latency_ms,
                           "concurrency_limit": args.concurrency_limit}
    sb = Sandbox.start(size=args.size, seed=args.seed, latency_ms=args.latency_ms,
                       concurrency_limit=args.concurrency_limit)
    try:
        forget_limiters()
        with sandbox_bridge(sb.info, max_concurrency=args.concurrency_limit) as bridge:
            bridge.invoke("Get-OrganizationConfig")  # sign-in outside the timing
            start = time.perf_counter()
            seen: set[str] = set()
            total = 0
            for page in bridge.stream("Get-User", {"ResultSize": "Unlimited"}, page_size=1000):
                total += len(page)
                seen.update(str(r["ExternalDirectoryObjectId"]) for r in page)
            elapsed = time.perf_counter() - start
            out["paged_read"] = {"records": total, "distinct": len(seen), "seconds": round(elapsed, 3),
                                 "records_per_s": round(total / elapsed)}
            identities = sorted(seen)[: args.calls]
            start = time.perf_counter()
            results = bridge.invoke_many([Call("Get-User", {"Identity": i}) for i in identities])
            elapsed = time.perf_counter() - start
            out["invoke_many"] = {"calls": len(identities), "seconds": round(elapsed, 3),
                                  "calls_per_s": round(len(identities) / elapsed),
                                  "ok": sum(r.error is None for r in results),
                                  "errors": sum(r.error is not None for r in results),
                                  "batches": bridge.snapshot()["batches"]}
        forget_limiters()
        with sandbox_bridge(sb.info, max_concurrency=args.concurrency_limit * 2) as greedy:
            greedy.invoke("Get-OrganizationConfig")
            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency_limit * 2) as pool:
                answers = list(pool.map(lambda _: len(greedy.invoke("Get-OrganizationConfig")),
                                        range(args.calls)))
            elapsed = time.perf_counter() - start
            snap = greedy.snapshot()
            out["aimd"] = {"requested_concurrency": args.concurrency_limit * 2, "calls": len(answers),
                           "answered": sum(answers), "seconds": round(elapsed, 3), "http_429": snap["http_429"],
                           "retries": snap["retries"], "final_limit": snap["limit"],
                           "peak_in_flight": snap["peak_in_flight"], "decreases": snap["decreases"]}
    finally:
        sb.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency-limit", type=int, default=10)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--json", dest="json_out", default=None, help="Write the figures to this file.")
    args = parser.parse_args(argv)
    write_figures(run(args), args.json_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
