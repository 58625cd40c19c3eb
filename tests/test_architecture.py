"""The engine is headless: importing every exocm.core module loads no UI library and no sandbox."""
from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("textual", "rich", "click", "typer", "exocm.sandbox", "exocm.cli", "exocm.tui")

_PROBE = r"""
import importlib, json, pkgutil, sys
import exocm.core
names = sorted(m.name for m in pkgutil.walk_packages(exocm.core.__path__, "exocm.core."))
only = sys.argv[2:]
for name in (only or names):
    importlib.import_module(name)
forbidden = tuple(sys.argv[1].split(","))
loaded = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
print(json.dumps({"modules": names, "loaded": loaded}))
"""


def _probe(*modules: str) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", _PROBE, ",".join(FORBIDDEN), *modules], capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, f"importing exocm.core failed:\n{done.stderr[-3000:]}"
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_all_of_core_loads_no_ui_library_and_no_sandbox() -> None:
    result = _probe()
    assert "exocm.core.bridge.rest" in result["modules"] and "exocm.core.access.auth" in result["modules"]
    if result["loaded"]:
        culprits = [name for name in result["modules"] if _probe(name)["loaded"]]
        raise AssertionError(f"exocm.core pulled in {result['loaded']} via {culprits}")
