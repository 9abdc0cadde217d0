"""Hook implementations of the embeddings enricher (entry point `embeddings` in `apex.plugins`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import apex_platform

if TYPE_CHECKING:
    from apex_platform.contracts import Enricher


#: the Apex plugin API versions this plugin is written for (checked when it loads)
apex_plugin_api = ">=1,<2"


@apex_platform.hookimpl
def apex_register_enrichers(register: Callable[[Enricher], None]) -> None:
    # Imported here so loading the entry point stays cheap. No I/O: the openai backend
    # connects per batch and the local model loads on first use.
    from apex_enricher_embeddings.enricher import EmbeddingEnricher

    register(EmbeddingEnricher())
