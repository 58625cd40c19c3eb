"""How every command reaches a tenant: `--profile NAME` or `--sandbox [--size N --seed S]`.

With no profile configured and none named, commands run against an IN-PROCESS sandbox
(the embedded default): it is started on a loopback port and reached through the same
REST bridge, MSAL sign-in and TLS as a real tenant. Its state is kept between commands
(one file per size and seed, see embedded_sandbox.py), so a plan made by one command can be
applied, reported and undone by the next. Every sandbox connection is announced on stderr
as SANDBOX.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click
from exocm.core.access.auth import DeviceCode
from exocm.core.access.config import (
    ConfigError,
    Profile,
    default_profile_name,
    get_profile,
    load_config,
    sandbox_profile,
)
from exocm.core.access.connect import exo_transport, open_bridge
from exocm.core.access.graph_host import open_graph
from exocm.core.bridge.errors import Transient
from exocm.core.bridge.graph import GraphBridge
from exocm.core.bridge.rest import RestBridge

from .embedded_sandbox import DEFAULT_SANDBOX_SEED, DEFAULT_SANDBOX_SIZE, start_embedded

if TYPE_CHECKING:
    from exocm.core.bridge.psrp import PsrpBridge

F = TypeVar("F", bound=Callable[..., Any])

SANDBOX_LABEL = "SANDBOX"


def connection_options(func: F) -> F:
    """Add --profile, --sandbox, --size and --seed to a click command."""
    options = [
        click.option("--profile", "profile", metavar="NAME", envvar="EXOCM_PROFILE", default=None,
                     help="Connection profile (see 'exocm profiles list'); env EXOCM_PROFILE."),
        click.option("--sandbox", "sandbox", is_flag=True, default=False,
                     help="Use the embedded sandbox tenant (the default when no profile is configured); "
                          "its state is kept between commands ('exocm sandbox reset' starts over)."),
        click.option("--size", "size", type=click.IntRange(10, 300_000), default=DEFAULT_SANDBOX_SIZE,
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

    bridge: RestBridge | PsrpBridge  # PSRP when the profile reaches EXO through a management host
    profile: Profile
    label: str
    is_sandbox: bool
    sandbox_handle: Any = None
    #: True when open_connection already printed the SANDBOX banner (commands need not repeat it).
    announced: bool = False
    #: (size, seed) of an embedded sandbox whose state is kept between commands, else None.
    embedded: tuple[int, int] | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    #: Secrets for sign-in held in memory (the embedded sandbox's client secret), never os.environ.
    env: dict[str, str] | None = field(default=None, repr=False)
    _graph: Any = field(default=None, repr=False)

    def graph(self, *, max_concurrency: int = 8) -> GraphBridge:
        """The tenant's Microsoft Graph bridge (opened on first use, closed with the connection)."""
        if self._graph is None:
            self._graph = open_graph(self.profile, env=self.env, persist_tokens=not self.is_sandbox,
                                     max_concurrency=max_concurrency)
            self._closers.append(self._graph.close)
        graph: GraphBridge = self._graph
        return graph

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
        click.secho(text, err=True, fg="yellow", bold=True)


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
        try:
            prof.validate()
        except ConfigError as exc:
            if prof.sandbox:
                raise ConfigError(f"{exc}; {_gone_sandbox_hint(prof.name)}") from None
            raise
        bridge = open_bridge(prof, **bridge_options)
        label = SANDBOX_LABEL if prof.sandbox else prof.tenant
        connection = Connection(bridge=bridge, profile=prof, label=label, is_sandbox=prof.sandbox)
        connection._closers.append(bridge.close)
        if prof.sandbox:
            where = prof.resolved_rest_base_url()
            if exo_transport(prof) == "psrp":
                where = f"{_exo_url(prof)} (WinRM host)"
            _announce_sandbox(f"SANDBOX (profile {prof.name!r} at {where}) "
                              "-- a local test tenant, not Microsoft", quiet)
            connection.announced = not quiet
    try:
        yield connection
    except Transient as exc:
        if (connection.sandbox_handle is None and connection.profile.sandbox
                and not getattr(connection.bridge, "answered", True)
                and not _reachable(_exo_url(connection.profile))):  # else another endpoint failed (on-prem)
            raise ConfigError(f"{exc.message}; {_gone_sandbox_hint(connection.profile.name)}") from None
        raise
    finally:
        connection.close()


def _exo_url(prof: Profile) -> str:
    """Where the profile reaches Exchange Online: the REST base URL, or its management host."""
    if exo_transport(prof) == "psrp":
        return str(prof.extra.get("exo_host_url") or prof.extra.get("winrm_exo_url") or "")
    return prof.resolved_rest_base_url()


def _reachable(url: str) -> bool:
    """True when something accepts a TCP connection at the URL's host and port (one short try)."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "", port), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def _gone_sandbox_hint(name: str) -> str:
    return (f"profile {name!r} is a sandbox that is not running any more: start it again "
            f"('exocm sandbox serve' with the same --port and --state), add it anew, or "
            f"'exocm profiles remove {name}' (without profiles, commands use the embedded SANDBOX)")


def _embedded_sandbox(size: int, seed: int, *, quiet: bool, bridge_options: dict[str, Any],
                      **knobs: Any) -> Connection:
    # A tenant handed in (tests) or a state file of the caller's own is not the embedded state.
    persist = "tenant" not in knobs and "state_file" not in knobs
    handle, lock = start_embedded(size, seed, persist=persist, announce=lambda text: _announce_sandbox(text, quiet),
                                  **knobs)
    try:
        info = handle.info
        prof = sandbox_profile("sandbox", info)
        assert prof.secret_env is not None
        env = {prof.secret_env: str(info["client_secret"])}  # in memory only, never os.environ
        bridge_options.setdefault("persist_tokens", False)
        bridge = open_bridge(prof, env=env, **bridge_options)
    except BaseException:
        handle.stop()
        if lock is not None:
            lock.release()
        raise
    connection = Connection(bridge=bridge, profile=prof, label=SANDBOX_LABEL, is_sandbox=True,
                            sandbox_handle=handle, announced=not quiet,
                            embedded=(size, seed) if persist else None, env=env)
    # closers run last-first: the bridge closes, the sandbox stops (and saves), then the lock goes
    if lock is not None:
        connection._closers.append(lock.release)
    connection._closers.extend([handle.stop, bridge.close])
    return connection


def embedded_source(connection: Connection) -> dict[str, Any]:
    """What a plan records about the embedded sandbox it was made on (empty otherwise)."""
    if connection.embedded is None:
        return {}
    size, seed = connection.embedded
    return {"embedded_sandbox": {"size": size, "seed": seed}}


def follow_recorded_sandbox(ctx: click.Context, conn: dict[str, Any], recorded: Any, what: str) -> None:
    """Run on the embedded sandbox `what` (a plan, a journal) was made on.

    When this command will use the embedded sandbox and --size/--seed were not given, take
    the size and seed `recorded` ({"size", "seed"}) names; when they were given and differ,
    stop with a usage error (another size or seed is another tenant's state).
    """
    if not isinstance(recorded, dict) or conn.get("profile"):
        return
    if not conn.get("sandbox"):
        try:
            if resolve_profile_name(None) is not None:
                return
        except ConfigError:
            return
    from click.core import ParameterSource

    for name in ("size", "seed"):
        value = recorded.get(name)
        if not isinstance(value, int):
            continue
        given = ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
        if given and conn.get(name) != value:
            size, seed = recorded.get("size"), recorded.get("seed")
            raise click.UsageError(f"{what} was made on the embedded sandbox of {size} users, seed {seed}; "
                                   f"drop --{name} or pass --size {size} --seed {seed}")
        conn[name] = value
