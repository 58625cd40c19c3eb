"""`exocm sandbox export-onprem` and `exocm sandbox planted`: the tenant model's own commands.

Both build the same deterministic tenant as `exocm sandbox serve --size N --seed S` (or read a
`--state FILE`), so tests and benchmarks can compare what the product finds with what is there.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .exitcodes import ERROR

_VARIANTS = ("default", "notype", "script", "utf16", "semicolon", "utf8-nobom")


def _tenant(size: int, seed: int, state: Path | None, embedded: bool = False, groups: int | None = None) -> Any:
    if embedded:
        from click.core import ParameterSource
        from exocm.core.access.config import embedded_sandbox_state

        from .embedded_sandbox import DEFAULT_SANDBOX_SIZE

        ctx = click.get_current_context()
        if ctx.get_parameter_source("size") in (None, ParameterSource.DEFAULT):
            size = DEFAULT_SANDBOX_SIZE
        state = embedded_sandbox_state(size, seed)
        if not state.exists():
            raise ValueError(f"no embedded sandbox saved at {state} yet (any 'exocm ... --size {size} "
                             f"--seed {seed}' command without a profile creates it)")
    if state is not None:
        from exocm.sandbox.tenant import Tenant

        return Tenant.load(state)
    from exocm.sandbox.generator import generate_tenant

    return generate_tenant(size, seed, groups=groups)


_size = click.option("--size", type=click.IntRange(10, 300_000), default=1000, show_default=True,
                     help="Users in the generated tenant.")
_seed = click.option("--seed", type=int, default=42, show_default=True, help="Generator seed.")
_state = click.option("--state", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                      help="Read the tenant from this state file (exocm sandbox serve --state) instead.")
_embedded = click.option("--embedded", is_flag=True,
                         help="Read the embedded sandbox the other commands use (its saved state; "
                              "--size defaults to 5000 then), with every change made to it so far.")


@click.command("export-onprem")
@_size
@_seed
@_state
@_embedded
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV file to write.")
@click.option("--variant", type=click.Choice(_VARIANTS), default="default", show_default=True,
              help="Export-Csv style: #TYPE line or not, UTF-8 with/without BOM, UTF-16, ';' delimiter.")
def export_onprem(size: int, seed: int, state: Path | None, embedded: bool, out: Path, variant: str) -> None:
    """Write the sandbox's on-prem side as Export-ExocmOnPrem.ps1 would (Get-Mailbox + Get-RemoteMailbox)."""
    from exocm.sandbox.onprem_export import write_onprem_csv

    try:
        n = write_onprem_csv(_tenant(size, seed, state, embedded), out, variant=variant)
    except (OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ERROR)
    click.echo(f"wrote {n} on-prem recipients to {out} ({variant})", err=True)


@click.command("planted")
@_size
@_seed
@_state
@_embedded
@click.option("--groups", type=click.IntRange(0, 500_000), default=None,
              help="Groups in the generated tenant (as 'exocm sandbox serve --groups').")
@click.option("--variant", "variants", multiple=True, metavar="NAME[,NAME]",
              help="Readiness variants applied to a generated tenant (as 'sandbox serve --variant').")
def planted(size: int, seed: int, state: Path | None, embedded: bool, groups: int | None,
            variants: tuple[str, ...]) -> None:
    """Print the ground truth as JSON: mailbox finding code -> sorted ExternalDirectoryObjectIds,
    under "objects" the group/contact/user codes -> sorted Entra object ids, and under "readiness"
    check code -> the result exocm readiness must give (with the on-prem side read).

    Shape: {"DUAL_MAILBOX": [...], ..., "objects": {"group": {"GROUP_CHILD_NOT_CONVERTED": [...], ...},
    "contact": {"OBJECT_NOT_SYNCED": [...], ...}, "user": {...}}, "readiness": {"ROUTING_DOMAIN": "pass", ...}}
    (exocm.sandbox.object_findings, exocm.sandbox.readiness_state)."""
    try:
        tenant = _tenant(size, seed, state, embedded, groups)
        from exocm.sandbox.readiness_state import apply_variants, expected_readiness, parse_variants

        names = [n for n in parse_variants(list(variants)) if n not in tenant.readiness.applied]
        if names:
            apply_variants(tenant, names)
        truth: dict[str, Any] = dict(tenant.planted())
        truth["objects"] = tenant.planted_objects()
        truth["readiness"] = expected_readiness(tenant)
    except (OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ERROR)
    click.echo(json.dumps(truth, indent=2))
