"""The checks before the last Exchange server goes (`--scope decommission`).

Microsoft's decommission guide (docs/exchange-facts.md#readiness-the-last-exchange-server) asks first that
every mailbox and public folder is in Exchange Online and every dir-synced mailbox is
cloud-managed, that MX/Autodiscover DNS and SMTP relay no longer point at the server; then the
hybrid objects are removed while the server still runs, in a given order; then Setup /m:Uninstall.
exocm only reads here: it removes nothing, and says which steps it cannot see.
"""
from __future__ import annotations

from typing import Final

from ...inventory.onprem import LOCAL_MAILBOX_TYPES
from ...model import FLIP_TYPES
from .model import Check, Facts, make

#: Hybrid objects in the order the guide removes them, with the on-prem command that does it.
HYBRID_CLEANUP: Final[tuple[tuple[str, str], ...]] = (
    ("HybridConfiguration", "Remove-HybridConfiguration"),
    ("IntraOrganizationConnector", "Remove-IntraOrganizationConnector -Identity '{name}'"),
    ("SendConnector", "Remove-SendConnector -Identity '{name}'"),
    ("ReceiveConnector", "Set-ReceiveConnector -Identity '{name}' -TlsDomainCapabilities $null "
                         "(drop AcceptCloudServicesMail; keep the connector)"),
    ("OrganizationRelationship", "Remove-OrganizationRelationship -Identity '{name}'"),
    ("FederationTrust", "Remove-FederationTrust -Identity '{name}'"),
)
_SAMPLE = 10


def onprem_mailboxes_left(f: Facts) -> Check:
    """ONPREM_MAILBOXES_LEFT: no mailbox of any type on the Exchange server (on-prem Get-Mailbox)."""
    code = "ONPREM_MAILBOXES_LEFT"
    if not f.onprem.ok or f.onprem.value is None:
        return make(code, "unknown", f"on-prem mailboxes not read: {f.onprem.reason}",
                    "Give on-prem data (--onprem-csv or --onprem-host).")
    frame = f.onprem.value
    local = frame[frame["RecipientTypeDetails"].isin(LOCAL_MAILBOX_TYPES)]
    if len(local):
        by_type = local["RecipientTypeDetails"].astype(str).value_counts()
        return make(code, "fail", f"{len(local):,} mailbox(es) still on the Exchange server: " +
                    ", ".join(f"{t} {n:,}" for t, n in by_type.items()),
                    "Move them to Exchange Online (New-MoveRequest / migration batches) or remove them; a dual "
                    "mailbox is fixed with its runbook first.",
                    [str(u) for u in local["UserPrincipalName"].head(_SAMPLE)])
    return make(code, "pass", f"no mailbox on the Exchange server ({len(frame):,} on-prem recipients read)")


def onprem_public_folders(f: Facts) -> Check:
    """ONPREM_PUBLIC_FOLDERS: no public folder mailbox or folder left on-prem."""
    code = "ONPREM_PUBLIC_FOLDERS"
    if not f.onprem_server.ok or f.onprem_server.value is None:
        return make(code, "unknown", f"public folders not read: {f.onprem_server.reason}")
    hf = f.onprem_server.value
    if hf.public_folder_mailboxes or hf.public_folders:
        return make(code, "fail", f"{len(hf.public_folder_mailboxes)} public folder mailbox(es), "
                                  f"{len(hf.public_folders)} public folder(s) on-prem",
                    "Migrate public folders to Exchange Online (batch migration) and remove the on-prem "
                    "public folder mailboxes.", [*hf.public_folder_mailboxes, *hf.public_folders][:_SAMPLE])
    return make(code, "pass", "no public folder mailbox on-prem (Get-Mailbox -PublicFolder)")


def all_cloud_managed(f: Facts) -> Check:
    """ALL_CLOUD_MANAGED: every dir-synced mailbox has IsExchangeCloudManaged True."""
    code = "ALL_CLOUD_MANAGED"
    if not f.inventory.ok or f.inventory.value is None:
        return make(code, "unknown", f"mailboxes not read: {f.inventory.reason}")
    inv = f.inventory.value
    synced = inv[inv["RecipientTypeDetails"].isin(FLIP_TYPES) & (inv["IsDirSynced"].fillna(False).astype(bool))]
    left = synced[synced["IsExchangeCloudManaged"].fillna(False).astype(bool) == False]  # noqa: E712
    if len(left):
        return make(code, "fail", f"{len(left):,} of {len(synced):,} dir-synced mailboxes are not cloud-managed",
                    "Flip them: exocm plan --set-cloud-managed true --all-dirsynced -o plan.json; exocm apply plan.json",
                    [str(u) for u in left["UserPrincipalName"].head(_SAMPLE)])
    return make(code, "pass", f"all {len(synced):,} dir-synced mailboxes are cloud-managed")


def groups_contacts_converted(f: Facts) -> Check:
    """GROUPS_CONTACTS_CONVERTED: synced groups and contacts have cloud source of authority
    (Graph onPremisesSyncBehavior.isCloudManaged)."""
    code = "GROUPS_CONTACTS_CONVERTED"
    if not f.object_soa.ok or f.object_soa.value is None:
        return make(code, "unknown", f.object_soa.reason,
                    "Check groups and contacts by hand: Graph GET /groups/{id}/onPremisesSyncBehavior "
                    "(isCloudManaged) for each synced group, /contacts/{id}/... (beta) for each contact.")
    soa = f.object_soa.value
    left = int(soa.get("not_converted", 0))
    total = int(soa.get("synced", 0))
    if left:
        return make(code, "fail", f"{left:,} of {total:,} synced groups/contacts are not cloud-managed "
                                  f"({int(soa.get('groups', 0)):,} groups, {int(soa.get('contacts', 0)):,} contacts synced)",
                    "Convert them (Graph PATCH .../onPremisesSyncBehavior {\"isCloudManaged\": true}), nested "
                    "groups children first.", [str(x) for x in soa.get("samples", [])])
    return make(code, "pass", f"all {total:,} synced groups and contacts are cloud-managed")


def hybrid_objects(f: Facts) -> Check:
    """HYBRID_OBJECTS: hybrid objects still on the server, listed as the guide's cleanup steps, in order."""
    code = "HYBRID_OBJECTS"
    if not f.onprem_server.ok or f.onprem_server.value is None:
        return make(code, "unknown", f"hybrid objects not read: {f.onprem_server.reason}")
    found = f.onprem_server.value.hybrid
    steps: list[str] = []
    for kind, command in HYBRID_CLEANUP:
        for name in found.get(kind, []):
            steps.append(f"{len(steps) + 1}. {kind} '{name}': {command.format(name=name.replace(chr(39), chr(39) * 2))}")
    if steps:
        kinds = [k for k, _ in HYBRID_CLEANUP if found.get(k)]
        return make(code, "fail", f"{len(steps)} hybrid object(s) still on the Exchange server: {', '.join(kinds)}",
                    "Remove them in the order listed while the server still runs, then the OAuth configuration, "
                    "then Setup /m:Uninstall (exocm removes nothing).", steps)
    return make(code, "pass", "no HybridConfiguration, IntraOrganizationConnector, hybrid connector, "
                              "OrganizationRelationship or FederationTrust on the Exchange server")


def manual_checks(f: Facts) -> Check:
    """MANUAL_CHECKS: what exocm cannot see (DNS, relay), stated as such."""
    steps = [
        "MX records of every accepted domain point to Exchange Online Protection, not the server",
        "Autodiscover DNS (CNAME autodiscover.<domain> -> autodiscover.outlook.com) no longer points at the server",
        "No application, device or printer relays SMTP through the server (check its receive connector logs)",
    ]
    return make("MANUAL_CHECKS", "unknown", "exocm cannot check DNS or SMTP relay clients: confirm by hand",
                "Check each item listed, then record it in the change ticket.", steps)


DECOMMISSION_CHECKS = (onprem_mailboxes_left, onprem_public_folders, all_cloud_managed, groups_contacts_converted,
                       hybrid_objects, manual_checks)
