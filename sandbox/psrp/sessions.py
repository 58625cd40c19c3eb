"""What a remote session does with a pipeline: the two configurations the sandbox serves.

- `Microsoft.Exchange` (on-prem Exchange Management Shell over `/PowerShell`): a restricted
  no-language endpoint; recipient cmdlets run against the on-prem side of the tenant
  (`side="onprem"`). Scripts are refused. Besides Exchange cmdlets, only the core cmdlets Exchange
  exposes in such sessions are available (Select-Object, Measure-Object, Get-Command, ...).
- `Microsoft.PowerShell` on a Windows management host with ExchangeOnlineManagement: nothing
  Exchange-related exists until the client runs `Connect-ExchangeOnline -AccessToken ...`; then
  the same cmdlets run against the EXO side (`side="exo"`).

Tenant errors (`CmdletError`) become error records: non-terminating ones on the error stream
(the pipeline still completes), terminating ones fail the pipeline.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import CmdletError
from ..rest import is_write

#: Core cmdlets an Exchange remote session exposes next to the Exchange ones. Source: Microsoft
#: Learn, "Exchange Management Shell ... available core cmdlets" (Exit-PSSession, Get-Command,
#: Get-FormatData, Get-Help, Measure-Object, Out-Default, Select-Object).
_CORE_CMDLETS = frozenset(
    {"exit-pssession", "get-command", "get-formatdata", "get-help", "measure-object", "out-default", "select-object"}
)


class Tenant(Protocol):
    """The part of the sandbox tenant model the WinRM endpoint uses."""

    lock: Any

    def invoke(self, cmdlet: str, params: dict[str, Any] | None = None, *, side: str = "exo") -> list[dict[str, Any]]:
        """Run a cmdlet; all records."""
        ...


#: Checks an access token given to Connect-ExchangeOnline (token, organization); raises if rejected.
TokenVerifier = Callable[[str, "str | None"], Any]


@dataclass
class CommandSpec:
    """One command of a PSRP pipeline, as the client sent it."""

    name: str
    parameters: list[tuple[str | None, Any]]
    is_script: bool = False
    end_of_statement: bool = False


@dataclass
class Outcome:
    """What a pipeline produced: output records (typed by `cmdlet`), errors, warnings.

    `records` may be the tenant's lazy RecordSet: each record is built (under the tenant lock)
    and projected to `properties` only when a Receive serialises it.
    """

    records: Sequence[dict[str, Any]] = field(default_factory=list)
    cmdlet: str = ""
    properties: list[str] | None = None  # Select-Object -Property patterns, None = not selected
    errors: list[CmdletError] = field(default_factory=list)
    terminating: CmdletError | None = None
    warnings: list[str] = field(default_factory=list)
    lock: Any = None
    _names: list[str] | None = None

    @property
    def selected(self) -> bool:
        """True when the output went through Select-Object."""
        return self.properties is not None

    def __len__(self) -> int:
        return len(self.records)

    def record(self, index: int) -> dict[str, Any]:
        """Build record `index` (tenant lock held) and apply Select-Object's projection."""
        if self.lock is not None:
            with self.lock:
                rec = self.records[index]
        else:
            rec = self.records[index]
        if self.properties is None:
            return rec
        if self._names is None:
            self._names = resolve_properties(list(rec.keys()), self.properties)
        return {n: rec.get(n) for n in self._names}


#: PowerShell engine errors stop the pipeline (terminating); an Exchange task's own errors
#: (object not found, ambiguous, write refused, ...) are written with WriteError and do not:
#: scripts need -ErrorAction Stop to catch them. Source: PowerShell parameter binding and
#: command discovery semantics; Exchange Management Shell scripting guidance.
_ENGINE_ERRORS = frozenset({
    "ParameterBindingException", "ParameterBindingValidationException",
    "ParameterBindingArgumentTransformationException", "CommandNotFoundException", "PSNotSupportedException",
    "ParseException", "PSArgumentException", "ValidationMetadataException", "RestClientException",
})


def is_terminating(err: CmdletError) -> bool:
    """Does this error fail the pipeline (engine error) or go to the error stream (task error)?"""
    return err.terminating and err.error_type.rsplit(".", 1)[-1] in _ENGINE_ERRORS


def plain(value: Any) -> Any:
    """psrpcore values (PSString, PSInt, PSList, PSDict, PSGuid, ...) -> plain Python values."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def _not_recognized(name: str) -> CmdletError:
    # Source: PowerShell's CommandNotFoundException text.
    return CmdletError(
        "System.Management.Automation.CommandNotFoundException",
        "ObjectNotFound",
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable "
        "program. Check the spelling of the name, or if a path was included, verify that the path is correct "
        "and try again.",
        http_status=400,
        terminating=True,
    )


def _no_language() -> CmdletError:
    # Source: the error Exchange's remote endpoint (PSLanguageMode NoLanguage) gives for script text.
    return CmdletError(
        "System.Management.Automation.PSNotSupportedException",
        "ParserError",
        "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.",
        http_status=400,
        terminating=True,
    )


def resolve_properties(keys: list[str], wanted: Sequence[str]) -> list[str]:
    """Select-Object -Property: names in the asked order (case-insensitive, wildcards allowed);
    a name the object lacks is kept (PowerShell adds it with $null)."""
    lower = {k.lower(): k for k in keys}
    names: list[str] = []
    for pattern in map(str, wanted):
        if any(ch in pattern for ch in "*?["):
            names.extend(k for k in keys if fnmatch.fnmatchcase(k.lower(), pattern.lower()) and k not in names)
        else:
            name = lower.get(pattern.lower(), pattern)
            if name not in names:
                names.append(name)
    return names


def _statements(commands: Sequence[CommandSpec]) -> list[list[CommandSpec]]:
    out: list[list[CommandSpec]] = [[]]
    for cmd in commands:
        out[-1].append(cmd)
        if cmd.end_of_statement:
            out.append([])
    return [s for s in out if s]


def _bind(cmd: CommandSpec) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in cmd.parameters:
        key = name.lstrip("-") if name else "Identity"  # the first positional of recipient cmdlets
        if key.endswith(":"):
            key = key[:-1]
        params[key] = plain(value)
    return params


class Session:
    """Base configuration: runs statements, pipes into Select-Object, collects errors."""

    configuration = ""
    side = "onprem"
    no_language = True
    #: Set by the WSMan service: True when this write must answer with the "applied-error" quirk.
    applied_error: Callable[[], bool] | None = None
    #: Set by the WSMan service: called after a write cmdlet ran (the sandbox persists its state).
    on_write: Callable[[], None] | None = None
    #: Set by the WSMan service: called before a write cmdlet runs (waits for the write budget).
    before_write: Callable[[], None] | None = None

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant

    def run(self, commands: Sequence[CommandSpec]) -> Outcome:
        """Run a pipeline (one or more statements) and return what it produced."""
        outcome = Outcome()
        for statement in _statements(commands):
            try:
                self._run_statement(statement, outcome)
            except CmdletError as err:
                if is_terminating(err):
                    outcome.terminating = err
                    break
                outcome.errors.append(err)
        return outcome

    def _run_statement(self, statement: list[CommandSpec], outcome: Outcome) -> None:
        head, *rest = statement
        for cmd in statement:
            if cmd.is_script and self.no_language:
                raise _no_language()
            if cmd.is_script:
                # Sandbox-made: the sandbox runs cmdlets, it does not interpret PowerShell script text.
                raise CmdletError(
                    "System.Management.Automation.PSNotSupportedException",
                    "NotImplemented",
                    "The sandbox management host runs cmdlets only; script text is not supported.",
                    terminating=True,
                )
        records: Sequence[dict[str, Any]] = self.invoke(head.name, _bind(head), outcome)
        cmdlet = head.name
        properties: list[str] | None = None
        for cmd in rest:
            lname = cmd.name.lower()
            if lname == "select-object":
                params = _bind_named(cmd)
                wanted = params.get("Property")
                if wanted is not None:
                    wanted = [wanted] if isinstance(wanted, str) else [str(w) for w in wanted]
                    properties = wanted if properties is None else [p for p in wanted if p in properties]
                first = params.get("First")
                if first is not None:
                    records = records[: int(first)]
            elif lname == "measure-object":
                records, cmdlet, properties = [{"Count": len(records)}], "Measure-Object", None
            elif lname in ("out-default", "out-null"):
                records = []
            elif lname in _CORE_CMDLETS:
                continue
            else:
                raise _not_recognized(cmd.name)
        if outcome.records:
            # A second statement with output: materialise both (rare; recipient reads are one statement).
            merged = [outcome.record(i) for i in range(len(outcome))]
            outcome.properties, outcome.lock = None, None
            merged.extend(Outcome(records, cmdlet, properties, lock=self.tenant.lock).record(i)
                          for i in range(len(records)))
            outcome.records = merged
        else:
            outcome.records, outcome.properties = records, properties
            outcome.lock = self.tenant.lock
        outcome.cmdlet = cmdlet

    def invoke(self, name: str, params: dict[str, Any], outcome: Outcome) -> Sequence[dict[str, Any]]:
        """Run one Exchange cmdlet on this session's side of the tenant (lazy when the tenant can)."""
        query = getattr(self.tenant, "query", None)
        write = is_write(name)
        if write and self.before_write is not None:
            self.before_write()
        try:
            with self.tenant.lock:
                records = (query or self.tenant.invoke)(name, params, side=self.side)
                outcome.warnings.extend(getattr(self.tenant, "last_warnings", None) or [])
        finally:
            if write and self.on_write is not None:
                self.on_write()  # as the REST front does, also after a refused write
        return records


def _bind_named(cmd: CommandSpec) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in cmd.parameters:
        params[(name or "Property").lstrip("-")] = plain(value)
    return params


class OnPremExchangeSession(Session):
    """`Microsoft.Exchange` on an Exchange server: restricted, no-language, on-prem side."""

    configuration = "Microsoft.Exchange"
    side = "onprem"
    no_language = True

    def invoke(self, name: str, params: dict[str, Any], outcome: Outcome) -> Sequence[dict[str, Any]]:
        if name.lower() in _CORE_CMDLETS:
            raise _not_recognized(name)  # only supported downstream of an Exchange cmdlet here
        return super().invoke(name, params, outcome)


class ExoHostSession(Session):
    """A Windows management host with ExchangeOnlineManagement (`Microsoft.PowerShell`)."""

    configuration = "Microsoft.PowerShell"
    side = "exo"
    no_language = False

    def __init__(self, tenant: Tenant, verifier: TokenVerifier | None = None) -> None:
        super().__init__(tenant)
        self.verifier = verifier
        self.token: str | None = None
        self.organization: str | None = None

    def _check_token(self, token: str, organization: str | None) -> None:
        if not token:
            raise CmdletError(
                "System.ArgumentException", "InvalidArgument",
                "Cannot validate argument on parameter 'AccessToken'. The argument is null or empty.",
                terminating=True,
            )
        if self.verifier is None:
            return  # no verifier exposed by the sandbox: any non-empty token is accepted
        try:
            self.verifier(token, organization)
        except Exception as exc:  # the verifier's own exception types are not ours to know
            # Sandbox-made text; the real module surfaces MSAL/REST 401s as "UnAuthorized".
            raise CmdletError(
                "Microsoft.Exchange.Management.RestApiClient.RestClientException",
                "AuthenticationError",
                f"UnAuthorized: the access token was rejected ({type(exc).__name__}).",
                http_status=401,
                terminating=True,
            ) from None

    def invoke(self, name: str, params: dict[str, Any], outcome: Outcome) -> Sequence[dict[str, Any]]:
        lname = name.lower()
        if lname == "connect-exchangeonline":
            organization = params.get("Organization")
            self._check_token(str(params.get("AccessToken") or ""), organization)
            self.token = str(params["AccessToken"])
            self.organization = organization
            return []
        if lname == "disconnect-exchangeonline":
            self.token = None
            return []
        if lname in _CORE_CMDLETS:
            raise _not_recognized(name)
        if self.token is None:
            # Without Connect-ExchangeOnline the module's cmdlets are not loaded in the session.
            raise _not_recognized(name)
        self._check_token(self.token, self.organization)
        records = super().invoke(name, params, outcome)
        if is_write(name) and self.applied_error is not None and self.applied_error():
            outcome.errors.append(applied_error_quirk())
        return records


def applied_error_quirk() -> CmdletError:
    """The error a write answers with although it applied: an EMPTY message (docs/exchange-facts.md#applied-but-errored, the GA
    quirk of Set-Mailbox -IsExchangeCloudManaged). The exception type is the sandbox's choice (the
    real one is not known); non-terminating, like the module's other cmdlet errors."""
    return CmdletError("System.Exception", "NotSpecified", "", terminating=False)


#: The one script a sync server answers: the Entra Connect Sync build, as Microsoft documents reading
#: it (docs/exchange-facts.md#sync-client-versions). Compared with whitespace collapsed.
SYNC_VERSION_SCRIPT = ("(Get-ADSyncGlobalSettings).Parameters['Microsoft.Synchronize.ServerConfigurationVersion']"
                       ".Value")


class SyncServerSession(Session):
    """`Microsoft.PowerShell` on the Entra Connect Sync server (the ADSync module is loaded).

    Full language, but the sandbox interprets no PowerShell: it answers the one script above (and
    `Get-ADSyncGlobalSettings` as a cmdlet); anything else is refused with the sandbox's own text.
    """

    configuration = "Microsoft.PowerShell"
    side = "sync"
    no_language = False

    def _run_statement(self, statement: list[CommandSpec], outcome: Outcome) -> None:
        head = statement[0]
        if head.is_script and " ".join(head.name.split()) == SYNC_VERSION_SCRIPT and len(statement) == 1:
            outcome.records, outcome.cmdlet, outcome.properties = [self._version()], "<script>", None
            return
        if not head.is_script and head.name.lower() == "get-adsyncglobalsettings":
            params = [{"Name": "Microsoft.Synchronize.ServerConfigurationVersion", "Value": self._version()}]
            outcome.records, outcome.cmdlet, outcome.properties = [{"Parameters": params}], "Get-ADSyncGlobalSettings", None
            return
        if not head.is_script:
            raise _not_recognized(head.name)
        # Sandbox-made: the sandbox does not interpret PowerShell script text.
        raise CmdletError("System.Management.Automation.PSNotSupportedException", "NotImplemented",
                          "The sandbox sync server runs only the ADSync version query.", terminating=True)

    def _version(self) -> str:
        with self.tenant.lock:
            return str(self.tenant.readiness.sync_client_version)  # type: ignore[attr-defined]


SESSION_TYPES: dict[str, type[Session]] = {
    "microsoft.exchange": OnPremExchangeSession,
    "microsoft.powershell": ExoHostSession,
}
