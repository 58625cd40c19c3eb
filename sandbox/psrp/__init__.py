"""The sandbox's WinRM/PSRP endpoint: on-prem Exchange (`Microsoft.Exchange` at `/PowerShell`) and a
Windows management host running ExchangeOnlineManagement (`/wsman`), over one HTTP(S) port."""
from __future__ import annotations

from .wsman import Faults, WinRMEndpoint

__all__ = ["Faults", "WinRMEndpoint"]
