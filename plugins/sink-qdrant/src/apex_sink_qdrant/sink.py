"""`QdrantSink`: one Qdrant point per record, for vector search over the latest versions.

A write reads the stored state of the batch's points (`retrieve` by id), decides per
key with the winner rule of `points.py`, and applies the winners in one request with
`wait=True` as compare-and-set operations: each point's update carries the condition
that its `etag` is still the one read (Qdrant's conditional updates, `update_filter`,
Qdrant 1.16+ and local mode), a new point is inserted only if still absent. The points
that lost a race to another writer are read and decided again. So two writers of one
key can never roll it back, with or without the saga's locks; and the write knows
exactly what it replaced (the fenced contract of `apex_platform.contracts.Sink`).
A compensation is conditional on the writer tokens, in one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic_settings import BaseSettings

from apex_platform.contracts import Previous
from apex_platform.errors import RecordsRefused, SettingsError, SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.settings import load
from apex_sink_qdrant.points import (
    CHANGED_BY,
    ETAG,
    TOUCHED_BY,
    VECTOR_NAME,
    Point,
    State,
    from_payload,
    point_id,
    storable_winners,
    supersedes,
    to_point,
)
from apex_sink_qdrant.settings import Location, QdrantSinkSettings, resolve_location

T = TypeVar("T")


def _use_wal(client: AsyncQdrantClient) -> None:
    """Local mode commits SQLite once per point with a full fsync; WAL with synchronous=NORMAL
    keeps every commit across a process crash and is about ten times faster. This reaches
    into qdrant-client's local storage: if its layout changes, the default stays."""
    try:
        collections = client._client.collections  # type: ignore[attr-defined]
        for collection in collections.values():
            connection = collection.storage.storage
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
    except Exception as exc:  # noqa: BLE001 - an optimisation only
        log.warning("qdrant sink: could not switch local storage to WAL (%s); keeping the default", exc)


async def _as_coroutine(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient
    from qdrant_client.http import models

log = logging.getLogger(__name__)

#: Payload indexes a Qdrant server keeps (local mode has none: it scans).
PAYLOAD_INDEXES: dict[str, str] = {
    "source": "keyword",
    "kind": "keyword",
    "id": "keyword",
    "entities": "keyword",
    "version": "integer",
    "deleted": "bool",
    "occurred_ts": "float",
}


def client_errors() -> tuple[type[BaseException], ...]:
    """What qdrant-client raises when the store fails or refuses a request.

    Local mode raises plain `ValueError` / `RuntimeError` (a closed client, a bad vector).
    """
    import httpx
    from qdrant_client.http.exceptions import ApiException

    return (ApiException, httpx.HTTPError, OSError, TimeoutError, ValueError, RuntimeError)


@dataclass(frozen=True)
class SearchHit:
    """One result of `QdrantSink.search`: the stored record and its similarity score."""

    record: Record
    score: float


class QdrantSink:
    """The Qdrant sink. Implements `apex_platform.contracts.Sink`, plus `search`.

    Construction does no I/O and reads no settings; `open()` resolves where the store is
    (APEX_QDRANT_URL, APEX_QDRANT_PATH or the embedded stack), connects, and creates the
    collection and its payload indexes if missing.
    """

    name = "qdrant"
    #: read by `apex-platform plugins settings` (`Configurable`)
    settings_model: ClassVar[type[BaseSettings] | None] = QdrantSinkSettings

    def __init__(self, settings: QdrantSinkSettings | None = None) -> None:
        self._settings = settings
        self._client: AsyncQdrantClient | None = None
        self._location: Location | None = None
        self._lock = asyncio.Lock()
        # Local mode runs Qdrant inside this process and commits SQLite once per point: its
        # calls go to one dedicated thread, so they neither block the event loop (the worker
        # writes the other stores meanwhile) nor run concurrently with each other.
        self._local_thread: ThreadPoolExecutor | None = None

    @property
    def settings(self) -> QdrantSinkSettings:
        """The settings given, or read from the environment on first use (never at construction)."""
        if self._settings is None:
            self._settings = load(QdrantSinkSettings)
        return self._settings

    @property
    def collection(self) -> str:
        return self.settings.collection

    @property
    def location(self) -> Location | None:
        """Where the store is, once resolved by `open()` or `health()`."""
        return self._location

    @property
    def client(self) -> AsyncQdrantClient:
        """The open qdrant-client, for what this class does not wrap."""
        if self._client is None:
            raise SinkError(f"qdrant sink ({self.collection}) is not open: call open() first")
        return self._client

    @property
    def is_open(self) -> bool:
        return self._client is not None

    @property
    def embedding_dim(self) -> int:
        """`EmbeddingStore`: the size of the `text` vector (APEX_QDRANT_EMBEDDING_DIM)."""
        return self.settings.embedding_dim

    @property
    def single_process(self) -> bool:
        """Local mode (no server URL): only one process may open the folder, so the
        platform lets the worker own it and the API leaves it closed."""
        try:
            return self.settings.url is None
        except Exception:  # noqa: BLE001 - unreadable settings: open() will say what is wrong
            return False

    def __repr__(self) -> str:
        where = self._location.describe() if self._location else "unresolved"
        return f"QdrantSink(collection={self.collection!r}, {where}, open={self.is_open})"

    async def __aenter__(self) -> QdrantSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def conformance_sink(self) -> AsyncIterator[QdrantSink]:
        """`ConformanceSinkProvider` (`pytest --apex-conformance qdrant`): a sink in local
        mode on an empty folder of its own, with small vectors; the folder goes on exit."""
        with tempfile.TemporaryDirectory(prefix="apex-conformance-qdrant-") as folder:
            async with QdrantSink(QdrantSinkSettings(path=Path(folder) / "qdrant", embedding_dim=4)) as sink:
                yield sink

    def _where(self) -> str:
        where = self._location.describe() if self._location else "<unresolved>"
        return f"{where}, collection {self.collection}"

    def _resolve(self) -> Location:
        if self._location is None:
            self._location = resolve_location(self.settings)
        return self._location

    def _connect(self, location: Location) -> AsyncQdrantClient:
        """A client for `location`. A server client does no I/O here; local mode opens the
        folder and takes its lock."""
        from qdrant_client import AsyncQdrantClient

        settings = self.settings
        if location.url is not None:
            api_key = settings.api_key.get_secret_value() if settings.api_key else None
            # The compatibility check would be a request from a background thread that only warns;
            # open() asks the server itself and fails clearly instead.
            try:
                return AsyncQdrantClient(
                    url=location.url, api_key=api_key, timeout=settings.timeout, check_compatibility=False
                )
            except ValueError as exc:
                raise SettingsError(f"APEX_QDRANT_URL={location.url!r} is not a usable Qdrant URL: {exc}") from None
        assert location.path is not None
        try:
            return AsyncQdrantClient(path=str(location.path))
        except RuntimeError as exc:
            if "already accessed" not in str(exc):
                raise SinkError(f"qdrant sink cannot open {self._where()}: {exc}") from exc
            raise SinkError(
                f"qdrant sink: {location.path} is open in another process (apex-platform dev?) or by another "
                "client in this one; Qdrant local mode admits one process per folder. Route reads through "
                "the running stack or use a Qdrant server via APEX_QDRANT_URL"
            ) from None
        except (OSError, ValueError) as exc:
            raise SinkError(f"qdrant sink cannot open {self._where()}: {type(exc).__name__}: {exc}") from exc

    async def open(self) -> None:
        """Connect and create the collection and payload indexes if missing. Idempotent."""
        async with self._lock:
            if self._client is not None:
                return
            location = self._resolve()
            client = self._connect(location)
            try:
                await self._ensure_collection(client, location)
            except BaseException:
                await client.close()
                raise
            self._client = client
            if location.path is not None:
                self._local_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant-local")
                if self.settings.local_synchronous == "normal":
                    _use_wal(client)

    async def _ensure_collection(self, client: AsyncQdrantClient, location: Location) -> None:
        from qdrant_client.http import models

        settings = self.settings
        name = settings.collection
        try:
            if not await client.collection_exists(name):
                params = models.VectorParams(size=settings.embedding_dim, distance=models.Distance(settings.distance))
                try:
                    await client.create_collection(name, vectors_config={VECTOR_NAME: params})
                    log.info("qdrant sink: created collection %s in %s", name, location.describe())
                except client_errors():
                    # Another worker may have created it since we looked.
                    if not await client.collection_exists(name):
                        raise
            info = await client.get_collection(name)
            self._check_vectors(info)
            if location.url is not None:
                await self._ensure_indexes(client, info)
        except (SettingsError, SinkError):
            raise
        except client_errors() as exc:
            raise SinkError(f"qdrant sink cannot open {self._where()}: {_describe(exc)}") from exc

    def _check_vectors(self, info: models.CollectionInfo) -> None:
        settings = self.settings
        vectors = info.config.params.vectors
        params = vectors.get(VECTOR_NAME) if isinstance(vectors, dict) else None
        if params is None:
            raise SettingsError(
                f"qdrant collection {settings.collection} exists without a named vector `{VECTOR_NAME}`: it was "
                "not created by this sink. Set APEX_QDRANT_COLLECTION to another name"
            )
        if params.size != settings.embedding_dim:
            raise SettingsError(
                f"qdrant collection {settings.collection} holds {params.size}-dimensional `{VECTOR_NAME}` vectors "
                f"but APEX_QDRANT_EMBEDDING_DIM is {settings.embedding_dim}: set APEX_QDRANT_EMBEDDING_DIM="
                f"{params.size}, use another APEX_QDRANT_COLLECTION, or delete the collection and re-embed"
            )
        if params.distance.value != settings.distance:
            raise SettingsError(
                f"qdrant collection {settings.collection} uses {params.distance.value} distance but "
                f"APEX_QDRANT_DISTANCE is {settings.distance}: set it back or use another APEX_QDRANT_COLLECTION"
            )

    async def _ensure_indexes(self, client: AsyncQdrantClient, info: models.CollectionInfo) -> None:
        from qdrant_client.http import models

        existing = info.payload_schema or {}
        for field, schema in PAYLOAD_INDEXES.items():
            if field not in existing:
                await client.create_payload_index(
                    self.collection, field, field_schema=models.PayloadSchemaType(schema), wait=True
                )

    async def close(self) -> None:
        """Close the client; local mode releases the folder's lock."""
        async with self._lock:
            client, self._client = self._client, None
            thread, self._local_thread = self._local_thread, None
            if thread is not None:
                thread.shutdown(wait=True)
            if client is not None:
                await client.close()

    async def health(self) -> None:
        """Ask the store whether the collection exists, within `health_timeout`;
        `SinkError` if it does not answer (or, once open, if the collection is gone)."""
        timeout = self.settings.health_timeout
        client = self._client
        temporary = None
        try:
            location = self._resolve()
            if client is None and location.url is not None:
                client = temporary = self._connect(location)
        except SettingsError as exc:
            raise SinkError(f"qdrant sink is not configured: {exc}") from exc
        if client is None:
            # Opening the folder would take the lock another process may hold: not a health check.
            raise SinkError(f"qdrant sink: {self._where()} is not open (local mode is checked by open())")
        try:
            async with asyncio.timeout(timeout):
                exists = await self._call(lambda: client.collection_exists(self.collection))
        except client_errors() as exc:
            reason = f"no answer within {timeout:.1f}s" if isinstance(exc, TimeoutError) else _describe(exc)
            raise SinkError(f"qdrant sink: {self._where()} is unhealthy ({reason})") from exc
        finally:
            if temporary is not None:
                await temporary.close()
        if not exists and self._client is not None:
            raise SinkError(f"qdrant sink: {self._where()} is unhealthy (the collection is gone)")

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a client call: on the local-mode thread (in a loop of its own: the local
        client's coroutines never wait on I/O), or directly against a server."""
        thread = self._local_thread
        if thread is None:
            return await make()
        return await asyncio.get_running_loop().run_in_executor(thread, lambda: asyncio.run(_as_coroutine(make)))

    async def _retrieve(self, ids: Sequence[str], with_payload: bool | list[str], op: str) -> list[models.Record]:
        try:
            client = self.client
            return await self._call(
                lambda: client.retrieve(self.collection, ids=list(ids), with_payload=with_payload, with_vectors=False)
            )
        except client_errors() as exc:
            raise SinkError(
                f"qdrant sink: {op} of {len(ids)} points in {self._where()} failed: {_describe(exc)}"
            ) from exc

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        """Upsert a batch: one point per key, only where the winner rule says the stored
        point is superseded (see `points.py`), as compare-and-set operations in one request
        per round. Returns what it replaced for every key whose content changed. Records
        Qdrant cannot hold exactly are refused one by one (`RecordsRefused`) after the
        others are written."""
        if not records:
            return {}
        candidates, refused = storable_winners(records, self.settings.embedding_dim)
        changed: Previous = {}
        todo = candidates
        for _ in range(CAS_ROUNDS):
            if not todo:
                break
            todo = await self._write_round(todo, writer, changed)
        if todo:
            raise SinkError(
                f"qdrant sink: {len(todo)} points (first: {todo[0].key}) kept changing under this write for "
                f"{CAS_ROUNDS} rounds in {self._where()}; retried later"
            )
        if refused:
            raise RecordsRefused(self.name, refused, previous=changed)
        return changed

    async def _write_round(self, todo: Sequence[Point], writer: str | None, changed: Previous) -> list[Point]:
        """One read-decide-compare-and-set round; returns the points that lost a race."""
        from qdrant_client.http import models

        stored = await self._retrieve([p.id for p in todo], True, "write (reading current state)")
        current = {str(p.id): dict(p.payload or {}) for p in stored}
        operations: list[models.UpdateOperation] = []
        expected: dict[str, tuple[Point, str, dict[str, Any] | None]] = {}
        for point in todo:
            old = current.get(point.id)
            etag = uuid.uuid4().hex
            if old is not None:
                state = State.from_payload(old)
                if not supersedes(point.state, state):
                    # identical or older: only the stamp (this write still counts as a writer)
                    if writer is not None and old.get(TOUCHED_BY) != writer:
                        operations.append(
                            models.SetPayloadOperation(
                                set_payload=models.SetPayload(
                                    payload={TOUCHED_BY: writer, ETAG: etag}, filter=_same(point.id, old.get(ETAG))
                                )
                            )
                        )
                        expected[point.id] = (point, etag, None)
                    continue
            payload = {**point.payload, CHANGED_BY: writer, TOUCHED_BY: writer, ETAG: etag}
            struct = models.PointStruct(id=point.id, vector=point.vector, payload=payload)
            if old is None:
                points = models.PointsList(points=[struct], update_mode=models.UpdateMode.INSERT_ONLY)
            else:
                points = models.PointsList(
                    points=[struct],
                    update_filter=_same(point.id, old.get(ETAG)),
                    update_mode=models.UpdateMode.UPDATE_ONLY,
                )
            operations.append(models.UpsertOperation(upsert=points))
            expected[point.id] = (point, etag, old)
        if not operations:
            return []
        await self._batch(operations, "write", [p for p, _, _ in expected.values()])
        after = await self._retrieve(list(expected), [ETAG], "write (checking it applied)")
        landed = {str(p.id) for p in after if (p.payload or {}).get(ETAG) == expected[str(p.id)][1]}
        lost: list[Point] = []
        for point_id_, (point, _, old) in expected.items():
            if point_id_ not in landed:
                lost.append(point)
            elif point_id_ in current and old is None:
                continue  # stamped only: an identical or older record
            else:
                changed[point.key] = None if old is None else _previous(old)
        return lost

    async def _upsert(self, points: Sequence[Point], op: str, delete: Sequence[str] = ()) -> None:
        """Put points as given (tokens cleared), deleting `delete` first, in one request."""
        from qdrant_client.http import models

        structs = [
            models.PointStruct(id=p.id, vector=p.vector, payload={**p.payload, ETAG: uuid.uuid4().hex}) for p in points
        ]
        operations: list[models.UpdateOperation] = []
        if delete:
            operations.append(models.DeleteOperation(delete=models.PointIdsList(points=list(delete))))
        if structs:
            operations.append(models.UpsertOperation(upsert=models.PointsList(points=structs)))
        if operations:
            await self._batch(operations, op, points)

    async def _batch(self, operations: list[models.UpdateOperation], op: str, points: Sequence[Point]) -> None:
        client = self.client
        try:
            await self._call(lambda: client.batch_update_points(self.collection, operations, wait=True))
        except client_errors() as exc:
            keys = ", ".join(str(p.key) for p in points[:5]) + (" …" if len(points) > 5 else "")
            raise SinkError(
                f"qdrant sink: {op} of {len(points)} points ({keys}) into {self._where()} failed: {_describe(exc)}"
            ) from exc

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        """What is stored under `keys`: live records exactly as written, tombstones as
        minimal records with `deleted=True`; absent keys are missing."""
        if not keys:
            return {}
        wanted = {point_id(k): RecordKey(*k) for k in keys}
        stored = await self._retrieve(list(wanted), True, "read")
        found: dict[RecordKey, Record] = {}
        for point in stored:
            key = wanted.get(str(point.id))
            payload = point.payload or {}
            if key is None or (payload.get("source"), payload.get("id")) != tuple(key):
                continue
            found[key] = from_payload(payload)
        return found

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        """Put back `previous` in one request: a live record, a tombstone, or None = no
        point at all (tombstone included). With `writer`, only the points that still hold
        that writer's change (both tokens); without, exactly, ignoring versions."""
        from qdrant_client.http import models

        if not previous:
            return
        points: list[Point] = []
        gone: list[str] = []
        for key, record in previous.items():
            key = RecordKey(*key)
            if record is None:
                gone.append(point_id(key))
            elif record.key != key:
                raise SinkError(f"qdrant sink: restore maps key {key} to record {record.key}")
            else:
                points.append(to_point(record, self.settings.embedding_dim))
        if writer is None:
            await self._upsert(points, "restore", delete=gone)
            return
        mine = [
            models.FieldCondition(key=CHANGED_BY, match=models.MatchValue(value=writer)),
            models.FieldCondition(key=TOUCHED_BY, match=models.MatchValue(value=writer)),
        ]
        operations: list[models.UpdateOperation] = []
        if gone:
            selector = models.FilterSelector(
                filter=models.Filter(must=[models.HasIdCondition(has_id=list(gone)), *mine])
            )
            operations.append(models.DeleteOperation(delete=selector))
        if points:
            structs = [
                models.PointStruct(id=p.id, vector=p.vector, payload={**p.payload, ETAG: uuid.uuid4().hex})
                for p in points
            ]
            operations.append(
                models.UpsertOperation(
                    upsert=models.PointsList(
                        points=structs,
                        update_filter=models.Filter(must=mine),
                        update_mode=models.UpdateMode.UPDATE_ONLY,
                    )
                )
            )
        await self._batch(operations, "restore", points)

    async def search(
        self,
        vector: Sequence[float],
        limit: int = 10,
        *,
        source: str | Sequence[str] | None = None,
        kind: str | Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """The live records nearest to `vector`, best first, optionally only of some
        sources or kinds. Tombstones and records without an embedding never appear."""
        from qdrant_client.http import models

        if len(vector) != self.settings.embedding_dim:
            raise SinkError(
                f"qdrant sink: search vector has {len(vector)} dimensions, the collection's `{VECTOR_NAME}` "
                f"vector has {self.settings.embedding_dim} (APEX_QDRANT_EMBEDDING_DIM)"
            )
        if limit < 1:
            raise ValueError("limit must be at least 1")
        must: list[models.Condition] = []
        for field, value in (("source", source), ("kind", kind)):
            if value is None:
                continue
            match: models.MatchValue | models.MatchAny = (
                models.MatchValue(value=value) if isinstance(value, str) else models.MatchAny(any=list(value))
            )
            must.append(models.FieldCondition(key=field, match=match))
        query_filter = models.Filter(
            must=must or None,
            must_not=[models.FieldCondition(key="deleted", match=models.MatchValue(value=True))],
        )
        try:
            client = self.client
            response = await self._call(
                lambda: client.query_points(
                    self.collection,
                    query=[float(v) for v in vector],
                    using=VECTOR_NAME,
                    query_filter=query_filter,
                    limit=limit,
                    with_payload=True,
                    with_vectors=False,
                )
            )
        except client_errors() as exc:
            raise SinkError(f"qdrant sink: search in {self._where()} failed: {_describe(exc)}") from exc
        return [SearchHit(from_payload(p.payload or {}), p.score) for p in response.points]

    async def count(self, *, include_deleted: bool = False) -> int:
        """Points in the collection: live records, plus tombstones if asked."""
        from qdrant_client.http import models

        count_filter = None
        if not include_deleted:
            count_filter = models.Filter(
                must_not=[models.FieldCondition(key="deleted", match=models.MatchValue(value=True))]
            )
        try:
            client = self.client
            result = await self._call(lambda: client.count(self.collection, count_filter=count_filter, exact=True))
        except client_errors() as exc:
            raise SinkError(f"qdrant sink: count in {self._where()} failed: {_describe(exc)}") from exc
        return result.count


#: compare-and-set rounds a write tries before it leaves the rest to the saga's retry
CAS_ROUNDS = 8


def _same(point: str, etag: Any) -> models.Filter:
    """The point still holds what was read: its `etag` (or none, for points written before it)."""
    from qdrant_client.http import models

    unchanged: models.Condition = (
        models.IsEmptyCondition(is_empty=models.PayloadField(key=ETAG))
        if etag is None
        else models.FieldCondition(key=ETAG, match=models.MatchValue(value=etag))
    )
    return models.Filter(must=[models.HasIdCondition(has_id=[point]), unchanged])


def _previous(payload: Mapping[str, Any]) -> Record | None:
    try:
        return from_payload(payload)
    except (KeyError, ValueError) as exc:
        log.warning("qdrant sink: a point held no readable record before a write (%s); undoing it removes it", exc)
        return None


def _describe(exc: BaseException) -> str:
    """One line for an error, unwrapping qdrant-client's response-handling wrapper."""
    source: Any = getattr(exc, "source", None)
    inner = source if isinstance(source, BaseException) else exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else '(no message)'}"
