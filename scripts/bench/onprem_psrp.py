#!/usr/bin/env python3
"""Benchmark: the live on-prem fetch over WinRM/PSRP (pypsrp) against the sandbox's WinRM endpoint.

    scripts/bench/onprem_psrp.py --recipients 50000 --latency-ms 5 --concurrency-limit 4 --json OUT

What `exocm inventory --onprem-live` does: Get-Mailbox and Get-RemoteMailbox -ResultSize
Unlimited on `Microsoft.Exchange`, piped remotely into `Select-Object -Property` of only the
columns detection needs (ONPREM_COLUMNS), decoded to records. The sandbox runs in a child
process (`exocm sandbox serve --print-json`) by default, as a real Exchange server would be
another machine: its serialisation is not behind this process's GIL (`--in-process` to compare).
`--all-properties` fetches the full objects instead (pypsrp's deserialiser is the ceiling then).

The sandbox's WinRM endpoint waits `--latency-ms` (default 5) on every WSMan request and refuses
a shell beyond `--concurrency-limit` (default 4) open ones, as docs/exchange-facts.md describes.

Writes {"records", "records_per_s", "latency_ms", "concurrency_limit", "elapsed_s",
"expected_records", "size", "seed", "sandbox", "properties", "peak_rss_mb", "receives", "loadavg"}.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, sandbox_process, write_figures
from exocm.core.bridge.psrp import PsrpBridge, PsrpEndpoint
from exocm.core.inventory.onprem_live import DEFAULT_SHELLS, fetch_onprem_records
from exocm.core.model import ONPREM_COLUMNS

#: Share of a generated tenant's users that have an on-prem (remote) mailbox, measured on the
#: generator (9,500 of 10,000); used to size the tenant for --recipients.
ONPREM_SHARE = 0.95


@contextmanager
def _sandbox(size: int, seed: int, in_process: bool, latency_ms: float = 0.0,
             concurrency_limit: int | None = None) -> Iterator[dict[str, Any]]:
    if in_process:
        from exocm.sandbox.server import Sandbox

        sb = Sandbox.start(size, seed, port=0, latency_ms=latency_ms, concurrency_limit=concurrency_limit)
        try:
            yield dict(sb.info)
        finally:
            sb.stop()
        return
    knobs = ["--latency-ms", str(latency_ms)]
    if concurrency_limit:
        knobs += ["--concurrency-limit", str(concurrency_limit)]
    with sandbox_process(size, seed, *knobs) as info:
        yield info


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fetch the on-prem side once and return the figures."""
    size = args.size or math.ceil(args.recipients / ONPREM_SHARE)
    properties = None if args.all_properties else list(ONPREM_COLUMNS)
    latency_ms = float(getattr(args, "latency_ms", 0.0) or 0.0)
    limit = getattr(args, "concurrency_limit", None)
    result: dict[str, Any] = {"size": size, "seed": args.seed, "sandbox": "in-process" if args.in_process else
                              "subprocess", "properties": len(properties) if properties else "all",
                              "latency_ms": latency_ms, "concurrency_limit": limit,
                              "shells": getattr(args, "shells", DEFAULT_SHELLS)}
    t0 = time.perf_counter()
    with _sandbox(size, args.seed, args.in_process, latency_ms, limit) as info:
        result["sandbox_start_s"] = round(time.perf_counter() - t0, 2)
        endpoint = PsrpEndpoint(info["winrm_onprem_url"], username=info["winrm_username"],
                                password=info["winrm_password"], ca_file=info["ca_file"])
        with PsrpBridge(endpoint, info["tenant"]) as bridge:
            counts = [bridge.invoke(c, {"ResultSize": "Unlimited"}, properties=["Guid"]) for c in
                      ("Get-Mailbox", "Get-RemoteMailbox")]  # also opens the pool outside the timing
            result["expected_records"] = sum(len(c) for c in counts)
            del counts
            start = time.perf_counter()
            if properties is None:
                records = [r for c in ("Get-Mailbox", "Get-RemoteMailbox")
                           for r in bridge.invoke(c, {"ResultSize": "Unlimited"})]
            else:
                records = fetch_onprem_records(bridge, properties=properties,
                                               shells=getattr(args, "shells", DEFAULT_SHELLS))
            elapsed = time.perf_counter() - start
            result["receives"] = bridge.snapshot()
    result["records"] = len(records)
    result["elapsed_s"] = round(elapsed, 3)
    result["records_per_s"] = round(len(records) / elapsed, 1) if elapsed > 0 else None
    result["peak_rss_mb"] = peak_rss_mb()
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=50_000, help="on-prem recipients to fetch (approx.)")
    parser.add_argument("--size", type=int, default=0, help="tenant users (overrides --recipients)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-ms", type=float, default=5.0, help="latency of each WSMan request")
    parser.add_argument("--concurrency-limit", type=int, default=4, help="open shells per user before a quota fault")
    parser.add_argument("--shells", type=int, default=DEFAULT_SHELLS,
                        help="runspace pools read in parallel (the product's default)")
    parser.add_argument("--in-process", action="store_true", help="serve the sandbox from this process")
    parser.add_argument("--all-properties", action="store_true", help="fetch full objects (no Select-Object)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args()
    write_figures(run(args), args.json, indent=1)


if __name__ == "__main__":
    main()
