"""The offline default: signed feature hashing of words, word pairs and character n-grams.

Each feature (a word, two adjacent words, a 3- to 5-character piece of a word with
boundary marks) is hashed with BLAKE2b — not Python's `hash()`, which changes between
processes — into one of `dim` buckets with a sign taken from another bit of the digest,
so collisions cancel out on average instead of piling up. Counts are dampened (square
root) and the vector is L2-normalised. Same text, same floats, in every process, on
every platform and Python version: only integer hashing and IEEE float arithmetic in a
fixed order are involved.

It is not a language model: texts are close when they share words and word pieces
(so "shipment delayed" is near "shipments delay", and far from "invoice paid").
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from hashlib import blake2b

_WORD = re.compile(r"\w+", re.UNICODE)
_PERSON = b"apex-emb-v1"  # part of the hash: changing it changes every vector

WORD_WEIGHT = 1.0
PAIR_WEIGHT = 0.5
GRAM_WEIGHT = 0.35
GRAM_SIZES = (3, 4, 5)
MAX_WORD_CHARS = 40
_MAX_PAIR_CACHED = 80  # longer pairs are hashed each time rather than kept
#: Words (and pairs) remembered per process. A word's entry is its n-grams' features, each
#: one of the shared (bucket, value) tuples below, so ~0.5 KB; a pair ~0.2 KB: ~35 MB at most.
WORDS_CACHED = 50_000
PAIRS_CACHED = 50_000

#: The (bucket, value) tuples every cached feature list points at, one per distinct pair:
#: at most the largest `dim` times six values (the word, pair and n-gram weights, each sign).
_SHARED: dict[tuple[int, float], tuple[int, float]] = {}


def _feature(text: str, dim: int) -> tuple[int, float]:
    digest = int.from_bytes(blake2b(text.encode("utf-8"), digest_size=8, person=_PERSON).digest(), "big")
    return digest % dim, (1.0 if digest >> 63 else -1.0)


def _shared(bucket: int, value: float) -> tuple[int, float]:
    pair = (bucket, value)
    return _SHARED.setdefault(pair, pair)


def _hash_word(word: str, dim: int) -> tuple[tuple[int, float], ...]:
    """A word's own feature and its character n-grams."""
    bucket, sign = _feature("w:" + word, dim)
    features = [_shared(bucket, sign * WORD_WEIGHT)]
    marked = f"<{word[:MAX_WORD_CHARS]}>"
    for size in GRAM_SIZES:
        for start in range(len(marked) - size + 1):
            bucket, sign = _feature("c:" + marked[start : start + size], dim)
            features.append(_shared(bucket, sign * GRAM_WEIGHT))
    return tuple(features)


_word_features = lru_cache(maxsize=WORDS_CACHED)(_hash_word)
"""`_hash_word`, remembered: the least recently used words go first, so the numbers and ids
that never come back (a PRO number, an event id) pass through while the vocabulary stays.
Before the features were shared an entry took 3.3 KB and the cap was 200,000: a soak's
workers grew by ~90 MB per 4,000 records of freight-desk prose, toward ~650 MB."""


def _hash_pair(first: str, second: str, dim: int) -> tuple[int, float]:
    bucket, sign = _feature(f"p:{first} {second}", dim)
    return _shared(bucket, sign * PAIR_WEIGHT)


_pair_feature = lru_cache(maxsize=PAIRS_CACHED)(_hash_pair)
"""Two adjacent words' feature, remembered (texts repeat their phrases)."""


def cache_sizes() -> dict[str, int]:
    """How many words and pairs this process remembers (the tests watch that it stays bounded)."""
    return {"words": _word_features.cache_info().currsize, "pairs": _pair_feature.cache_info().currsize}


def tokens(text: str) -> list[str]:
    """Words of `text` after NFKC normalisation and case folding."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def embed_text(text: str, dim: int) -> tuple[float, ...] | None:
    """The unit vector of `text`, or None when it has no word at all."""
    words = tokens(text)
    if not words:
        return None
    # Each bucket's sum is taken in the same order as always (words, their features, then
    # pairs): float addition is not associative, and the vectors must not change.
    counts: defaultdict[int, float] = defaultdict(float)
    for word in words:
        for bucket, value in _word_features(word, dim):
            counts[bucket] += value
    for first, second in itertools.pairwise(words):
        if len(first) + len(second) <= _MAX_PAIR_CACHED:
            bucket, value = _pair_feature(first, second, dim)
        else:
            bucket, value = _hash_pair(first, second, dim)
        counts[bucket] += value
    vector = [0.0] * dim
    for bucket, value in counts.items():
        # Square-root damping keeps a word repeated fifty times from owning the vector.
        vector[bucket] = math.copysign(math.sqrt(abs(value)), value)
    # fsum is exactly rounded: the same squares give the same norm in any order
    norm = math.sqrt(math.fsum([v * v for v in vector]))
    if norm == 0.0:
        return None
    return tuple([v / norm for v in vector])


class HashEmbedder:
    """Backend `hash`: no model, no network, deterministic."""

    name = "hash"

    def __init__(self, dim: int) -> None:
        self.dimension = dim

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...] | None]:
        return [embed_text(text, self.dimension) for text in texts]
