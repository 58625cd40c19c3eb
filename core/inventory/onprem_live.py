"""The on-prem side of the inventory, live: Get-Mailbox + Get-RemoteMailbox over PowerShell remoting.

The same records the export script (`scripts/Export-ExocmOnPrem.ps1`) writes to CSV are read
straight from the Exchange Management Shell endpoint (`https://server/PowerShell`,
configuration `Microsoft.Exchange`), selecting only the properties detection needs
(`Select-Object -Property` runs remotely, so little crosses the wire), and handed to
`onprem_frame_from_records`: detection runs the same whichever way on-prem data came in.

Where the endpoint comes from: explicit options (host, auth, user), else the profile's
`extra` settings (`onprem_url` / `winrm_onprem_url`, `onprem_auth`, `onprem_user` /
`winrm_username`, `onprem_ca_file`, `onprem_cert_pem` / `onprem_key_pem`). The password is never stored in a profile: it comes from
the environment (`EXOCM_ONPREM_PASSWORD`), or for a sandbox profile from the sandbox secrets
file.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .. import logs
from ..access.config import ConfigError, Profile, sandbox_secret
from ..events import Progress, ProgressCallback, ignore_progress
from ..model import ONPREM_COLUMNS

if TYPE_CHECKING:  # pypsrp and pandas load only when on-prem data is really fetched
    import pandas as pd

    from ..bridge.base import Record
    from ..bridge.psrp import PsrpBridge, PsrpEndpoint
    from .onprem import OnPremData

#: Environment variable holding the on-prem WinRM password (never a command-line argument).
PASSWORD_ENV = "EXOCM_ONPREM_PASSWORD"
#: The sandbox secrets-file kind under which `profiles add --from-sandbox` keeps the WinRM password.
SANDBOX_SECRET_KIND = "winrm_password"
#: The cmdlets whose union is the on-prem side (local mailboxes, then remote mailboxes).
ONPREM_CMDLETS: tuple[str, ...] = ("Get-Mailbox", "Get-RemoteMailbox")


@dataclass(frozen=True)
class OnPremSettings:
    """How to reach the on-prem Exchange endpoint (no secret in here)."""

    url: str
    auth: str = "basic"
    username: str | None = None
    ca_file: str | None = None
    configuration: str | None = None
    sandbox_profile: str | None = None  # the sandbox profile whose stored WinRM password applies
    certificate_pem: str | None = None
    certificate_key_pem: str | None = None


def settings_from(profile: Profile | None, *, host: str | None = None, auth: str | None = None,
                  username: str | None = None, ca_file: str | None = None) -> OnPremSettings | None:
    """Resolve the on-prem endpoint from explicit options over the profile's `extra`; None if neither names one."""
    extra: Mapping[str, Any] = profile.extra if profile is not None else {}
    url = host or extra.get("onprem_url") or extra.get("winrm_onprem_url")
    if not url:
        return None
    from ..bridge.psrp import endpoint_url

    from_profile = host is None
    return OnPremSettings(
        url=endpoint_url(str(url)),
        auth=str(auth or extra.get("onprem_auth") or "basic").lower(),
        username=username or (extra.get("onprem_user") or extra.get("winrm_username") if from_profile else None),
        ca_file=ca_file or extra.get("onprem_ca_file") or (profile.ca_file if profile is not None else None),
        configuration=extra.get("onprem_configuration"),
        sandbox_profile=profile.name if profile is not None and profile.sandbox and from_profile else None,
        certificate_pem=extra.get("onprem_cert_pem"),
        certificate_key_pem=extra.get("onprem_key_pem"),
    )


def endpoint_for(settings: OnPremSettings, env: Mapping[str, str]) -> PsrpEndpoint:
    """The PSRP endpoint for these settings, with the password from `env` (or the sandbox store)."""
    from ..bridge.psrp import PsrpEndpoint

    password = env.get(PASSWORD_ENV)
    logs.register_secret(password)
    if password is None and settings.sandbox_profile is not None:
        password = sandbox_secret(settings.sandbox_profile, kind=SANDBOX_SECRET_KIND)
    if settings.auth == "basic" and not settings.username:
        raise ConfigError("on-prem WinRM basic auth needs a user: pass --onprem-user (DOMAIN\\user)")
    if settings.auth == "basic" and password is None:
        raise ConfigError(f"on-prem WinRM basic auth needs a password: set {PASSWORD_ENV} in the environment")
    endpoint = PsrpEndpoint(url=settings.url, auth=settings.auth, username=settings.username,
                            password=password, ca_file=settings.ca_file, configuration=settings.configuration,
                            certificate_pem=settings.certificate_pem,
                            certificate_key_pem=settings.certificate_key_pem)
    try:
        endpoint.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return endpoint


def open_onprem_bridge(settings: OnPremSettings, *, env: Mapping[str, str], tenant: str = "onprem",
                       **options: Any) -> PsrpBridge:
    """A PSRP bridge to the on-prem Exchange endpoint (no network until the first call)."""
    from ..bridge.psrp import PsrpBridge

    return PsrpBridge(endpoint_for(settings, env), tenant, **options)


#: Runspace pools (shells) a live on-prem read uses at most: Exchange's remote PowerShell allows a
#: user a few concurrent shells (throttling policy PowerShellMaxConcurrency; docs/exchange-facts.md).
DEFAULT_SHELLS: Final = 4
#: First characters of Name that split the on-prem reads into slices (`Name -like 'x*'`, on a
#: string property Exchange's -Filter accepts); a complement slice catches every other name.
_NAME_CHARS: Final = "abcdefghijklmnopqrstuvwxyz0123456789"


def onprem_slices(n: int) -> list[str | None]:
    """`n` disjoint -Filter texts on Name whose union is every recipient ([None]: no filter).

    Built from constants only (letters and digits), never from user text. The last slice is the
    complement of the others, so the union is complete whatever the names look like (-like is
    case-insensitive in Exchange's OPATH)."""
    if n <= 1:
        return [None]
    parts = min(n - 1, len(_NAME_CHARS))
    size = -(-len(_NAME_CHARS) // parts)
    groups = [_NAME_CHARS[k:k + size] for k in range(0, len(_NAME_CHARS), size)]
    terms = [" -or ".join(f"(Name -like '{c}*')" for c in group) for group in groups]
    return [*terms, "-not (" + " -or ".join(f"({t})" for t in terms) + ")"]


def fetch_onprem_records(bridge: PsrpBridge, *, progress: ProgressCallback = ignore_progress,
                         properties: Sequence[str] = ONPREM_COLUMNS, page_size: int = 1000,
                         clock: Callable[[], float] = time.monotonic, shells: int = 1) -> list[Record]:
    """Every on-prem mailbox and remote mailbox, with only `properties` (Select-Object remotely).

    `shells` > 1 reads in parallel: Get-RemoteMailbox (most of the records) is split into Name
    slices (`onprem_slices`), and up to `shells` runspace pools (this bridge and siblings) each
    run one slice at a time, so the server builds one page while this process decodes another.
    A sibling that cannot open its shell (the server's limit) hands its slice back.
    """
    records: list[Record] = []
    start = clock()
    progress(Progress("onprem", 0, message="started"))
    if shells > 1:
        records = _fetch_parallel(bridge, shells, list(properties), page_size, progress, start, clock)
    else:
        for cmdlet in ONPREM_CMDLETS:
            for page in bridge.stream(cmdlet, {"ResultSize": "Unlimited"}, page_size=page_size,
                                      properties=list(properties)):
                records.extend(page)
                elapsed = max(clock() - start, 1e-9)
                progress(Progress("onprem", len(records), rate=len(records) / elapsed, message=cmdlet,
                                  counters=bridge.snapshot()))
    elapsed = max(clock() - start, 1e-9)
    progress(Progress("onprem", len(records), total=len(records), rate=len(records) / elapsed, message="done",
                      counters=bridge.snapshot()))
    return records


def _fetch_parallel(bridge: PsrpBridge, shells: int, properties: list[str], page_size: int,
                    progress: ProgressCallback, start: float, clock: Callable[[], float]) -> list[Record]:
    """The work of fetch_onprem_records(shells > 1): slices from a queue, one pool per worker."""
    import queue
    import threading

    from ..bridge.errors import BridgeError

    slices: list[tuple[str, str | None]] = [("Get-Mailbox", None)]
    slices += [("Get-RemoteMailbox", f) for f in onprem_slices(2 * shells)]  # more slices than pools: balance
    work: queue.SimpleQueue[tuple[str, str | None]] = queue.SimpleQueue()
    for item in slices:
        work.put(item)
    lock = threading.Lock()
    records: list[Record] = []
    errors: list[BaseException] = []

    def read(own: PsrpBridge, cmdlet: str, flt: str | None) -> Iterator[list[Record]]:
        params: dict[str, Any] = {"ResultSize": "Unlimited"}
        if flt:
            params["Filter"] = flt
        return own.stream(cmdlet, params, page_size=page_size, properties=properties)

    def worker(own: PsrpBridge, primary: bool) -> None:
        opened = primary
        try:
            while not errors:
                try:
                    cmdlet, flt = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    for page in read(own, cmdlet, flt):
                        opened = True
                        with lock:
                            records.extend(page)
                            count = len(records)
                        elapsed = max(clock() - start, 1e-9)
                        progress(Progress("onprem", count, rate=count / elapsed, message=cmdlet,
                                          counters=own.snapshot()))
                except BridgeError:
                    if opened:
                        raise
                    work.put((cmdlet, flt))  # this sibling got no shell: another worker reads the slice
                    return
                opened = True
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
        finally:
            if not primary:
                own.close()

    threads = [threading.Thread(target=worker, args=(bridge if k == 0 else bridge.sibling(), k == 0),
                                name=f"exocm-onprem-{k}", daemon=True)
               for k in range(min(shells, len(slices)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    while True:  # slices handed back by siblings that got no shell: the primary reads them
        try:
            cmdlet, flt = work.get_nowait()
        except queue.Empty:
            break
        for page in read(bridge, cmdlet, flt):
            records.extend(page)
    return records


def load_onprem_live(bridge: PsrpBridge, *, progress: ProgressCallback = ignore_progress,
                     shells: int = DEFAULT_SHELLS) -> OnPremData:
    """Fetch the on-prem side over PSRP (up to `shells` runspace pools in parallel) and normalise
    it exactly as the CSV path does."""
    from .onprem import onprem_frame_from_records

    records = fetch_onprem_records(bridge, progress=progress, shells=shells)
    return onprem_frame_from_records(records, source=f"WinRM {bridge.endpoint.url}")


#: Keys of a sandbox's info (`exocm sandbox serve --print-json`) copied into a profile's `extra`.
SANDBOX_WINRM_KEYS: tuple[str, ...] = ("winrm_onprem_url", "winrm_exo_url", "winrm_username", "winrm_sync_url")


def sandbox_winrm_extra(info: Mapping[str, Any]) -> dict[str, str]:
    """The WinRM settings of a sandbox's info for a profile's `extra` (the password is not among them)."""
    return {k: str(info[k]) for k in SANDBOX_WINRM_KEYS if isinstance(info.get(k), str) and info.get(k)}


#: Columns `with_onprem_columns` adds to an inventory frame.
ONPREM_JOIN_COLUMNS: tuple[str, ...] = ("OnPremRecipientTypeDetails", "OnPremExchangeGuid", "OnPremWhenChanged",
                                        "OnPremJoin")


def with_onprem_columns(inventory: pd.DataFrame, onprem: pd.DataFrame) -> pd.DataFrame:
    """The inventory frame plus, per EXO recipient, its on-prem counterpart's RecipientTypeDetails,
    ExchangeGuid and WhenChanged, and the key that joined them (the detection join, `match_onprem`)."""
    import pandas as pd

    from .match import match_onprem

    out = inventory.copy()
    pairs = match_onprem(inventory, onprem).pairs
    exo_pos = pairs["exo_pos"].to_numpy(dtype="int64")
    op_pos = pairs["op_pos"].to_numpy(dtype="int64")
    sources = {"OnPremRecipientTypeDetails": onprem["RecipientTypeDetails"], "OnPremExchangeGuid":
               onprem["ExchangeGuid"], "OnPremWhenChanged": onprem["WhenChanged"], "OnPremJoin": None}
    for target, source in sources.items():
        column = pd.Series(pd.NA, index=out.index, dtype="object")
        if len(pairs):
            values = pairs["join"] if source is None else source.iloc[op_pos]
            column.iloc[exo_pos] = values.to_numpy()
        out[target] = column
    return out
