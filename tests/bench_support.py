"""Import the benchmark scripts (scripts/bench/*.py) as modules, for tests of their logic."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent.parent / "scripts" / "bench"


def bench_module(name: str) -> ModuleType:
    """scripts/bench/<name>.py as a module (its folder goes on sys.path, as when it runs)."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module(name)
