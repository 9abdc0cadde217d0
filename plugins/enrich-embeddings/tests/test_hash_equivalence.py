"""`embed_text` gives the very floats of the implementation it replaced (kept here verbatim):
the pair features are now remembered and the sums built differently, never reordered."""

from __future__ import annotations

import itertools
import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from apex_enricher_embeddings.hashing import (
    PAIR_WEIGHT,
    _feature,
    _word_features,
    embed_text,
    tokens,
)


def reference(text: str, dim: int) -> tuple[float, ...] | None:
    words = tokens(text)
    if not words:
        return None
    counts: dict[int, float] = {}
    for word in words:
        for bucket, value in _word_features(word, dim):
            counts[bucket] = counts.get(bucket, 0.0) + value
    for first, second in itertools.pairwise(words):
        bucket, sign = _feature(f"p:{first} {second}", dim)
        counts[bucket] = counts.get(bucket, 0.0) + sign * PAIR_WEIGHT
    vector = [0.0] * dim
    for bucket in sorted(counts):
        value = counts[bucket]
        vector[bucket] = math.copysign(math.sqrt(abs(value)), value)
    norm = math.sqrt(math.fsum(v * v for v in vector))
    if norm == 0.0:
        return None
    return tuple(v / norm for v in vector)


WORDS = ["shipment", "delayed", "at", "Atlanta", "PRO", "0286", "55431", "x" * 70, "Ünïcödé", "ß", "ﬁ", "a"]
texts = st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=60).map(" ".join)


@settings(max_examples=200, deadline=None)
@example(text="word " * 500, dim=384)
@example(text="a b a b a b " + "y" * 90 + " " + "z" * 90, dim=7)
@given(text=texts, dim=st.sampled_from([1, 2, 7, 384, 1536]))
def test_the_same_floats_as_before(text: str, dim: int) -> None:
    got = embed_text(text, dim)
    want = reference(text, dim)
    assert got == want
    if got is not None and want is not None:
        assert [v.hex() for v in got] == [v.hex() for v in want]  # -0.0 and 0.0 told apart
