#!/usr/bin/env python3
"""Benchmark: the live on-prem fetch over WinRM/PSRP (pypsrp) against the sandbox's WinRM endpoint.

    scripts/bench/onprem_psrp.py --recipients 50000 --json OUT

What `exocm inventory --onprem-live` does: Get-Mailbox and Get-RemoteMailbox -ResultSize
Unlimited on `Microsoft.Exchange`, piped remotely into `Select-Object -Property` of only the
columns detection needs (ONPREM_COLUMNS), decoded to records. The sandbox runs in a child
process (`exocm sandbox serve --print-json`) by default, as a real Exchange server would be
another machine: its serialisation is not behind this process's GIL (`--in-process` to compare).
`--all-properties` fetches the full objects instead (pypsrp's deserialiser is the ceiling then).

Writes {"records", "records_per_s", "elapsed_s", "expected_records", "size", "seed", "sandbox",
"properties", "peak_rss_mb", "receives"}.
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, sandbox_process, write_figures
from exocm.core.bridge.psrp import PsrpBridge, PsrpEndpoint
from exocm.core.inventory.onprem_live import fetch_onprem_records
from exocm.core.model import ONPREM_COLUMNS

#: Share of a generated tenant's users that have an on-prem (remote) mailbox, measured on the
#: generator (9,500 of 10,000); used to size the tenant for --recipients.
ONPREM_SHARE = 0.95


@contextmanager
def _sandbox(size: int, seed: int, in_process: bool) -> Iterator[dict[str, Any]]:
    if in_process:
        from exocm.sandbox.server import Sandbox

        sb = Sandbox.start(size, seed, port=0)
        try:
            yield dict(sb.info)
        finally:
            sb.stop()
        return
    with sandbox_process(size, seed) as info:
        yield info


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fetch the on-prem side once and return the figures."""
    size = args.size or math.ceil(args.recipients / ONPREM_SHARE)
    properties = None if args.all_properties else list(ONPREM_COLUMNS)
    result: dict[str, Any] = {"size": size, "seed": args.seed, "sandbox": "in-process" if args.in_process else
                              "subprocess", "properties": len(properties) if properties else "all"}
    t0 = time.perf_counter()
    with _sandbox(size, args.seed, args.in_process) as info:
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
                records = fetch_onprem_records(bridge, properties=properties)
            elapsed = time.perf_counter() - start
            result["receives"] = bridge.snapshot()
    result["records"] = len(records)
    result["elapsed_s"] = round(elapsed, 3)
    result["records_per_s"] = round(len(records) / elapsed, 1) if elapsed > 0 else None
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=50_000, help="on-prem recipients to fetch (approx.)")
    parser.add_argument("--size", type=int, default=0, help="tenant users (overrides --recipients)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--in-process", action="store_true", help="serve the sandbox from this process")
    parser.add_argument("--all-properties", action="store_true", help="fetch full objects (no Select-Object)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args()
    write_figures(run(args), args.json, indent=1)


if __name__ == "__main__":
    main()
