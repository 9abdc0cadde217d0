"""The enricher as the pipeline sees it: which records get an embedding, idempotency, settings, plugin."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest

from apex_enricher_embeddings import EmbeddingEnricher, EmbeddingError, EmbeddingsSettings, HashEmbedder
from apex_enricher_embeddings import plugin as embeddings_plugin
from apex_enricher_embeddings.hashing import embed_text
from apex_enricher_embeddings.inputs import embedding_input
from apex_platform.contracts import Enricher
from apex_platform.errors import SettingsError
from apex_platform.models import Record
from apex_platform.plugins import build_registry

RecordFactory = Callable[..., Record]


def _enricher(**fields: object) -> EmbeddingEnricher:
    return EmbeddingEnricher(EmbeddingsSettings(**fields))  # type: ignore[arg-type]


async def test_embeds_live_records_with_text(record: RecordFactory) -> None:
    enricher = _enricher(dim=64)
    batch = [
        record("load 4471823 delivered", id="a", title="Delivered"),
        record("", id="b", title="title only"),
        record("", id="c"),
        record("   ", id="d", attributes={"status": "open"}),
        record("tombstone", id="e", deleted=True),
    ]
    out = await enricher.enrich(batch)
    assert [r.id for r in out] == ["a", "b", "c", "d", "e"]
    assert out[0].embedding is not None
    assert len(out[0].embedding) == 64
    assert math.isclose(math.fsum(v * v for v in out[0].embedding), 1.0)
    assert out[1].embedding == embed_text("title only", 64)
    assert out[2:] == batch[2:]  # nothing to embed: the very same records
    assert out[0].model_dump(exclude={"embedding"}) == batch[0].model_dump(exclude={"embedding"})


async def test_idempotent(record: RecordFactory) -> None:
    enricher = _enricher(dim=32)
    batch = [record(f"text {i}", id=str(i)) for i in range(5)]
    once = await enricher.enrich(batch)
    assert await enricher.enrich(once) == once
    assert await _enricher(dim=32).enrich(batch) == once


async def test_keeps_an_embedding_of_the_right_dimension_and_replaces_a_wrong_one(record: RecordFactory) -> None:
    enricher = _enricher(dim=4)
    kept = record("text", id="a", embedding=(1.0, 0.0, 0.0, 0.0))
    stale = record("text", id="b", embedding=(1.0, 0.0))
    out = await enricher.enrich([kept, stale])
    assert out[0] is kept
    assert out[1].embedding == embed_text(embedding_input(stale, enricher.settings.fields, 8000), 4)


def test_input_is_title_text_and_chosen_attributes(record: RecordFactory) -> None:
    r = record(
        "body",
        title="Subject line",
        attributes={"status": "late", "tags": ["urgent", "", 3, None], "secret": "x", "customer": {"nested": 1}},
    )
    assert embedding_input(r, ("status", "tags", "customer", "missing"), 1000) == (
        "Subject line\nbody\nstatus: late\ntags: urgent, 3"
    )
    assert embedding_input(r, (), 7) == "Subject"


async def test_attributes_change_the_embedding(record: RecordFactory) -> None:
    enricher = _enricher(dim=64)
    a, b = await enricher.enrich([record("same", id="a", attributes={"status": "open"}),
                                  record("same", id="b", attributes={"status": "closed"})])  # fmt: skip
    assert a.embedding != b.embedding


def test_dimension_and_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_EMBEDDINGS_DIM", "128")
    monkeypatch.setenv("APEX_EMBEDDINGS_ATTRIBUTE_FIELDS", " status , tags,status")
    enricher = EmbeddingEnricher()
    assert enricher.dimension == 128
    assert enricher.backend.name == "hash"
    assert enricher.settings.fields == ("status", "tags")


def test_invalid_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_EMBEDDINGS_BACKEND", "magic")
    with pytest.raises(SettingsError, match="APEX_EMBEDDINGS_BACKEND"):
        EmbeddingEnricher()
    monkeypatch.setenv("APEX_EMBEDDINGS_BACKEND", "openai")
    monkeypatch.setenv("APEX_EMBEDDINGS_URL", "ftp://x")
    with pytest.raises(SettingsError, match="APEX_EMBEDDINGS_URL"):
        EmbeddingEnricher()


async def test_openai_without_url_registers_but_cannot_embed(
    monkeypatch: pytest.MonkeyPatch, record: RecordFactory
) -> None:
    monkeypatch.setenv("APEX_EMBEDDINGS_BACKEND", "openai")
    enricher = EmbeddingEnricher()  # registration happens in every process: it must not fail
    with pytest.raises(SettingsError, match="APEX_EMBEDDINGS_URL"):
        await enricher.enrich([record("x")])


def test_backend_of_another_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="makes 8 dimensions, APEX_EMBEDDINGS_DIM is 16"):
        EmbeddingEnricher(EmbeddingsSettings(dim=16), backend=HashEmbedder(8))


class _Liar:
    name = "liar"
    dimension = 4

    def __init__(self, vectors: list[tuple[float, ...] | None]) -> None:
        self.vectors = vectors

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...] | None]:
        return self.vectors


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        ([], "returned 0 vectors for 1 texts"),
        ([(1.0, 0.0)], "returned 2 dimensions for record frontapp:r1"),
        ([(math.nan, 0.0, 0.0, 0.0)], "non-finite value for record frontapp:r1"),
    ],
)
async def test_backend_output_is_checked(
    record: RecordFactory, vectors: list[tuple[float, ...] | None], message: str
) -> None:
    enricher = EmbeddingEnricher(EmbeddingsSettings(dim=4), backend=_Liar(vectors))
    with pytest.raises(EmbeddingError, match=message):
        await enricher.enrich([record("x")])


def test_registered_through_the_plugin_hook() -> None:
    registry = build_registry("all", modules=[embeddings_plugin], use_entry_points=False)
    assert registry.problems == []
    enricher = registry.enrichers["embeddings"]
    assert isinstance(enricher, EmbeddingEnricher)
    assert isinstance(enricher, Enricher)


def test_entry_point_is_declared() -> None:
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group="apex.plugins") if ep.name == "embeddings"]
    assert ep.value == "apex_enricher_embeddings.plugin"


async def test_embedding_survives_json(record: RecordFactory) -> None:
    (out,) = await _enricher(dim=384).enrich([record("a record that crosses Temporal as JSON")])
    assert Record.model_validate_json(out.model_dump_json()) == out
