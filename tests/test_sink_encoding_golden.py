"""The four sinks' encodings of a record, pinned: what PostgreSQL, Redis, the graph and
Qdrant would be sent (rows, hashes, plans, points), and every refusal with its message,
on realistic records (the Samsara deliveries of the benchmarks, the vendors' examples of
connectors-*/tests/data, enriched) and on variants with NUL characters, lone surrogates,
non-finite numbers, large floats, tombstones and out-of-range versions.

The fingerprints were taken from the sinks before their CPU work was cut (issue 15):
a change to any stored byte or refusal fails here. Regenerate only for a documented
change of a stored format: `python tests/support/sink_encoding.py`.
"""

from __future__ import annotations

import pytest
from support.sink_encoding import encoders, fingerprint, load

RECORDS, EXPECTED = load()


@pytest.mark.parametrize("sink", sorted(encoders()))
def test_encoding_unchanged(sink: str) -> None:
    encode = encoders()[sink]
    got = [fingerprint(encode, record) for record in RECORDS]
    changed = [
        (i, RECORDS[i].key, RECORDS[i].title[:30])
        for i, (a, b) in enumerate(zip(got, EXPECTED[sink], strict=True))
        if a != b
    ]
    assert not changed, f"{sink}: {len(changed)} of {len(RECORDS)} records encode differently: {changed}"


def test_corpus_covers_every_path() -> None:
    # realistic records with entities, relations and embeddings, and refusals of each sink
    assert sum(1 for r in RECORDS if r.entities and r.relations and r.embedding) >= 20
    for sink in ("postgres", "redis", "graph", "qdrant"):
        outcomes = {fingerprint(encoders()[sink], r) for r in RECORDS}
        assert len(outcomes) > 30
