"""The embeddings enricher: sets `record.embedding` from the record's title, text and attributes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Protocol

from pydantic_settings import BaseSettings

from apex_enricher_embeddings.errors import EmbeddingError
from apex_enricher_embeddings.inputs import embedding_input
from apex_enricher_embeddings.settings import EmbeddingsSettings
from apex_platform.models import Record
from apex_platform.settings import load


class Backend(Protocol):
    """Turns texts into vectors of `dimension` floats (None: nothing to embed)."""

    name: str
    dimension: int

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...] | None]: ...


def make_backend(settings: EmbeddingsSettings) -> Backend:
    """The backend APEX_EMBEDDINGS_BACKEND names. Creating one does no I/O."""
    if settings.backend == "openai":
        from apex_enricher_embeddings.openai_http import OpenAIEmbedder

        return OpenAIEmbedder(settings)
    if settings.backend == "local":
        from apex_enricher_embeddings.local import LocalEmbedder

        return LocalEmbedder(settings)
    from apex_enricher_embeddings.hashing import HashEmbedder

    return HashEmbedder(settings.dim)


class EmbeddingEnricher:
    """Sets `embedding` on every live record with a title or text that lacks one of `dimension` floats.

    Deleted records, records with neither title nor text, and records that already carry an
    embedding of the right dimension pass through unchanged (so a retry or a second run does
    no work and changes nothing). Records are never dropped or reordered. Identical inputs in
    one batch are embedded once.
    """

    name = "embeddings"
    #: read by `apex-platform plugins settings` (`Configurable`)
    settings_model: ClassVar[type[BaseSettings] | None] = EmbeddingsSettings

    def __init__(self, settings: EmbeddingsSettings | None = None, backend: Backend | None = None) -> None:
        self.settings = settings if settings is not None else load(EmbeddingsSettings)
        self.backend = backend if backend is not None else make_backend(self.settings)
        if self.backend.dimension != self.settings.dim:
            raise ValueError(
                f"backend {self.backend.name} makes {self.backend.dimension} dimensions, "
                f"APEX_EMBEDDINGS_DIM is {self.settings.dim}"
            )

    @property
    def dimension(self) -> int:
        return self.settings.dim

    def wants(self, record: Record) -> str | None:
        """The text to embed for `record`, or None when it gets no (new) embedding."""
        if record.deleted:
            return None
        if record.embedding is not None and len(record.embedding) == self.dimension:
            return None
        text = embedding_input(record, self.settings.fields, self.settings.max_input_chars)
        return text or None

    async def enrich(self, records: Sequence[Record]) -> list[Record]:
        inputs = [self.wants(record) for record in records]
        unique = list(dict.fromkeys(text for text in inputs if text is not None))
        if not unique:
            return list(records)
        vectors = await self.backend.embed(unique)
        if len(vectors) != len(unique):
            raise EmbeddingError(
                f"embeddings backend {self.backend.name} returned {len(vectors)} vectors for {len(unique)} texts",
                retryable=False,
            )
        by_text = dict(zip(unique, vectors, strict=True))
        out: list[Record] = []
        for record, text in zip(records, inputs, strict=True):
            vector = by_text.get(text) if text is not None else None
            if vector is None:
                out.append(record)
                continue
            self._check(vector, record)
            out.append(record.model_copy(update={"embedding": vector}))
        return out

    def _check(self, vector: tuple[float, ...], record: Record) -> None:
        if len(vector) != self.dimension:
            raise EmbeddingError(
                f"embeddings backend {self.backend.name} returned {len(vector)} dimensions for record "
                f"{record.key}, APEX_EMBEDDINGS_DIM is {self.dimension}",
                retryable=False,
            )
        if not all(map(math.isfinite, vector)):
            raise EmbeddingError(
                f"embeddings backend {self.backend.name} returned a non-finite value for record {record.key}",
                retryable=False,
            )
