"""Neo4j (5.x, Aura) through the official `neo4j` async driver (extra `apex-sink-graph[neo4j]`).

All statements of one write run in one managed write transaction, which the driver
retries on transient errors for up to `APEX_GRAPH_RETRY_SECONDS`. A transaction that
fails on a client error about the statement's data (`DATA_ERROR_CODES`) is a
`GraphDataError` (the sink narrows the batch down to the record); any other failure
is a `SinkError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from apex_platform.errors import SettingsError, SinkError
from apex_sink_graph import cypher
from apex_sink_graph.backends import GraphDataError, Row, Runner
from apex_sink_graph.properties import RECORD_LABEL

if TYPE_CHECKING:
    from neo4j import AsyncDriver, AsyncManagedTransaction

    from apex_sink_graph.settings import GraphSinkSettings, GraphTarget

T = TypeVar("T")

#: Neo4j status codes that mean "this data cannot be processed", not a server problem.
DATA_ERROR_CODES = frozenset(
    {
        "Neo.ClientError.Statement.TypeError",
        "Neo.ClientError.Statement.ArgumentError",
        "Neo.ClientError.Statement.ArithmeticError",
    }
)


def is_data_error(exc: BaseException) -> bool:
    """Whether the driver's error `exc` says the statement's data cannot be processed."""
    return getattr(exc, "code", None) in DATA_ERROR_CODES


def _errors() -> tuple[type[BaseException], ...]:
    from neo4j.exceptions import DriverError, Neo4jError

    return (DriverError, Neo4jError, OSError, TimeoutError)


def transaction_runner(tx: AsyncManagedTransaction) -> Runner:
    """A runner that sends each statement through `tx.run(text, params)`."""

    async def run(text: str, params: Mapping[str, Any]) -> list[Row]:
        result = await tx.run(text, dict(params))
        return await result.data()

    return run


class Neo4jBackend:
    kind = "neo4j"

    def __init__(self, target: GraphTarget, settings: GraphSinkSettings) -> None:
        self.target = target
        self.settings = settings
        self._driver: AsyncDriver | None = None

    def where(self) -> str:
        return self.target.where()

    def driver_options(self) -> dict[str, Any]:
        """Keyword arguments of `neo4j.AsyncGraphDatabase.driver` besides the URI."""
        s = self.settings
        auth = None
        if s.password is not None:
            auth = (s.user or "neo4j", s.password.get_secret_value())
        return {
            "auth": auth,
            "connection_timeout": s.connect_timeout,
            "connection_acquisition_timeout": s.connect_timeout,
            "max_transaction_retry_time": s.retry_seconds,
            "user_agent": "apex-sink-graph",
        }

    def connect(self) -> AsyncDriver:
        """Make the driver (no I/O: the driver connects on first use)."""
        if self._driver is None:
            try:
                import neo4j
            except ImportError:
                raise SettingsError(
                    f"APEX_GRAPH_URI points at Neo4j ({self.where()}) but the neo4j driver is not installed: "
                    "pip install 'apex-sink-graph[neo4j]'"
                ) from None
            self._driver = neo4j.AsyncGraphDatabase.driver(self.target.url, **self.driver_options())
        return self._driver

    def session_options(self, *, write: bool) -> dict[str, Any]:
        import neo4j

        return {
            "database": self.target.database,
            "default_access_mode": neo4j.WRITE_ACCESS if write else neo4j.READ_ACCESS,
        }

    async def open(self) -> None:
        driver = self.connect()
        try:
            await driver.verify_connectivity()
            await self._constrain(RECORD_LABEL, "uid")
        except _errors() as exc:
            await self.close()
            raise SinkError(f"graph sink cannot open {self.where()}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            await driver.close()

    async def ping(self) -> None:
        timeout = self.settings.health_timeout
        owned = self._driver is None
        driver = self.connect()
        try:
            async with asyncio.timeout(timeout):
                await driver.verify_connectivity()
        except _errors() as exc:
            reason = f"no answer within {timeout:.1f}s" if isinstance(exc, TimeoutError) else str(exc)
            raise SinkError(f"graph sink: {self.where()} is unhealthy ({type(exc).__name__}: {reason})") from exc
        finally:
            if owned:
                await self.close()

    async def _constrain(self, label: str, prop: str) -> None:
        driver = self.connect()
        async with driver.session(**self.session_options(write=True)) as session:
            result = await session.run(cypher.neo4j_constraint(label, prop))
            await result.consume()

    async def ensure_labels(self, labels: Sequence[str]) -> None:
        for label in labels:
            try:
                await self._constrain(label, "key")
            except _errors() as exc:
                raise SinkError(f"graph sink: cannot constrain :{label}(key) in {self.where()}: {exc}") from exc

    async def write(self, work: Callable[[Runner], Awaitable[T]]) -> T:
        import neo4j

        @neo4j.unit_of_work(timeout=self.settings.query_timeout)
        async def unit(tx: AsyncManagedTransaction) -> T:
            return await work(transaction_runner(tx))

        driver = self._require()
        try:
            async with driver.session(**self.session_options(write=True)) as session:
                return await session.execute_write(unit)
        except _errors() as exc:
            message = f"graph sink: transaction failed in {self.where()}: {type(exc).__name__}: {exc}"
            if is_data_error(exc):
                raise GraphDataError(message, detail=str(exc)) from exc
            raise SinkError(message) from exc

    async def read(self, cypher_text: str, params: Mapping[str, Any]) -> list[Row]:
        import neo4j

        @neo4j.unit_of_work(timeout=self.settings.query_timeout)
        async def unit(tx: AsyncManagedTransaction) -> list[Row]:
            return await transaction_runner(tx)(cypher_text, params)

        driver = self._require()
        try:
            async with driver.session(**self.session_options(write=False)) as session:
                return await session.execute_read(unit)
        except _errors() as exc:
            raise SinkError(f"graph sink: read failed in {self.where()}: {type(exc).__name__}: {exc}") from exc

    def _require(self) -> AsyncDriver:
        if self._driver is None:
            raise SinkError(f"graph sink ({self.where()}) is not open: call open() first")
        return self._driver
