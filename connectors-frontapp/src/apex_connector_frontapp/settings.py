"""Settings of the Front connector, read from `APEX_FRONTAPP_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.settings import Secrets, apex_config


class FrontSettings(BaseSettings):
    model_config = apex_config("APEX_FRONTAPP_")

    signing_secret: Secrets | None = Field(
        default=None,
        description=(
            "App secret of the Front app that owns the application webhook "
            "(Developers > your app > Basic information); several, comma-separated or a JSON array, during a "
            "rotation (any one is accepted). Unset: every delivery is rejected."
        ),
    )
    max_age_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="Replay window: deliveries whose timestamp is further than this from now are rejected",
    )
    accept_rule_webhooks: bool = Field(
        default=False,
        description=(
            "Also accept legacy rule webhooks (HMAC-SHA1 of the body with the API secret, no timestamp, "
            "so no replay protection)"
        ),
    )
    api_secret: Secrets | None = Field(
        default=None,
        description="API secret that signs rule webhooks; only read when accept_rule_webhooks is true",
    )
    rule_max_age_seconds: int = Field(
        default=3600,
        ge=0,
        le=7 * 86_400,
        description=(
            "Replay window of rule webhooks, from their signed body's emitted_at (they carry no timestamp "
            "header); 0 accepts any age, with no replay protection"
        ),
    )
