"""Settings of the EDI connector, read from `APEX_EDI_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.settings import apex_config


class EdiSettings(BaseSettings):
    model_config = apex_config("APEX_EDI_")

    inbox: Path | None = Field(
        default=None,
        description="Drop folder for carrier X12 files; processed files move to done/ or failed/ beside them",
    )
    read_chunk_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024, description="Bytes read per step")
    max_segment_chars: int = Field(
        default=1_000_000,
        ge=1024,
        description="A longer segment (or a file without terminators) is reported and skipped, never held whole",
    )
    max_set_segments: int = Field(
        default=100_000, ge=10, description="A transaction set with more segments is reported and skipped"
    )
