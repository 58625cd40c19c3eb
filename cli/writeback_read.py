"""Read whether Cloud Sync writes Exchange attributes back to AD, for undo and findings.

The read itself is core's (runbooks.reads.cloud_sync_writeback); this only opens Graph the way the runbooks do
(the embedded sandbox's Graph with its secret in memory, else the profile's Graph) and turns "no
Graph" into an unknown answer instead of a failure.
"""
from __future__ import annotations

from typing import Any

from exocm.core.access.config import ConfigError
from exocm.core.bridge.errors import BridgeError
from exocm.core.model import Writeback


def read_writeback(connection: Any) -> Writeback:
    """The tenant's writeback configuration (Writeback(None, ...) when Graph cannot be asked)."""
    from exocm.core.access.graph_host import open_graph
    from exocm.core.runbooks.reads import cloud_sync_writeback

    profile = connection.profile
    try:
        handle = getattr(connection, "sandbox_handle", None)
        if handle is not None and profile.secret_env is not None:
            graph = open_graph(profile, env={profile.secret_env: str(handle.info["client_secret"])},
                               persist_tokens=False)
        else:
            graph = open_graph(profile)
    except (ConfigError, BridgeError, OSError) as exc:
        return Writeback(None, (), f"Graph not available ({exc})")
    try:
        result: Writeback = cloud_sync_writeback(graph)
        return result
    finally:
        graph.close()
