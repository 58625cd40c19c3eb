"""How every command reaches a tenant: `--profile NAME` or `--sandbox [--size N --seed S]`.

With no profile configured and none named, commands run against an IN-PROCESS sandbox
(the embedded default): it is started on a loopback port and reached through the same
REST bridge, MSAL sign-in and TLS as a real tenant. Every sandbox connection is announced
on stderr as SANDBOX.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from exocm.core.auth import DeviceCode
from exocm.core.bridge.rest import RestBridge
from exocm.core.config import (
    ConfigError,
    Profile,
    default_profile_name,
    get_profile,
    load_config,
    sandbox_profile,
)
from exocm.core.connect import open_bridge

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SANDBOX_SIZE = 5000
DEFAULT_SANDBOX_SEED = 42
SANDBOX_LABEL = "SANDBOX"


def connection_options(func: F) -> F:
    """Add --profile, --sandbox, --size and --seed to a click command."""
    options = [
        click.option("--profile", "profile", metavar="NAME", envvar="EXOCM_PROFILE", default=None,
                     help="Connection profile (see 'exocm profiles list'); env EXOCM_PROFILE."),
        click.option("--sandbox", "sandbox", is_flag=True, default=False,
                     help="Use an embedded sandbox tenant (the default when no profile is configured)."),
        click.option("--size", "size", type=click.IntRange(1, 2_000_000), default=DEFAULT_SANDBOX_SIZE,
                     show_default=True, help="Users in the embedded sandbox."),
        click.option("--seed", "seed", type=int, default=DEFAULT_SANDBOX_SEED, show_default=True,
                     help="Seed of the embedded sandbox's generator."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def print_device_code(code: DeviceCode) -> None:
    """Show a device-code sign-in prompt on stderr."""
    text = code.message or f"To sign in, open {code.verification_uri} and enter the code {code.user_code}"
    click.secho(text, err=True, bold=True)


@dataclass
class Connection:
    """An open connection: the bridge, the profile it came from and how to label it."""

    bridge: RestBridge
    profile: Profile
    label: str
    is_sandbox: bool
    sandbox_handle: Any = None
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Close the bridge and stop an embedded sandbox."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:  # closing must not hide the command's own outcome
                pass


def _announce_sandbox(text: str, quiet: bool) -> None:
    if not quiet:
        click.secho(f"{SANDBOX_LABEL}: {text}", err=True, fg="yellow", bold=True)


def resolve_profile_name(profile: str | None) -> str | None:
    """The profile to use: the named one, else the configured default; None means embedded sandbox."""
    if profile:
        return profile
    config = load_config()
    name = default_profile_name(config)
    if name is None and config.profiles:
        known = ", ".join(sorted(config.profiles))
        raise ConfigError(f"several profiles and no default: pass --profile NAME (known: {known})")
    return name


@contextmanager
def open_connection(
    profile: str | None = None,
    sandbox: bool = False,
    size: int = DEFAULT_SANDBOX_SIZE,
    seed: int = DEFAULT_SANDBOX_SEED,
    *,
    quiet: bool = False,
    bridge_options: dict[str, Any] | None = None,
    **knobs: Any,
) -> Iterator[Connection]:
    """Open the connection the options describe; `knobs` go to the embedded sandbox.

    `bridge_options` go to `open_bridge` (max_concurrency, sleep, on_warning, ...).
    """
    bridge_options = dict(bridge_options or {})
    bridge_options.setdefault("device_code_callback", print_device_code)
    if sandbox and profile:
        raise click.UsageError("--sandbox and --profile exclude each other")
    name = None if sandbox else resolve_profile_name(profile)
    if name is None:
        connection = _embedded_sandbox(size, seed, quiet=quiet, bridge_options=bridge_options, **knobs)
    else:
        prof = get_profile(name)
        prof.validate()
        bridge = open_bridge(prof, **bridge_options)
        label = SANDBOX_LABEL if prof.sandbox else prof.tenant
        connection = Connection(bridge=bridge, profile=prof, label=label, is_sandbox=prof.sandbox)
        connection._closers.append(bridge.close)
        if prof.sandbox:
            _announce_sandbox(f"profile {prof.name!r} at {prof.resolved_rest_base_url()} "
                              "(a local sandbox, not a Microsoft tenant)", quiet)
    try:
        yield connection
    finally:
        connection.close()


def _embedded_sandbox(size: int, seed: int, *, quiet: bool, bridge_options: dict[str, Any],
                      **knobs: Any) -> Connection:
    from exocm.sandbox.server import Sandbox  # cli may start the sandbox; core never imports it

    _announce_sandbox(f"starting an embedded sandbox tenant ({size:,} users, seed {seed}); "
                      "nothing here touches a Microsoft tenant", quiet)
    handle = Sandbox.start(size=size, seed=seed, port=0, **knobs)
    try:
        info = handle.info
        prof = sandbox_profile("sandbox", info)
        assert prof.secret_env is not None
        env = {prof.secret_env: str(info["client_secret"])}  # in memory only, never os.environ
        bridge_options.setdefault("persist_tokens", False)
        bridge = open_bridge(prof, env=env, **bridge_options)
    except BaseException:
        handle.stop()
        raise
    connection = Connection(bridge=bridge, profile=prof, label=SANDBOX_LABEL, is_sandbox=True,
                            sandbox_handle=handle)
    connection._closers.extend([handle.stop, bridge.close])
    return connection
