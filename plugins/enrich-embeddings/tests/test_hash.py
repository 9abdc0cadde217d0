"""The `hash` backend: deterministic, normalised, and closer for texts that share words."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from apex_enricher_embeddings.hashing import HashEmbedder, embed_text

TEXT = "PRO 0286-55431 delayed at the Atlanta terminal; driver Ann Shipper, truck 12."


def _cos(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _fingerprint(vector: tuple[float, ...]) -> str:
    return hashlib.sha256(repr(vector).encode()).hexdigest()[:16]


def test_same_text_same_floats() -> None:
    assert embed_text(TEXT, 384) == embed_text(TEXT, 384)


def test_same_floats_in_another_process_with_another_hash_seed() -> None:
    code = (
        f"from apex_enricher_embeddings.hashing import embed_text; import sys; print(repr(embed_text({TEXT!r}, 384)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == repr(embed_text(TEXT, 384))


def test_pinned_vector() -> None:
    """A change to tokenising, hashing or weighting changes every stored vector: make it visible."""
    vector = embed_text(TEXT, 384)
    assert vector is not None
    assert _fingerprint(vector) == PINNED


PINNED = "3f337baa2e855fa4"


def test_unit_length() -> None:
    for dim in (8, 384, 1536):
        vector = embed_text(TEXT, dim)
        assert vector is not None
        assert len(vector) == dim
        assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-12)


def test_similar_texts_are_closer_than_unrelated_ones() -> None:
    groups = [
        ("Shipment PRO 0286-55431 delayed at Atlanta terminal", "shipment 0286-55431 is delayed in Atlanta",
         "Invoice INV-123 was paid by ACH yesterday"),
        ("Truck 12 needs a new tire on I-75", "truck 12 tire replacement on I75",
         "Quarterly revenue report for the board"),
        ("Please send the bill of lading for load 4471823", "bill of lading for load 4471823 attached",
         "Driver hours of service violation warning"),
    ]  # fmt: skip
    for anchor, similar, unrelated in groups:
        a, s, u = (embed_text(t, 384) for t in (anchor, similar, unrelated))
        assert a is not None
        assert s is not None
        assert u is not None
        assert _cos(a, s) > 3 * max(_cos(a, u), 0.05), (anchor, _cos(a, s), _cos(a, u))


def test_case_and_unicode_forms_do_not_matter() -> None:
    assert embed_text("Café DELAYED", 64) == embed_text("cafe\u0301 delayed", 64)


def test_nothing_to_embed() -> None:
    assert embed_text("", 16) is None
    assert embed_text(" ... --- !!! ", 16) is None


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), dim=st.integers(min_value=1, max_value=512))
def test_any_text_gives_a_unit_vector_or_nothing(text: str, dim: int) -> None:
    vector = embed_text(text, dim)
    if vector is None:
        return
    assert len(vector) == dim
    assert all(math.isfinite(v) for v in vector)
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-9)
    assert vector == embed_text(text, dim)


async def test_backend_batch() -> None:
    backend = HashEmbedder(32)
    assert await backend.embed(["a b", "", "a b"]) == [embed_text("a b", 32), None, embed_text("a b", 32)]
