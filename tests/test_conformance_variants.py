"""Each conformance variant of the sandbox (sandbox/variants.py) as a raw client sees it, and what
exocm's engine does under it: the REST answers themselves, then the product's reads and writes
through its real bridge. A fault campaign under cursor-advances (timeouts and resets on read
pages) must lose no record, at 3,000 users with small pages and at 20,000 users (~15 s).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from exocm.core.access.config import sandbox_profile
from exocm.core.access.connect import open_bridge
from exocm.core.access.graph_host import open_graph
from exocm.core.bridge.classify import classify_response
from exocm.core.bridge.errors import AppliedUnknown
from exocm.core.bridge.rest import RestBridge, sanitize_bool_literals
from exocm.core.detect.engine import detect
from exocm.core.execute.apply import apply_plan
from exocm.core.execute.tenant_default import set_tenant_default, show_tenant_default
from exocm.core.execute.undo import build_undo_plan
from exocm.core.inventory.fetch import DIRSYNCED_FILTER, fetch_inventory
from exocm.core.inventory.onprem import onprem_frame_from_records
from exocm.core.inventory.partition import plan_by_first_character
from exocm.core.model import Writeback
from exocm.core.runbooks.reads import cloud_sync_writeback
from exocm.sandbox.opath import compile_filter
from exocm.sandbox.server import Sandbox
from exocm.sandbox.variants import STRICT, parse_variants
from plan_support import dirsynced_plan
from sandbox_clients import app_token, cmdlet_body, headers, invoke, rest_client


@pytest.fixture
def bridge_for() -> Iterator[Callable[..., RestBridge]]:
    opened: list[RestBridge] = []

    def make(sb: Sandbox, **options: Any) -> RestBridge:
        profile = sandbox_profile("test", sb.info)
        assert profile.secret_env is not None
        bridge = open_bridge(profile, env={profile.secret_env: str(sb.info["client_secret"])},
                             persist_tokens=False, **options)
        opened.append(bridge)
        return bridge

    yield make
    for bridge in opened:
        bridge.close()


def truth_keys(sb: Sandbox) -> set[str]:
    """Keys of every mailbox and mail user, straight from the model (the inventory's rows)."""
    return {e for e, r in sb.tenant.exo.items() if r.rtd.endswith("Mailbox") or r.rtd == "MailUser"}


# -- the variants themselves ----------------------------------------------------------------------
def test_parse_variants_knows_the_names_the_strict_set_and_the_exclusive_pairs() -> None:
    assert parse_variants(None, strict=True) == frozenset(STRICT)
    assert parse_variants("bool-literals, prtd-null") == {"bool-literals", "prtd-null"}
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        parse_variants("nope")
    with pytest.raises(ValueError, match="exclude each other"):
        parse_variants("edoid-no-wildcard-error,edoid-no-wildcard-literal")
    assert "writeback-off" not in parse_variants("writeback-phase2", strict=True)


def test_bool_literals_refuses_a_true_literal_in_a_rest_filter_but_not_a_quoted_one(
        make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=60, seed=3, variants="bool-literals")
    info, token = sb.info, app_token(sb.info)
    with rest_client(info) as client:
        refused = invoke(client, info, token, "Get-Mailbox", Filter="IsDirSynced -eq $true")
        quoted = invoke(client, info, token, "Get-Mailbox", Filter="IsDirSynced -eq 'True'")
        text = invoke(client, info, token, "Get-Mailbox", Filter="CustomAttribute1 -eq '$true'")
    assert refused.status_code == 400 and "ParameterBindingException" in refused.text
    assert quoted.status_code == 200 and quoted.json()["value"]
    assert text.status_code == 200
    assert sanitize_bool_literals("(A -eq $true) -and (B -ne $False) -and (C -eq '$true')") == \
        "(A -eq 'True') -and (B -ne 'False') -and (C -eq '$true')"


def test_org_config_block_shows_only_the_block_property_and_exocm_reads_it(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge], tmp_path: Any) -> None:
    sb = make_sandbox(size=60, seed=3, variants="org-config-block")
    record = sb.tenant.invoke("Get-OrganizationConfig", {})[0]
    assert "ExchangeAttributesCloudManagedByDefault" not in record
    assert record["BlockExchangeProvisioningFromOnPremEnabled"] is False
    bridge = bridge_for(sb)
    shown = show_tenant_default(bridge)
    assert shown.mode == "server" and shown.source_property == "BlockExchangeProvisioningFromOnPremEnabled"
    change = set_tenant_default(bridge, "cloud", data_dir=tmp_path)
    assert change.status == "verified" and change.after is True


def test_edoid_wildcards_refused_or_literal_and_the_inventory_stays_parallel_and_complete(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge]) -> None:
    for variant in ("edoid-no-wildcard-error", "edoid-no-wildcard-literal"):
        sb = make_sandbox(size=2500, seed=5, variants=variant)
        inventory = fetch_inventory(bridge_for(sb))
        assert set(inventory.frame.index) == truth_keys(sb)
        assert inventory.stats["degenerate_resplits"] == 1
        assert inventory.stats["mode"]["Get-Mailbox"] != "single"  # still parallel
        assert any("leading characters of UserPrincipalName" in n for n in inventory.notes)


def test_the_adaptive_split_puts_every_value_in_exactly_one_slice() -> None:
    rng = random.Random(4)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    odd = ["", "-x", "é@x", "j", "J-x", "jz", "Zed", "ja", "jA9"]
    values = [rng.choice("jjjjaaarsm0") + rng.choice(alphabet + "-.é") + "x@contoso.com" for _ in range(3000)] + odd
    props = {"userprincipalname": lambda o: o["upn"], "isdirsynced": lambda o: True}
    for sample in (None, values[:1000]):
        plan = plan_by_first_character("IsDirSynced -eq $true", sample=sample)
        assert 10 < len(plan.partitions) < 80
        preds = [compile_filter(str(p.filter), props) for p in plan.partitions]
        for value in values:
            assert sum(pred({"upn": value}) for pred in preds) == 1, value


def test_prtd_null_keeps_the_get_user_read_narrow(make_sandbox: Callable[..., Sandbox],
                                                 bridge_for: Callable[..., RestBridge]) -> None:
    sb = make_sandbox(size=400, seed=5, variants="prtd-null")
    users = sb.tenant.invoke("Get-User", {"ResultSize": "Unlimited"})
    assert any(u["PreviousRecipientTypeDetails"] is None for u in users)
    inventory = fetch_inventory(bridge_for(sb))
    narrowed = [r for r in sb.tenant.exo.values()
                if r.rtd == "MailUser" or (r.prev_rtd not in (None, "None") and r.rtd in
                                            ("UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox",
                                             "MailUser", "User"))]
    assert inventory.stats["user_records"] == len(narrowed) < len(users)
    assert set(inventory.frame.index) == truth_keys(sb)
    assert inventory.frame["PreviousRecipientTypeDetails"].notna().all()


def test_adminapi_errors_are_answered_and_exocm_reads_those_records_again(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge]) -> None:
    sb = make_sandbox(size=1500, seed=5, variants="adminapi-errors")
    info, token = sb.info, app_token(sb.info)
    with rest_client(info) as client:
        page = invoke(client, info, token, "Get-Mailbox", ResultSize="Unlimited").json()
    assert page["@adminapi.errors"] and "couldn't be read" in page["@adminapi.errors"][0]
    bridge = bridge_for(sb)
    inventory = fetch_inventory(bridge)
    assert inventory.stats["record_errors"] > 0
    assert inventory.stats["records_recovered"] == inventory.stats["record_errors"]
    assert not inventory.incomplete and set(inventory.frame.index) == truth_keys(sb)
    mailboxes = bridge.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})  # the generic read recovers too
    assert len({m["ExternalDirectoryObjectId"] for m in mailboxes}) == len(mailboxes) == sum(
        1 for r in sb.tenant.exo.values() if r.rtd.endswith("Mailbox"))


def test_cursor_advances_skips_a_page_for_a_link_sent_again(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=400, seed=5, variants="cursor-advances")
    info, token = sb.info, app_token(sb.info)
    body = cmdlet_body("Get-Mailbox", ResultSize="Unlimited")
    with rest_client(info) as client:
        first = invoke(client, info, token, "Get-Mailbox", page_size=50, ResultSize="Unlimited").json()
        link = first["@odata.nextLink"]
        once = client.post(link, json=body, headers=headers(token, page_size=50)).json()
        again = client.post(link, json=body, headers=headers(token, page_size=50)).json()
    ids = [[r["ExternalDirectoryObjectId"] for r in p["value"]] for p in (once, again)]
    assert ids[0] and ids[1] and not set(ids[0]) & set(ids[1])  # moved on: not the same page


def test_error_with_text_is_an_ambiguous_write_and_apply_settles_it_by_reading_back(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge]) -> None:
    sb = make_sandbox(size=120, seed=5, variants="error-with-text")
    target = next(e for e, r in sb.tenant.exo.items()
                  if r.dir_synced and not r.cloud_managed and r.rtd == "UserMailbox")
    bridge = bridge_for(sb)
    with pytest.raises(AppliedUnknown):
        bridge.invoke("Set-Mailbox", {"Identity": target, "IsExchangeCloudManaged": True})
    assert sb.tenant.exo[target].cloud_managed is True  # it applied
    body = {"error": {"code": "InternalServerError", "message": "",
                      "details": [{"message": "Ex1|Microsoft.Exchange.X.TaskInvalidOperationException|text"}],
                      "innererror": {"internalException": {"message": "", "type": "X"}}}}
    assert isinstance(classify_response(400, body, cmdlet="Set-Mailbox", is_write=True), AppliedUnknown)


def test_writeback_worlds_through_graph_and_the_sync(make_sandbox: Callable[..., Sandbox]) -> None:
    seen: dict[str, Writeback] = {}
    for variant in ("writeback-off", "writeback-phase2", None):
        sb = make_sandbox(size=120, seed=5, variants=variant)
        profile = sandbox_profile("g", sb.info)
        assert profile.secret_env is not None
        with open_graph(profile, env={profile.secret_env: str(sb.info["client_secret"])},
                        persist_tokens=False) as graph:
            seen[str(variant)] = cloud_sync_writeback(graph)
        r = next(r for r in sb.tenant.exo.values() if r.dir_synced and r.rtd == "UserMailbox"
                 and sb.tenant.ad_for(r) is not None)
        sb.tenant.invoke("Set-Mailbox", {"Identity": r.edoid, "IsExchangeCloudManaged": True})
        sb.tenant.invoke("Set-Mailbox", {"Identity": r.edoid, "CustomAttribute7": "cloud edit",
                                         "HiddenFromAddressListsEnabled": True})
        sb.run_sync_cycle()
        ad = sb.tenant.ad_for(r)
        assert ad is not None
        if variant == "writeback-off":
            assert (ad.ca or {}).get(7) != "cloud edit" and not ad.hidden
        elif variant == "writeback-phase2":
            assert (ad.ca or {}).get(7) == "cloud edit" and not ad.hidden  # the list has no hide flag
        else:
            assert (ad.ca or {}).get(7) == "cloud edit" and ad.hidden
    assert seen["writeback-off"].configured is False and seen["None"].configured is False
    assert seen["writeback-phase2"].configured is True
    assert seen["writeback-phase2"].reaches_ad("CustomAttribute7")
    assert not seen["writeback-phase2"].reaches_ad("HiddenFromAddressListsEnabled")


def test_strict_bridge_sends_true_as_text_so_dirsynced_reads_work(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge]) -> None:
    sb = make_sandbox(size=300, seed=5, strict=True)
    bridge = bridge_for(sb)
    got = bridge.invoke("Get-Mailbox", {"ResultSize": "Unlimited", "Filter": DIRSYNCED_FILTER})
    assert got and all(m["IsDirSynced"] is True for m in got)
    inventory = fetch_inventory(bridge, dirsynced_only=True)
    assert inventory.frame["IsDirSynced"].all() and not inventory.incomplete


# -- completeness independent of cursor replay ---------------------------------------------------
def _campaign(make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge], size: int,
              runs: list[tuple[int, int]]) -> None:
    """Inventories under 3% timeouts + 3% resets per request, each (partitions, page size) of `runs`.

    A lost page is never asked for again (whether the cursor moved on is unknown): its partition
    is read again from the start, so every record is there exactly once whatever the cursor did."""
    sb = make_sandbox(size=size, seed=11, variants="cursor-advances", fault_timeout_s=0.05)
    bridge = bridge_for(sb)
    expected = truth_keys(sb)
    sb.knobs.faults = {"timeout": 0.03, "reset": 0.03}
    try:
        for partitions, page_size in runs:
            inventory = fetch_inventory(bridge, partitions=partitions, page_size=page_size)
            assert set(inventory.frame.index) == expected
            assert len(inventory.frame) == len(expected)
            assert inventory.stats["duplicates_dropped"] == 0
    finally:
        sb.knobs.faults = {}
    assert sum(sb.stats.snapshot()["faults_injected"].values()) > 0
    assert bridge.snapshot()["pages_lost"] > 0  # lost follow-up pages happened, and were not sent again


def test_a_fault_campaign_under_cursor_advances_loses_no_record(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge]) -> None:
    _campaign(make_sandbox, bridge_for, 3000, [(16, 50), (16, 50), (1, 1000)])


def test_a_fault_campaign_under_cursor_advances_loses_no_record_at_20000_users(
        make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge]) -> None:
    _campaign(make_sandbox, bridge_for, 20_000, [(16, 1000), (16, 200), (1, 1000)])


# -- writeback-aware undo and drift ---------------------------------------------------------------
@pytest.mark.parametrize("variant", ["writeback-off", "writeback-phase2"])
def test_undo_and_findings_know_what_never_reaches_ad(variant: str, make_sandbox: Callable[..., Sandbox],
                                                      bridge_for: Callable[..., RestBridge]) -> None:
    sb = make_sandbox(size=120, seed=22, variants=variant)
    bridge = bridge_for(sb)
    plan = dirsynced_plan(sb, bridge, limit=4)
    run = apply_plan(bridge, plan)
    edited = plan.set_rows()[0].identity
    bridge.invoke("Set-Mailbox", {"Identity": edited, "CustomAttribute3": "edited in the cloud",
                                  "HiddenFromAddressListsEnabled": True})
    sb.run_sync_cycle()
    profile = sandbox_profile("g", sb.info)
    assert profile.secret_env is not None
    with open_graph(profile, env={profile.secret_env: str(sb.info["client_secret"])}, persist_tokens=False) as graph:
        writeback = cloud_sync_writeback(graph)
    assert writeback.configured is (variant == "writeback-phase2")

    # the undo preview (no on-prem data): what a flip back overwrites in this world
    undo = build_undo_plan(bridge, run.journal_path, writeback=writeback)
    row = next(r for r in undo.rows if r.identity == edited)
    assert row.overwritten is not None
    if variant == "writeback-off":
        assert set(row.overwritten) == {"CustomAttribute3", "HiddenFromAddressListsEnabled"}
    else:
        assert set(row.overwritten) == {"HiddenFromAddressListsEnabled"}  # CustomAttribute3 reached AD
    assert undo.source["writeback"] == ("on" if writeback.configured else "off")

    # the finding: cloud edits that never reach AD (compared with what on-prem holds now)
    onprem = onprem_frame_from_records(sb.tenant.onprem_records()).frame
    inventory = fetch_inventory(bridge)
    result = detect(inventory.frame, onprem, writeback=writeback, codes=["CLOUD_EDITS_NOT_WRITTEN_BACK"])
    hits = set(result.findings["ExternalDirectoryObjectId"])
    if variant == "writeback-off":
        assert edited in hits
    else:
        assert edited not in hits  # CustomAttribute3 reached AD; the hide flag is not compared with on-prem

    # and the flip back really overwrites exactly that
    apply_plan(bridge, undo)
    sb.run_sync_cycle()
    after = sb.tenant.exo[edited]
    assert ((after.ca or {}).get(3) == "edited in the cloud") is (variant == "writeback-phase2")
    assert after.hidden is False


def test_sandbox_serve_strict_print_json_names_its_variants_and_a_bad_one_is_one_line() -> None:
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from exocm.cli.main import main; main()", "sandbox", "serve", "--strict",
           "--print-json", "--size", "30", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert info["variants"] == sorted(STRICT)
    assert "conformance variants in force: adminapi-errors, bool-literals" in err
    bad = subprocess.run([*cmd[:6], "--variant", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown variant 'nope'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("variant", ["writeback-off", "writeback-phase2"])
def test_the_tui_session_reads_writeback_for_its_findings_as_the_cli_does(
        variant: str, make_sandbox: Callable[..., Sandbox], bridge_for: Callable[..., RestBridge],
        tmp_path: Any) -> None:
    from exocm.core.app.session import Session

    sb = make_sandbox(size=120, seed=22, variants=variant)
    bridge = bridge_for(sb)
    plan = dirsynced_plan(sb, bridge, limit=4)
    apply_plan(bridge, plan)
    edited = plan.set_rows()[0].identity
    bridge.invoke("Set-Mailbox", {"Identity": edited, "CustomAttribute3": "edited in the cloud"})
    sb.run_sync_cycle()
    profile = sandbox_profile("g", sb.info)
    assert profile.secret_env is not None
    secret = {profile.secret_env: str(sb.info["client_secret"])}

    def graph() -> Any:
        return open_graph(profile, env=secret, persist_tokens=False)

    session = Session(bridge, label="SANDBOX", is_sandbox=True, data_dir=tmp_path,
                      onprem_records=sb.tenant.onprem_records, snapshot_first=False, graph=graph)
    try:
        session.load_inventory(refresh=True)
        found = session.findings()
        assert session.writeback().configured is (variant == "writeback-phase2")
        assert not any(n.startswith("CLOUD_EDITS_NOT_WRITTEN_BACK not checked") for n in session.detect_notes)
        hits = set(found.loc[found["code"] == "CLOUD_EDITS_NOT_WRITTEN_BACK", "ExternalDirectoryObjectId"])
        assert (edited in hits) is (variant == "writeback-off")
    finally:
        session.close()

    # without Graph the code is listed as not checked, with the reason, and nothing fails
    blind = Session(bridge_for(sb), label="SANDBOX", is_sandbox=True, data_dir=tmp_path,
                    onprem_records=sb.tenant.onprem_records, snapshot_first=False)
    blind.load_inventory(refresh=True)
    blind.findings()
    assert blind.writeback().configured is None
    assert any(n.startswith("CLOUD_EDITS_NOT_WRITTEN_BACK not checked") for n in blind.detect_notes)
