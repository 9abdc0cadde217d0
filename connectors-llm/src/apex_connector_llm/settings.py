"""Settings of the LLM push connector, read from `APEX_LLM_*` environment variables.

Authentication is the platform's (`APEX_API_KEYS`); these are the decoding limits. The
request body as a whole is limited by `APEX_MAX_BODY_BYTES` (413 above it).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.settings import apex_config


class LlmSettings(BaseSettings):
    model_config = apex_config("APEX_LLM_")

    max_messages: int = Field(default=2000, ge=1, le=100_000, description="Most messages in one push")
    max_message_chars: int = Field(
        default=200_000, ge=100, description="Longest text of one message (its text parts together)"
    )
    max_total_chars: int = Field(default=1_000_000, ge=100, description="Longest transcript of one push")
    max_tool_calls: int = Field(default=128, ge=1, description="Most tool calls in one assistant message")
    max_metadata_bytes: int = Field(default=16_384, ge=64, description="Largest `metadata` object, as JSON")
