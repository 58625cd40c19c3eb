#!/usr/bin/env python3
"""Benchmark: detection over a loaded snapshot (EXO inventory + on-prem export joined).

    scripts/bench/detect.py --size 300000 --json OUT

Phase 1 (a child process, so its memory is not counted): the sandbox generator builds a tenant
of --size users; the EXO side is read with Get-Mailbox / Get-User -ResultSize Unlimited
through the tenant's cmdlets and built into the inventory frame, saved as a Parquet snapshot
(core.snapshot); the on-prem side is written as the Export-Csv file an admin would hand in.
The planted ground truth is saved next to them.

Phase 2 (a fresh child process, measured): load the snapshot and the on-prem CSV (as
`exocm findings` does), then time `detect()` only, --repeat times, and check the findings
against the ground truth. A second timing runs the same data with the on-prem
ExternalDirectoryObjectId column blanked (exports without msDS-ExternalDirectoryObjectId join
on UserPrincipalName, then addresses).

Writes {"users", "detect_s", "peak_rss_mb", ...}: detect_s is the median of the runs (wall
clock); detect_cpu_s the matching CPU time; peak_rss_mb the measured process's peak (snapshot
and CSV loaded, detection run; `peak_rss_mb_with_upn_variant` also counts the UPN-join timing,
which copies the on-prem frame), with the resident set after each load; ground_truth_ok whether
every planted code matched exactly; loadavg the machine's load when measured.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, write_figures


def prepare(size: int, seed: int, data_dir: Path) -> dict[str, Any]:
    """Generate the tenant, save the inventory snapshot, the on-prem CSV and the ground truth."""
    from exocm.core.inventory.fetch import Inventory, records_to_frame
    from exocm.core.inventory.snapshot import save_snapshot
    from exocm.sandbox.generator import generate_tenant
    from exocm.sandbox.onprem_export import write_onprem_csv

    t0 = time.perf_counter()
    tenant = generate_tenant(size, seed)
    generated_s = time.perf_counter() - t0
    mailboxes = tenant.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
    users = tenant.invoke("Get-User", {"ResultSize": "Unlimited"})
    frame = records_to_frame(mailboxes, users)
    del mailboxes, users
    inventory = Inventory(frame=frame, tenant="bench", fetched_at=datetime.now(UTC), source="rest")
    snapshot = save_snapshot(inventory, root=data_dir)
    csv_path = data_dir / "onprem.csv"
    rows = write_onprem_csv(tenant, csv_path, variant="script")
    truth = {"now": tenant.now().isoformat(), "planted": tenant.planted()}
    (data_dir / "truth.json").write_text(json.dumps(truth), encoding="utf-8")
    return {
        "generated_s": round(generated_s, 2),
        "prepare_s": round(time.perf_counter() - t0, 2),
        "snapshot": str(snapshot),
        "onprem_rows": rows,
        "inventory_rows": len(frame),
    }


def measure(data_dir: Path, repeat: int) -> dict[str, Any]:
    """Load snapshot + CSV, time detect() only; return the figures."""
    from exocm.core.detect.engine import detect
    from exocm.core.inventory.onprem import load_onprem_csv
    from exocm.core.inventory.snapshot import load_snapshot

    t0 = time.perf_counter()
    inventory = load_snapshot("bench", root=data_dir)
    assert inventory is not None, "snapshot missing"
    snapshot_load_s = time.perf_counter() - t0
    rss_after_snapshot = _rss_mb()
    t0 = time.perf_counter()
    onprem = load_onprem_csv(data_dir / "onprem.csv")
    csv_load_s = time.perf_counter() - t0
    rss_after_csv = _rss_mb()
    truth = json.loads((data_dir / "truth.json").read_text(encoding="utf-8"))
    now = datetime.fromisoformat(truth["now"])

    def timed(frame: Any) -> tuple[list[float], list[float], Any]:
        walls, cpus, result = [], [], None
        for _ in range(repeat):
            w, c = time.perf_counter(), time.process_time()
            result = detect(inventory.frame, frame, now=now)
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
        return walls, cpus, result

    walls, cpus, result = timed(onprem.frame)
    peak_after_detect = peak_rss_mb()  # before the UPN-join variant, which copies the on-prem frame
    mismatches = {}
    f = result.findings
    for code, ids in truth["planted"].items():
        got = set(f.loc[f["code"] == code, "ExternalDirectoryObjectId"])
        want = {i.lower() for i in ids}
        if got != want:
            mismatches[code] = {"missed": len(want - got), "false_positives": len(got - want)}
    upn_walls, upn_cpus, upn_result = timed(onprem.frame.assign(ExternalDirectoryObjectId=""))
    return {
        "users": len(inventory.frame),
        "onprem_rows": len(onprem.frame),
        "findings": len(result.findings),
        "findings_by_code": {str(k): int(v) for k, v in result.findings["code"].value_counts().items()},
        "detect_s": round(statistics.median(walls), 3),
        "detect_cpu_s": round(statistics.median(cpus), 3),
        "detect_runs_s": [round(x, 3) for x in walls],
        "detect_s_upn_join": round(statistics.median(upn_walls), 3),
        "detect_cpu_s_upn_join": round(statistics.median(upn_cpus), 3),
        "upn_join_findings_equal": sorted(zip(result.findings["code"], result.findings["ExternalDirectoryObjectId"],
                                              strict=True))
        == sorted(zip(upn_result.findings["code"], upn_result.findings["ExternalDirectoryObjectId"], strict=True)),
        "snapshot_load_s": round(snapshot_load_s, 3),
        "onprem_csv_load_s": round(csv_load_s, 3),
        "ground_truth_ok": not mismatches,
        "ground_truth_mismatches": mismatches,
        "peak_rss_mb": peak_after_detect,
        "peak_rss_mb_with_upn_variant": peak_rss_mb(),
        "rss_after_snapshot_mb": rss_after_snapshot,
        "rss_after_onprem_csv_mb": rss_after_csv,
        "load_average": list(os.getloadavg()),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _rss_mb() -> float | None:
    """This process's resident set now, in MiB (/proc), None when unknown."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _child(phase: str, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", phase, "--data-dir", str(data_dir), "--size", str(args.size),
           "--seed", str(args.seed), "--repeat", str(args.repeat)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", dest="json_out", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help="keep/reuse the prepared data here")
    parser.add_argument("--phase", choices=["all", "prepare", "measure"], default="all", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "prepare":
        print(json.dumps(prepare(args.size, args.seed, args.data_dir)))
        return
    if args.phase == "measure":
        print(json.dumps(measure(args.data_dir, args.repeat)))
        return

    with tempfile.TemporaryDirectory(prefix="exocm-bench-detect-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        prepared = None
        if not (data_dir / "truth.json").exists():
            prepared = _child("prepare", args, data_dir)
        figures = _child("measure", args, data_dir)
    result = {"users": figures["users"], "detect_s": figures["detect_s"], "peak_rss_mb": figures["peak_rss_mb"],
              **{k: v for k, v in figures.items() if k not in ("users", "detect_s", "peak_rss_mb")},
              "size": args.size, "seed": args.seed, "prepare": prepared}
    write_figures(result, args.json_out, indent=1)


if __name__ == "__main__":
    main()
