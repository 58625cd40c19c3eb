#!/usr/bin/env python3
"""Benchmark: exocm apply vs the peers' write patterns, on one throttled sandbox.

    scripts/bench/apply.py --size 5000 --latency-ms 150 --concurrency-limit 10 --write-budget 50 --json OUT

One in-process sandbox tenant (latency, per-tenant concurrency limit, write budget, and the
server time of each `$batch` item as given) serves every run, through the real REST bridge,
MSAL and TLS. Each pattern gets its own `--baseline-rows` targets (the first dir-synced
mailboxes of the plan), one pattern after the other:

- `mardahl`: one `Set-Mailbox -IsExchangeCloudManaged $true` and one `Get-Mailbox` read-back
  at a time;
- `peterschmidtdk`: one `Set-Mailbox` at a time, no read-back;
- `cipp`: `$batch` of 10 `Set-Mailbox`, one batch after another, no read-back
  (CIPP's New-ExoBulkRequest);
- `exocm`: a plan for the rest of the dir-synced mailboxes, applied by the engine with its
  defaults (batched reads, `$batch` writes, paced to the learned write budget, read-back,
  journal).

Afterwards the sandbox's state decides: a row counts as verified only when it reads true (and,
for exocm, when the engine also journalled it verified); the rest "ended wrong or unverified".
Writes {"baselines": [{"pattern", "rows", "verified", "wrong_or_unverified", "elapsed_s",
"verified_rows_per_s", "http_429", "requests"}, ...], "exocm_rows_per_s" (verified rows/s),
"speedup_vs_best_peer", "best_peer", "budget_utilisation", "http_429", "requests",
"http_429_share", "loadavg", ...}. `http_429` counts every 429 the server sent (whole requests
and `$batch` items) during exocm's run; `requests` counts its HTTP requests (a `$batch` is one).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import sandbox_bridge, write_figures
from exocm.core.bridge.base import Call
from exocm.core.execute.apply import apply_plan
from exocm.core.inventory.fetch import fetch_inventory
from exocm.core.plan.planfile import build_plan
from exocm.core.plan.selection import select_all_dirsynced

#: The peers' write patterns, in the order they run.
PATTERNS: tuple[str, ...] = ("mardahl", "peterschmidtdk", "cipp")


def _write(bridge: Any, identity: str) -> None:
    try:
        bridge.invoke("Set-Mailbox", {"Identity": identity, "IsExchangeCloudManaged": True})
    except Exception:  # noqa: BLE001 - the peers log and go on
        pass


def run_pattern(pattern: str, bridge: Any, ids: Sequence[str]) -> None:
    """Write `ids` the way the peer `pattern` does (see the module docstring)."""
    if pattern == "mardahl":
        for identity in ids:
            _write(bridge, identity)
            try:
                bridge.invoke("Get-Mailbox", {"Identity": identity})  # the read-back
            except Exception:  # noqa: BLE001
                pass
    elif pattern == "peterschmidtdk":
        for identity in ids:
            _write(bridge, identity)
    elif pattern == "cipp":
        for start in range(0, len(ids), 10):
            calls = [Call("Set-Mailbox", {"Identity": i, "IsExchangeCloudManaged": True})
                     for i in ids[start:start + 10]]
            bridge.invoke_many(calls)  # item errors are in the results; CIPP logs them and goes on
    else:
        raise ValueError(f"unknown pattern {pattern!r}")


def ended_true(read: Callable[[str], Mapping[str, Any] | None], ids: Iterable[str]) -> set[str]:
    """The ids whose mailbox reads IsExchangeCloudManaged true now (the sandbox's state decides)."""
    out: set[str] = set()
    for identity in ids:
        record = read(identity)
        if record is not None and record.get("IsExchangeCloudManaged") is True:
            out.add(identity)
    return out


def sandbox_reader(sb: Any) -> Callable[[str], Mapping[str, Any] | None]:
    """Read one mailbox straight from the sandbox's tenant (None when it is not found)."""
    def read(identity: str) -> Mapping[str, Any] | None:
        try:
            found = sb.tenant.invoke("Get-Mailbox", {"Identity": identity}, side="exo")
        except Exception:  # noqa: BLE001 - not found (or unreadable) is not verified
            return None
        return found[0] if found else None
    return read


def pattern_figures(pattern: str, rows: int, verified: int, elapsed_s: float, http_429: int,
                    requests: int) -> dict[str, Any]:
    """One pattern's figures: verified rows/s counts only rows that read true afterwards."""
    return {"pattern": pattern, "rows": rows, "verified": verified, "wrong_or_unverified": rows - verified,
            "elapsed_s": round(elapsed_s, 3),
            "verified_rows_per_s": round(verified / elapsed_s, 3) if elapsed_s > 0 else 0.0,
            "http_429": http_429, "requests": requests}


def best_peer(baselines: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The baseline with the most verified rows per second."""
    return max(baselines, key=lambda b: b["verified_rows_per_s"], default=None)


def _server(sb: Any) -> dict[str, int]:
    snap = sb.stats.snapshot()
    return {"http_429": int(snap.get("http_429", 0)) + int(snap.get("batch_item_429", 0)),
            "requests": int(snap.get("requests", 0)),
            "writes": int(snap.get("writes", 0))}


def _delta(after: Mapping[str, Any], before: Mapping[str, Any], key: str) -> int:
    return int(after.get(key, 0) or 0) - int(before.get(key, 0) or 0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every pattern and exocm against one sandbox and return the figures."""
    from exocm.sandbox.server import Sandbox

    os.environ.setdefault("EXOCM_DATA_DIR", tempfile.mkdtemp(prefix="exocm-bench-apply-"))
    result: dict[str, Any] = {
        "size": args.size, "seed": args.seed, "latency_ms": args.latency_ms,
        "concurrency_limit": args.concurrency_limit, "write_budget": args.write_budget,
        "batch_item_ms": args.batch_item_ms,
    }
    sb = Sandbox.start(args.size, args.seed, port=0, latency_ms=args.latency_ms,
                       concurrency_limit=args.concurrency_limit, write_budget=args.write_budget,
                       batch_item_ms=args.batch_item_ms, winrm=False)

    read = sandbox_reader(sb)
    try:
        bridge = sandbox_bridge(sb.info)  # the product's defaults: no hint of the hidden limits
        try:
            inv = fetch_inventory(bridge)
            selection = select_all_dirsynced(inv.frame)
            full = build_plan(inv.frame, selection.identities, True, tenant=str(bridge.tenant), bridge="rest")
            targets = [r.identity for r in full.set_rows()]
            n = args.baseline_rows
            baselines = []
            for k, pattern in enumerate(PATTERNS if n > 0 else ()):
                ids = targets[k * n:(k + 1) * n]
                time.sleep(1.5)  # let the write bucket refill between runs
                before = _server(sb)
                start = time.perf_counter()
                run_pattern(pattern, bridge, ids)
                elapsed = time.perf_counter() - start
                after = _server(sb)
                verified = len(ended_true(read, ids))
                baselines.append(pattern_figures(pattern, len(ids), verified, elapsed,
                                                 _delta(after, before, "http_429"), _delta(after, before, "requests")))
            rest_ids = targets[len(PATTERNS) * n if n > 0 else 0:]

            plan = build_plan(inv.frame, rest_ids, True, tenant=str(bridge.tenant), bridge="rest")
            time.sleep(1.5)
            before = bridge.snapshot()
            server_before = _server(sb)
            start = time.perf_counter()
            res = apply_plan(bridge, plan, concurrency=args.workers) if args.workers else apply_plan(bridge, plan)
            exocm_s = time.perf_counter() - start
            after = bridge.snapshot()
            server_after = _server(sb)
        finally:
            bridge.close()

        ids = [r.identity for r in plan.set_rows()]
        true_now = ended_true(read, ids)
        journal_verified = {str(r.get("identity")) for r in _journal_records(res.journal_path)
                            if r.get("type") == "row" and r.get("status") == "verified"}
        verified = len(true_now & journal_verified) if journal_verified else min(
            len(true_now), int(res.counts.get("verified", 0)))
        exocm_rate = verified / exocm_s if exocm_s > 0 else 0.0
        requests = _delta(server_after, server_before, "requests")
        http_429 = _delta(server_after, server_before, "http_429")
        best = best_peer(baselines)
        result.update(
            baselines=baselines,
            rows=len(ids),
            verified=verified,
            wrong_or_unverified=len(ids) - verified,
            engine_verified=int(res.counts.get("verified", 0)),
            failed=res.counts.get("failed", 0) + res.counts.get("applied_unverified", 0),
            stale=res.counts.get("stale", 0),
            not_applied_in_sandbox=len(ids) - len(true_now),
            exocm_s=round(exocm_s, 3),
            exocm_rows_per_s=round(exocm_rate, 3),
            best_peer=best["pattern"] if best else None,
            best_peer_rows_per_s=best["verified_rows_per_s"] if best else None,
            speedup_vs_best_peer=(round(exocm_rate / best["verified_rows_per_s"], 2)
                                  if best and best["verified_rows_per_s"] else None),
            budget_rows_per_s=args.write_budget,
            budget_utilisation=round(exocm_rate / args.write_budget, 3) if args.write_budget else None,
            http_429=http_429,
            requests=requests,
            http_429_share=round(http_429 / requests, 4) if requests else None,
            client_http_429=_delta(after, before, "http_429"),
            client_requests=_delta(after, before, "requests"),
            throttled_exchanges=_delta(after, before, "throttled"),
            server_writes=_delta(server_after, server_before, "writes"),
            final_concurrency_limit=after.get("limit"),
            journal=str(res.journal_path),
        )
    finally:
        sb.stop()
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _journal_records(path: Any) -> list[dict[str, Any]]:
    """The journal's per-row records (JSON lines); [] when it cannot be read."""
    import json

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, TypeError):
        return []
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--concurrency-limit", type=int, default=10)
    parser.add_argument("--write-budget", type=float, default=50.0)
    parser.add_argument("--batch-item-ms", type=float, default=None,
                        help="server time of each $batch item (default: the sandbox's, = --latency-ms)")
    parser.add_argument("--baseline-rows", type=int, default=100, help="rows each peer pattern writes")
    parser.add_argument("--workers", type=int, default=None,
                        help="apply worker threads (default: the product's, as `exocm apply`)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    write_figures(run(args), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
