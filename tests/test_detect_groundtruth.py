"""On generated sandbox tenants, detection finds exactly what the generator planted, per code.

The EXO side is read through the sandbox's own cmdlets (Get-Mailbox, Get-User with
-ResultSize Unlimited) and built into the inventory frame by core's record -> frame function;
the on-prem side arrives as an Export-Csv file written by the sandbox and read by the loader
any admin's file goes through. Sets are compared per code: no miss, no false positive.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from exocm.core.detect.engine import DetectResult, detect
from exocm.core.detect.readiness import flip_readiness
from exocm.core.inventory.fetch import records_to_frame
from exocm.core.inventory.onprem import load_onprem_csv
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.onprem_export import VARIANTS, write_onprem_csv


def _run(size: int, seed: int, csv_path: Path, variant: str = "default", *, blank_object_ids: bool = False):
    tenant = generate_tenant(size, seed)
    mailboxes = tenant.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
    users = tenant.invoke("Get-User", {"ResultSize": "Unlimited"})
    inventory = records_to_frame(mailboxes, users)
    write_onprem_csv(tenant, csv_path, variant=variant)
    onprem = load_onprem_csv(csv_path)
    assert onprem.bad_rows == []
    frame = onprem.frame
    if blank_object_ids:  # an export without msDS-ExternalDirectoryObjectId: join on UPN / addresses
        frame = frame.assign(ExternalDirectoryObjectId="")
    result = detect(inventory, frame, now=tenant.now())
    return tenant, inventory, result


def _assert_equals_planted(tenant, result: DetectResult) -> None:
    planted = tenant.planted()
    assert sum(len(v) for v in planted.values()) > 0
    f = result.findings
    for code, ids in planted.items():
        got = set(f.loc[f["code"] == code, "ExternalDirectoryObjectId"])
        want = {i.lower() for i in ids}
        assert got == want, f"{code}: missed {sorted(want - got)[:5]}, false positives {sorted(got - want)[:5]}"


def test_findings_equal_planted_problems_on_50000_users_from_an_export_csv(tmp_path: Path):
    tenant, inventory, result = _run(50_000, 20260301, tmp_path / "onprem.csv")
    _assert_equals_planted(tenant, result)
    assert result.match.ambiguous.empty
    # every planted code is really present at this size, so the comparison is not vacuous
    assert all(len(v) > 0 for v in tenant.planted().values())
    # readiness agrees: whatever is planted as a blocker is not 'ready' to flip to cloud
    ready = flip_readiness(inventory, result.findings, True)
    planted = tenant.planted()
    for code in ("DUAL_MAILBOX", "EXCHANGEGUID_MISMATCH", "RECENT_ONPREM_CHANGE", "ATTRIBUTE_DRIFT", "NOT_DIRSYNCED"):
        assert (ready.loc[[i.lower() for i in planted[code]], "status"] != "ready").all(), code
    assert set(ready.loc[[i.lower() for i in planted["ALREADY_CLOUD_MANAGED"]], "status"]) == {"already"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_export_variant_gives_the_same_findings(tmp_path: Path, variant: str):
    tenant, _, result = _run(2_000, 7, tmp_path / f"{variant}.csv", variant)
    _assert_equals_planted(tenant, result)


def test_without_entra_object_ids_the_upn_and_address_joins_find_the_same(tmp_path: Path):
    tenant, _, result = _run(5_000, 99, tmp_path / "onprem.csv", blank_object_ids=True)
    _assert_equals_planted(tenant, result)
    assert set(result.match.pairs["join"]) <= {"UserPrincipalName", "PrimarySmtpAddress", "EmailAddresses"}
