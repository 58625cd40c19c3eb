"""License SKUs the sandbox tenant knows (real skuIds and part numbers, Microsoft Learn
"Product names and service plan identifiers for licensing")."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sku:
    """A subscribed SKU: id, part number, and its service plans (id, name)."""

    sku_id: str
    part_number: str
    service_plans: tuple[tuple[str, str], ...]

    @property
    def has_exchange(self) -> bool:
        """True when a plan of the SKU provisions an Exchange Online mailbox."""
        return any(name.startswith("EXCHANGE_S_") for _, name in self.service_plans)


EXCHANGE_S_ENTERPRISE = ("efb87545-963c-4e0d-99df-69c6916d9eb0", "EXCHANGE_S_ENTERPRISE")
EXCHANGE_S_STANDARD = ("9aaf7827-d63c-4b61-89c3-182f06f82e5c", "EXCHANGE_S_STANDARD")
SHAREPOINTENTERPRISE = ("5dbe027f-2339-4123-9542-606e4d348a72", "SHAREPOINTENTERPRISE")
TEAMS1 = ("57ff2da0-773e-42df-b2af-ffb7a2317929", "TEAMS1")
BI_AZURE_P2 = ("70d33638-9c74-4d01-bfd3-562de28bd4ba", "BI_AZURE_P2")

E3 = Sku("6fd2c87f-b296-42f0-b197-1e91e994b900", "ENTERPRISEPACK",
         (EXCHANGE_S_ENTERPRISE, SHAREPOINTENTERPRISE, TEAMS1))
E5 = Sku("06ebc4ee-1bb5-47dd-8120-11324bc54e06", "SPE_E5", (EXCHANGE_S_ENTERPRISE, SHAREPOINTENTERPRISE, TEAMS1))
EXO_P1 = Sku("4b9405b0-7788-4568-add1-99614e613b69", "EXCHANGESTANDARD", (EXCHANGE_S_STANDARD,))
PBI = Sku("a403ebcc-fae0-4ca2-8c8c-7a907fd6c235", "POWER_BI_STANDARD", (BI_AZURE_P2,))

SKUS: dict[str, Sku] = {s.sku_id: s for s in (E3, E5, EXO_P1, PBI)}
EXCHANGE_SKUS = frozenset(s.sku_id for s in SKUS.values() if s.has_exchange)
