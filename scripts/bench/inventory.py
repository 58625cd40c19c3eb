#!/usr/bin/env python3
"""Benchmark: exocm's partitioned parallel inventory vs sequential paged Get-Mailbox readers, on one sandbox.

    scripts/bench/inventory.py --size 100000 --latency-ms 150 --concurrency-limit 10 --json OUT

One sandbox tenant serves both runs. By default it runs as `exocm sandbox serve --print-json`
in a child process, so its CPU (building and serialising every page) does not queue behind this
process's GIL; `--in-process` serves it from this process instead. Baseline (a) reads Get-Mailbox
-ResultSize Unlimited one page of 1000 after the other, which is what the PowerShell cmdlet does
(RestBridge.stream: every property, records normalised value by value, as the module
deserialises every object); baseline (b) is CIPP's pager: the same with `$select` of the
inventory's Get-Mailbox columns. exocm is `fetch_inventory` (Get-Mailbox and Get-User,
partitioned, parallel within the tenant's limit, only the inventory's properties ($select), pages
decoded into Arrow) with the product's defaults: its bridge knows nothing of the sandbox's hidden
concurrency limit and finds it through 429s (`--max-concurrency N` overrides the ceiling). All
go through the real REST bridge, MSAL and TLS, after an untimed warm-up; the ids are compared
with the generator's ground truth.

Writes {"records", "missing", "duplicates", "sequential_s", "sequential_select_s", "exocm_s",
"speedup" (vs a), "speedup_vs_select" (vs b), "http_429", "requests", "rss_sandbox_mb" (the
sandbox child's resident set), "peak_rss_mb" (this process), "loadavg", ...},
with the CPU seconds each side spent per run (`*_client_cpu_s`: this process, all threads;
`*_sandbox_cpu_s`: the sandbox process; null when the sandbox runs in-process).

The on-prem side's line: `--onprem-recipients 50000` adds "onprem_psrp" (records/s of the live
on-prem fetch over WinRM/PSRP against the sandbox's WinRM endpoint, selecting only the columns
detection needs; scripts/bench/onprem_psrp.py), `--onprem-only` runs just that line.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from _common import sandbox_process
from exocm.core.access.config import Profile
from exocm.core.access.connect import open_bridge
from exocm.core.access.token_cache import memory_token_cache
from exocm.core.inventory.fetch import fetch_inventory

SECRET_ENV = "EXOCM_BENCH_SANDBOX_SECRET"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _proc_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) used so far by process `pid` (Linux /proc), None when unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class _Cpu:
    """CPU seconds of this process (the client) and of the sandbox process over one run."""

    def __init__(self, sandbox_pid: int | None) -> None:
        self.pid = sandbox_pid
        self.client0 = time.process_time()
        self.sandbox0 = _proc_cpu_s(sandbox_pid)

    def figures(self, prefix: str) -> dict[str, float | None]:
        """{prefix_client_cpu_s, prefix_sandbox_cpu_s} since construction."""
        now = _proc_cpu_s(self.pid)
        sandbox = None if now is None or self.sandbox0 is None else round(now - self.sandbox0, 2)
        return {f"{prefix}_client_cpu_s": round(time.process_time() - self.client0, 2),
                f"{prefix}_sandbox_cpu_s": sandbox}


def _rss_mb(pid: int | None = None, field: str = "VmRSS:") -> float | None:
    """The resident set (or, with field "VmHWM:", its peak) of process `pid` (default: this one)
    in MiB, from /proc; None when unknown (e.g. the sandbox runs in this process)."""
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


@contextmanager
def _sandbox(args: argparse.Namespace) -> Iterator[tuple[dict[str, Any], set[str]]]:
    """Start the sandbox; yield its info and the ground-truth set of EXO mailbox ids."""
    knobs: dict[str, Any] = {"latency_ms": args.latency_ms, "concurrency_limit": args.concurrency_limit}
    variant_args = ["--variant", args.variant] if args.variant else []
    if args.variant:
        knobs["variants"] = args.variant
    if args.sandbox_process:
        with sandbox_process(args.size, args.seed, "--latency-ms", str(args.latency_ms),
                             "--concurrency-limit", str(args.concurrency_limit), *variant_args) as info:
            yield info, _truth_from_generator(args.size, args.seed)
        return
    from exocm.sandbox.server import Sandbox

    sb = Sandbox.start(args.size, args.seed, port=0, **knobs)
    try:
        yield dict(sb.info), _truth_from_sandbox(sb)
    finally:
        sb.stop()


def _mailbox_ids(tenant: Any) -> set[str]:
    """Ground truth: ExternalDirectoryObjectIds of the tenant's EXO mailboxes (of every mailbox type)."""
    from exocm.sandbox.objects import MAILBOX_TYPES

    with tenant.lock:
        return {r.edoid.lower() for r in tenant.exo.values() if r.rtd in MAILBOX_TYPES}


def _truth_from_sandbox(sb: Any) -> set[str]:
    return _mailbox_ids(sb.tenant)


def _truth_from_generator(size: int, seed: int) -> set[str]:
    """The same tenant generated in a short-lived child, so its memory does not count in our peak RSS."""
    code = ("import json, sys; from exocm.sandbox.generator import generate_tenant; "
            "from exocm.sandbox.objects import MAILBOX_TYPES; "
            f"t = generate_tenant({int(size)}, {int(seed)}); "
            "json.dump(sorted(r.edoid.lower() for r in t.exo.values() if r.rtd in MAILBOX_TYPES), sys.stdout)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out))


def _profile(info: dict[str, Any]) -> Profile:
    os.environ[SECRET_ENV] = info["client_secret"]
    return Profile(name="bench", tenant=info["tenant"], client_id=info["client_id"], cloud="custom",
                   auth="secret", secret_env=SECRET_ENV, authority=info["authority"],
                   rest_base_url=info["rest_base_url"], scope=info.get("scope"), ca_file=info["ca_file"],
                   sandbox=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run both fetches against one sandbox and return the figures."""
    result: dict[str, Any] = {"size": args.size, "seed": args.seed, "latency_ms": args.latency_ms,
                              "concurrency_limit": args.concurrency_limit,
                              "sandbox": "subprocess" if args.sandbox_process else "in-process"}
    t0 = time.perf_counter()
    with _sandbox(args) as (info, truth):
        result["sandbox_start_s"] = round(time.perf_counter() - t0, 2)
        result["truth_mailboxes"] = len(truth)
        rss_before = _rss_mb() or 0.0
        profile = _profile(info)

        # (a) what `Get-Mailbox -ResultSize Unlimited` does: one page of 1000 after the other,
        # every property; (b) CIPP's pager: the same, with `$select` of the inventory's columns.
        seq = open_bridge(profile, token_cache=memory_token_cache())
        try:
            # Sign-in and the sandbox's first-call costs outside the timing (every run benefits).
            seq.invoke("Get-Mailbox", {"ResultSize": 1000})
            seq.invoke("Get-User", {"ResultSize": 1000})
            for name, pages_of in () if args.no_baselines else (("sequential", _all_properties_pages),
                                                                 ("sequential_select", _selected_pages)):
                cpu = _Cpu(info.get("_pid"))
                start = time.perf_counter()
                result.update(count_pages(name, pages_of(seq), truth))
                result[f"{name}_s"] = round(time.perf_counter() - start, 3)
                result.update(cpu.figures(name))
        finally:
            seq.close()

        # (b) exocm's inventory: Get-Mailbox + Get-User, partitioned, parallel.
        options: dict[str, Any] = {}
        if args.max_concurrency is not None:  # else the product's default: it finds the limit itself
            options["max_concurrency"] = args.max_concurrency
        bridge = open_bridge(profile, token_cache=memory_token_cache(), **options)
        try:
            bridge.invoke("Get-Mailbox", {"ResultSize": 1})  # sign-in outside the timing
            cpu = _Cpu(info.get("_pid"))
            start = time.perf_counter()
            inv = fetch_inventory(bridge, partitions=args.partitions, max_workers=args.workers)
            result["exocm_s"] = round(time.perf_counter() - start, 3)
            # this process's peak up to the end of the fetch, before the checks below add their sets
            result["peak_rss_after_fetch_mb"] = _rss_mb(None, "VmHWM:")
            result.update(cpu.figures("exocm"))
            counters = bridge.snapshot()
        finally:
            bridge.close()
        frame = inv.frame
        ids = frame["ExternalDirectoryObjectId"].fillna("").str.lower()
        from exocm.sandbox.objects import MAILBOX_TYPES

        mailbox_ids = set(ids[frame["RecipientTypeDetails"].isin(MAILBOX_TYPES)])
        result.update(
            records=len(frame),
            mailboxes=len(mailbox_ids),
            mail_users=int(inv.stats.get("mail_users", 0)),
            missing=len(truth - set(ids)),
            extra_mailboxes=len(mailbox_ids - truth),
            duplicates=int(inv.stats.get("duplicates_dropped", 0)) + int(ids.duplicated().sum()),
            fallbacks=inv.stats.get("fallbacks"),
            degenerate_resplits=inv.stats.get("degenerate_resplits"),
            variant=args.variant or None,
            notes=list(inv.notes),
            mode=inv.stats.get("mode"),
            pages=inv.stats.get("pages"),
            http_429=counters.get("http_429"),
            requests=counters.get("requests"),
            final_limit=counters.get("limit"),
            peak_in_flight=counters.get("peak_in_flight"),
            frame_mb=round(frame.memory_usage(deep=True).sum() / 2**20, 1),
            rss_client_before_mb=round(rss_before, 1),
            # the sandbox child's own resident set (None when it runs in this process)
            rss_sandbox_mb=_rss_mb(info["_pid"]) if info.get("_pid") else None,
            peak_rss_sandbox_mb=_rss_mb(info["_pid"], "VmHWM:") if info.get("_pid") else None,
        )
        result.update(speedups(result))
        if "sequential_s" in result:
            result["sequential_ms_per_page"] = round(1000 * result["sequential_s"] / max(1, result["sequential_pages"]),
                                                     1)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _all_properties_pages(bridge: Any) -> Iterator[list[dict[str, Any]]]:
    """Get-Mailbox -ResultSize Unlimited, every property, records normalised value by value."""
    return bridge.stream("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=1000)


def _selected_pages(bridge: Any) -> Iterator[list[dict[str, Any]]]:
    """The same pager with `$select` of the inventory's Get-Mailbox columns (CIPP's New-ExoRequest),
    each page parsed and normalised as (a) does."""
    from exocm.core.bridge.normalize import normalize_records
    from exocm.core.inventory.fetch import SELECT

    def parse(body: bytes) -> tuple[list[dict[str, Any]], str | None, list[str]]:
        data = orjson.loads(body)
        return (normalize_records(data.get("value") or []), data.get("@odata.nextLink"),
                list(data.get("@adminapi.warnings") or []))

    return bridge.stream_bodies("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=1000, parse=parse,
                                select=SELECT["Get-Mailbox"])


def count_pages(name: str, pages: Iterable[list[dict[str, Any]]], truth: set[str]) -> dict[str, int]:
    """{name_records, name_missing, name_duplicates, name_pages} of a pager's pages against the truth."""
    seen: Counter[str] = Counter()
    n = 0
    for page in pages:
        seen.update(str(r.get("ExternalDirectoryObjectId") or "").lower() for r in page)
        n += 1
    return {f"{name}_records": sum(seen.values()), f"{name}_missing": len(truth - set(seen)),
            f"{name}_duplicates": sum(k - 1 for k in seen.values() if k > 1), f"{name}_pages": n}


def speedups(result: dict[str, Any]) -> dict[str, float | None]:
    """`speedup` (vs the all-properties pager) and `speedup_vs_select` (vs the $select pager)."""
    exocm = result.get("exocm_s")

    def ratio(key: str) -> float | None:
        base = result.get(key)
        return round(base / exocm, 2) if base and exocm else None

    return {"speedup": ratio("sequential_s"), "speedup_vs_select": ratio("sequential_select_s")}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--concurrency-limit", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=16, choices=(1, 16, 256))
    parser.add_argument("--variant", default="", metavar="NAME[,NAME...]",
                        help="sandbox conformance variants (exocm sandbox serve --variant), e.g. edoid-no-wildcard-literal")
    parser.add_argument("--workers", type=int, default=None,
                        help="fetch threads (default: one per partition)")
    parser.add_argument("--max-concurrency", type=int, default=None,
                        help="the bridge's concurrency ceiling (default: the product's own; it finds the "
                             "tenant's limit through 429s, as against a real tenant)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the sequential pagers (a memory run: peak_rss_mb is then exocm's fetch alone)")
    parser.add_argument("--in-process", dest="sandbox_process", action="store_false",
                        help="serve the sandbox from this process (its CPU then shares our GIL)")
    parser.add_argument("--sandbox-process", dest="sandbox_process", action="store_true", default=True,
                        help="run the sandbox as `exocm sandbox serve --print-json` in a child process (default)")
    parser.add_argument("--onprem-recipients", type=int, default=0,
                        help="also time the on-prem PSRP fetch of about N recipients (0 = skip)")
    parser.add_argument("--onprem-only", action="store_true",
                        help="run only the on-prem PSRP line (default N: 50000)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.onprem_only and not args.onprem_recipients:
        args.onprem_recipients = 50_000
    result = {} if args.onprem_only else run(args)
    if args.onprem_recipients:
        import onprem_psrp  # scripts/bench/onprem_psrp.py, next to this file

        result["onprem_psrp"] = onprem_psrp.run(argparse.Namespace(
            recipients=args.onprem_recipients, size=0, seed=args.seed,
            in_process=not args.sandbox_process, all_properties=False, latency_ms=5.0, concurrency_limit=4))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
