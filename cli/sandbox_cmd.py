"""`exocm sandbox`: serve a local tenant that speaks Exchange Online's protocols, and tools around it.

    exocm sandbox serve --size 1000 --port 0 --print-json
    exocm sandbox approve CODE --url https://127.0.0.1:PORT --ca-file CA
    exocm sandbox sync --from-sandbox FILE         (a sync cycle now)
    exocm sandbox planted --size N --seed S        (ground truth, from the tenant model)
    exocm sandbox export-onprem ...                (on-prem CSV export, from the tenant model)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click
from exocm.core.files import write_atomic

from .exitcodes import AUTH_FAILED, ERROR
from .lazy_group import LazyGroup
from .stop_signals import on_stop_signals

# Commands of the tenant model's own module, imported on first use.
_LAZY: dict[str, str] = {
    "export-onprem": "exocm.cli.sandbox_model_cmds:export_onprem",
    "planted": "exocm.cli.sandbox_model_cmds:planted",
}


@click.group(cls=LazyGroup, lazy=_LAZY)
def sandbox() -> None:
    """A local SANDBOX tenant (token endpoint, Exchange Online REST, Graph) over loopback TLS.

    Nothing here touches a Microsoft tenant.
    """


def _parse_faults(specs: tuple[str, ...]) -> dict[str, float]:
    from exocm.sandbox.knobs import parse_fault

    faults: dict[str, float] = {}
    for spec in specs:
        try:
            kind, rate = parse_fault(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--fault") from None
        faults[kind] = rate
    return faults


def _write_info_file(directory: Path, info: dict[str, Any]) -> Path:
    return write_atomic(directory / "sandbox.json", (json.dumps(info) + "\n").encode("utf-8"))


def _profile_snippet(info: dict[str, Any]) -> str:
    return "\n".join([
        "[profiles.sandbox]",
        f'tenant = "{info["tenant"]}"',
        f'client_id = "{info["client_id"]}"',
        'cloud = "custom"',
        'auth = "secret"',
        'secret_env = "EXOCM_SANDBOX_SECRET"',
        f'authority = "{info["authority"]}"',
        f'rest_base_url = "{info["rest_base_url"]}"',
        f'scope = "{info["scope"]}"',
        f'ca_file = "{info["ca_file"]}"',
        "sandbox = true",
    ])


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


SERVE_EXAMPLES = """\b
Examples:
  exocm sandbox serve                                   1,000 users on a free port, until Ctrl-C
  exocm sandbox serve --size 1000 --port 0 --print-json > sandbox.json
  exocm profiles add sbx --from-sandbox sandbox.json    then: exocm inventory --profile sbx
  exocm sandbox serve --state tenant.sqlite --port 8443 --sync-interval 30
  exocm sandbox serve --latency-ms 150 --concurrency-limit 10 --write-budget 50 --fault 503=0.05
  exocm sandbox serve --strict --print-json > strict.json   the most conservative reading of the service
  exocm sandbox serve --variant cursor-advances,edoid-no-wildcard-literal
(commands with no profile use an embedded sandbox of their own; see 'exocm sandbox reset')
"""


@sandbox.command("serve", epilog=SERVE_EXAMPLES)
@click.option("--size", type=click.IntRange(10, 300_000), default=1000, show_default=True,
              help="Users in the generated tenant.")
@click.option("--seed", type=int, default=42, show_default=True, help="Generator seed (same seed, same tenant).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="HTTPS port (0 = pick a free one).")
@click.option("--latency-ms", type=click.FloatRange(0), default=0, show_default=True,
              help="Service time of each REST/Graph request: a read is answered this long after it "
                   "arrived (its page built meanwhile), a write applied after it.")
@click.option("--latency-jitter-ms", type=click.FloatRange(0), default=0, show_default=True,
              help="Uniform jitter (+/-) around --latency-ms.")
@click.option("--batch-item-ms", type=click.FloatRange(0), default=None,
              help="Server time of each $batch item, run in the batch's slot (default: --latency-ms).")
@click.option("--concurrency-limit", type=click.IntRange(1), default=None,
              help="In-flight REST requests (and WinRM shells) per tenant before 429 / a WinRM fault.")
@click.option("--write-budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Writes per second (token bucket); beyond it 429 + Retry-After.")
@click.option("--fault", "faults", multiple=True, metavar="KIND=RATE",
              help="Inject a fault at a rate 0..1; KIND: 500, 503, reset, timeout, applied-error. Repeatable.")
@click.option("--fault-timeout-s", type=click.FloatRange(0), default=30.0, show_default=True,
              help="How long a 'timeout' fault holds a request before dropping it.")
@click.option("--token-lifetime-s", type=click.IntRange(1), default=3600, show_default=True,
              help="Lifetime of issued access tokens.")
@click.option("--sync-interval", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Run a sync cycle every SECONDS (default: only on demand, 'exocm sandbox sync').")
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite file: load the tenant from it (else generate and save), save after writes and on exit.")
@click.option("--durable-writes", is_flag=True,
              help="With --state: save before answering each write (kill -9 then loses nothing acknowledged).")
@click.option("--print-json", is_flag=True, help="First stdout line: one JSON object with the endpoints and credentials.")
@click.option("--device-code-approval", type=click.Choice(["auto", "manual"]), default="auto", show_default=True,
              help="Approve device-code sign-ins at once, or wait for 'exocm sandbox approve CODE'.")
@click.option("--verbose", is_flag=True, help="Log every request to stderr.")
@click.option("--groups", type=click.IntRange(0, 500_000), default=None,
              help="Groups in the generated tenant (default: size / 5, at least 12).")
@click.option("--tenants", type=click.IntRange(1, 500), default=None,
              help="Serve this many tenants on the one port (seeds SEED, SEED+1, ...; each with its own state, "
                   "knobs and credentials); --print-json lists them under \"tenants\".")
@click.option("--variant", "variants", multiple=True, metavar="NAME[,NAME...]",
              help="Conformance variants: readings of Exchange Online that public sources allow "
                   "(bool-literals, org-config-block, edoid-no-wildcard-error, edoid-no-wildcard-literal, "
                   "prtd-null, adminapi-errors, cursor-advances, error-with-text, writeback-off, writeback-phase2); "
                   "and readiness states (readiness-healthy, no-routing-domain, dirsync-off, old-sync-client, "
                   "writeback-old-job, writeback-old-agent, hybrid-leftovers, public-folders-onprem, "
                   "tenant-default-on-with-onprem-provisioning, big-group, no-sync-server, feature-missing).")
@click.option("--strict", is_flag=True,
              help="Rehearse against the most conservative reading: bool-literals, org-config-block, prtd-null, "
                   "adminapi-errors, error-with-text, writeback-off.")
def serve(size: int, seed: int, host: str, port: int, latency_ms: float, latency_jitter_ms: float,
          batch_item_ms: float | None, concurrency_limit: int | None, write_budget: float | None, faults: tuple[str, ...],
          fault_timeout_s: float, token_lifetime_s: int, sync_interval: float | None, state_file: Path | None,
          durable_writes: bool, print_json: bool, device_code_approval: str, verbose: bool,
          groups: int | None, variants: tuple[str, ...], strict: bool, tenants: int | None) -> None:
    """Serve a SANDBOX tenant (or --tenants N of them) until Ctrl-C (the state, if any, is saved on exit)."""
    from exocm.sandbox.server import Sandbox, tune_for_serving
    from exocm.sandbox.state import StateError
    from exocm.sandbox.variants import parse_variants

    fault_rates = _parse_faults(faults)
    try:
        chosen = parse_variants(variants, strict=strict)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--variant") from None
    out = sys.stderr if print_json else sys.stdout
    if state_file is not None and state_file.exists():
        click.echo(f"SANDBOX: loading the tenant from {state_file} ...", file=sys.stderr)
    else:
        many = f"{tenants} tenants" if tenants else "a tenant"
        click.echo(f"SANDBOX: generating {many} of {size:,} users (seed {seed}) ...", file=sys.stderr)
    if chosen:
        click.echo(f"SANDBOX: conformance variants in force: {', '.join(sorted(chosen))}", file=sys.stderr)
    started = time.perf_counter()
    try:
        sb = Sandbox.start(size=size, seed=seed, host=host, port=port, latency_ms=latency_ms,
                           latency_jitter_ms=latency_jitter_ms, concurrency_limit=concurrency_limit,
                           batch_item_ms=batch_item_ms, write_budget=write_budget, faults=fault_rates, fault_timeout_s=fault_timeout_s,
                           token_lifetime_s=token_lifetime_s, sync_interval=sync_interval, state_file=state_file,
                           auto_approve_device_code=device_code_approval == "auto",
                           durable_writes=durable_writes, verbose=verbose, groups=groups, variants=chosen,
                           tenants=tenants)
    except StateError as exc:
        click.echo(f"error: {exc}; give another --state file, or delete this one to generate a new tenant",
                   file=sys.stderr)
        sys.exit(ERROR)
    except OSError as exc:
        where = (f"cannot write the state file {state_file}" if exc.filename and state_file is not None
                 and Path(exc.filename) in (state_file, state_file.parent) else f"cannot serve on {host}:{port}")
        click.echo(f"error: {where}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(ERROR)
    tune_for_serving()
    info = sb.info
    if print_json:
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
    info_file = _write_info_file(sb.material.directory, info)
    if tenants is not None:
        _serve_many(sb, info, info_file, state_file, out)
        return
    lines = [
        f"SANDBOX tenant {info['tenant']} ({info['tenant_domain']}) ready in "
        f"{time.perf_counter() - started:.1f} s -- a local stand-in, not a Microsoft tenant",
        f"  authority      {info['authority']}",
        f"  REST           {info['rest_base_url']}/adminapi/beta/{info['tenant']}/InvokeCommand",
        f"  scope          {info['scope']}",
    ]
    if "graph_base_url" in info:
        lines.append(f"  Graph          {info['graph_base_url']}/v1.0/")
    if "winrm_onprem_url" in info:
        lines.append(f"  WinRM on-prem  {info['winrm_onprem_url']} (user {info.get('winrm_username', '')})")
    if "winrm_exo_url" in info:
        lines.append(f"  WinRM EXO host {info['winrm_exo_url']}")
    lines += [
        f"  CA file        {info['ca_file']}",
        f"  client id      {info['client_id']} (secret, certificate {info['client_cert_thumbprint']})",
        f"  device client  {info['device_client_id']} (device code: "
        f"{'auto-approved' if device_code_approval == 'auto' else 'approve with exocm sandbox approve CODE'})",
        f"  credentials    {info_file} (0600; includes the client secret)",
    ]
    if state_file is not None:
        lines.append(f"  state          {state_file}")
    lines += ["", "Add a profile for it:", f"  exocm profiles add sandbox --from-sandbox {info_file}",
              "or in config.toml (put the secret in EXOCM_SANDBOX_SECRET):", _profile_snippet(info), "",
              "Press Ctrl-C to stop."]
    saved = f"; state saved to {state_file}" if state_file is not None else ""
    _announce_and_wait(sb, lines, out, saved)


def _serve_many(sb: Any, info: dict[str, Any], info_file: Path, state_file: Path | None, out: Any) -> None:
    """Announce the tenants of a --tenants sandbox and serve them until Ctrl-C / SIGTERM."""
    lines = [f"SANDBOX: {len(info['tenants'])} tenants on {info['base_url']} -- local stand-ins, not Microsoft"]
    for k, member in enumerate(info["tenants"], start=1):
        lines.append(f"  {k:>3}  {member['tenant']}  {member['tenant_domain']}  client id {member['client_id']}")
    lines += [f"  CA file        {info['ca_file']}",
              f"  credentials    {info_file} (0600; includes the client secrets)", "",
              "Add one profile per tenant (NAME-1 ... NAME-N):",
              f"  exocm profiles add msp --from-sandbox {info_file}", "", "Press Ctrl-C to stop."]
    saved = f"; states saved next to {state_file}" if state_file is not None else ""
    _announce_and_wait(sb, lines, out, saved)


def _announce_and_wait(sb: Any, lines: list[str], out: Any, saved: str) -> None:
    """Print the announcement, serve until Ctrl-C / SIGTERM (Ctrl+Break or a closed console on
    Windows), stop the sandbox and say where its state went."""
    click.echo("\n".join(lines), file=out)
    out.flush()
    try:
        with on_stop_signals(_on_sigterm):
            sb.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()
    click.echo(f"SANDBOX stopped{saved}.", file=sys.stderr)


@sandbox.command("reset")
@click.option("--size", type=click.IntRange(1), default=None,
              help="Users of the embedded sandbox to reset (default 5000).")
@click.option("--seed", type=int, default=None, help="Its seed (default 42).")
@click.option("--all", "reset_all", is_flag=True, help="Reset every saved embedded sandbox.")
def reset(size: int | None, seed: int | None, reset_all: bool) -> None:
    """Start the embedded sandbox over: delete its saved state (the next command generates it anew).

    \b
    Examples:
      exocm sandbox reset                       the default one (5,000 users, seed 42)
      exocm sandbox reset --size 1000 --seed 7  the one 'exocm ... --size 1000 --seed 7' uses
      exocm sandbox reset --all                 every saved one

    Plans and journals stay; rows of an old plan show as stale against the new tenant.
    """
    from exocm.core.access.config import ConfigError, embedded_sandbox_state

    from .embedded_sandbox import DEFAULT_SANDBOX_SEED, DEFAULT_SANDBOX_SIZE, delete_state, existing_states

    if reset_all and (size is not None or seed is not None):
        raise click.UsageError("--all resets every embedded sandbox; leave out --size and --seed")
    if reset_all:
        targets = [(sz, sd) for sz, sd, _ in existing_states()]
    else:
        targets = [(size or DEFAULT_SANDBOX_SIZE, DEFAULT_SANDBOX_SEED if seed is None else seed)]
    deleted_any = False
    for sz, sd in targets:
        try:
            deleted = delete_state(sz, sd)
        except ConfigError as exc:
            click.echo(f"exocm: error: {exc}", err=True)
            sys.exit(ERROR)
        for path in deleted:
            click.echo(f"deleted {path}")
        if deleted:
            deleted_any = True
            click.echo(f"SANDBOX ({sz:,} users, seed {sd}) reset: the next command generates it anew")
    if not deleted_any:
        if reset_all or not targets:
            click.echo("nothing to reset: no embedded sandbox has been saved yet")
        else:
            sz, sd = targets[0]
            click.echo(f"nothing to reset: no embedded sandbox state at {embedded_sandbox_state(sz, sd)}")
        others = existing_states()
        if others:
            click.echo("saved embedded sandboxes: " + ", ".join(
                f"--size {o_size} --seed {o_seed}" for o_size, o_seed, _ in others))


@sandbox.command("approve")
@click.argument("code")
@click.option("--url", required=True, help="Base URL of the sandbox (https://127.0.0.1:PORT).")
@click.option("--ca-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The sandbox's CA file (ca_file of --print-json).")
def approve(code: str, url: str, ca_file: str) -> None:
    """Approve a pending device-code sign-in as the sandbox's admin."""
    import ssl

    import httpx

    ctx = ssl.create_default_context(cafile=ca_file)
    try:
        with httpx.Client(verify=ctx, trust_env=False, timeout=10) as client:
            resp = client.post(f"{url.rstrip('/')}/devicelogin", data={"user_code": code})
    except httpx.HTTPError as exc:
        click.echo(f"error: cannot reach the sandbox at {url}: {exc}", err=True)
        sys.exit(ERROR)
    if resp.status_code != 200:
        click.echo(f"error: {resp.text.strip()}", err=True)
        sys.exit(ERROR)
    click.echo(f"approved {code}")


@sandbox.command("sync")
@click.option("--from-sandbox", "source", required=True, metavar="FILE",
              help="File with the JSON line of 'exocm sandbox serve --print-json' ('-' = stdin).")
@click.option("--full", is_flag=True, help="A full (initial) cycle: every on-prem value again, not only changes.")
def sync(source: str, full: bool) -> None:
    """Run a sync cycle now on a served sandbox (on-prem changes and licences reach Exchange Online).

    \b
    Examples:
      exocm sandbox serve --print-json > sandbox.json &
      exocm sandbox sync --from-sandbox sandbox.json
      exocm sandbox sync --from-sandbox sandbox.json --full
    Without it, a served sandbox syncs only every --sync-interval seconds (if given). Signs in
    with the sandbox app's client credentials from the file.
    """
    import ssl

    import httpx
    from exocm.core.access.config import ConfigError

    from .profiles_cmd import _read_sandbox_info

    try:
        info = _read_sandbox_info(source)
        keys = ("authority", "client_id", "client_secret", "scope", "rest_base_url", "ca_file")
        missing = [k for k in keys if not isinstance(info.get(k), str)]
        if missing:
            raise ConfigError(f"{source!r} lacks {', '.join(missing)} (not a 'sandbox serve --print-json' line)")
        if not Path(str(info["ca_file"])).is_file():
            raise ConfigError(f"the sandbox's CA file {info['ca_file']} is gone: that sandbox has stopped "
                              "(start it again and use its new JSON line)")
        ctx = ssl.create_default_context(cafile=str(info["ca_file"]))
    except (ConfigError, OSError, ssl.SSLError) as exc:
        click.echo(f"exocm: error: {exc}", err=True)
        sys.exit(ERROR)
    url = str(info["rest_base_url"]).rstrip("/")
    try:
        with httpx.Client(verify=ctx, trust_env=False, timeout=60) as client:
            token = client.post(f"{str(info['authority']).rstrip('/')}/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": info["client_id"],
                "client_secret": info["client_secret"], "scope": info["scope"]})
            if token.status_code != 200:
                click.echo(f"exocm: error: the sandbox refused its own credentials (HTTP {token.status_code}); "
                           "is the file from the sandbox now serving?", err=True)
                sys.exit(AUTH_FAILED)
            resp = client.post(f"{url}/sandbox/sync", params={"full": "true"} if full else None,
                               headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    except httpx.HTTPError as exc:
        click.echo(f"exocm: error: cannot reach the sandbox at {url} ({exc.__class__.__name__}); "
                   "is 'exocm sandbox serve' still running?", err=True)
        sys.exit(ERROR)
    if resp.status_code != 200:
        click.echo(f"exocm: error: the sandbox answered HTTP {resp.status_code}", err=True)
        sys.exit(ERROR)
    body = resp.json()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(body.get("result", {}).items()) if v)
    click.echo(f"SANDBOX sync cycle ({body.get('policy', 'Delta')}) done" + (f": {counts}" if counts else ""))
