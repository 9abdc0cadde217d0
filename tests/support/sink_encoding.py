"""The corpus and the fingerprints of tests/test_sink_encoding_golden.py.

Realistic records: the Samsara RouteStopArrival deliveries the benchmarks use, parsed by
the connector, and every vendor example of connectors-*/tests/data as a record's
attributes; enriched by the entities and embeddings (hash) enrichers. Beside them,
variants that exercise every encoding path: NUL characters and lone surrogates in text,
keys and properties, NaN and infinities, floats >= 1e16, tombstones, odd versions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from apex_platform.models import Entity, InboundEvent, Record, Relation

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "sink_encoding" / "golden.json"
EMBEDDING_DIM = 384


def _vendor_examples() -> list[tuple[str, Any]]:
    found = []
    for path in sorted(ROOT.glob("connectors-*/tests/data/**/*.json")):
        found.append((str(path.relative_to(ROOT)), json.loads(path.read_text())))
    return found


def base_records() -> list[Record]:
    """The realistic records, enriched (deterministic)."""
    from apex_connector_samsara import samples
    from apex_platform.plugins import build_registry

    registry = build_registry("samsara,entities,embeddings")
    connector = registry.source("samsara")
    records: list[Record] = []
    template = samples.route_stop_arrival()
    for n in range(3):
        template["eventId"] = template["data"]["routeStopDetails"]["id"] = f"golden-stop-{n}"
        template["data"]["route"]["stops"][0]["id"] = template["eventId"]
        event = InboundEvent(
            source="samsara",
            event_id=template["eventId"],
            received_at=datetime(2024, 5, 1, tzinfo=UTC),
            payload=json.loads(json.dumps(template)),
        )
        records.extend(connector.parse(event))
    for index, (name, doc) in enumerate(_vendor_examples()):
        attributes = doc if isinstance(doc, dict) else {"items": doc}
        records.append(
            Record(
                source="vendor",
                kind="vendor.example",
                id=name,
                version=1_700_000_000_000_000 + index,
                occurred_at="2024-05-01T12:00:00Z",
                title=f"example {name}",
                text=json.dumps(doc)[:4000],
                attributes=attributes,
            )
        )

    async def enrich(recs: list[Record]) -> list[Record]:
        for enricher in registry.enrichers.values():
            recs = await enricher.enrich(recs)
        return recs

    return asyncio.run(enrich(records))


def variants(base: list[Record]) -> list[Record]:
    """Records that take every other path of the sinks' encodings."""
    rich = next(r for r in base if r.entities and r.relations and r.embedding)
    out: list[Record] = []

    def add(**update: Any) -> None:
        fields = rich.model_dump()
        fields.update(update)
        fields["entities"] = update.get("entities", rich.entities)
        fields["relations"] = update.get("relations", rich.relations)
        out.append(Record.model_validate(fields) if "attributes" not in update else Record(**fields))

    add(title="nul\x00in title")
    add(text="lone \ud800 surrogate")
    add(title="lone \udfff in title")
    add(attributes={**rich.attributes, "note": "nul\x00here"})
    add(attributes={**rich.attributes, "k\ud800ey": 1})
    add(attributes={**rich.attributes, "nested": {"k\ud801": ["v\ud802", {"a\x00": 1}]}})
    add(attributes={**rich.attributes, "nan": math.nan})
    add(attributes={**rich.attributes, "deep": [{"x": [1.0, math.inf]}]})
    add(attributes={**rich.attributes, "big": 1e16, "bigger": [-3.5e20, 1e300], "small": 1e-7})
    add(attributes={**rich.attributes, "huge_int": 2**70})
    add(attributes={**rich.attributes, "tuple": (1, 2, "three"), "esc": 'quote" back\\ tab\t\u2028 é 中'})
    add(attributes={**rich.attributes, **dict([("same\ufffd", 1), ("same\ud800", 2)])})
    add(embedding=(math.nan,) * EMBEDDING_DIM)
    add(embedding=(1e39, *rich.embedding[1:]))
    add(embedding=rich.embedding[:10])
    add(embedding=None)
    add(version=2**63)
    add(version=2**63 - 1)
    add(deleted=True)
    add(deleted=True, title="nul\x00gone")
    add(id="id\x00nul")
    add(entities=(*rich.entities, Entity(type="Shipment", key="k\x00", properties={})))
    add(entities=(*rich.entities, Entity(type="Shipment", key="k1", properties={"p": "v\x00", "n": math.nan})))
    add(entities=(*rich.entities, Entity(type="Shipment", key="k2", properties={"p\ud800": "v\ud800"})))
    add(relations=(*rich.relations, Relation(src="Shipment:a", type="REL", dst="Shipment:b\x00", properties={})))
    add(
        relations=(
            *rich.relations,
            Relation(src="Shipment:a", type="REL", dst="Shipment:b", properties={"w": math.inf}),
        )
    )
    add(
        relations=(
            *rich.relations,
            Relation(src="Shipment:a", type="REL", dst="Shipment:b", properties={"w\x00": "x\ud800"}),
        )
    )
    # values of other types than JSON's
    add(attributes={**rich.attributes, "when": datetime(2024, 5, 1, 12, 30, tzinfo=UTC), "raw": b"by\x00tes"})
    add(attributes={**rich.attributes, "set": {1, 2}, "proxy": MappingProxyType({"x": math.nan, "k\ud800": "v"})})
    add(attributes={**rich.attributes, "proxy": MappingProxyType({"x": 1.5})})
    add(
        entities=(
            *rich.entities,
            Entity(type="Shipment", key="k3", properties={"at": datetime(2024, 1, 1, tzinfo=UTC)}),
        )
    )
    add(attributes={**rich.attributes, "int_key": {1: "one"}, "sub": [True, 0, -0.0, 2**63]})
    return out


def _shape(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _shape(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {repr(k): _shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shape(v) for v in value]
    if isinstance(value, bytes):
        return "b:" + value.hex()
    if isinstance(value, float):
        return "f:" + repr(value)
    if isinstance(value, str):
        return "s:" + value.encode("utf-8", "surrogatepass").hex()
    return repr(value)


def encoders() -> dict[str, Callable[[Record], Any]]:
    """What each sink makes of one record before any I/O."""
    from apex_sink_graph import plan as graph_plan
    from apex_sink_postgres import rows as pg_rows
    from apex_sink_qdrant import points as qdrant_points
    from apex_sink_redis import entries as redis_entries

    return {
        "postgres": lambda r: pg_rows.to_row(r, EMBEDDING_DIM),
        "redis": redis_entries.to_entry,
        "graph": graph_plan.plan,
        "qdrant": lambda r: qdrant_points.to_point(r, EMBEDDING_DIM),
        "json_value": lambda r: r.json_value(),
        "content_hash": lambda r: (r.content_hash(), r.idempotency_key),
    }


def fingerprint(encode: Callable[[Record], Any], record: Record) -> str:
    """SHA-256 of everything `encode` gives (or of the type and message of what it raises)."""
    try:
        shaped = ["ok", _shape(encode(record))]
    except Exception as exc:  # the refusal and its message are the output
        shaped = ["raised", type(exc).__name__, str(exc).encode("utf-8", "surrogatepass").hex()]
    text = json.dumps(shaped, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load() -> tuple[list[Record], dict[str, list[str]]]:
    """The stored corpus (base records and variants) and the fingerprints stored with it."""
    doc = json.loads(GOLDEN.read_text())
    base = [Record.model_validate(r) for r in doc["records"]]
    return base + variants(base), doc["fingerprints"]


def fingerprints(records: list[Record]) -> dict[str, list[str]]:
    return {name: [fingerprint(encode, r) for r in records] for name, encode in encoders().items()}


if __name__ == "__main__":
    # Regenerate (only on purpose: the fingerprints are the sinks' outputs as they were)
    stored = [r.json_value() for r in base_records()]
    base = [Record.model_validate(r) for r in stored]
    GOLDEN.write_text(
        json.dumps({"records": stored, "fingerprints": fingerprints(base + variants(base))}, ensure_ascii=True) + "\n"
    )
