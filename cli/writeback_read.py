"""Read whether Cloud Sync writes Exchange attributes back to AD, for undo and findings.

The read itself is core's (runbooks.reads.cloud_sync_writeback); this only opens Graph the way the runbooks do
(the embedded sandbox's Graph with its secret in memory, else the profile's Graph) and turns "no
Graph" into an unknown answer instead of a failure.
"""
from __future__ import annotations

from typing import Any

from exocm.core.model import Writeback


def read_writeback(connection: Any) -> Writeback:
    """The tenant's writeback configuration (Writeback(None, ...) when Graph cannot be asked); the
    read is core's (exocm.core.app.tenants.read_writeback, which tenant sets use too)."""
    from exocm.core.app.tenants import read_writeback as read_profile_writeback

    profile = connection.profile
    handle = getattr(connection, "sandbox_handle", None)
    if handle is not None and profile.secret_env is not None:
        result: Writeback = read_profile_writeback(
            profile, env={profile.secret_env: str(handle.info["client_secret"])}, persist_tokens=False)
    else:
        result = read_profile_writeback(profile)
    return result
