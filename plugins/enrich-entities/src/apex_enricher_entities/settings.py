"""Settings of the entities enricher (`APEX_ENTITIES_*`)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from apex_platform.settings import apex_config

#: Every entity type this enricher can add, in the order it looks for them.
ENTITY_TYPES: tuple[str, ...] = (
    "Email",
    "Phone",
    "Amount",
    "Shipment",
    "Invoice",
    "PurchaseOrder",
    "BillOfLading",
    "Vehicle",
    "Carrier",
    "Place",
    "Person",
    "Organization",
)


class EntitiesSettings(BaseSettings):
    """What the enricher looks for. Every field reads `APEX_ENTITIES_<FIELD>`."""

    model_config = apex_config("APEX_ENTITIES_")

    enabled_types: str = Field(
        default="all",
        description="'all' or a comma-separated list of entity types to add (e.g. 'Email,Phone,Shipment')",
    )
    max_text_chars: int = Field(
        default=200_000,
        ge=1,
        description="Characters scanned per field (title, text) and in all attribute strings together",
    )
    phone_region: str = Field(
        default="US",
        pattern=r"^[A-Z]{2}$",
        description="Region assumed for phone numbers written without +country code (ISO 3166 alpha-2)",
    )

    @field_validator("enabled_types")
    @classmethod
    def _known_types(cls, value: str) -> str:
        names = [part.strip() for part in value.split(",") if part.strip()]
        if not names or names == ["all"]:
            return "all"
        by_lower = {name.lower(): name for name in ENTITY_TYPES}
        unknown = [name for name in names if name.lower() not in by_lower]
        if unknown:
            raise ValueError(
                f"unknown entity type(s) {', '.join(unknown)} in APEX_ENTITIES_ENABLED_TYPES; "
                f"known: {', '.join(ENTITY_TYPES)}"
            )
        return ",".join(dict.fromkeys(by_lower[name.lower()] for name in names))

    @property
    def types(self) -> frozenset[str]:
        """The enabled entity types."""
        if self.enabled_types == "all":
            return frozenset(ENTITY_TYPES)
        return frozenset(self.enabled_types.split(","))
