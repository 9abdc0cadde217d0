"""FalkorDB through the `falkordb` client's asyncio `AsyncGraph` (Redis protocol, not Bolt).

Each statement is one GRAPH.QUERY, which FalkorDB runs atomically (a statement that
fails changes nothing); there are no multi-statement transactions, which is why the
sink's statements are guarded by a write stamp and a `pending` flag (see `cypher.py`).

A write statement the server answers with an error reply (`ResponseError`) is taken as
refusing its data (`GraphDataError`: the sink narrows the batch down to the record),
unless the reply is about the server's state — a timeout, out of memory, loading,
read-only replica, failover, authentication — which is a `SinkError` (transient).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from apex_platform.errors import SinkError
from apex_sink_graph import cypher
from apex_sink_graph.backends import GraphDataError, Row, Runner
from apex_sink_graph.falkordb_params import params_header
from apex_sink_graph.properties import RECORD_LABEL

if TYPE_CHECKING:
    from falkordb.asyncio.graph import AsyncGraph
    from redis.asyncio import Redis

    from apex_sink_graph.settings import GraphSinkSettings, GraphTarget

log = logging.getLogger(__name__)
T = TypeVar("T")


def _errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


#: Error replies about the server, not the statement's data (how they begin, lower case).
#: Replies with a code redis-py knows (OOM, READONLY, NOPERM, TRYAGAIN, MASTERDOWN,
#: LOADING…) arrive as subclasses of `ResponseError` and are never data errors.
SERVER_STATE_ERRORS = (
    "query timed out",
    "timeout",
    "max pending queries",
    "unknown command",
    "busy",
    "misconf",
    "max number of clients",
)


def is_data_error(exc: BaseException) -> bool:
    """Whether FalkorDB's error reply `exc` is about the data of the statement (e.g.
    "Property values can only be of primitive types…"), not about the server."""
    from redis.exceptions import ResponseError

    if type(exc) is not ResponseError:
        return False
    return not str(exc).strip().lower().startswith(SERVER_STATE_ERRORS)


def _already_indexed(exc: BaseException) -> bool:
    return "already indexed" in str(exc).lower()


class FalkorDBBackend:
    kind = "falkordb"

    def __init__(self, target: GraphTarget, settings: GraphSinkSettings) -> None:
        self.target = target
        self.settings = settings
        self._db: Redis | None = None
        self._graph: AsyncGraph | None = None

    def where(self) -> str:
        return self.target.where()

    def _client(self) -> Redis:
        """A new asyncio Redis client (no I/O until first use).

        The FalkorDB client's own constructor probes the server with a *blocking* INFO
        (cluster detection) and retries for seconds; the sink talks to FalkorDB through
        `AsyncGraph` on a plain asyncio client instead, so the event loop never blocks.
        """
        from redis.asyncio import from_url
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": self.settings.connect_timeout,
            # A statement may run up to query_timeout on the server; the socket waits a bit longer.
            "socket_timeout": self.settings.query_timeout + 5,
            # A couple of quick reconnects; longer outages are the saga's retries' business.
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            "client_name": "apex-sink-graph",
        }
        if self.settings.user:
            options["username"] = self.settings.user
        if self.settings.password is not None:
            options["password"] = self.settings.password.get_secret_value()
        client: Redis = from_url(self.target.url, **options)
        return client

    async def open(self) -> None:
        if self._db is not None:
            return
        from falkordb.asyncio.graph import AsyncGraph

        db = self._client()
        graph = AsyncGraph(db, self.target.graph)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await db.execute_command("GRAPH.LIST")  # type: ignore[no-untyped-call]
            await self._create_index(graph, RECORD_LABEL, "uid")
        except _errors() as exc:
            await db.aclose()
            raise SinkError(f"graph sink cannot open {self.where()}: {type(exc).__name__}: {exc}") from exc
        self._db, self._graph = db, graph

    async def close(self) -> None:
        db, self._db, self._graph = self._db, None, None
        if db is not None:
            await db.aclose()

    async def ping(self) -> None:
        timeout = self.settings.health_timeout
        db = self._db or self._client()
        try:
            async with asyncio.timeout(timeout):
                # GRAPH.LIST: the server answers and has the FalkorDB module loaded.
                await db.execute_command("GRAPH.LIST")  # type: ignore[no-untyped-call]
        except _errors() as exc:
            reason = f"no answer within {timeout:.1f}s" if isinstance(exc, TimeoutError) else str(exc)
            raise SinkError(f"graph sink: {self.where()} is unhealthy ({type(exc).__name__}: {reason})") from exc
        finally:
            if db is not self._db:
                await db.aclose()

    async def _create_index(self, graph: AsyncGraph, label: str, prop: str) -> None:
        from redis.exceptions import ResponseError

        try:
            await graph.query(cypher.falkordb_index(label, prop))
        except ResponseError as exc:
            if not _already_indexed(exc):
                raise

    async def ensure_labels(self, labels: Sequence[str]) -> None:
        graph = self._require()
        for label in labels:
            try:
                await self._create_index(graph, label, "key")
            except _errors() as exc:
                raise SinkError(f"graph sink: cannot index :{label}(key) in {self.where()}: {exc}") from exc

    def _require(self) -> AsyncGraph:
        if self._graph is None:
            raise SinkError(f"graph sink ({self.where()}) is not open: call open() first")
        return self._graph

    async def _run(self, text: str, params: Mapping[str, Any], *, read_only: bool = False) -> list[Row]:
        graph = self._require()
        timeout = int(self.settings.query_timeout * 1000)
        try:
            # the parameter header written here, as the client would write it (falkordb_params)
            query = params_header(params) + text
            if read_only:
                result = await graph.ro_query(query, None, timeout=timeout)
            else:
                result = await graph.query(query, None, timeout=timeout)
        except _errors() as exc:
            message = f"graph sink: statement failed in {self.where()}: {type(exc).__name__}: {exc}"
            if not read_only and is_data_error(exc):
                raise GraphDataError(message, detail=str(exc)) from exc
            raise SinkError(message) from exc
        names = [column[1] if isinstance(column, list | tuple) else column for column in result.header]
        return [dict(zip(names, values, strict=True)) for values in result.result_set]

    async def write(self, work: Callable[[Runner], Awaitable[T]]) -> T:
        return await work(self._run)

    async def read(self, cypher_text: str, params: Mapping[str, Any]) -> list[Row]:
        return await self._run(cypher_text, params, read_only=True)
