"""Reads and writes of object-level SOA through Microsoft Graph, for the apply and undo engines.

Per row: `GET /{groups|contacts|users}/{id}?$select=...` (the properties the plan's fingerprint
covers) and `GET .../onPremisesSyncBehavior` (isCloudManaged), in JSON batches of <= 20;
the write is `PATCH .../onPremisesSyncBehavior {"isCloudManaged": value}` (204), in a JSON batch
too (Graph docs `onpremisessyncbehavior-get`, `onpremisessyncbehavior-update`; v1.0 for groups,
beta for contacts and users). A 403 names the permission to grant.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..bridge.errors import BridgeError, InvalidInput, NotFound
from ..bridge.graph import BATCH_LIMIT, GraphBridge, GraphCall
from ..inventory.objects import SELECT, _row
from ..model import GRAPH_COLLECTIONS, SYNC_BEHAVIOR_PERMISSIONS, SYNC_BEHAVIOR_VERSIONS, check_kind
from ..plan.planfile import Observed, object_values
from .apply import RowIO

Record = dict[str, Any]
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

        Per id: `GET /{collection}/{id}?$select=...` (the inventory's properties) and
        `GET .../onPremisesSyncBehavior`, in JSON batches of 20 (10 ids a batch).
        """
        ids = [i for i in dict.fromkeys(identities) if i]
        bad = [i for i in ids if not _GUID.match(i)]
        if bad:
            raise InvalidInput(f"{bad[0]!r} is not an object id")
        select = ",".join(SELECT[self.kind])
        calls: list[GraphCall] = []
        for oid in ids:
            calls.append(GraphCall("GET", f"/{self.collection}/{oid}?$select={select}"))
            calls.append(GraphCall("GET", f"/{self.collection}/{oid}/onPremisesSyncBehavior"))
        out: dict[str, Record] = {}
        for start in range(0, len(calls), BATCH_LIMIT):
            results = self.graph.batch(calls[start:start + BATCH_LIMIT], what=f"read {self.collection}",
                                       version=self.version, permission=self.permission, parallel=False)
            for index in range(0, len(results), 2):
                obj, behaviour = results[index], results[index + 1]
                oid = ids[(start + index) // 2]
                if isinstance(obj.error, NotFound) or isinstance(behaviour.error, NotFound):
                    continue
                for result in (obj, behaviour):
                    if result.error is not None:
                        raise result.error
                row = _row(self.kind, obj.body if isinstance(obj.body, Mapping) else {})
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
