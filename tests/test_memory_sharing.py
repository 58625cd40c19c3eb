"""Loaded frames share what they hold twice, and the values stay what they were."""
from __future__ import annotations

import gc
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
from exocm.core.inventory.fetch import Inventory, records_to_frame
from exocm.core.inventory.onprem import load_onprem_csv
from exocm.core.memory import share_equal_columns

_ONPREM = (
    "UserPrincipalName,RecipientTypeDetails,EmailAddresses,CustomAttribute1,CustomAttribute2\n"
    "a@contoso.com,RemoteUserMailbox,SMTP:a@contoso.com;smtp:a@contoso.mail.onmicrosoft.com,,\n"
    "b@contoso.com,RemoteUserMailbox,SMTP:b@contoso.com;smtp:only-on-prem@contoso.com,,\n"
)


def _inventory() -> Inventory:
    mailboxes = [
        {"ExternalDirectoryObjectId": f"{i}0000000-0000-4000-8000-000000000000", "Guid": f"g{i}",
         "UserPrincipalName": f"{n}@contoso.com", "RecipientTypeDetails": "UserMailbox",
         "EmailAddresses": [f"SMTP:{n}@contoso.com", f"smtp:{n}@contoso.mail.onmicrosoft.com"]}
        for i, n in enumerate("ab")
    ]
    return Inventory(frame=records_to_frame(mailboxes, []), tenant="t", fetched_at=datetime.now(UTC), source="rest")


def test_on_prem_addresses_are_the_inventorys_string_objects_and_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "onprem.csv"
    path.write_text(_ONPREM, encoding="utf-8")
    alone = load_onprem_csv(path).frame
    inventory = _inventory()
    shared = load_onprem_csv(path).frame
    pd.testing.assert_frame_equal(shared, alone)
    cloud = {a: a for cell in inventory.frame["EmailAddresses"] for a in cell}
    onprem = [a for cell in shared["EmailAddresses"] for a in cell]
    assert onprem == ["SMTP:a@contoso.com", "smtp:a@contoso.mail.onmicrosoft.com", "SMTP:b@contoso.com",
                      "smtp:only-on-prem@contoso.com"]
    assert [a is cloud.get(a) for a in onprem] == [True, True, True, False]


def test_on_prem_loads_the_same_once_the_inventory_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "onprem.csv"
    path.write_text(_ONPREM, encoding="utf-8")
    inventory = _inventory()
    first = inventory.frame["EmailAddresses"].iloc[0][0]
    del inventory
    gc.collect()
    loaded = load_onprem_csv(path).frame
    assert loaded["EmailAddresses"].iloc[0][0] == first


def test_equal_columns_share_one_array_and_keep_their_values() -> None:
    frame = pd.DataFrame({"a": ["", "", ""], "b": ["", "", ""], "c": ["x", "", ""], "d": ["", "", None]},
                         dtype="str")
    before = frame.copy()
    share_equal_columns(frame)
    pd.testing.assert_frame_equal(frame, before)

    def buffers(col: str) -> list[int]:
        arr = pa.array(frame[col].array)
        chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
        return [b.address for c in chunks for b in c.buffers() if b is not None]

    assert buffers("a") == buffers("b")
    assert buffers("a") != buffers("c") and buffers("a") != buffers("d")
