"""Reads and writes of object-level SOA through Microsoft Graph, for the apply and undo engines.

Per row: its properties (the ones the plan's fingerprint covers) from `GET /{groups|contacts|users}
?$filter=id in (...)&$select=...` and `GET .../onPremisesSyncBehavior` (isCloudManaged), in one
JSON batch of <= 20;
the write is `PATCH .../onPremisesSyncBehavior {"isCloudManaged": value}` (204), in a JSON batch
too (Graph docs `onpremisessyncbehavior-get`, `onpremisessyncbehavior-update`; v1.0 for groups,
beta for contacts and users). A 403 names the permission to grant.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..bridge.errors import BridgeError, InvalidInput, NotFound
from ..bridge.graph import GraphBridge, GraphCall
from ..inventory.objects import SELECT, _row
from ..model import GRAPH_COLLECTIONS, SYNC_BEHAVIOR_PERMISSIONS, SYNC_BEHAVIOR_VERSIONS, check_kind
from ..plan.planfile import Observed, object_values
from .apply import RowIO

Record = dict[str, Any]
#: Values Graph accepts in one `in (...)` filter clause.
IN_LIMIT: Final = 15
_GUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class ObjectIO(RowIO):
    """Groups, contacts or users through a Graph bridge."""

    def __init__(self, graph: GraphBridge, kind: str) -> None:
        self.graph = graph
        self.kind = check_kind(kind, allow_mailbox=False)
        self.noun = self.kind
        self.collection = GRAPH_COLLECTIONS[self.kind]
        self.version = SYNC_BEHAVIOR_VERSIONS[self.kind]
        self.permission = SYNC_BEHAVIOR_PERMISSIONS[self.kind]
        #: Writes sent (each a PATCH inside a batch), for benchmarks.
        self.writes = 0

    def read(self, identities: Sequence[str]) -> dict[str, Record]:
        """Object rows (inventory columns, IsCloudManaged from onPremisesSyncBehavior) of these ids.

        Per batch of <= 15 ids: one `GET /{collection}?$filter=id in (...)&$select=...` (Graph takes
        up to 15 values in `in`; the same properties as the inventory's listing) and one
        `GET .../onPremisesSyncBehavior` per id: <= 16 requests, one JSON batch.
        """
        ids = [i for i in dict.fromkeys(identities) if i]
        bad = [i for i in ids if not _GUID.match(i)]
        if bad:
            raise InvalidInput(f"{bad[0]!r} is not an object id")
        select = ",".join(SELECT[self.kind])
        out: dict[str, Record] = {}
        for start in range(0, len(ids), IN_LIMIT):
            part = ids[start:start + IN_LIMIT]
            terms = ",".join(f"'{i}'" for i in part)
            calls = [GraphCall("GET", f"/{self.collection}?$filter=id in ({terms})&$select={select}")]
            calls += [GraphCall("GET", f"/{self.collection}/{oid}/onPremisesSyncBehavior") for oid in part]
            results = self.graph.batch(calls, what=f"read {self.collection}", version=self.version,
                                       permission=self.permission, parallel=False)
            listing, behaviours = results[0], results[1:]
            if listing.error is not None:
                raise listing.error
            body = listing.body if isinstance(listing.body, Mapping) else {}
            value = body.get("value")
            found = {str(r.get("id") or "").lower(): r for r in (value if isinstance(value, list) else [])
                     if isinstance(r, Mapping)}
            for oid, behaviour in zip(part, behaviours, strict=True):
                if isinstance(behaviour.error, NotFound) or oid.lower() not in found:
                    continue
                if behaviour.error is not None:
                    raise behaviour.error
                row = _row(self.kind, found[oid.lower()])
                state = behaviour.body.get("isCloudManaged") if isinstance(behaviour.body, Mapping) else None
                row["IsCloudManaged"] = state if isinstance(state, bool) else None
                out[oid] = row
        return out

    def observe(self, record: Mapping[str, Any]) -> Observed:
        """isCloudManaged, onPremisesLastSyncDateTime and the mail attributes' fingerprint."""
        return Observed.from_object(record)

    def backup(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The object's mail attributes (what AD overwrites when it takes the object back)."""
        return object_values(record)

    def write(self, identities: Sequence[str], target: bool) -> list[BridgeError | None]:
        """PATCH onPremisesSyncBehavior {"isCloudManaged": target} for each id, in JSON batches."""
        calls = [GraphCall("PATCH", f"/{self.collection}/{oid}/onPremisesSyncBehavior", body={"isCloudManaged": target})
                 for oid in identities]
        self.writes += len(calls)
        results = self.graph.batch(calls, what=f"set isCloudManaged of {self.collection}", version=self.version,
                                   permission=self.permission, parallel=False)
        return [r.error for r in results]
