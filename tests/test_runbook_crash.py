"""Crash campaign: `exocm runbook run/resume` killed at every step (and once at a random moment)
against a sandbox served by a separate `exocm sandbox serve --state ... --sync-interval 0.2`.

Each kill is `os._exit(137)` at a named point (EXOCM_TEST_CRASH_AT=<step>:<phase>: nothing is
flushed or cleaned up, like kill -9), or a real SIGKILL at a seeded random time. After each
kill the run is resumed by a new process. The runs converge to the same final state as an
uninterrupted run of a twin object, and no action reaches the sandbox twice: its own write
log (EXOCM_SANDBOX_WRITE_LOG) and the run's audit log agree.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from exocm.core.runbooks import RunStore
from exocm.sandbox.generator import generate_tenant
from runbook_support import findings_by_code, plant_dual, services_for

SEED = 20261122
KEEP_ONPREM_KILLS = ["check-finding:start", "record-state:action", "remove-license:action",
                     "leave-synced-groups:start", "wait-mailuser:start", "confirm-clear:done",
                     "clear-previous-info:action", "wait-onprem-pointer:start", "restore-license:action",
                     "rejoin-synced-groups:start", "verify-fixed:start"]
KEEP_CLOUD_KILLS = ["check-finding:start", "record-state:action", "confirm-disable:done",
                    "disable-onprem-mailbox:action", "enable-remote-mailbox:action", "add-x500:action",
                    "set-exchange-guid:action", "verify-fixed:start"]


def _exocm() -> list[str]:
    script = Path(sys.executable).with_name("exocm")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from exocm.cli.main import main; main()"]


class Rig:
    """A served sandbox in its own process, a profile for it, and a way to run exocm commands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.write_log = root / "sandbox-writes.jsonl"
        self.env = {**os.environ, "EXOCM_CONFIG_DIR": str(root / "config"), "EXOCM_DATA_DIR": str(root / "data"),
                    "EXOCM_TOKEN_CACHE": "file", "EXOCM_PROFILE": "crash"}
        self.env.pop("EXOCM_TEST_CRASH_AT", None)
        self.env.pop("EXOCM_SANDBOX_WRITE_LOG", None)
        tenant = generate_tenant(300, 7)
        self.keep_onprem = [plant_dual(tenant, "direct", skip=0), plant_dual(tenant, "cloud_group", skip=1)]
        self.random_kill = plant_dual(tenant, "synced_group", skip=2)
        self.keep_cloud = sorted(e for e in tenant.planted()["DUAL_MAILBOX"]
                                 if e not in (*self.keep_onprem, self.random_kill))[:2]
        self.tenant_id = tenant.tenant_id
        state = root / "tenant.db"
        tenant.save(state)
        server_env = {**self.env, "EXOCM_SANDBOX_WRITE_LOG": str(self.write_log)}
        self.server = subprocess.Popen(
            [*_exocm(), "sandbox", "serve", "--state", str(state), "--sync-interval", "0.2", "--print-json"],
            env=server_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.server.stdout is not None
        line = self.server.stdout.readline()
        assert line, "the sandbox did not start"
        self.info: dict[str, Any] = json.loads(line)
        info_file = root / "sandbox.json"
        info_file.write_text(line)
        from exocm.cli.main import cli

        result = CliRunner().invoke(cli, ["profiles", "add", "crash", "--from-sandbox", str(info_file)],
                                    env={k: v for k, v in self.env.items() if k.startswith("EXOCM_")})
        assert result.exit_code == 0, result.output

    def exocm(self, *args: str, crash_at: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if crash_at:
            env["EXOCM_TEST_CRASH_AT"] = crash_at
        return subprocess.run([*_exocm(), *args], env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def writes(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.write_log.read_text().splitlines()] if self.write_log.exists() else []

    def stop(self) -> None:
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("runbook-crash"))
    try:
        yield r
    finally:
        r.stop()


def _run_id(output: str) -> str:
    for word in output.split():
        if word.count("-") == 1 and word[:8].isdigit() and "T" in word:
            return word.rstrip(":")
    raise AssertionError(f"no run id in: {output}")


FAST = ("--poll-interval", "0.1", "--wait-timeout", "60", "--no-interactive")


def _chain(rig: Rig, runbook: str, identity: str, kills: list[str], confirm: str) -> tuple[str, list[int]]:
    """Start the run killed at the first point, then resume once per remaining point, then to the end."""
    codes: list[int] = []
    first = rig.exocm("runbook", "run", runbook, "--identity", identity, *FAST, "--confirm-irreversible", confirm,
                      crash_at=kills[0])
    codes.append(first.returncode)
    run_id = _run_id(first.stderr)
    for point in [*kills[1:], None]:
        result = rig.exocm("runbook", "resume", run_id, *FAST, "--confirm-irreversible", confirm, crash_at=point)
        codes.append(result.returncode)
        if point is None:
            assert result.returncode == 0, result.stderr
    return run_id, codes


def _uninterrupted(rig: Rig, runbook: str, identity: str, confirm: str) -> str:
    result = rig.exocm("runbook", "run", runbook, "--identity", identity, *FAST, "--confirm-irreversible", confirm)
    assert result.returncode == 0, result.stderr
    return _run_id(result.stderr)


def _ops_on(rig: Rig, identity: str) -> Counter[str]:
    return Counter(w["operation"] for w in rig.writes() if w["identity"] == identity)


def _signature(services: Any, identity: str) -> dict[str, Any]:
    """What an object looks like at the end, with its own ids replaced by what they should equal."""
    user = services.exo.invoke("Get-User", {"Identity": identity})[0]
    rec = services.exo.invoke("Get-Recipient", {"Identity": identity})[0]
    onprem_user = services.onprem.invoke("Get-User", {"Identity": user["UserPrincipalName"]})[0]
    rtd = onprem_user["RecipientTypeDetails"]
    onprem = services.onprem.invoke("Get-RemoteMailbox" if rtd.startswith("Remote") else "Get-Mailbox",
                                    {"Identity": user["UserPrincipalName"]})[0]
    return {"exo": rec["RecipientTypeDetails"], "prev": user["PreviousRecipientTypeDetails"], "onprem": rtd,
            "guids_equal": rec["ExchangeGuid"] == onprem["ExchangeGuid"],
            "x500_in_exo": any(p.lower().startswith("x500:/o=contoso") for p in rec["EmailAddresses"])}


def _sent_per_step(rig: Rig, run_id: str) -> Counter[str]:
    """Per step, the actions the audit log shows as sent: an 'action' record, or (after a kill between
    sending and recording it) the resumed run's read-back saying the interrupted action is in effect.
    A read-back after a kill that came once the 'action' record was written is the same action, not
    a second one (counting both made a kill in that window look like a repeat)."""
    store = RunStore(rig.root / "data" / "runbooks")
    sent: Counter[str] = Counter()
    unrecorded: set[str] = set()  # steps whose last intent has no 'action' record yet
    for r in store.read_audit(run_id).records:
        step = r["step"]
        if r["event"] == "intent":
            unrecorded.add(step)
        elif r["event"] == "action":
            sent[step] += 1
            unrecorded.discard(step)
        elif r["event"] == "verified" and "interrupted" in r["detail"]:
            if step in unrecorded:
                sent[step] += 1
            unrecorded.discard(step)
    return sent


def crash_campaign(rig: Rig, onprem_kills: list[str], cloud_kills: list[str]) -> None:
    """Chains for keep-onprem and keep-cloud in parallel, plus uninterrupted twins; then compare."""
    confirm = f"{rig.tenant_id}:1"
    results: dict[str, Any] = {}

    def chain(name: str, runbook: str, identity: str, kills: list[str]) -> None:
        results[name] = _chain(rig, runbook, identity, kills, confirm)

    def plain(name: str, runbook: str, identity: str) -> None:
        results[name] = _uninterrupted(rig, runbook, identity, confirm)

    threads = [threading.Thread(target=chain, args=("onprem", "dual-mailbox-keep-onprem", rig.keep_onprem[0],
                                                    onprem_kills)),
               threading.Thread(target=chain, args=("cloud", "dual-mailbox-keep-cloud", rig.keep_cloud[0],
                                                    cloud_kills))]
    for t in threads:
        t.start()
    plain("onprem-twin", "dual-mailbox-keep-onprem", rig.keep_onprem[1])
    plain("cloud-twin", "dual-mailbox-keep-cloud", rig.keep_cloud[1])
    for t in threads:
        t.join(timeout=300)
    onprem_run, onprem_codes = results["onprem"]
    cloud_run, cloud_codes = results["cloud"]
    assert onprem_codes == [137] * len(onprem_kills) + [0]
    assert cloud_codes == [137] * len(cloud_kills) + [0]

    # Each write reached the sandbox exactly once (the sandbox's own count), like the twin's...
    assert _ops_on(rig, rig.keep_onprem[0]) == Counter({"assignLicense": 2, "Set-User": 1})
    assert _ops_on(rig, rig.keep_onprem[1]) == Counter({"removeGroupMember": 1, "addGroupMember": 1, "Set-User": 1})
    for identity in services_upn(rig, rig.keep_cloud).values():
        on_prem = Counter(w["operation"] for w in rig.writes() if w["side"] == "onprem" and w["identity"] == identity)
        assert on_prem == Counter({"Disable-Mailbox": 1, "Enable-RemoteMailbox": 1, "Set-RemoteMailbox": 2})
    # ...and the audit log shows every action step sent once, the same steps as the uninterrupted twin.
    for crashed, twin in ((onprem_run, results["onprem-twin"]), (cloud_run, results["cloud-twin"])):
        sent, twin_sent = _sent_per_step(rig, crashed), _sent_per_step(rig, twin)
        assert set(sent.values()) == {1} and sent == twin_sent

    services = services_for(rig.info)
    try:
        assert _signature(services, rig.keep_onprem[0]) == _signature(services, rig.keep_onprem[1])
        assert _signature(services, rig.keep_cloud[0]) == _signature(services, rig.keep_cloud[1])
        found = findings_by_code(services)
        for identity in (*rig.keep_onprem, *rig.keep_cloud):
            assert identity not in found.get("DUAL_MAILBOX", set())
            assert identity not in found.get("PREVIOUS_MAILBOX_INFO", set())
    finally:
        services.close()


def test_runs_killed_at_every_step_resume_and_converge_with_no_action_done_twice(rig: Rig) -> None:
    crash_campaign(rig, KEEP_ONPREM_KILLS, KEEP_CLOUD_KILLS)


def services_upn(rig: Rig, identities: list[str]) -> dict[str, str]:
    """The on-prem identity (AD Guid) each keep-cloud run used, from the run's recorded facts."""
    store = RunStore(rig.root / "data" / "runbooks")
    out: dict[str, str] = {}
    for summary in store.list():
        state = store.load(summary.run_id)
        for key, obj in state.objects.items():
            if key in identities and obj.facts.get("onprem"):
                out[key] = str(obj.facts["onprem"]["Guid"])
    assert set(out) == set(identities)
    return out


def test_a_run_killed_at_a_random_moment_resumes_without_repeating_an_action(rig: Rig) -> None:
    rng = random.Random(SEED)
    confirm = f"{rig.tenant_id}:1"
    args = [*_exocm(), "runbook", "run", "dual-mailbox-keep-onprem", "--identity", rig.random_kill,
            "--onprem-group-changes", *FAST, "--confirm-irreversible", confirm]
    proc = subprocess.Popen(args, env=rig.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the run exists, then kill it a random moment later
        if line.startswith("run "):
            break
    time.sleep(rng.uniform(0.05, 0.5))  # the run needs >= 3 sync cycles of 0.2 s: it is still going
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    store = RunStore(rig.root / "data" / "runbooks")
    run_ids = [s.run_id for s in store.list() if rig.random_kill in store.load(s.run_id).objects]
    assert len(run_ids) == 1
    result = rig.exocm("runbook", "resume", run_ids[0], *FAST, "--confirm-irreversible", confirm)
    assert result.returncode == 0, result.stderr
    assert set(_sent_per_step(rig, run_ids[0]).values()) == {1}
    sam_ops = Counter(w["operation"] for w in rig.writes() if w["operation"].endswith("ADGroupMember"))
    assert sam_ops == Counter({"Remove-ADGroupMember": 1, "Add-ADGroupMember": 1})
    assert _ops_on(rig, rig.random_kill) == Counter({"Set-User": 1})
