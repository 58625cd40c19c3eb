"""Microsoft clouds: where Exchange Online's REST endpoint and the sign-in authority live.

Hosts per docs/exchange-facts.md#clouds-and-hosts (the hosts ExchangeOnlineManagement V3 uses per
`-ExchangeEnvironmentName`): Commercial and GCC share the commercial endpoints; GCC High
and DoD use the `.us` sign-in authority; 21Vianet (China) has its own hosts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Cloud:
    """One cloud: REST host, sign-in authority host and Graph host."""

    name: str
    label: str
    rest_host: str
    authority_host: str
    graph_host: str

    @property
    def rest_base_url(self) -> str:
        """Base URL of the Exchange Online REST endpoint (the bridge appends /adminapi/...)."""
        return f"https://{self.rest_host}"

    @property
    def scope(self) -> str:
        """The app-only / delegated scope for Exchange Online in this cloud."""
        return f"https://{self.rest_host}/.default"

    def authority(self, tenant: str) -> str:
        """The MSAL authority URL for `tenant` in this cloud."""
        return f"https://{self.authority_host}/{tenant}"

    @property
    def graph_base_url(self) -> str:
        """Base URL of Microsoft Graph in this cloud."""
        return f"https://{self.graph_host}"


CLOUDS: Final[dict[str, Cloud]] = {
    "commercial": Cloud("commercial", "Commercial", "outlook.office365.com",
                        "login.microsoftonline.com", "graph.microsoft.com"),
    "gcc": Cloud("gcc", "GCC", "outlook.office365.com",
                 "login.microsoftonline.com", "graph.microsoft.com"),
    "gcchigh": Cloud("gcchigh", "GCC High", "outlook.office365.us",
                     "login.microsoftonline.us", "graph.microsoft.us"),
    "dod": Cloud("dod", "DoD", "outlook-dod.office365.us",
                 "login.microsoftonline.us", "dod-graph.microsoft.us"),
    # 21Vianet: older clients used partner.outlook.cn; outlook.office365.cn is current.
    "china": Cloud("china", "21Vianet (China)", "outlook.office365.cn",
                   "login.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn"),
}

#: Profiles may name "custom" instead of a cloud: then authority, rest_base_url and scope are explicit.
CUSTOM: Final = "custom"


def get_cloud(name: str) -> Cloud:
    """Return the cloud called `name` (case-insensitive); ValueError names the known ones."""
    key = name.strip().lower().replace(" ", "").replace("-", "").replace("_", "")
    aliases = {"21vianet": "china", "gcch": "gcchigh", "usgovdod": "dod", "o365default": "commercial"}
    key = aliases.get(key, key)
    try:
        return CLOUDS[key]
    except KeyError:
        known = ", ".join([*CLOUDS, CUSTOM])
        raise ValueError(f"unknown cloud {name!r}; known: {known}") from None
