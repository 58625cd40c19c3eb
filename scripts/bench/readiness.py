"""Benchmark of `exocm readiness` against a sandbox in a child process, with on-prem data.

    python scripts/bench/readiness.py --size 100000 --latency-ms 50 --json OUT

The sandbox (every EXO REST and Graph request delayed by --latency-ms) serves the tenant; the
on-prem side is its Export-Csv file (`exocm sandbox export-onprem`, written before the timing).
Timed: every fact read (EXO inventory partitioned, org config, accepted domains; Graph organization,
subscribedSkus, synced licensed users, synced groups' $count, Cloud Sync; the sync server over WinRM;
the on-prem CSV) and every check of `--scope` evaluated, as the command does. Prints JSON with
`checks` (code -> result), `elapsed_s` and `requests` (EXO REST, Graph, WinRM pipelines).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, sandbox_process, write_figures


def _proc_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by process `pid` (Linux /proc), None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the sandbox, export its on-prem side, run readiness once, return the figures."""
    work = Path(tempfile.mkdtemp(prefix="exocm-bench-readiness-"))
    os.environ["EXOCM_CONFIG_DIR"] = str(work / "config")
    os.environ["EXOCM_DATA_DIR"] = str(work / "data")
    os.environ["EXOCM_TOKEN_CACHE"] = "file"
    onprem_csv = work / "onprem.csv"
    exocm = [sys.executable, "-c", "from exocm.cli.main import main; main()"]
    subprocess.run([*exocm, "sandbox", "export-onprem", "--size", str(args.size), "--seed", str(args.seed),
                    "-o", str(onprem_csv)], check=True, stderr=subprocess.DEVNULL)
    with sandbox_process(args.size, args.seed, "--latency-ms", str(args.latency_ms)) as info:
        info_file = work / "sandbox.json"
        info_file.write_text(json.dumps({k: v for k, v in info.items() if k != "_pid"}), encoding="utf-8")
        subprocess.run([*exocm, "profiles", "add", "bench", "--from-sandbox", str(info_file)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from exocm.cli.connection import open_connection
        from exocm.cli.readiness_cmd import readiness_sources
        from exocm.core.detect.prerequisites import evaluate
        from exocm.core.detect.prerequisites.gather import gather
        from exocm.core.detect.prerequisites.report import summarise

        with open_connection("bench", quiet=True) as connection:
            connection.bridge.invoke("Get-OrganizationConfig", {})  # sign-in outside the timing
            before = dict(connection.bridge.snapshot())
            sources, _ = readiness_sources(connection, onprem_csv=onprem_csv, live={}, workdir=work)
            sandbox_cpu0 = _proc_cpu_s(int(info["_pid"]))
            cpu0 = time.process_time()
            start = time.perf_counter()
            gathered = gather(sources, scope=args.scope)
            checks = evaluate(gathered.facts, args.scope)
            elapsed = time.perf_counter() - start
            client_cpu = time.process_time() - cpu0
            sandbox_cpu1 = _proc_cpu_s(int(info["_pid"]))
            after = connection.bridge.snapshot()
            graph_requests = int(getattr(sources.graph, "requests", 0))
    rest = {k: after.get(k, 0) - before.get(k, 0) for k in ("requests", "pages", "retries", "throttled")
            if isinstance(after.get(k), int)}
    return {
        "size": args.size, "latency_ms": args.latency_ms, "scope": args.scope,
        "checks": {c.code: c.result for c in checks},
        "verdict": summarise(checks, args.scope)["verdict"],
        "elapsed_s": round(elapsed, 3),
        "timings_s": gathered.timings,
        "requests": {"exo_rest": rest, "graph": graph_requests, "winrm_sync_server": 1},
        "cpu_s": {"exocm": round(client_cpu, 3),
                  "sandbox": (round(sandbox_cpu1 - sandbox_cpu0, 3)
                              if sandbox_cpu0 is not None and sandbox_cpu1 is not None else None)},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "target_s": 10.0, "within_target": elapsed < 10.0,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--scope", choices=("flip", "decommission"), default="decommission")
    parser.add_argument("--json", dest="out", default=None, help="Also write the figures to this file.")
    args = parser.parse_args()
    write_figures(run(args), args.out)


if __name__ == "__main__":
    main()
