"""The queue path against a real redis-server: `exocm enqueue` + `exocm worker` processes.

10 sandbox tenants, 3 workers; one worker is killed with SIGKILL while it applies a tenant's plan;
every tenant's plan still ends fully verified and no mailbox is written twice (the sandbox's write
log counts writes per identity). Needs Debian's redis-server (installed by .ci/run).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import exocm, private_env, run
from exocm.sandbox.server import Sandbox

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (apt-get install redis-server)")

TENANTS = 10
SIZE = 100
QUEUE_OPTIONS = ["--heartbeat-timeout-ms", "4000", "--lock-ttl-ms", "4000", "--max-backoff-ms", "1000",
                 "--maintenance-chance", "1000000"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server on a free port, in a temp dir; stopped afterwards."""
    import redis

    port = _free_port()
    workdir = tmp_path / "redis"
    workdir.mkdir()
    proc = subprocess.Popen([str(REDIS), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _worker(url: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("exocm")
    return subprocess.Popen([str(exe), "worker", "--redis", url, "--threads", "2", *QUEUE_OPTIONS],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))


def test_queue_apply_survives_a_killed_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              redis_url: str) -> None:
    import redis

    private_env(monkeypatch, tmp_path)
    write_log = tmp_path / "writes.jsonl"
    monkeypatch.setenv("EXOCM_SANDBOX_WRITE_LOG", str(write_log))
    sbs = Sandbox.start(tenants=TENANTS, size=SIZE, seed=700, latency_ms=60, winrm=False)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        info_file = tmp_path / "sandbox.json"
        info_file.write_text(json.dumps(sbs.info) + "\n", encoding="utf-8")
        assert exocm("profiles", "add", "msp", "--from-sandbox", str(info_file)).exit_code == 0
        plans = tmp_path / "plans"
        code, out, err = run("plan", "--all-profiles", "--set-cloud-managed", "true", "--all-dirsynced",
                             "-o", str(plans))
        assert code == 1, out + err
        assert not write_log.exists() or write_log.read_text(encoding="utf-8") == ""
        env = {k: v for k, v in os.environ.items() if k != "EXOCM_SANDBOX_WRITE_LOG"}
        workers = [_worker(redis_url, env, tmp_path / f"worker-{i}.log") for i in range(3)]
        code, out, err = run("enqueue", "apply", str(plans), "--all-profiles", "--redis", redis_url, *QUEUE_OPTIONS)
        assert code == 0, out + err
        assert len(out.splitlines()) == TENANTS

        # Kill the worker holding a tenant's lock once that tenant's writes have started (mid-apply).
        owner = {r["identity"]: path.stem for path in plans.glob("*.json")
                 for r in json.loads(path.read_text(encoding="utf-8"))["rows"] if r["action"] == "set"}
        client = redis.Redis.from_url(redis_url)
        pids = {w.pid: w for w in workers}
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline:
            lines = write_log.read_text(encoding="utf-8").splitlines() if write_log.exists() else []
            writing = {owner.get(json.loads(line)["identity"]) for line in lines if line.strip()}
            for key in client.scan_iter("exocm:tenant-lock:*"):
                holder = json.loads(client.get(key) or "{}")
                pid, profile = holder.get("pid"), holder.get("profile")
                if pid in pids and profile in writing:
                    os.kill(pid, signal.SIGKILL)
                    killed = (pid, profile)
                    break
            time.sleep(0.02)
        assert killed is not None, "no worker was caught applying"

        results = tmp_path / "data" / "queue"
        deadline = time.monotonic() + 180
        done: dict[str, Any] = {}
        while len(done) < TENANTS and time.monotonic() < deadline:
            for k in range(1, TENANTS + 1):
                path = results / f"apply-msp-{k}.json"
                if path.exists():
                    doc = json.loads(path.read_text(encoding="utf-8"))
                    if doc["status"] == "ok":
                        done[f"msp-{k}"] = doc
            time.sleep(0.2)
        logs = {p.name: p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("worker-*.log")}
        assert len(done) == TENANTS, logs

        # Every plan fully verified (over all its journals), no identity written twice.
        code, out, err = run("report", str(plans), "--all-profiles", "--format", "json")
        assert code == 0, out + err
        report = json.loads(out)["tenants"]
        writes = Counter(json.loads(line)["identity"] for line in write_log.read_text(encoding="utf-8").splitlines()
                         if json.loads(line)["operation"] == "Set-Mailbox")
        assert writes and max(writes.values()) == 1, [i for i, n in writes.items() if n > 1]
        planned_total = 0
        for name, doc in report.items():
            assert doc["remaining"] == 0, (name, doc)
            plan = json.loads((plans / f"{name}.json").read_text(encoding="utf-8"))
            planned = [r["identity"] for r in plan["rows"] if r["action"] == "set"]
            planned_total += len(planned)
            assert all(writes[i] == 1 for i in planned), name
        assert sum(writes.values()) == planned_total
        # the killed tenant was finished by another worker, resuming the interrupted run's journal
        assert done[killed[1]]["worker"]["pid"] != killed[0]
        assert len(report[killed[1]]["journals"]) >= 2, report[killed[1]]

        # findings for every tenant through the two surviving workers, waited for like a tenant set
        code, out, err = run("enqueue", "findings", "--all-profiles", "--wait", "120", "--format", "json",
                             "--redis", redis_url, *QUEUE_OPTIONS)
        tenants_doc = json.loads(out)["tenants"]
        assert sorted(tenants_doc) == sorted(f"msp-{k}" for k in range(1, TENANTS + 1))
        assert all("error" not in d and d["summary"]["total"] > 0 for d in tenants_doc.values()), tenants_doc
        assert code in (0, 1), err
        assert (tmp_path / "data" / "history").is_dir()
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
        sbs.stop()
