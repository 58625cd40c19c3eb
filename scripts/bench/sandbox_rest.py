#!/usr/bin/env python3
"""Benchmark: what the sandbox's EXO REST endpoint can serve, measured with a minimal client.

    scripts/bench/sandbox_rest.py --size 100000 --latency-ms 150 --concurrency-limit 10 --json OUT

Runs `exocm sandbox serve` in a child process (its CPU is not behind this process's GIL),
then reads every mailbox with plain httpx + orjson, (a) one page of 1000 after the other
(`Get-Mailbox -ResultSize Unlimited`) and (b) as 16 disjoint filter partitions
(`ExternalDirectoryObjectId -like '<hex>*'`) on `--concurrency-limit` threads. It also times,
in this process, the server-side CPU of one 1000-record page (records built from the tenant
model and serialised) on a tenant of the same size. The product's own inventory is measured
by scripts/bench/inventory.py; this one bounds what the sandbox allows.

Writes {"records", "missing", "duplicates", "sequential_s", "parallel_s", "speedup",
"server_ms_per_page", "page_mb", ...}.
"""
from __future__ import annotations

import argparse
import os
import ssl
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msal
import orjson
import requests
from _common import sandbox_process, write_figures


def _token(info: dict[str, Any]) -> str:
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_file"]
    app = msal.ConfidentialClientApplication(info["client_id"], authority=info["authority"],
                                             client_credential=info["client_secret"], instance_discovery=False,
                                             http_client=session)
    return str(app.acquire_token_for_client([info["scope"]])["access_token"])


def _fetch(client: httpx.Client, info: dict[str, Any], token: str, params: dict[str, Any]) -> tuple[list[str], int]:
    """Every page of one Get-Mailbox call; (ids, pages). Retries 429s after a short pause."""
    body = orjson.dumps({"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": params}})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Prefer": "odata.maxpagesize=1000", "X-CmdletName": "Get-Mailbox"}
    url: str | None = f"{info['rest_base_url']}/adminapi/beta/{info['tenant']}/InvokeCommand"
    ids: list[str] = []
    pages = 0
    while url is not None:
        resp = client.post(url, content=body, headers=headers)
        if resp.status_code == 429:
            time.sleep(0.05)
            continue
        resp.raise_for_status()
        data = orjson.loads(resp.content)
        ids.extend(r["ExternalDirectoryObjectId"] for r in data["value"])
        pages += 1
        url = data.get("@odata.nextLink")
    return ids, pages


def _server_page_cost(size: int, seed: int) -> tuple[float, float]:
    """CPU ms and MB of one 1000-record Get-Mailbox page, built and serialised in this process."""
    from exocm.sandbox.generator import generate_tenant
    from exocm.sandbox.rest import dumps

    tenant = generate_tenant(size, seed)
    rows = tenant.query("Get-Mailbox", {"ResultSize": "Unlimited"})
    n = min(20, max(1, len(rows) // 1000))
    dumps(rows[0:1000])  # warm-up
    start = time.thread_time()
    size_bytes = 0
    for i in range(n):
        size_bytes += len(dumps(rows[i * 1000:(i + 1) * 1000]))
    return 1000 * (time.thread_time() - start) / n, size_bytes / n / 1e6


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run both fetches and return the figures."""
    result: dict[str, Any] = {"size": args.size, "seed": args.seed, "latency_ms": args.latency_ms,
                              "concurrency_limit": args.concurrency_limit}
    with sandbox_process(args.size, args.seed, "--latency-ms", str(args.latency_ms),
                         "--concurrency-limit", str(args.concurrency_limit)) as info:
        token = _token(info)
        ctx = ssl.create_default_context(cafile=info["ca_file"])
        limits = httpx.Limits(max_connections=args.concurrency_limit + 2)
        with httpx.Client(verify=ctx, trust_env=False, timeout=120, limits=limits) as client:
            start = time.perf_counter()
            seq_ids, seq_pages = _fetch(client, info, token, {"ResultSize": "Unlimited"})
            result["sequential_s"] = round(time.perf_counter() - start, 3)
            result["sequential_pages"] = seq_pages
            prefixes = "0123456789abcdef"
            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency_limit) as pool:
                parts = list(pool.map(lambda p: _fetch(client, info, token, {
                    "ResultSize": "Unlimited", "Filter": f"ExternalDirectoryObjectId -like '{p}*'"}), prefixes))
            result["parallel_s"] = round(time.perf_counter() - start, 3)
            result["parallel_pages"] = sum(p for _, p in parts)
        par_ids = Counter(i for ids, _ in parts for i in ids)
        truth = set(seq_ids)
        result.update(records=sum(par_ids.values()), missing=len(truth - set(par_ids)),
                      duplicates=sum(c - 1 for c in par_ids.values() if c > 1),
                      speedup=round(result["sequential_s"] / result["parallel_s"], 2))
        result["seq_ms_per_page"] = round(1000 * result["sequential_s"] / max(1, seq_pages), 1)
    ms, mb = _server_page_cost(args.size, args.seed)
    result["server_ms_per_page"] = round(ms, 1)
    result["page_mb"] = round(mb, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--concurrency-limit", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    result = run(args)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    write_figures(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
