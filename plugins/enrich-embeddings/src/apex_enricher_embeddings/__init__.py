"""Apex embeddings enricher: record embeddings from feature hashing, an OpenAI-compatible API or a local model."""

from __future__ import annotations

from apex_enricher_embeddings.enricher import Backend, EmbeddingEnricher, make_backend
from apex_enricher_embeddings.errors import EmbeddingError
from apex_enricher_embeddings.hashing import HashEmbedder
from apex_enricher_embeddings.settings import EmbeddingsSettings

__all__ = ["Backend", "EmbeddingEnricher", "EmbeddingError", "EmbeddingsSettings", "HashEmbedder", "make_backend"]
