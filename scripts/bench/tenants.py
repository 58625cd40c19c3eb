"""Many tenants: findings for N sandbox tenants in one process vs the slowest tenant alone, and the
same N through queue workers.

    python scripts/bench/tenants.py --tenants 20 --size 5000 --latency-ms 150 [--workers 4] [--json OUT]

One sandbox child process serves the N tenants on one port (`exocm sandbox serve --tenants N`).
Profiles msp-1..N are made from its --print-json line (EXO only: the on-prem side is left out, so
the figures are about the EXO reads and detection). Measured:
  single_max_s   the slowest of `--single-sample` tenants, each run alone (findings_job)
  all_s          all N in one command (run_tenants: --parallel-tenants default min(8, N), spread over
                 --tenant-processes worker processes, by default one per core; 1 = one process)
  ratio          all_s / single_max_s (the goal: <= 1.5)
  workers_s      all N as queue jobs through `--workers` `exocm worker` processes (redis-server in a
                 temp dir), from enqueue to the last result file, after a warm-up round (each worker
                 process has imported exocm once); skipped with --workers 0
  peak_rss_mb    this process's peak RSS (the in-process run); peak_rss_worker_mb: the largest forked
                 worker's (the tenant set's worker processes)
  cpu_floor_s    (client CPU + sandbox CPU of the all-N run) / cores: no schedule of that work on this
                 machine ends sooner; ratio_floor = max(cpu_floor_s, single_max_s) / single_max_s is the
                 best ratio this machine allows at today's CPU cost per tenant
Every single run comes after one untimed warm-up tenant (imports, first TLS context), so the
slowest single is a warm tenant's time, not the first import's.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, sandbox_process, write_figures


def _profiles(info: dict[str, Any]) -> list[str]:
    from exocm.core.access.config import sandbox_profile, save_profile, store_sandbox_secret

    names = []
    for k, member in enumerate(info["tenants"], start=1):
        name = f"msp-{k}"
        save_profile(sandbox_profile(name, member), make_default=False)
        store_sandbox_secret(name, member["client_secret"])
        names.append(name)
    return names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _through_workers(names: list[str], workers: int, workdir: Path) -> float | None:
    redis_server = shutil.which("redis-server")
    if redis_server is None or workers <= 0:
        return None
    port = _free_port()
    redis_proc = subprocess.Popen([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                                   "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    exe = [sys.executable, "-c", "from exocm.cli.main import main; main()"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        time.sleep(0.5)
        procs = [subprocess.Popen([*exe, "worker", "--redis", url, "--threads", "4"], stderr=subprocess.DEVNULL)
                 for _ in range(workers)]
        from exocm.core.app.queue import enqueue, result_path, setup

        queue = setup(url)

        def round_of(batch: list[str]) -> float:
            started = time.time()
            enqueue(queue, "findings", batch)
            pending = set(batch)
            while pending:
                for name in list(pending):
                    path = result_path("findings", name)
                    if path.exists() and json.loads(path.read_text(encoding="utf-8"))["finished_at"] > _iso(started):
                        pending.discard(name)
                time.sleep(0.1)
            return time.time() - started

        round_of(names[: workers * 2])  # warm-up: each worker process imports and signs in once
        return round(round_of(names), 2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


def _own_cpu() -> float:
    # with the worker processes of a tenant set, once they have ended (the sandbox child is still running)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _pid_cpu(pid: int) -> float:
    """CPU seconds of another process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=150)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--single-sample", type=int, default=3, help="Tenants timed alone (the slowest counts).")
    parser.add_argument("--parallel-tenants", type=int, default=None, help="Default: the product's (run_tenants).")
    parser.add_argument("--tenant-processes", type=int, default=None,
                        help="Worker processes of the all-N run (default: the product's; 1: threads of this process).")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="exocm-bench-tenants-"))
    os.environ["EXOCM_CONFIG_DIR"] = str(workdir / "config")
    os.environ["EXOCM_DATA_DIR"] = str(workdir / "data")
    try:
        with sandbox_process(args.size, args.seed, "--tenants", str(args.tenants), "--latency-ms",
                             str(args.latency_ms), start_timeout=3600) as info:
            from exocm.core.app.tenants import findings_job, run_tenants

            names = _profiles(info)
            job = lambda name: findings_job(name, keep_history=False)  # noqa: E731
            run_tenants([names[-1]], job)  # warm-up: imports and first connections, not timed
            singles, single_cpu = [], []
            for name in names[: args.single_sample]:
                cpu_before = _own_cpu() + _pid_cpu(info["_pid"])
                started = time.perf_counter()
                outcome = run_tenants([name], job)[name]
                assert outcome.error is None, outcome.error
                singles.append(time.perf_counter() - started)
                single_cpu.append(_own_cpu() + _pid_cpu(info["_pid"]) - cpu_before)
            started, cpu0, sb_cpu0 = time.perf_counter(), _own_cpu(), _pid_cpu(info["_pid"])
            outcomes = run_tenants(names, job, parallel=args.parallel_tenants, processes=args.tenant_processes)
            all_s = time.perf_counter() - started
            client_cpu, sandbox_cpu = _own_cpu() - cpu0, _pid_cpu(info["_pid"]) - sb_cpu0
            failed = {n: o.error for n, o in outcomes.items() if o.error}
            rss = peak_rss_mb()
            worker_rss = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1)
            workers_s = _through_workers(names, args.workers, workdir)
        from exocm.core.app.tenant_pool import processes_for
        from exocm.core.app.tenants import DEFAULT_PARALLEL

        cores = os.cpu_count() or 1
        floor = (client_cpu + sandbox_cpu) / cores
        result = {
            "tenants": args.tenants, "size": args.size, "latency_ms": args.latency_ms,
            "parallel_tenants": args.parallel_tenants or min(DEFAULT_PARALLEL, args.tenants),
            "tenant_processes": processes_for(args.tenants, args.tenant_processes),
            "single_s": [round(s, 2) for s in singles], "single_max_s": round(max(singles), 2),
            "all_s": round(all_s, 2), "ratio": round(all_s / max(singles), 2), "peak_rss_mb": rss,
            "peak_rss_worker_mb": worker_rss,
            "all_client_cpu_s": round(client_cpu, 2), "all_sandbox_cpu_s": round(sandbox_cpu, 2),
            "single_cpu_s": [round(c, 2) for c in single_cpu],
            "cpu_per_tenant_s": round((client_cpu + sandbox_cpu) / args.tenants, 3), "cores": cores,
            "cpu_floor_s": round(floor, 2), "ratio_floor": round(max(floor, max(singles)) / max(singles), 2),
            "failed": failed, "workers": args.workers, "workers_s": workers_s,
            "workers_ratio": round(workers_s / max(singles), 2) if workers_s else None,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
        write_figures(result, args.json)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
