"""Errors raised by the sandbox's cmdlet layer; each server renders them in its own protocol.

`error_type` is the .NET exception type name Exchange reports; `category` is a PowerShell
ErrorCategory name (ObjectNotFound, InvalidArgument, InvalidOperation, PermissionDenied,
NotSpecified, WriteError, ResourceUnavailable, InvalidData).
"""
from __future__ import annotations


class CmdletError(Exception):
    """A cmdlet failed the way Exchange fails it."""

    def __init__(self, error_type: str, category: str, message: str, *, http_status: int = 400,
                 terminating: bool = True) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.category = category
        self.message = message
        self.http_status = http_status
        self.terminating = terminating
