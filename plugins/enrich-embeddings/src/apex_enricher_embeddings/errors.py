"""Errors of the embeddings enricher."""

from __future__ import annotations

from apex_platform.errors import VendorError


class EmbeddingError(VendorError):
    """A backend failed or answered something unusable; `retryable` says whether to try again."""
