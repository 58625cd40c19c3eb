"""Shared fixtures: sandbox tenants served over loopback TLS.

- `sandbox`: one Sandbox for the whole session (1,000 users, seed 42). Read from it freely;
  do not change its knobs or write to it in ways other tests could notice -- use
  `make_sandbox` for that.
- `make_sandbox(**kwargs)`: a factory; each call starts a fresh Sandbox (defaults: 300 users,
  seed 7) with any `Sandbox.start` keyword (latency_ms, concurrency_limit, write_budget,
  faults, token_lifetime_s, clock, state_file, tenant, ...). All are stopped after the test.
- `_private_exocm_dirs` (autouse): every test gets its own EXOCM_DATA_DIR and EXOCM_CONFIG_DIR
  (fresh temp dirs), so profiles, journals and the embedded sandbox's saved state never leak
  from one test to the next even when CI exports one pair for the whole run. A test that
  sets its own (monkeypatch.setenv, a subprocess env) simply overrides them.
"""
from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from exocm.sandbox.server import Sandbox

# A suite started as a background job of a non-interactive shell (nohup, `cmd &` in CI scripts)
# inherits SIGINT as ignored, and so would every process the tests start: the tests that press
# Ctrl-C on `exocm apply` or `exocm sandbox serve` would then see it ignored. A Python handler
# here becomes SIG_DFL across exec, so the children get a real Ctrl-C again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SESSION_SIZE = 1000
SESSION_SEED = 42


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `slow` run only when asked for (`-m slow`); a plain run skips them."""
    if "slow" in str(config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long campaign: run with -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_exocm_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point EXOCM_DATA_DIR and EXOCM_CONFIG_DIR at directories of this test alone."""
    root = tmp_path_factory.mktemp("exocm-dirs")
    monkeypatch.setenv("EXOCM_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(root / "config"))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """A shared, read-mostly sandbox tenant (1,000 users, seed 42)."""
    sb = Sandbox.start(size=SESSION_SIZE, seed=SESSION_SEED)
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Factory for private sandboxes: make_sandbox(size=300, seed=7, **Sandbox.start knobs)."""
    started: list[Sandbox] = []

    def factory(**kwargs: Any) -> Sandbox:
        kwargs.setdefault("size", 300)
        kwargs.setdefault("seed", 7)
        sb = Sandbox.start(**kwargs)
        started.append(sb)
        return sb

    try:
        yield factory
    finally:
        for sb in reversed(started):
            sb.stop()
