"""Proxy-address strings shared between the frames loaded in one process.

An inventory frame and the on-prem frame hold the same proxy addresses (``EmailAddresses``) for
most recipients: at 300,000 recipients about a million Python str objects, over 100 MB, on each
side. Inventories remember their frames here (weakly) when they are made; the on-prem loader
then takes the inventory's str object for an equal address instead of keeping a copy of its own.
Values and types do not change (str is immutable); only the objects are shared.
"""
from __future__ import annotations

import itertools
import threading
import weakref

import pandas as pd

__all__ = ["address_pool", "remember_addresses"]

_COLUMN = "EmailAddresses"
_frames: list[weakref.ref[pd.DataFrame]] = []
_lock = threading.Lock()


def remember_addresses(frame: pd.DataFrame) -> None:
    """Offer ``frame``'s EmailAddresses strings to frames built later (the frame is held weakly)."""
    if _COLUMN not in frame.columns or frame[_COLUMN].dtype != object:
        return
    with _lock:
        _frames[:] = [ref for ref in _frames if ref() is not None]
        _frames.append(weakref.ref(frame))


def address_pool() -> dict[str, str]:
    """Every address of the remembered frames still alive, mapped to itself (empty when none)."""
    with _lock:
        frames = [frame for frame in (ref() for ref in _frames) if frame is not None]
    pool: dict[str, str] = {}
    for frame in frames:
        if _COLUMN in frame.columns:
            cells = frame[_COLUMN].to_numpy(dtype=object)
            flat = list(itertools.chain.from_iterable(c for c in cells if isinstance(c, tuple)))
            pool.update(zip(flat, flat, strict=True))
    return pool
