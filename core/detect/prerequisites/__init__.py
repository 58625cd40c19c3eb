"""Prerequisite checks: what must hold before the first flip (`flip`) and before the last Exchange
server goes (`decommission`), each check with a stable code, a result (pass/warn/fail/unknown),
a severity, the evidence and the fix.

Not to be confused with `detect/readiness.py`, which is the per-row readiness of a plan.

    model.py                the vocabulary (codes, results, Facts)
    gather.py               reads the facts from their sources
    checks_flip.py          the flip checks
    checks_decommission.py  the decommission checks
    report.py               summary, table / JSON / CSV / HTML
"""
from __future__ import annotations

from .checks_decommission import DECOMMISSION_CHECKS
from .checks_flip import FLIP_CHECKS
from .model import CHECK_SPECS, RESULTS, SCOPES, SPECS, Check, Facts, codes_for

__all__ = ["CHECK_SPECS", "RESULTS", "SCOPES", "SPECS", "Check", "Facts", "codes_for", "evaluate"]


def evaluate(facts: Facts, scope: str = "flip") -> list[Check]:
    """Run the scope's checks over the facts, in report order."""
    funcs = FLIP_CHECKS + (DECOMMISSION_CHECKS if scope == "decommission" else ())
    return [func(facts) for func in funcs]
