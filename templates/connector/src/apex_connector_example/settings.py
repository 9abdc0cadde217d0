from __future__ import annotations

from pydantic_settings import BaseSettings

from apex_platform.settings import Secrets, apex_config


class ExampleSettings(BaseSettings):
    model_config = apex_config("APEX_EXAMPLE_")

    signing_secret: Secrets | None = None
