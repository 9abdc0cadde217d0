"""The hash backend's per-process memory stays bounded on text full of numbers.

A soak found the workers growing for as long as it ran: every new word (a PRO number, a
load number, an id) was remembered with its n-gram features, 3.3 KB each, up to 200,000
words (~650 MB). The caches now evict the least recently used words and their entries
point at shared (bucket, value) tuples.
"""

from __future__ import annotations

import functools
import random
import tracemalloc

import pytest

from apex_enricher_embeddings import hashing

DIM = 384


def _texts(rng: random.Random, n: int) -> list[str]:
    vocab = ["trailer", "dock", "delayed", "appointment", "reefer", "pickup", "consignee", "pallets"]
    return [
        " ".join([*rng.sample(vocab, 4), f"PRO {rng.randrange(10**7, 10**8)}", f"load L{rng.randrange(10**9)}"])
        for _ in range(n)
    ]


def _small_caches(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """The module's own caches, smaller (the mechanism under test; the real sizes are checked below)."""
    monkeypatch.setattr(hashing, "_word_features", functools.lru_cache(maxsize=size)(hashing._hash_word))
    monkeypatch.setattr(hashing, "_pair_feature", functools.lru_cache(maxsize=size)(hashing._hash_pair))


def test_the_caches_are_bounded() -> None:
    assert hashing._word_features.cache_info().maxsize == hashing.WORDS_CACHED <= 50_000
    assert hashing._pair_feature.cache_info().maxsize == hashing.PAIRS_CACHED <= 50_000


def test_unique_numbers_do_not_grow_the_process_once_the_caches_are_full(monkeypatch: pytest.MonkeyPatch) -> None:
    _small_caches(monkeypatch, 2_000)
    rng = random.Random(7)
    for text in _texts(rng, 1_500):  # fills both: every text brings two new words and new pairs
        hashing.embed_text(text, DIM)
    assert hashing.cache_sizes() == {"words": 2_000, "pairs": 2_000}
    texts = _texts(rng, 4_000)  # 8,000 more unique words
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for text in texts:
            hashing.embed_text(text, DIM)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert hashing.cache_sizes() == {"words": 2_000, "pairs": 2_000}
    # an unbounded cache keeps all 8,000 words: ~4 MB with shared tuples, ~26 MB without
    assert grown < 2**20, f"the hash backend grew by {grown / 2**20:.1f} MB on 8,000 words it had not seen"


def test_an_entry_is_small() -> None:
    word = "appointments"
    hashing._hash_word(word, DIM)  # its n-grams' shared tuples exist from now on
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        features = hashing._hash_word(word, DIM)
        size = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(features) == 1 + 12 + 11 + 10
    # the outer tuple only (34 references, ~312 bytes); new (bucket, value) tuples each time were 3.3 KB
    assert size < 1_000, f"{size} bytes for one word's features"


def test_cached_features_share_their_tuples() -> None:
    a = hashing._word_features("consignee", DIM)
    b = hashing._word_features("consigned", DIM)
    shared = {id(t) for t in a} & {id(t) for t in b}
    assert shared, "the n-grams both words have ('<co', 'con', 'ons', ...) are one tuple each"
    # six values (each weight, each sign), so at most six shared tuples per bucket
    weights = (hashing.WORD_WEIGHT, hashing.PAIR_WEIGHT, hashing.GRAM_WEIGHT)
    assert {value for _, value in hashing._SHARED} <= {*weights, *(-w for w in weights)}


def test_the_vocabulary_stays_remembered_while_numbers_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    _small_caches(monkeypatch, 1_000)
    rng = random.Random(11)
    for text in _texts(rng, 2_000):  # 4,000 unique words, 4x the cache
        hashing.embed_text(text, DIM)
    before = hashing._word_features.cache_info()
    hashing.embed_text("trailer dock delayed appointment", DIM)
    after = hashing._word_features.cache_info()
    assert after.hits - before.hits == 4
    assert after.misses == before.misses
