"""`GraphSink`: records, the entities they mention and the relations they assert, as a graph.

```
(:Record {uid, source, id, kind, version, deleted, title, occurred_at, content_hash, record_json,
          stamp, pending, changed_by, touched_by})
    -[:MENTIONS {implicit, _at, ...the properties the record asserts}]->
(:Shipment {key, status, _at_status, ...})  -[:CARRIED_BY {source_uid, ...properties}]->  (:Truck {key})
```

A relationship is one record's assertion: it carries `source_uid`, the uid of the
record that states it. Two records stating the same relation make two parallel
relationships; a record whose new version drops a relation loses its own, and the
other record's stays.

An entity property is owned by the newest record that asserts it: each MENTIONS edge
keeps what its record asserts and the record's assertion stamp `_at`
(`occurred_at|version|uid`, see `plan.assertion_stamp`); the entity node keeps each
property's value with a hidden companion `_at_<name>`, the stamp of its owner. A write
sets a property only where its stamp is >= the companion's, so a late older event
cannot roll back a newer value; when the owner record is undone, changes, is deleted or
purged, its properties are recomputed from the remaining MENTIONS edges (the next
newest, or removed). The companions are never shown by `neighbors()`.

Writes are fenced (`writer`): see `GraphSink.write` and `GraphSink.restore`, and
README.md for the whole ownership model.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from apex_platform.contracts import Previous
from apex_platform.errors import RecordsRefused, SettingsError, SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.settings import load
from apex_sink_graph import cypher
from apex_sink_graph.backends import GraphBackend, GraphDataError, Runner, make_backend
from apex_sink_graph.plan import (
    COMPANION_PREFIX,
    EDGE_STAMP,
    HIDDEN_PREFIX,
    STAMP_UID_OFFSET,
    RecordPlan,
    from_iso,
    from_record_json,
    plan,
    tombstone,
    uid,
    winners,
)
from apex_sink_graph.properties import is_clean, parse_ref
from apex_sink_graph.settings import GraphSinkSettings, GraphTarget, resolve_target

T = TypeVar("T")

#: REFRESH rounds before giving up (each round that comes back saw a concurrent change).
MAX_REFRESH_ROUNDS = 20


@dataclass(frozen=True)
class GraphEntity:
    """An entity node near another one (`GraphSink.neighbors`)."""

    type: str
    key: str
    #: Its properties, each the value of the newest record asserting it (no `key`, no
    #: hidden `_at_` companions).
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


def _unholdable(keys: Sequence[RecordKey | tuple[str, str]]) -> set[str]:
    """The uids of `keys` that no graph parameter can carry (NUL, lone surrogate): never stored."""
    return {uid(RecordKey(*k)) for k in keys if not is_clean(uid(RecordKey(*k)))}


def _refs(refs: Sequence[str]) -> set[tuple[str, str]]:
    """`["Shipment:SH-1", ...]` (a record node's `dirty`) as (label, key) pairs."""
    found: set[tuple[str, str]] = set()
    for ref in refs:
        label, _, key = ref.partition(":")
        found.add((label, key))
    return found


def _stored(p: RecordPlan, before: Sequence[str]) -> Record | None:
    """What CLAIM's `previous` (`cypher._PREVIOUS`) says the node of `p`'s key held:
    a record, a minimal tombstone, or None (absent)."""
    state, kind, occurred_at, version, record_json, _ = before
    if state == "tombstone":
        return Record(
            source=p.node["source"],
            id=p.node["id"],
            kind=kind,
            version=int(version),
            occurred_at=from_iso(occurred_at),
            deleted=True,
        )
    if state == "live":
        return from_record_json(record_json)
    return None


def _previous(p: RecordPlan, before: Sequence[str]) -> tuple[bool, Record | None]:
    """Whether writing `p` changed the stored content, and what was stored before."""
    state, _, _, version, record_json, content_hash = before
    if state == "tombstone" and p.deleted and int(version) == p.version and content_hash == p.node["content_hash"]:
        return False, None
    if state == "live" and not p.deleted and int(version) == p.version and record_json == p.node["record_json"]:
        return False, None
    return True, _stored(p, before)


def _assert_row(
    key: str, choices: Mapping[str, Sequence[tuple[str, str, Any]]], lost: set[str], dropped: set[str]
) -> dict[str, Any] | None:
    """The ASSERT row of one entity: per property the newest option (stamp, uid, value)
    whose record is not `lost`, properties in `dropped` left out; None if nothing is left."""
    names: list[str] = []
    props: dict[str, Any] = {}
    uids: set[str] = set()
    for name in sorted(choices):
        if name in dropped:
            continue
        best = next((option for option in choices[name] if option[1] not in lost), None)
        if best is None:
            continue
        at, owner, value = best
        names.append(name)
        props[name] = value
        props[COMPANION_PREFIX + name] = at
        uids.add(owner)
    return {"key": key, "names": names, "props": props, "uids": sorted(uids)} if names else None


class GraphSink:
    """The graph sink. Implements `apex_platform.contracts.Sink`.

    Construction does no I/O and reads no settings; `open()` resolves the URI, connects
    and creates the record index (FalkorDB) or uniqueness constraint (Neo4j). Entity
    labels get theirs the first time this sink writes them.
    """

    name = "graph"
    #: read by `apex-platform plugins settings` (`Configurable`)
    settings_model: ClassVar[type[BaseSettings] | None] = GraphSinkSettings

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

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        """Upsert a batch; the version rule of `plan.py` is enforced by the CLAIM statement.

        With `writer`, every key the batch wins or finds already holding the identical
        record gets `touched_by = writer`, and the keys it wins `changed_by = writer`
        (without, no token is set and a winner's are cleared). Returns, for each key
        whose content it changed, what was stored before (None: absent), read by the
        same statement that changed it.

        NUL characters and lone surrogates are kept exactly in `record_json` and
        sanitised in the properties (see `properties.py`). Records the graph can never
        hold (non-finite numbers, versions beyond 64 bits, NUL characters in the record's
        identity, entity keys or relation ends, labels or relation types it cannot use) are
        refused one by one: the others are written, then `RecordsRefused` names each
        refused key with the reason, its `previous` being what the write replaced. A
        statement the server refuses for its data is narrowed down to the record by
        halving the batch (that record's half-made write is undone)."""
        if not records:
            return {}
        plans, refused = winners(records)
        previous: Previous = {}
        if plans:
            await self._ensure_labels(plans)
            stamp = uuid.uuid4().hex
            claimed: dict[str, list[str]] = {}
            written = await self._write_narrowing(plans, writer=writer, stamp=stamp, claimed=claimed, refused=refused)
            for p in plans:
                if p.uid in written:
                    changed, before = _previous(p, claimed[p.uid])
                    if changed:
                        previous[p.key] = before
        if refused:
            raise RecordsRefused(self.name, refused, previous=previous)
        return previous

    async def _write_narrowing(
        self,
        plans: Sequence[RecordPlan],
        *,
        writer: str | None,
        stamp: str,
        claimed: dict[str, list[str]],
        refused: dict[RecordKey, str],
    ) -> set[str]:
        """Write `plans`; on a `GraphDataError`, the halves one after the other, down to
        the record the server refuses (added to `refused`). Returns the uids written.

        Every attempt uses the same write stamp, so a record an interrupted attempt
        claimed is claimed again by the next with the `prev` it had (FalkorDB); on Neo4j
        the failed transaction changed nothing."""
        try:
            return await self._apply(plans, purge=(), mode="write", stamp=stamp, writer=writer, claimed=claimed)
        except GraphDataError as exc:
            if len(plans) > 1:
                half = len(plans) // 2
                first = await self._write_narrowing(
                    plans[:half], writer=writer, stamp=stamp, claimed=claimed, refused=refused
                )
                second = await self._write_narrowing(
                    plans[half:], writer=writer, stamp=stamp, claimed=claimed, refused=refused
                )
                return first | second
            [p] = plans
            refused[p.key] = f"{self.backend.kind} refused the record: {exc.detail[:300]}"
            before = claimed.pop(p.uid, None)
            if before is not None:
                await self._undo(p, before, stamp)
            return set()

    async def _undo(self, p: RecordPlan, before: Sequence[str], stamp: str) -> None:
        """Put back what the record node held before a half-made write of this sink (the
        node still pending with `stamp`); a node another write claimed since is left alone."""
        record = _stored(p, before)
        undo = uuid.uuid4().hex
        if record is None:
            await self._apply([], purge=[p.uid], mode="undo", stamp=undo, fence=stamp)
        else:
            await self._apply([plan(record)], purge=(), mode="undo", stamp=undo, fence=stamp)

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        """Put back `previous`: record node, MENTIONS, asserted relations and the entity
        properties it owns. A key mapped to None loses its node (tombstone included),
        its mentions and its assertions.

        With `writer` (the saga's compensation), only the keys whose record node still
        holds that writer's change (`changed_by` and `touched_by` both `writer`); other
        keys are left alone. Without, every key, ignoring versions. Restored nodes carry
        no tokens."""
        if not previous:
            return
        put: list[RecordPlan] = []
        gone: list[str] = []
        for key, record in previous.items():
            key = RecordKey(*key)
            if record is None:
                if not _unholdable([key]):  # else never stored: nothing to remove
                    gone.append(uid(key))
            elif record.key != key:
                raise SinkError(f"graph sink: restore of {key} was given record {record.key}")
            else:
                put.append(plan(record))
        await self._ensure_labels(put)
        await self._apply(
            sorted(put, key=lambda p: p.key),
            purge=sorted(gone),
            mode="force" if writer is None else "fenced",
            stamp=uuid.uuid4().hex,
            fence=writer,
        )

    async def _apply(
        self,
        plans: Sequence[RecordPlan],
        *,
        purge: Sequence[str],
        mode: cypher.Mode,
        stamp: str,
        writer: str | None = None,
        fence: str | None = None,
        claimed: dict[str, list[str]] | None = None,
    ) -> set[str]:
        """Run one write's statements (see `cypher.py`); returns the uids it claimed.
        `claimed` gets each claimed record's `prev` as soon as CLAIM returns it."""
        backend = self._backend_open()
        size = self.settings.batch_size
        seen: dict[str, list[str]] = {} if claimed is None else claimed

        async def work(run: Runner) -> set[str]:
            released: dict[str, set[tuple[str, str]]] = defaultdict(set)
            purged: list[str] = []
            for uids in _chunks(purge, size):
                params: dict[str, Any] = {"uids": list(uids), "stamp": stamp, "fence": fence}
                for row in await run(cypher.purge(mode), params):
                    purged.append(row["uid"])
                    released[row["uid"]].update(_refs(row["released"]))
            won: set[str] = set()
            for chunk in _chunks(plans, size):
                params = {"rows": [p.claim_row() for p in chunk], "stamp": stamp, "writer": writer, "fence": fence}
                for row in await run(cypher.claim(mode), params):
                    won.add(row["uid"])
                    seen[row["uid"]] = list(row["previous"])
                    released[row["uid"]].update(_refs(row["released"]))
                others = [row for row in params["rows"] if row["uid"] not in won]
                if mode == "write" and writer is not None and others:
                    await run(cypher.TOUCH, {"rows": others, "writer": writer})
            live = [p for p in plans if p.uid in won and not p.deleted]
            await self._mention(run, live, stamp)
            await self._assert(run, live, stamp)
            await self._relate(run, live, stamp)
            await self._collect(run, released)
            await self._settle(run, released)
            for uids in _chunks(sorted(won), size):
                await run(cypher.FINISH, {"uids": list(uids), "stamp": stamp})
            for uids in _chunks(sorted(purged), size):
                await run(cypher.FINISH_PURGE, {"uids": list(uids), "stamp": stamp})
            return won

        try:
            return await backend.write(work)
        except SinkError as exc:
            keys = ", ".join(p.uid for p in plans[:5]) or ", ".join(purge[:5])
            more = len(plans) + len(purge) - min(len(plans) + len(purge), 5)
            message = f"{exc} (records {keys}{f' and {more} more' if more > 0 else ''})"
            if isinstance(exc, GraphDataError):
                raise GraphDataError(message, detail=exc.detail) from exc
            raise SinkError(message) from exc

    async def _mention(self, run: Runner, live: Sequence[RecordPlan], stamp: str) -> None:
        """MENTION: entity nodes and MENTIONS edges, each edge with its record's assertions."""
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for p in live:
            for m in p.mentions:
                edge = {"implicit": m.implicit, EDGE_STAMP: p.at, **m.props}
                rows[m.label].append({"uid": p.uid, "key": m.key, "edge": edge})
        for label in sorted(rows):
            for part in _chunks(rows[label], self.settings.batch_size):
                await run(cypher.mention(label), {"rows": list(part), "stamp": stamp})

    async def _assert(self, run: Runner, live: Sequence[RecordPlan], stamp: str) -> None:
        """ASSERT: per entity and property, the value of the newest record of this write
        that asserts it, set where no newer record set it already (see `cypher.assert_properties`).

        A row that comes back is sent again without what it names: the records another
        write claimed since (`lost`: the next newest record of this write takes over) and
        the properties a newer record owns (`older`)."""
        options: dict[str, dict[str, dict[str, list[tuple[str, str, Any]]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(list))
        )
        for p in live:
            for m in p.mentions:
                for name, value in m.props.items():
                    options[m.label][m.key][name].append((p.at, p.uid, value))
        lost: set[str] = set()
        for label in sorted(options):
            entities = options[label]
            for choices in entities.values():
                for ranked in choices.values():
                    ranked.sort(key=lambda option: option[0], reverse=True)
            dropped: dict[str, set[str]] = defaultdict(set)
            keys = sorted(entities)
            while keys:
                rows = [row for key in keys if (row := _assert_row(key, entities[key], lost, dropped[key]))]
                answers: list[dict[str, Any]] = []
                for part in _chunks(rows, self.settings.batch_size):
                    answers += await run(cypher.assert_properties(label), {"rows": list(part), "stamp": stamp})
                answers = [answer for answer in answers if answer["lost"] or answer["older"]]
                for answer in answers:
                    lost.update(answer["lost"])
                    dropped[answer["key"]].update(answer["older"])
                keys = sorted({answer["key"] for answer in answers})

    async def _relate(self, run: Runner, live: Sequence[RecordPlan], stamp: str) -> None:
        """RELATE: one relationship per assertion."""
        rows: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for p in live:
            for a in p.assertions:
                rows[(a.src_label, a.type, a.dst_label)].append(
                    {"uid": p.uid, "src": a.src_key, "dst": a.dst_key, "props": a.props}
                )
        for group in sorted(rows):
            for part in _chunks(rows[group], self.settings.batch_size):
                await run(cypher.relate(*group), {"rows": list(part), "stamp": stamp})

    async def _collect(self, run: Runner, released: Mapping[str, set[tuple[str, str]]]) -> None:
        """COLLECT: released entity nodes that no edge touches any more are deleted."""
        keys: dict[str, set[str]] = defaultdict(set)
        for entities in released.values():
            for label, key in entities:
                keys[label].add(key)
        for label in sorted(keys):
            for part in _chunks(sorted(keys[label]), self.settings.batch_size):
                await run(cypher.collect(label), {"keys": list(part)})

    async def _settle(self, run: Runner, released: Mapping[str, set[tuple[str, str]]]) -> None:
        """OWNED, then REFRESH: the properties of released entities that a record of this
        write owned and no longer asserts as stored are recomputed from the remaining mentions."""
        rows: dict[str, list[dict[str, str]]] = defaultdict(list)
        for record_uid in sorted(released):
            for label, key in sorted(released[record_uid]):
                rows[label].append({"key": key, "uid": record_uid})
        for label in sorted(rows):
            stale: dict[str, set[str]] = defaultdict(set)
            for part in _chunks(rows[label], self.settings.batch_size):
                for row in await run(cypher.owned(label), {"rows": list(part)}):
                    stale[row["key"]].update(row["stale"])
            if stale:
                await self._refresh(run, label, stale)

    async def _refresh(self, run: Runner, label: str, stale: Mapping[str, set[str]]) -> None:
        """REFRESH, compare-and-set: a first round reads which record now owns each
        property (`seen`); the values are taken from those records' own `record_json`
        (exact: FalkorDB returns floats rounded to 15 digits, so none is copied through
        Python from the graph) and set only if `seen` is still the same; else again."""
        names = {key: sorted(found) for key, found in stale.items()}
        rows: list[dict[str, Any]] = [
            {"key": key, "names": names[key], "expect": ["?"] * len(names[key]), "sets": []} for key in sorted(names)
        ]
        for _ in range(MAX_REFRESH_ROUNDS):
            answers: list[dict[str, Any]] = []
            for part in _chunks(rows, self.settings.batch_size):
                answers += [a for a in await run(cypher.refresh(label), {"rows": list(part)}) if not a["applied"]]
            if not answers:
                return
            owners = await self._owners(run, {fp.partition("|")[2] for a in answers for fp in a["seen"] if fp})
            rows = []
            for answer in answers:
                key: str = answer["key"]
                sets: list[dict[str, Any]] = []
                for name, fingerprint in zip(names[key], answer["seen"], strict=True):
                    if not fingerprint:  # no record asserts it any more
                        sets += [{name: None}, {COMPANION_PREFIX + name: None}]
                        continue
                    content_hash, _, at = fingerprint.partition("|")
                    owner = owners.get(at)
                    same = owner is not None and owner.node["content_hash"] == content_hash
                    mentioned = owner.mention(label, key) if owner is not None and same else None
                    if mentioned is None or name not in mentioned.props:
                        # The record changed since it was read (the next round sees it), or
                        # its node and edge disagree (left as it is).
                        continue
                    sets += [{name: mentioned.props[name]}, {COMPANION_PREFIX + name: at}]
                rows.append({"key": key, "names": names[key], "expect": answer["seen"], "sets": sets})
        raise SinkError(
            f"graph sink: the properties of {len(rows)} {label} entities kept changing under concurrent "
            f"writes after {MAX_REFRESH_ROUNDS} rounds (e.g. {label}:{rows[0]['key'][:80]!r}); retry"
        )

    async def _owners(self, run: Runner, stamps: set[str]) -> dict[str, RecordPlan]:
        """The plans of the records behind assertion `stamps`, read from their `record_json`, by stamp."""
        found: dict[str, RecordPlan] = {}
        uids = sorted({stamp[STAMP_UID_OFFSET:] for stamp in stamps})
        for part in _chunks(uids, self.settings.batch_size):
            for row in await run(cypher.READ, {"uids": list(part)}):
                if not row["record_json"] or row["deleted"]:
                    continue
                try:
                    owner = plan(from_record_json(row["record_json"]))
                except (ValueError, SinkError):  # ValidationError and JSON errors are ValueErrors
                    continue
                if owner.at in stamps:
                    found[owner.at] = owner
        return found

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        """What is stored: live records exactly as written, tombstones as minimal deleted records."""
        if not keys:
            return {}
        backend = self._backend_open()
        # a key no parameter can carry (a NUL) is never stored (plan refuses it): absent
        uids = sorted({uid(RecordKey(*k)) for k in keys} - _unholdable(keys))
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
                record = from_record_json(row["record_json"])
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            raise SinkError(f"graph sink: record node {row.get('uid')!r} cannot be read back: {exc}") from exc
        return {record.key: record}

    async def history(self, entity_ref: str, *, limit: int = 50) -> list[Record]:
        """The live records that mention `entity_ref` ("Shipment:SH-1"), newest first
        (by `occurred_at`, then `version`): what happened to that shipment."""
        label, key = parse_ref(entity_ref)
        rows = await self._backend_open().read(cypher.history(label), {"key": key, "limit": int(limit)})
        return [from_record_json(row["record_json"]) for row in rows if row["record_json"]]

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
                properties={
                    k: v for k, v in dict(row["properties"]).items() if k != "key" and not k.startswith(HIDDEN_PREFIX)
                },
                distance=row["distance"],
            )
            for row in rows
        ]

    async def get_version(self, source: str, id: str) -> tuple[int, bool] | None:
        """`(version, deleted)` stored for the key, tombstones included; None if no node."""
        if _unholdable([RecordKey(source, id)]):
            return None
        rows = await self._backend_open().read(cypher.READ, {"uids": [uid(RecordKey(source, id))]})
        if not rows or rows[0]["version"] is None:  # none, or a node a purge left half-way
            return None
        return int(rows[0]["version"]), bool(rows[0]["deleted"])
