"""`GraphSink`: records, the entities they mention and the relations they assert, as a graph.

```
(:Record {uid, source, id, kind, version, deleted, title, occurred_at, content_hash, record_json})
    -[:MENTIONS {implicit}]->
(:Shipment {key, ...properties})  -[:CARRIED_BY {source_uid, ...properties}]->  (:Truck {key})
```

A relationship is one record's assertion: it carries `source_uid`, the uid of the
record that states it. Two records stating the same relation make two parallel
relationships; a record whose new version drops a relation loses its own, and the
other record's stays. See README.md for the whole ownership model.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from apex_platform.errors import SettingsError, SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.settings import load
from apex_sink_graph import cypher
from apex_sink_graph.backends import GraphBackend, Runner, make_backend
from apex_sink_graph.plan import RecordPlan, plan, tombstone, uid, winners
from apex_sink_graph.properties import parse_ref
from apex_sink_graph.settings import GraphSinkSettings, GraphTarget, resolve_target

T = TypeVar("T")


@dataclass(frozen=True)
class GraphEntity:
    """An entity node near another one (`GraphSink.neighbors`)."""

    type: str
    key: str
    properties: dict[str, Any]
    #: Fewest relations between the two.
    distance: int

    @property
    def ref(self) -> str:
        return f"{self.type}:{self.key}"


@dataclass(frozen=True)
class GraphRelation:
    """One asserted relationship (`GraphSink.relations`)."""

    src: str
    type: str
    dst: str
    #: `source:id` of the record that asserts it.
    source_uid: str
    properties: dict[str, Any]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class GraphSink:
    """The graph sink. Implements `apex_platform.contracts.Sink`.

    Construction does no I/O and reads no settings; `open()` resolves the URI, connects
    and creates the record index (FalkorDB) or uniqueness constraint (Neo4j). Entity
    labels get theirs the first time this sink writes them.
    """

    name = "graph"

    def __init__(self, settings: GraphSinkSettings | None = None) -> None:
        self._settings = settings
        self._backend: GraphBackend | None = None
        self._labels: set[str] = set()
        self._lock = asyncio.Lock()
        self._open = False

    @property
    def settings(self) -> GraphSinkSettings:
        """The settings given, or read from the environment on first use (never at construction)."""
        if self._settings is None:
            self._settings = load(GraphSinkSettings)
        return self._settings

    @property
    def target(self) -> GraphTarget:
        return self.backend.target

    @property
    def backend(self) -> GraphBackend:
        """The backend the URI selects (made on first use; `SettingsError` if nothing is configured)."""
        if self._backend is None:
            self._backend = make_backend(resolve_target(self.settings), self.settings)
        return self._backend

    def __repr__(self) -> str:
        where = self._backend.where() if self._backend is not None else "unresolved"
        return f"GraphSink({where}, open={self._open})"

    async def __aenter__(self) -> GraphSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and create the record index or constraint. Idempotent."""
        async with self._lock:
            if self._open:
                return
            await self.backend.open()
            self._open = True

    async def close(self) -> None:
        async with self._lock:
            self._open = False
            self._labels.clear()
            if self._backend is not None:
                await self._backend.close()

    async def health(self) -> None:
        """`SinkError` unless the graph database answers within `health_timeout`."""
        try:
            backend = self.backend
        except SettingsError as exc:
            raise SinkError(f"graph sink is not configured: {exc}") from exc
        await backend.ping()

    def _backend_open(self) -> GraphBackend:
        if not self._open or self._backend is None:
            raise SinkError("graph sink is not open: call open() first")
        return self._backend

    async def _ensure_labels(self, plans: Sequence[RecordPlan]) -> None:
        wanted: set[str] = set()
        for p in plans:
            wanted |= p.labels()
        new = sorted(wanted - self._labels)
        if new:
            await self._backend_open().ensure_labels(new)
            self._labels.update(new)

    async def write(self, records: Sequence[Record]) -> None:
        """Upsert a batch; the version rule of `plan.py` is enforced by the CLAIM statement."""
        if not records:
            return
        plans = winners(records)
        await self._ensure_labels(plans)
        await self._apply(plans, purge=(), force=False)

    async def restore(self, previous: Mapping[RecordKey, Record | None]) -> None:
        """Put back exactly `previous`, ignoring versions: record node, MENTIONS and asserted
        relations. A key mapped to None loses its node (tombstone included) and assertions."""
        if not previous:
            return
        put: list[RecordPlan] = []
        gone: list[str] = []
        for key, record in previous.items():
            key = RecordKey(*key)
            if record is None:
                gone.append(uid(key))
            elif record.key != key:
                raise SinkError(f"graph sink: restore of {key} was given record {record.key}")
            else:
                put.append(plan(record))
        await self._ensure_labels(put)
        await self._apply(sorted(put, key=lambda p: p.key), purge=sorted(gone), force=True)

    async def _apply(self, plans: Sequence[RecordPlan], *, purge: Sequence[str], force: bool) -> None:
        backend = self._backend_open()
        size = self.settings.batch_size
        stamp = uuid.uuid4().hex

        async def work(run: Runner) -> None:
            released: dict[str, set[str]] = defaultdict(set)
            for uids in _chunks(purge, size):
                for row in await run(cypher.PURGE, {"uids": list(uids)}):
                    for label, key in row["released"]:
                        released[label].add(key)
            won: set[str] = set()
            for chunk in _chunks(plans, size):
                rows = [p.claim_row() for p in chunk]
                for row in await run(cypher.CLAIM, {"rows": rows, "force": force, "stamp": stamp}):
                    won.add(row["uid"])
                    for label, key in row["released"]:
                        released[label].add(key)
            live = [p for p in plans if p.uid in won and not p.deleted]

            mentions: dict[str, list[dict[str, Any]]] = defaultdict(list)
            relations: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
            for p in live:
                for m in p.mentions:
                    mentions[m.label].append({"uid": p.uid, "key": m.key, "props": m.props, "implicit": m.implicit})
                for a in p.assertions:
                    relations[(a.src_label, a.type, a.dst_label)].append(
                        {"uid": p.uid, "src": a.src_key, "dst": a.dst_key, "props": a.props}
                    )
            for label in sorted(mentions):
                for part in _chunks(mentions[label], size):
                    await run(cypher.mention(label), {"rows": list(part), "stamp": stamp})
            for group in sorted(relations):
                for part in _chunks(relations[group], size):
                    await run(cypher.relate(*group), {"rows": list(part), "stamp": stamp})
            for label in sorted(released):
                for keys in _chunks(sorted(released[label]), size):
                    await run(cypher.collect(label), {"keys": list(keys)})
            for uids in _chunks(sorted(won), size):
                await run(cypher.FINISH, {"uids": list(uids), "stamp": stamp})

        try:
            await backend.write(work)
        except SinkError as exc:
            keys = ", ".join(p.uid for p in plans[:5]) or ", ".join(purge[:5])
            more = len(plans) + len(purge) - min(len(plans) + len(purge), 5)
            raise SinkError(f"{exc} (records {keys}{f' and {more} more' if more > 0 else ''})") from exc

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        """What is stored: live records exactly as written, tombstones as minimal deleted records."""
        if not keys:
            return {}
        backend = self._backend_open()
        uids = sorted({uid(RecordKey(*k)) for k in keys})
        found: dict[RecordKey, Record] = {}
        for chunk in _chunks(uids, self.settings.batch_size):
            for row in await backend.read(cypher.READ, {"uids": list(chunk)}):
                found.update(self._decode(row))
        return found

    @staticmethod
    def _decode(row: Mapping[str, Any]) -> dict[RecordKey, Record]:
        try:
            if row["deleted"]:
                record = tombstone(dict(row))
            elif row["record_json"] is None:
                return {}  # a node a failed first write left half-made: nothing readable
            else:
                record = Record.model_validate_json(row["record_json"])
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            raise SinkError(f"graph sink: record node {row.get('uid')!r} cannot be read back: {exc}") from exc
        return {record.key: record}

    async def history(self, entity_ref: str, *, limit: int = 50) -> list[Record]:
        """The live records that mention `entity_ref` ("Shipment:SH-1"), newest first
        (by `occurred_at`, then `version`): what happened to that shipment."""
        label, key = parse_ref(entity_ref)
        rows = await self._backend_open().read(cypher.history(label), {"key": key, "limit": int(limit)})
        return [Record.model_validate_json(row["record_json"]) for row in rows if row["record_json"]]

    async def relations(self, entity_ref: str) -> list[GraphRelation]:
        """The relations in which `entity_ref` takes part, one per asserting record."""
        label, key = parse_ref(entity_ref)
        rows = await self._backend_open().read(cypher.relations(label), {"key": key})
        return [
            GraphRelation(
                src=f"{row['src_type']}:{row['src_key']}",
                type=row["type"],
                dst=f"{row['dst_type']}:{row['dst_key']}",
                source_uid=row["source_uid"],
                properties={k: v for k, v in dict(row["properties"]).items() if k != "source_uid"},
            )
            for row in rows
        ]

    async def neighbors(self, entity_ref: str, depth: int = 1, *, limit: int = 1000) -> list[GraphEntity]:
        """Entities within `depth` (1-6) relations of `entity_ref`, nearest first."""
        label, key = parse_ref(entity_ref)
        rows = await self._backend_open().read(cypher.neighbors(label, depth), {"key": key, "limit": int(limit)})
        return [
            GraphEntity(
                type=row["type"],
                key=row["key"],
                properties={k: v for k, v in dict(row["properties"]).items() if k != "key"},
                distance=row["distance"],
            )
            for row in rows
        ]

    async def get_version(self, source: str, id: str) -> tuple[int, bool] | None:
        """`(version, deleted)` stored for the key, tombstones included; None if no node."""
        rows = await self._backend_open().read(cypher.READ, {"uids": [uid(RecordKey(source, id))]})
        return None if not rows else (int(rows[0]["version"]), bool(rows[0]["deleted"]))
