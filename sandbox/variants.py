"""Conformance variants: readings of Exchange Online that public sources allow and the default
sandbox does not take. `exocm sandbox serve --variant NAME[,NAME...]` (or `--strict`) turns them
on; `Sandbox.start(variants=...)` does the same for tests. Each variant changes one behaviour,
in the module named below, and cites its source there and here:

- bool-literals (rest.py): a `$true` / `$false` in a REST -Filter, -RecipientFilter or
  -RecipientPreviewFilter is refused with a parameter-binding error. Source: the
  ExchangeOnlineManagement V3 module rewrites them to 'True' / 'False' before it calls
  InvokeCommand (`Get-SanitizedBoolValuesInFilter`, `FilterParametersForBooleanParsing` in the
  module's own scripts), which suggests the service does not take them. PSRP keeps PowerShell's
  `$true` (the remote runspace binds it).
- org-config-block (cmdlets_exo.py): Get-OrganizationConfig shows the tenant default only as
  `BlockExchangeProvisioningFromOnPremEnabled`. Source: mardahl/Exchange-SOA-Manager
  `Get-OrgState` and published runbooks read it there; no Microsoft page names the property.
- edoid-no-wildcard-error / edoid-no-wildcard-literal (opath.py): `ExternalDirectoryObjectId
  -like 'a*'` is refused / matches the `*` literally. Source: office-docs-powershell
  `filter-properties.md` lists ExternalDirectoryObjectId as "String or `$null`" without the
  "wildcards accepted" note it gives Alias or PrimarySmtpAddress.
- prtd-null (cmdlets_exo.py): an unset PreviousRecipientTypeDetails is `$null`, not 'None'.
  Source: `filter-properties.md` lists it as "String or `$null`".
- adminapi-errors (rest.py): a paged read answers 200 with `@adminapi.errors` for some records
  (and leaves them out of `value`). Source: the V3 module raises such errors
  (`ShowResultAndCheckForNextPage`). Which records and the error text are the sandbox's choice.
- cursor-advances (rest.py): a `@odata.nextLink` whose answer was lost (timeout, reset after
  the page was built) has moved on: sent again, it answers the page after. Source: none says
  either way (the paging contract is undocumented); this is the unkind reading.
- error-with-text (rest.py): the "applied but answered an error" Set-Mailbox quirk carries
  text in the error details (PowerShell's ErrorDetails) while the exception message stays
  empty; under this variant the quirk answers every 4th IsExchangeCloudManaged /
  Set-OrganizationConfig write even without an applied-error fault rate. Source: public notes
  on the quirk (the message is empty, ErrorDetails carry text); the rate is the sandbox's.
- writeback-off / writeback-phase2 (sync.py, cloudsync.py): no writeback of a cloud-managed
  mailbox's Exchange attributes to AD / writeback of exactly mail, proxyAddresses,
  extensionAttribute1-15, msExchExtensionCustomAttribute1-5, msExchRecipientDisplayType and
  msExchRecipientTypeDetails, configured as a Cloud Sync "EXO to AD attribute sync" job that
  Graph lists. Source: Microsoft Learn "Exchange hybrid writeback with cloud sync" (entra-docs
  cloud-sync/exchange-hybrid.md); mardahl/Exchange-SOA-Manager wiki "Writeback to AD" (Phase 1
  writes nothing back; the Phase 2 list). The default sandbox writes back those attributes
  and HiddenFromAddressListsEnabled at each sync cycle (its older reading) and lists no job.
- build-after-latency (rest.py, graph.py, knobs.py): a read's page is built after
  `--latency-ms` instead of within it, so concurrent pages queue for the sandbox's one process
  and a read's answer comes later the more pages are built at once. Source: none; how the
  service's time for a page grows with its size or with the tenant's requests in flight is not
  published (docs/exchange-facts.md, "A read's page is built within its latency"). This was
  the sandbox's timing before issue 17's seventh session.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Final

VARIANTS: Final[dict[str, str]] = {
    "bool-literals": "$true/$false in a REST filter is refused (the V3 module sends 'True'/'False')",
    "org-config-block": "Get-OrganizationConfig shows only BlockExchangeProvisioningFromOnPremEnabled",
    "edoid-no-wildcard-error": "ExternalDirectoryObjectId -like 'x*' is refused",
    "edoid-no-wildcard-literal": "ExternalDirectoryObjectId -like 'x*' matches '*' literally",
    "prtd-null": "an unset PreviousRecipientTypeDetails is $null, not 'None'",
    "adminapi-errors": "paged reads answer 200 with @adminapi.errors for some records",
    "cursor-advances": "a nextLink whose answer was lost has moved on to the next page",
    "error-with-text": "the applied-but-failed write error carries text in its details",
    "writeback-off": "no writeback to AD (Phase 1; no Cloud Sync job)",
    "writeback-phase2": "writeback of the Phase 2 attribute list only (a Cloud Sync job)",
    "build-after-latency": "a read's page is built after the latency, not within it (concurrent pages queue)",
}
#: The set most likely real (`--strict`): a rehearsal against the most conservative reading.
STRICT: Final = ("bool-literals", "org-config-block", "prtd-null", "adminapi-errors", "error-with-text",
                 "writeback-off")
#: Variants that cannot be on together.
EXCLUSIVE: Final = (("edoid-no-wildcard-error", "edoid-no-wildcard-literal"), ("writeback-off", "writeback-phase2"))


def parse_variants(spec: str | Iterable[str] | None, *, strict: bool = False) -> frozenset[str]:
    """Names from `NAME[,NAME...]` (or an iterable of such), plus STRICT when `strict`; ValueError names
    the known variants for an unknown one, and the pair for two that exclude each other."""
    items: list[str] = []
    if isinstance(spec, str):
        spec = [spec]
    for part in spec or ():
        items.extend(x.strip().lower() for x in str(part).split(",") if x.strip())
    if strict:
        items.extend(STRICT)
    from exocm.sandbox.readiness_state import VARIANTS as READINESS_VARIANTS  # states, not readings

    unknown = [x for x in items if x not in VARIANTS and x not in READINESS_VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}: expected one of {', '.join(VARIANTS)} "
                         f"(or a readiness state: {', '.join(READINESS_VARIANTS)})")
    names = frozenset(items)
    for a, b in EXCLUSIVE:
        if a in names and b in names:
            if strict and b == "writeback-phase2" and a == "writeback-off":
                return names - {"writeback-off"}  # --strict plus an explicit phase 2: phase 2 wins
            raise ValueError(f"variants {a} and {b} exclude each other")
    return names
