#!/usr/bin/env python3
"""Fault campaign: apply plans against a sandbox that misbehaves, and prove nothing is lost or wrong.

    scripts/bench/faults.py [--rows 5000] [--kinds 503,reset,...] [--seed 7] [--bridge rest|psrp|both] --json OUT

For each fault kind, one fresh sandbox tenant and one plan of `--rows` IsExchangeCloudManaged
flips, applied by the real engine (`exocm.core.execute.apply.apply_plan`, REST bridge, MSAL, TLS over
loopback) while the sandbox injects that fault; a run that stops (a fatal read error, a
restart of the service) is resumed, like an admin would, until the plan is complete or
`--max-runs` is reached. Kinds:

- `503`, `reset`, `timeout`, `applied-error`: the sandbox's fault knobs at a per-request rate
  (`timeout` holds the answer longer than the client waits; the write has landed);
- `429-storm`: a write budget far below what the client starts at (120/s), squeezed to a
  third and relaxed again twice during the run, plus a per-tenant concurrency limit;
- `token-expiry`: every issued access token is revoked (401 as expired) every 0.5 s;
- `restart`: the sandbox runs as a child process (`exocm sandbox serve --state FILE
  --durable-writes`); it is killed with SIGKILL mid-run and restarted on the same port
  from the same state file;
- `mixed`: all of the above at once (the restart as stop + start in-process, same state
  file and port).

With `--bridge psrp` (or `both`) the same plans are applied through the PSRP bridge: a
profile with `extra.exo_transport = "psrp"` reaches EXO through the sandbox's WinRM
management host (pypsrp, `Connect-ExchangeOnline -AccessToken`), and the sandbox injects the
same knobs into WSMan requests (HTTP 500 SOAP faults, HTTP 503, resets, unanswered requests,
the empty-message error after a write). Those figures are keyed `psrp:KIND` (REST keeps the
bare kind). PSRP kinds: `503`, `500`, `reset`, `timeout`, `applied-error`, `token-expiry`,
`restart` (stop + start in-process, same state file and ports) and `mixed`; `429-storm` is
REST-only (the WinRM endpoint's write budget delays a write instead of refusing it, see
docs/exchange-facts.md, so there are no 429s to storm). Per-request rates are lower
than REST's (PSRP_RATES): one cmdlet is three or more WSMan requests, and every broken
connection costs a fresh runspace pool and a new Connect-ExchangeOnline.

Afterwards the sandbox's own state is compared with every journal of the plan:
`wrong_state` counts rows whose state disagrees with the journal (a row the journal calls
verified but not at the target, or a row not verified that is no longer at its observed
value); `lost_journal_rows` counts plan rows with no outcome record in any journal; both
must be 0. `failed_with_reason` counts rows that ended failed/stale with a reason. A kind is
`ok` when every row ended verified or failed with a reason, at most 1 % failed, and
`wrong_state` and `lost_journal_rows` are 0; the campaign is `ok` when every kind is.
Writes `{"kinds": {KIND: {"rows", "verified", "failed_with_reason", "wrong_state",
"lost_journal_rows", "resumes", ...}}, ...}`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exocm.core.access.config import sandbox_profile
from exocm.core.access.connect import open_bridge
from exocm.core.access.exo_host import PASSWORD_ENV
from exocm.core.access.token_cache import memory_token_cache
from exocm.core.bridge.base import Bridge
from exocm.core.events import Progress
from exocm.core.execute.apply import ApplyResult, WritePacer, apply_plan
from exocm.core.execute.journal import journals_for_plan, plan_history, read_journal
from exocm.core.inventory.fetch import fetch_inventory
from exocm.core.plan.planfile import Plan, build_plan
from exocm.core.plan.selection import select_all_dirsynced

KINDS: tuple[str, ...] = ("503", "reset", "timeout", "429-storm", "token-expiry", "applied-error", "restart",
                          "mixed")
#: Per-request fault rates of the knob-driven kinds (and of `mixed`, at a fraction of these).
RATES: dict[str, float] = {"503": 0.08, "reset": 0.05, "timeout": 0.02, "applied-error": 0.15}
#: The client gives up on an answer after this many seconds; the sandbox holds a "timeout" longer.
CLIENT_TIMEOUT_S = 2.0
FAULT_TIMEOUT_S = 3.0

BRIDGES: tuple[str, ...] = ("rest", "psrp")
#: Kinds the PSRP bridge runs (429-storm is REST-only: see the module docstring).
PSRP_KINDS: tuple[str, ...] = ("503", "500", "reset", "timeout", "token-expiry", "applied-error", "restart",
                               "mixed")
#: Per-WSMan-request rates: a cmdlet is 3+ requests (Command, Receive, Signal), and a broken connection
#: costs a fresh pool and Connect-ExchangeOnline, so the same per-cmdlet pressure needs lower rates.
PSRP_RATES: dict[str, float] = {"503": 0.03, "500": 0.03, "reset": 0.02, "timeout": 0.003,
                                "applied-error": 0.15}
#: WinRM timeouts of the campaign's PSRP profile (whole seconds: OperationTimeout < HTTP read timeout
#: < the sandbox's hold of a "timeout" fault).
PSRP_OPERATION_TIMEOUT_S = 2
PSRP_READ_TIMEOUT_S = 3
PSRP_FAULT_TIMEOUT_S = 4.0
#: Seconds between token revocations for PSRP (REST: 0.5 s). A PSRP call after a rejected token needs
#: a fresh pool and Connect-ExchangeOnline (0.3-1 s on a loaded 2-core machine): at 0.5 s a new token
#: often dies before its first cmdlet, which has no real counterpart (tokens live 60+ minutes).
PSRP_REVOKE_EVERY_S = 2.0


def figures_key(bridge: str, kind: str) -> str:
    """The key of a kind's figures in the JSON: the bare kind for REST (as before), `psrp:KIND` for PSRP."""
    return kind if bridge == "rest" else f"{bridge}:{kind}"


def tenant_size_for(rows: int) -> int:
    """A generated tenant with at least `rows` dir-synced mailboxes to flip (about 80% of users are)."""
    return int(rows * 1.35) + 200


# --- sandboxes ---------------------------------------------------------------------------------


class InProcess:
    """A sandbox in this process (knobs and token revocation reachable directly)."""

    def __init__(self, size: int, seed: int, state_file: Path | None = None, *, winrm: bool = False,
                 fault_timeout_s: float = FAULT_TIMEOUT_S, **knobs: Any) -> None:
        from exocm.sandbox.server import Sandbox

        def start(port: int, winrm_port: int) -> Any:
            extra = {"winrm_port": winrm_port} if winrm else {}
            return Sandbox.start(size, seed, port=port, state_file=state_file,
                                 fault_timeout_s=fault_timeout_s, winrm=winrm, **extra, **knobs)

        self._start = start
        self.sb = self._start(0, 0)
        self.info: dict[str, Any] = self.sb.info
        self.faults_injected: dict[str, int] = {}

    def restart(self) -> None:
        """Stop (state saved) and start again from the state file on the same port(s)."""
        knobs = self.sb.knobs
        port = self.sb.port
        winrm_port = self.sb.winrm.port if self.sb.winrm is not None else 0
        self._count_faults()
        self.sb.stop()
        time.sleep(0.5)
        self.sb = self._start(port, winrm_port)
        self.sb.knobs.faults = dict(knobs.faults)
        self.sb.knobs.fault_timeout_s = knobs.fault_timeout_s
        self.sb.knobs.write_budget = knobs.write_budget
        self.sb.knobs.concurrency_limit = knobs.concurrency_limit

    def _count_faults(self) -> None:
        for kind, n in (self.sb.stats.snapshot().get("faults_injected") or {}).items():
            self.faults_injected[kind] = self.faults_injected.get(kind, 0) + int(n)

    def cloud_managed(self) -> dict[str, Any]:
        """ExternalDirectoryObjectId (lower case) -> IsExchangeCloudManaged, from the sandbox's own state."""
        self._count_faults()
        return _cloud_managed_of(self.sb.tenant)

    def stop(self) -> None:
        self.sb.stop()


class ChildProcess:
    """A sandbox in a child process (`exocm sandbox serve --state FILE --durable-writes`), killable."""

    def __init__(self, size: int, seed: int, state_file: Path) -> None:
        self.size, self.seed, self.state_file = size, seed, state_file
        self.port = 0
        self.proc = self._spawn()
        self.info = self._info
        self.port = int(str(self.info["rest_base_url"]).rsplit(":", 1)[1])

    def _spawn(self) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-c", "from exocm.cli.main import main; main()", "sandbox", "serve",
               "--size", str(self.size), "--seed", str(self.seed), "--port", str(self.port),
               "--state", str(self.state_file), "--durable-writes", "--print-json"]
        log = open(self.state_file.with_suffix(".log"), "a", encoding="utf-8")  # noqa: SIM115
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        finally:
            log.close()
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            proc.wait()
            tail = self.state_file.with_suffix(".log").read_text(encoding="utf-8")[-2000:]
            raise RuntimeError(f"the sandbox child did not start: {tail}")
        self._info: dict[str, Any] = json.loads(line)
        return proc

    def kill_and_restart(self, down_s: float = 0.5) -> None:
        """SIGKILL the sandbox (no goodbye, no final save) and start it again on the same port."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        time.sleep(down_s)
        self.proc = self._spawn()

    restart = kill_and_restart

    def stop(self) -> None:
        """Stop it cleanly (SIGTERM: the state is saved)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cloud_managed(self) -> dict[str, Any]:
        """The state as the stopped sandbox left it in its state file."""
        self.stop()
        from exocm.sandbox.tenant import Tenant

        return _cloud_managed_of(Tenant.load(self.state_file))


def _cloud_managed_of(tenant: Any) -> dict[str, Any]:
    records = tenant.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, side="exo")
    return {str(r.get("ExternalDirectoryObjectId") or "").lower(): r.get("IsExchangeCloudManaged") for r in records}


# --- one kind ----------------------------------------------------------------------------------


@dataclass
class Disruptor:
    """Background actions during a run: triggered by progress, stopped at the end."""

    actions: list[tuple[float, Callable[[], None]]] = field(default_factory=list)  # (fraction done, action)
    periodic: list[tuple[float, Callable[[], None]]] = field(default_factory=list)  # (every s, action)
    fired: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    _one_at_a_time: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._pending = sorted(self.actions, key=lambda a: a[0])
        for every, action in self.periodic:
            t = threading.Thread(target=self._loop, args=(every, action), daemon=True)
            t.start()
            self._threads.append(t)

    def _loop(self, every: float, action: Callable[[], None]) -> None:
        while not self._stop.wait(every):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - a disruption that fails is reported, not fatal
                print(f"faults: periodic action failed: {exc!r}", file=sys.stderr)

    def progress(self, event: Progress) -> None:
        """Fire the one-shot actions whose fraction of rows is reached (in the caller's thread)."""
        if not event.total:
            return
        frac = event.done / event.total
        due: list[Callable[[], None]] = []
        with self._lock:
            while self._pending and frac >= self._pending[0][0]:
                due.append(self._pending.pop(0)[1])
        for action in due:
            with self._lock:
                self.fired += 1  # counted when it starts: the run is still going
            thread = threading.Thread(target=self._fire, args=(action,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _fire(self, action: Callable[[], None]) -> None:
        try:
            with self._one_at_a_time:  # a second restart waits until the first is done
                action()
        except Exception as exc:  # noqa: BLE001
            print(f"faults: action failed: {exc!r}", file=sys.stderr)

    def stop(self) -> None:
        """Stop the periodic actions and wait for one-shot actions still running (a restart)."""
        self._stop.set()
        for t in list(self._threads):
            t.join(timeout=60)


def _connect(info: dict[str, Any], *, timeout: float = 120.0, bridge: str = "rest") -> Bridge:
    """A bridge to the sandbox the product's way (`open_bridge` on a sandbox profile); for "psrp" the
    profile says `extra.exo_transport = "psrp"` and names the sandbox's WinRM management host."""
    profile = sandbox_profile("faults", info)
    assert profile.secret_env is not None
    env = {profile.secret_env: str(info["client_secret"])}
    if bridge == "psrp":
        profile.extra.update({"exo_transport": "psrp", "winrm_exo_url": info["winrm_exo_url"],
                              "winrm_username": info["winrm_username"],
                              "exo_host_operation_timeout": PSRP_OPERATION_TIMEOUT_S,
                              "exo_host_read_timeout": PSRP_READ_TIMEOUT_S})
        env[PASSWORD_ENV] = str(info["winrm_password"])
    return open_bridge(profile, env=env, token_cache=memory_token_cache(), timeout=timeout)


def _plan(bridge: Bridge, rows: int, label: str = "rest") -> Plan:
    inv = fetch_inventory(bridge)
    selection = select_all_dirsynced(inv.frame)
    full = build_plan(inv.frame, selection.identities, True, tenant=str(bridge.tenant), bridge=label)
    keep = [r.identity for r in full.set_rows()][:rows]
    if len(keep) < rows:
        raise RuntimeError(f"the tenant has only {len(keep)} mailboxes to flip, {rows} wanted")
    return build_plan(inv.frame, keep, True, tenant=str(bridge.tenant), bridge=label)


def _setup_psrp(kind: str, rows: int, seed: int, work: Path,
                rates: dict[str, float]) -> tuple[Any, Disruptor, dict[str, Any]]:
    """`_setup` for the PSRP bridge: an in-process sandbox serving WinRM, faults on WSMan requests."""
    size = tenant_size_for(rows)
    disrupt = Disruptor()
    common: dict[str, Any] = {"winrm": True, "fault_timeout_s": PSRP_FAULT_TIMEOUT_S}
    if kind == "restart":
        sb = InProcess(size, seed, state_file=work / "tenant.sqlite", **common)
        disrupt.actions = [(0.3, sb.restart), (0.7, sb.restart)]
        return sb, disrupt, {}
    if kind == "mixed":
        sb = InProcess(size, seed, state_file=work / "tenant.sqlite", **common)
        disrupt.actions = [(0.3, sb.restart)]
        disrupt.periodic = [(PSRP_REVOKE_EVERY_S, lambda: sb.sb.revoke_tokens())]
        return sb, disrupt, {"faults": {k: v / 3 for k, v in rates.items()}}
    if kind not in rates and kind != "token-expiry":
        raise ValueError(f"unknown PSRP fault kind {kind!r}; known: {', '.join(PSRP_KINDS)}")
    sb = InProcess(size, seed, **common)
    if kind == "token-expiry":
        disrupt.periodic = [(PSRP_REVOKE_EVERY_S, lambda: sb.sb.revoke_tokens())]
        return sb, disrupt, {}
    return sb, disrupt, {"faults": {kind: rates[kind]}}


def _setup(kind: str, rows: int, seed: int, work: Path,
           rates: dict[str, float]) -> tuple[Any, Disruptor, dict[str, Any]]:
    """The sandbox for `kind`, the disruptions to run, and the bridge options."""
    size = tenant_size_for(rows)
    disrupt = Disruptor()
    if kind == "restart":
        child = ChildProcess(size, seed, work / "tenant.sqlite")
        disrupt.actions = [(0.3, child.kill_and_restart), (0.7, child.kill_and_restart)]
        return child, disrupt, {}
    if kind == "mixed":
        sb = InProcess(size, seed, state_file=work / "tenant.sqlite", write_budget=150.0, concurrency_limit=12)
        disrupt.actions = [(0.3, sb.restart)]
        disrupt.periodic = [(0.5, lambda: sb.sb.revoke_tokens())]
        return sb, disrupt, {"faults": {k: v / 3 for k, v in rates.items()}, "timeout": CLIENT_TIMEOUT_S,
                             "pacer": WritePacer(initial_rate=400)}
    if kind == "429-storm":
        # a budget the run overshoots at once (120/s, squeezed to 40/s); smaller plans get smaller budgets
        high = float(min(120, max(10, rows // 2)))
        sb = InProcess(size, seed, write_budget=high, concurrency_limit=8)

        def budget(value: float) -> Callable[[], None]:
            return lambda: setattr(sb.sb.knobs, "write_budget", value)

        squeeze, relax = budget(high / 3), budget(high)
        disrupt.actions = [(0.2, squeeze), (0.4, relax), (0.6, squeeze), (0.8, relax)]
        return sb, disrupt, {"pacer": WritePacer(initial_rate=600)}
    sb = InProcess(size, seed)
    if kind == "token-expiry":
        disrupt.periodic = [(0.5, lambda: sb.sb.revoke_tokens())]
        return sb, disrupt, {}
    if kind in rates:
        return sb, disrupt, {"faults": {kind: rates[kind]}, "timeout": CLIENT_TIMEOUT_S}
    raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")


def run_kind(kind: str, *, rows: int, seed: int = 7, max_runs: int = 8, work: Path,
             concurrency: int = 8, rates: dict[str, float] | None = None, bridge: str = "rest") -> dict[str, Any]:
    """Run one fault kind end to end through `bridge` ("rest" or "psrp") and return its figures
    (`rates` overrides RATES, or PSRP_RATES for "psrp")."""
    if bridge not in BRIDGES:
        raise ValueError(f"unknown bridge {bridge!r}; known: {', '.join(BRIDGES)}")
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    started = time.perf_counter()
    if bridge == "psrp":
        service, disrupt, options = _setup_psrp(kind, rows, seed, work, {**PSRP_RATES, **(rates or {})})
    else:
        service, disrupt, options = _setup(kind, rows, seed, work, {**RATES, **(rates or {})})
    faults = options.pop("faults", None)
    timeout = float(options.pop("timeout", 120.0))
    results: list[ApplyResult] = []
    try:
        setup_bridge = _connect(service.info)  # the plan is built over REST, before any fault
        try:
            plan = _plan(setup_bridge, rows, bridge)
        finally:
            setup_bridge.close()
        if faults:
            service.sb.knobs.faults = dict(faults)
        apply_bridge = _connect(service.info, timeout=timeout, bridge=bridge)
        disrupt.start()
        try:
            for _ in range(max_runs):
                result = apply_plan(apply_bridge, plan, data_dir=data, max_age=None, concurrency=concurrency,
                                    progress=disrupt.progress, **options)
                results.append(result)
                if result.complete:
                    break
                options.pop("pacer", None)  # a resume starts with a fresh pacer, like a new process
        finally:
            disrupt.stop()
            apply_bridge.close()
        if isinstance(service, InProcess):
            service.sb.knobs.faults = {}
        state = service.cloud_managed()
    finally:
        service.stop()
    figures = check(plan, data / "journals", state)
    figures.update(
        kind=kind,
        bridge_kind=bridge,
        runs=len(results),
        resumes=len(results) - 1,
        complete=bool(results and results[-1].complete),
        disruptions_fired=disrupt.fired,
        elapsed_s=round(time.perf_counter() - started, 1),
        apply_s=round(sum(r.elapsed_s for r in results), 1),
        run_errors=[r.error for r in results if r.error],
        bridge=_sum_stats(results),
    )
    if isinstance(service, InProcess):
        figures["faults_injected"] = service.faults_injected
    return figures


def _sum_stats(results: list[ApplyResult]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        for key in ("requests", "http_429", "retries", "token_refreshes", "transport_errors", "pipelines",
                    "pools_opened"):
            out[key] = out.get(key, 0) + int(r.bridge_stats.get(key, 0) or 0)
    return out


def check(plan: Plan, journals: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Compare the sandbox's state with every journal of the plan (see the module docstring)."""
    history = plan_history(plan.digest, journals)
    outcomes: dict[str, dict[str, Any]] = {}
    for contents in history.journals:
        for record in contents.rows():
            outcomes[record["identity"]] = record
    outcomes.update(history.verified)
    bad_warnings = [w for c in history.journals for w in c.warnings if "torn write" not in w]
    verified = with_reason = without_reason = wrong = lost = 0
    wrong_examples: list[str] = []
    statuses: dict[str, int] = {}
    for row in plan.rows:
        actual = state.get(row.identity.lower(), "absent")
        record = outcomes.get(row.identity)
        if record is None:
            lost += 1
            continue
        status = str(record.get("status"))
        statuses[status] = statuses.get(status, 0) + 1
        if status == "verified":
            verified += 1
            ok = actual is plan.value
        else:
            if record.get("reason") or record.get("error"):
                with_reason += 1
            else:
                without_reason += 1
            # a row not verified must still hold the value the plan observed (a skip row: its own)
            expected = row.observed.is_cloud_managed
            ok = actual == expected
        if not ok:
            wrong += 1
            if len(wrong_examples) < 5:
                wrong_examples.append(f"{row.identity}: journal {status}, sandbox {actual!r}")
    return {
        "rows": len(plan.rows),
        "verified": verified,
        "failed_with_reason": with_reason,
        "ended_without_reason": without_reason,
        "wrong_state": wrong,
        "lost_journal_rows": lost,
        "final_statuses": statuses,
        "journals": len(journals_for_plan(plan.digest, journals)),
        "journal_problems": bad_warnings[:5],
        "journal_lines_unreadable": len(bad_warnings),
        "wrong_examples": wrong_examples,
        "journal_records": sum(len(read_journal(p).records) for p in journals_for_plan(plan.digest, journals)),
    }


#: Share of a kind's rows that may end failed (with a reason) and the kind still be ok.
MAX_FAILED_SHARE = 0.01


def kind_ok(figures: dict[str, Any], max_failed_share: float = MAX_FAILED_SHARE) -> bool:
    """A kind is ok when every row ended verified or failed with a reason, at most
    `max_failed_share` of its rows failed, and nothing is wrong in the tenant or lost."""
    rows = int(figures.get("rows", 0))
    verified = int(figures.get("verified", 0))
    failed = int(figures.get("failed_with_reason", 0))
    return (rows > 0 and verified + failed == rows and int(figures.get("ended_without_reason", 0)) == 0
            and failed <= max_failed_share * rows
            and int(figures.get("wrong_state", 0)) == 0 and int(figures.get("lost_journal_rows", 0)) == 0)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="plan rows per fault kind")
    parser.add_argument("--kinds", default=None,
                        help=f"comma-separated, of: {', '.join(KINDS)} (REST), {', '.join(PSRP_KINDS)} (PSRP); "
                             "default: every kind the chosen bridge(s) run")
    parser.add_argument("--bridge", choices=("rest", "psrp", "both"), default="rest",
                        help="apply through the REST bridge (default; keys are the bare kinds), the PSRP bridge "
                             "through the sandbox's WinRM management host (keys 'psrp:KIND'), or both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-runs", type=int, default=8, help="apply runs per kind at most (first + resumes)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep tenants and journals here")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    bridges = list(BRIDGES) if args.bridge == "both" else [args.bridge]
    known = {"rest": KINDS, "psrp": PSRP_KINDS}
    asked = None if args.kinds is None else [k.strip() for k in args.kinds.replace(" ", ",").split(",") if k.strip()]
    unknown = [k for k in asked or [] if not any(k in known[b] for b in bridges)]
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(unknown)}; known: "
                     + "; ".join(f"{b}: {', '.join(known[b])}" for b in bridges))
    runs = [(b, k) for b in bridges for k in known[b] if asked is None or k in asked]
    skipped = [figures_key(b, k) for b in bridges for k in asked or [] if k not in known[b]]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="exocm-faults-"))
    out: dict[str, Any] = {"rows": args.rows, "seed": args.seed, "bridges": bridges, "kinds": {}}
    if skipped:
        out["skipped"] = skipped  # e.g. psrp:429-storm, a REST-only kind
    try:
        for bridge, kind in runs:
            key = figures_key(bridge, kind)
            figures = run_kind(kind, rows=args.rows, seed=args.seed, max_runs=args.max_runs,
                               work=work / key.replace(":", "-"), concurrency=args.concurrency, bridge=bridge)
            out["kinds"][key] = figures
            print(f"{key:>19}: rows {figures['rows']} verified {figures['verified']} "
                  f"failed_with_reason {figures['failed_with_reason']} wrong_state {figures['wrong_state']} "
                  f"lost_journal_rows {figures['lost_journal_rows']} resumes {figures['resumes']} "
                  f"({figures['elapsed_s']} s)", file=sys.stderr, flush=True)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    for figures in out["kinds"].values():
        figures["ok"] = kind_ok(figures)
    out["ok"] = bool(out["kinds"]) and all(k["ok"] for k in out["kinds"].values())
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
