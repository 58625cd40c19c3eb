"""Cmdlet dispatch and parameter binding shared by the EXO and on-prem cmdlet tables.

Parameter names are matched case-insensitively (PowerShell). Unknown cmdlets and parameters
fail with PowerShell's own messages (CommandNotFoundException, ParameterBindingException).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from exocm.sandbox import write_log
from exocm.sandbox.errors import CmdletError

if TYPE_CHECKING:
    from exocm.sandbox.tenant import Record, RecordSet, Tenant

Handler = Callable[["Tenant", dict[str, Any]], "RecordSet | list[Record]"]
F = TypeVar("F", bound=Callable[..., Any])

#: PowerShell common parameters (about_CommonParameters) and the risk-mitigation pair;
#: accepted by every cmdlet. WhatIf is honoured by the Set/Enable/Disable cmdlets.
COMMON_PARAMETERS = (
    "ErrorAction", "WarningAction", "InformationAction", "Verbose", "Debug", "ErrorVariable",
    "WarningVariable", "OutVariable", "OutBuffer", "PipelineVariable", "Confirm", "WhatIf",
)


@dataclass(frozen=True, slots=True)
class CmdletSpec:
    """A cmdlet's canonical name, its parameters (canonical spelling) and its handler."""

    name: str
    parameters: tuple[str, ...]
    handler: Handler
    required: tuple[str, ...] = ()


class CmdletTable:
    """Cmdlets of one side (exo or onprem), looked up case-insensitively."""

    def __init__(self) -> None:
        self._specs: dict[str, CmdletSpec] = {}

    def register(self, name: str, parameters: Iterable[str], *, required: Iterable[str] = ()) -> Callable[[F], F]:
        """Decorator: register `handler` as cmdlet `name`."""
        def deco(fn: F) -> F:
            self._specs[name.lower()] = CmdletSpec(name, tuple(parameters), fn, tuple(required))
            return fn
        return deco

    def get(self, name: str) -> CmdletSpec | None:
        """The spec for `name`, or None."""
        return self._specs.get(name.lower())

    def names(self) -> list[str]:
        """Canonical names of every registered cmdlet."""
        return sorted(s.name for s in self._specs.values())


def command_not_found(name: str) -> CmdletError:
    """PowerShell's error for an unknown command (text from PowerShell itself)."""
    return CmdletError(
        "CommandNotFoundException",
        "ObjectNotFound",
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable "
        "program. Check the spelling of the name, or if a path was included, verify that the path is "
        "correct and try again.",
    )


def parameter_not_found(name: str) -> CmdletError:
    """PowerShell's error for an unknown parameter (text from PowerShell itself)."""
    return CmdletError(
        "ParameterBindingException",
        "InvalidArgument",
        f"A parameter cannot be found that matches parameter name '{name}'.",
    )


def bind(spec: CmdletSpec, params: dict[str, Any]) -> dict[str, Any]:
    """Canonicalise parameter names; reject unknown ones; check mandatory ones."""
    allowed = {p.lower(): p for p in (*spec.parameters, *COMMON_PARAMETERS)}
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = str(k).lstrip("-")
        canon = allowed.get(key.lower())
        if canon is None:
            raise parameter_not_found(key)
        out[canon] = v
    for req in spec.required:
        if out.get(req) in (None, ""):
            # PowerShell would prompt; non-interactive hosts fail like this (text from PowerShell).
            raise CmdletError(
                "ParameterBindingException",
                "InvalidArgument",
                f"Cannot process command because of one or more missing mandatory parameters: {req}.",
            )
    return out


def dispatch(tenant: Tenant, cmdlet: str, params: dict[str, Any], side: str) -> RecordSet | list[Record]:
    """Find the cmdlet on `side`, bind its parameters and run it."""
    from exocm.sandbox.cmdlets_exo import EXO_CMDLETS
    from exocm.sandbox.cmdlets_onprem import ONPREM_CMDLETS

    if side == "exo":
        table = EXO_CMDLETS
    elif side == "onprem":
        table = ONPREM_CMDLETS
    else:
        raise ValueError(f"unknown side {side!r} (exo or onprem)")
    spec = table.get(str(cmdlet).strip())
    if spec is None:
        raise command_not_found(str(cmdlet))
    bound = bind(spec, params)
    result = spec.handler(tenant, bound)
    if write_log.is_write(spec.name):
        write_log.log_write(side, spec.name, bound.get("Identity"), bound)
    return result


# ----------------------------------------------------------------------------- value conversion
def to_bool(value: Any, param: str) -> bool:
    """A [bool] / [switch] parameter value (True, 'true', '$true', 1, ...)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return True  # a switch given without a value
    if isinstance(value, int):
        return value != 0
    s = str(value).strip().lower()
    if s in ("true", "$true", "1", ""):
        return True
    if s in ("false", "$false", "0"):
        return False
    # PowerShell's conversion failure, shortened (sandbox wording).
    raise CmdletError(
        "ParameterBindingArgumentTransformationException",
        "InvalidData",
        f"Cannot process argument transformation on parameter '{param}'. Cannot convert value "
        f"\"{value}\" to type \"System.Boolean\". Boolean parameters accept only Boolean values and "
        "numbers, such as $True, $False, 1 or 0.",
    )


def to_boolean(value: Any, param: str) -> bool:
    """A [System.Boolean] parameter (not a switch): $null or '' is refused, as PowerShell refuses it.

    PowerShell's binder turns $null for a Boolean parameter into the same argument-transformation
    error as any other non-Boolean value ("Cannot convert value "" to type System.Boolean"); a
    switch given without a value is on (`to_bool`). Sandbox wording, shortened.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CmdletError(
            "ParameterBindingArgumentTransformationException",
            "InvalidData",
            f"Cannot process argument transformation on parameter '{param}'. Cannot convert value \"\" to "
            "type \"System.Boolean\". Boolean parameters accept only Boolean values and numbers, such as "
            "$True, $False, 1 or 0.",
        )
    return to_bool(value, param)


def to_list(value: Any) -> list[str]:
    """A multi-valued parameter: a list, a scalar, or None."""
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return [str(v) for v in value]
    return [str(value)]


def result_size(value: Any) -> int | None:
    """-ResultSize: 'Unlimited' -> None, else a positive int (Exchange's Unlimited<int>)."""
    if value is None:
        return 1000
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        s = str(value).strip()
        if s.lower() == "unlimited":
            return None
        try:
            n = int(s)
        except ValueError:
            n = -1
    if n < 1:
        raise CmdletError(
            "ParameterBindingException",
            "InvalidArgument",
            f"Cannot bind parameter 'ResultSize'. Cannot convert value \"{value}\" to type "
            "\"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\".",
        )
    return n


def identity_text(value: Any) -> str:
    """The string form of an -Identity value (records with Identity/ExternalDirectoryObjectId allowed)."""
    if isinstance(value, dict):
        for k in ("ExternalDirectoryObjectId", "Guid", "Identity", "DistinguishedName", "objectGUID"):
            if value.get(k):
                return str(value[k])
    return str(value).strip()


def multi_value_edit(current: list[str], value: Any, *, case_insensitive: bool = True) -> list[str]:
    """Apply a multi-valued parameter: a full list replaces; @{Add=...; Remove=...} edits.

    Removal matches case-insensitively (Exchange proxy addresses compare that way).
    """
    if isinstance(value, dict):
        keys = {str(k).lower(): v for k, v in value.items()}
        unknown = set(keys) - {"add", "remove"}
        if unknown:
            raise CmdletError("ParameterBindingException", "InvalidArgument",
                              f"Cannot convert the hashtable: unknown key '{sorted(unknown)[0]}' (use Add or Remove).")
        out = list(current)
        for rm in to_list(keys.get("remove")):
            low = rm.lower() if case_insensitive else rm
            out = [x for x in out if (x.lower() if case_insensitive else x) != low]
        for add in to_list(keys.get("add")):
            low = add.lower() if case_insensitive else add
            if not any((x.lower() if case_insensitive else x) == low for x in out):
                out.append(add)
        return out
    return to_list(value)


def edit_custom_attributes(
    ca: Mapping[int, str] | None, eca: Mapping[int, list[str]] | None, p: Mapping[str, Any]
) -> tuple[dict[int, str] | None, dict[int, list[str]] | None]:
    """CustomAttribute1-15 and ExtensionCustomAttribute1-5 after a Set-* call's parameters `p`, as new
    dicts (None when empty): $null or '' clears a CustomAttribute; an ExtensionCustomAttribute takes
    a full list or @{Add=...; Remove=...}, compared case-sensitively."""
    new_ca = dict(ca or {})
    new_eca = {k: list(v) for k, v in (eca or {}).items()}
    for i in range(1, 16):
        k = f"CustomAttribute{i}"
        if k in p:
            if p[k] in (None, ""):
                new_ca.pop(i, None)
            else:
                new_ca[i] = str(p[k])
    for i in range(1, 6):
        k = f"ExtensionCustomAttribute{i}"
        if k in p:
            vals = multi_value_edit(new_eca.get(i, []), p[k], case_insensitive=False)
            if vals:
                new_eca[i] = vals
            else:
                new_eca.pop(i, None)
    return new_ca or None, new_eca or None


def no_change_warning(identity: str) -> str:
    """Exchange's warning when a Set-* changed nothing (text from Exchange)."""
    return f"The command completed successfully but no settings of '{identity}' have been modified."
