"""Flip readiness for both directions: ready, blocked (with the finding codes), already."""
from __future__ import annotations

from datetime import timedelta

from detect_tenants import NOW, Tenant, eid, exo_mailbox, exo_mailuser, onprem
from exocm.core.detect.readiness import flip_readiness, readiness_counts


def _tenant() -> Tenant:
    return Tenant(
        [
            exo_mailbox("ready"),
            exo_mailbox("cloud", IsExchangeCloudManaged=True),
            exo_mailbox("dual"),
            exo_mailbox("guid"),
            exo_mailbox("recent"),
            exo_mailbox("drift", CustomAttribute1="new"),
            exo_mailbox("cloudonly", IsDirSynced=False),
            exo_mailbox("linked", "LinkedMailbox"),
            exo_mailbox("clouddual", IsExchangeCloudManaged=True),
        ],
        [exo_mailuser("stale", PreviousRecipientTypeDetails="UserMailbox")],
        onprem=[
            onprem("ready"),
            onprem("cloud"),
            onprem("dual", "UserMailbox"),
            onprem("guid", ExchangeGuid=""),
            onprem("recent", WhenChanged=NOW - timedelta(hours=2)),
            onprem("drift", CustomAttribute1="old"),
            onprem("clouddual", "UserMailbox"),
        ],
    )


def _status(t: Tenant, target: bool) -> dict[str, tuple[str, tuple[str, ...]]]:
    result = t.run()
    r = flip_readiness(t.inventory(), result.findings, target)
    names = ["ready", "cloud", "dual", "guid", "recent", "drift", "cloudonly", "linked", "clouddual", "stale"]
    return {n: (r.loc[eid(n), "status"], r.loc[eid(n), "reasons"]) for n in names}


def test_readiness_to_cloud_managed():
    s = _status(_tenant(), True)
    assert s["ready"] == ("ready", ())
    assert s["cloud"] == ("already", ("ALREADY_CLOUD_MANAGED",))
    assert s["dual"] == ("blocked", ("DUAL_MAILBOX",))
    assert s["guid"] == ("blocked", ("EXCHANGEGUID_MISMATCH",))
    assert s["recent"] == ("blocked", ("RECENT_ONPREM_CHANGE",))
    assert s["drift"] == ("blocked", ("ATTRIBUTE_DRIFT",))
    assert s["cloudonly"] == ("blocked", ("NOT_DIRSYNCED",))
    assert s["linked"] == ("blocked", ("UNSUPPORTED_TYPE",))
    assert s["clouddual"][0] == "already"  # nothing to do in this direction
    assert s["stale"] == ("blocked", ("PREVIOUS_MAILBOX_INFO", "UNSUPPORTED_TYPE"))  # worst severity first


def test_readiness_back_to_server_managed():
    s = _status(_tenant(), False)
    assert s["ready"] == ("already", ("ALREADY_SERVER_MANAGED",))
    assert s["cloud"] == ("ready", ())
    assert s["clouddual"] == ("blocked", ("DUAL_MAILBOX",))
    # a recent on-prem edit or drift does not block handing authority back to on-prem
    assert s["cloudonly"] == ("blocked", ("NOT_DIRSYNCED",))
    assert s["linked"] == ("blocked", ("UNSUPPORTED_TYPE",))


def test_readiness_covers_every_inventory_row_and_counts_add_up():
    t = _tenant()
    inv = t.inventory()
    r = flip_readiness(inv, t.run().findings, True)
    assert list(r.index) == list(inv.index)
    assert set(r["status"]) <= {"ready", "blocked", "already"}
    counts = readiness_counts(r)
    assert sum(counts.values()) == len(inv)
    assert counts == {"ready": 1, "blocked": 7, "already": 2}


def test_readiness_without_findings_still_knows_types_dirsync_and_state():
    t = _tenant()
    empty = t.run().findings.iloc[0:0]
    s = flip_readiness(t.inventory(), empty, True)
    assert s.loc[eid("cloudonly"), "reasons"] == ("NOT_DIRSYNCED",)
    assert s.loc[eid("dual"), "status"] == "ready"  # nothing known against it
