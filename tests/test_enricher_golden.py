"""The entities and embeddings (hash) enrichers on the vendors' published examples, pinned.

Every record `support.vendor_records` makes from `connectors-*/tests/data` and from the
connectors' conformance deliveries (plus the enricher conformance suite's awkward
records) goes through both enrichers; the entities, relations and the embedding's exact
floats must equal `data/enricher_golden.json`, written by the implementation before any
optimisation. A change of output is a change of this file, made on purpose:

    python tests/test_enricher_golden.py --write
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from support.vendor_records import vendor_records

from apex_enricher_embeddings import EmbeddingEnricher, EmbeddingsSettings
from apex_enricher_entities import EntitiesSettings, EntityEnricher
from apex_platform.models import Record
from apex_platform.testing.conformance.enricher import sample_records

GOLDEN = Path(__file__).parent / "data" / "enricher_golden.json"

#: What the vendors' examples seldom hold: every kind of mention the entities enricher
#: reads, written as a dispatcher and a carrier write them, with near misses beside them.
FREIGHT_TEXTS = (
    "Hi team,\nPRO# 0286-55431 and Load No. 4471823 picked up in Atlanta, GA 30301; deliver to "
    "Dallas, TX 75201-1234. BOL: 88231-A, PO 12 pallets, P.O. 7781-22, purchase order #PO-5512. "
    "Invoice INV-2031 for $1,250.00 (USD 980.5, 1.234,50 EUR, €12,50, £7, CA$ 300, 1,234 JPY) due. "
    "Call (404) 555-1234, +1 312.555.0142, +44 20 7946 0958, tel: 212 555 0199, fax 555-0100 or "
    "Ann Shipper <ann@shipper.example>, dispatch@apex-logistics.example. Truck #42, trailer 53-118, "
    "unit 7 at 123 Main St Unit 4, tractor T-900; VIN 1FUJGLDR5CLBP8834 (bad: 1FUJGLDR5CLBP8835). "
    "USDOT 1234567, MC-765432, SCAC: ABCD. Acme Freight, Inc. and Blue Road Logistics LLC.\n\n"
    "Thanks,\nMary-Jane O'Neil\n",
    "load 1200 lbs, Load 10 am, Shipment 55 minutes, pro 12, Inv 3, Hello, OK. Dear Ms. Doe, "
    "+1 (800) 555-0000 x12, 1-800-555-1234, 404-555-12345, 12/404-555-1234, $1.234,50, €1,234.50 "
    "Regards - John Q. Public\nbest regards,\nDr. Who\nSt. Louis, MO 63101 and Winston-Salem, NC",
)


def _vector_digest(vector: tuple[float, ...] | None) -> str | None:
    """SHA-256 of the floats' IEEE 754 bytes: equal only when every bit is equal."""
    if vector is None:
        return None
    return hashlib.sha256(struct.pack(f"<{len(vector)}d", *vector)).hexdigest()


def enriched() -> list[dict[str, Any]]:
    base = sample_records()[0]
    freight = [
        base.model_copy(update={"id": f"freight-{i}", "title": text.split("\n", 1)[0], "text": text})
        for i, text in enumerate(FREIGHT_TEXTS)
    ]
    pairs = (
        vendor_records()
        + [("conformance/sample_records", r) for r in sample_records()]
        + [("freight texts", r) for r in freight]
    )
    records: list[Record] = [r for _, r in pairs]
    records = asyncio.run(EntityEnricher(EntitiesSettings()).enrich(records))
    records = asyncio.run(EmbeddingEnricher(EmbeddingsSettings()).enrich(records))
    return [
        {
            "from": where,
            "key": f"{r.source}:{r.kind}:{r.id}",
            "entities": [[e.type, e.key, e.properties] for e in r.entities],
            "relations": [[x.src, x.type, x.dst] for x in r.relations],
            "embedding": _vector_digest(r.embedding),
        }
        for (where, _), r in zip(pairs, records, strict=True)
    ]


def test_enrichers_give_the_pinned_output_on_vendor_samples() -> None:
    golden = json.loads(GOLDEN.read_text())
    got = json.loads(json.dumps(enriched()))  # tuples as lists, as stored
    assert len(got) == len(golden)
    for want, have in zip(golden, got, strict=True):
        assert have == want, f"{want['from']} {want['key']}"
    assert sum(len(g["entities"]) for g in golden) > 100  # the samples do mention things
    assert sum(g["embedding"] is not None for g in golden) > 50


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps(enriched(), indent=1, ensure_ascii=False) + "\n")
