"""The persisted MSAL token cache (msal-extensions).

An OS-encrypted store (DPAPI on Windows, Keychain on macOS, libsecret on Linux) is used
when it works; otherwise a plain file of mode 0600 in a 0700 directory under the data
dir. Tokens are never logged.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import msal
from msal_extensions import FilePersistence, PersistedTokenCache, build_encrypted_persistence

from ..files import private_dir
from .config import token_cache_path

log = logging.getLogger(__name__)


def build_token_cache(path: Path | None = None, *, encrypted: bool | None = None) -> msal.TokenCache:
    """A persisted token cache at `path` (default: the data dir's token_cache.json).

    `encrypted=None` tries the OS store and falls back to a 0600 file; set
    EXOCM_TOKEN_CACHE=file to skip the OS store (CI, headless servers).
    """
    path = path or token_cache_path()
    private_dir(path.parent)
    if encrypted is None:
        encrypted = os.environ.get("EXOCM_TOKEN_CACHE", "").lower() != "file"
    if encrypted:
        try:
            return PersistedTokenCache(build_encrypted_persistence(str(path)))
        except Exception as exc:  # no keyring / dependency: fall back to the 0600 file
            log.debug("OS token store unavailable (%s); using a 0600 file", exc.__class__.__name__)
    if path.exists():
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
    return PersistedTokenCache(FilePersistence(str(path)))


def memory_token_cache() -> msal.TokenCache:
    """An in-memory cache (the embedded sandbox's tokens die with the process)."""
    return msal.TokenCache()
