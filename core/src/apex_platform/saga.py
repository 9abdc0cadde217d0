"""The saga: write one batch of records to every sink, all or nothing.

Per batch: dedupe keys (highest version wins), skip what the coordinator says is
committed everywhere, lock the keys, snapshot each sink's current state, write all
sinks concurrently (each call behind tenacity retries and a circuit breaker), and on
any failure restore every sink to its snapshot before raising a retryable error for
Temporal.  A compensation that still fails is written to the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from apex_platform import metrics
from apex_platform.breaker import CircuitBreaker, CircuitOpenError
from apex_platform.contracts import Coordinator, DeadLetter, DeadLetterQueue, Sink
from apex_platform.errors import ApexError, RecordsRefused, SinkError
from apex_platform.models import Record, RecordKey, WriteResult
from apex_platform.settings import apex_config

log = logging.getLogger(__name__)
T = TypeVar("T")


class SagaSettings(BaseSettings):
    model_config = apex_config("APEX_SAGA_")

    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_initial_seconds: float = Field(default=0.2, gt=0)
    retry_max_seconds: float = Field(default=5.0, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30.0, gt=0)
    lock_ttl_seconds: float = Field(default=120.0, gt=0)


class SagaWriteError(ApexError):
    """The batch was not committed; every store was restored (or dead-lettered)."""

    def __init__(self, message: str, *, failed: Sequence[str], dead_letter_id: int | None = None) -> None:
        super().__init__(message)
        self.failed = list(failed)
        self.dead_letter_id = dead_letter_id


#: `apex_saga_breaker_state` values
BREAKER_CODES = {"closed": 0, "half_open": 1, "open": 2}


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, CircuitOpenError | RecordsRefused)


def supersedes(new: Record, old: Record) -> bool:
    """The rule every sink keeps: a higher version wins; at an equal version a tombstone
    wins and stays; between live records of equal version the later one (a correction)
    wins."""
    if new.version != old.version:
        return new.version > old.version
    return not old.deleted


def latest_per_key(records: Sequence[Record]) -> list[Record]:
    """One record per key: what the stores would end with if written one by one."""
    best: dict[RecordKey, Record] = {}
    for record in records:
        current = best.get(record.key)
        if current is None or supersedes(record, current):
            best[record.key] = record
    return list(best.values())


@dataclass
class Saga:
    sinks: Mapping[str, Sink]
    settings: SagaSettings = field(default_factory=SagaSettings)
    coordinator: Coordinator | None = None
    dead_letters: DeadLetterQueue | None = None
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    @classmethod
    def from_sinks(cls, sinks: Mapping[str, Sink], settings: SagaSettings | None = None) -> Saga:
        """Pick the coordinator and the dead-letter queue among the sinks' capabilities."""
        coordinator = next((s for s in sinks.values() if isinstance(s, Coordinator)), None)
        dlq = next((s for s in sinks.values() if isinstance(s, DeadLetterQueue)), None)
        return cls(dict(sinks), settings or SagaSettings(), coordinator, dlq)

    def breaker(self, sink: str, op: str = "write") -> CircuitBreaker:
        """One breaker per sink and operation: an open write circuit must not stop the
        compensation (restore) that undoes a half-written batch."""
        key = f"{sink}:{op}"
        if key not in self.breakers:
            self.breakers[key] = CircuitBreaker(
                key,
                failure_threshold=self.settings.breaker_failures,
                reset_timeout=self.settings.breaker_reset_seconds,
                ignore=(RecordsRefused,),
            )
        return self.breakers[key]

    async def _call(self, sink: str, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One sink call: retries with jittered exponential backoff, behind the breaker.
        An open circuit is not retried here: Temporal retries the activity later."""
        breaker = self.breaker(sink, op)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retry_attempts),
            wait=wait_random_exponential(
                multiplier=self.settings.retry_initial_seconds, max=self.settings.retry_max_seconds
            ),
            # transient failures only: an open circuit, a permanent refusal and cancellation
            # (a BaseException) are never retried here
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        started = time.perf_counter()
        try:
            async for attempt in retrying:
                with attempt:
                    result = await breaker.call(fn)
        except Exception:
            metrics.SINK_CALLS.labels(sink, op, "error").inc()
            raise
        finally:
            metrics.SINK_SECONDS.labels(sink, op).observe(time.perf_counter() - started)
            metrics.BREAKER_STATE.labels(sink, op).set(BREAKER_CODES[breaker.state])
        metrics.SINK_CALLS.labels(sink, op, "ok").inc()
        return result

    @contextlib.asynccontextmanager
    async def _locked(self, keys: Sequence[RecordKey]) -> AsyncIterator[None]:
        if self.coordinator is None:
            yield
            return
        async with self.coordinator.lock(sorted(keys), ttl_seconds=self.settings.lock_ttl_seconds):
            yield

    async def write(self, records: Sequence[Record], *, batch_id: str | None = None) -> WriteResult:
        if not self.sinks:
            raise SinkError("no sink is installed: install one (e.g. apex-sink-postgres) or check APEX_PLUGINS")
        batch = await self._uncommitted(latest_per_key(records))
        quarantined: list[Record] = []
        if batch:
            async with self._locked([r.key for r in batch]):
                # another writer may have committed some of them while we waited for the locks
                batch = await self._uncommitted(batch)
                if batch:
                    bid = batch_id or uuid.uuid4().hex
                    quarantined = await self._write_all(batch, [r.key for r in batch], bid)
                    if quarantined:
                        poison = {r.key for r in quarantined}
                        batch = [r for r in batch if r.key not in poison]
                    if self.coordinator is not None and batch:
                        await self.coordinator.mark_committed([r.idempotency_key for r in batch])
        written = Counter(r.source for r in batch)
        for source, seen in Counter(r.source for r in records).items():
            metrics.RECORDS_WRITTEN.labels(source).inc(written[source])
            metrics.RECORDS_SKIPPED.labels(source).inc(seen - written[source])
        return WriteResult(
            written=len(batch),
            skipped=len(records) - len(batch) - len(quarantined),
            sinks=tuple(self.sinks),
            quarantined=len(quarantined),
        )

    async def _uncommitted(self, batch: list[Record]) -> list[Record]:
        """The records whose idempotency key the coordinator's ledger does not hold yet."""
        if self.coordinator is None or not batch:
            return batch
        done = await self.coordinator.committed([r.idempotency_key for r in batch])
        return [r for r in batch if r.idempotency_key not in done]

    async def _write_all(self, batch: list[Record], keys: list[RecordKey], batch_id: str) -> list[Record]:
        """Write every sink; return the records quarantined (refused for good by a sink:
        taken back out of every other sink, kept in the dead-letter queue)."""
        names = list(self.sinks)
        # every breaker first: with one circuit open, writing the others only to restore
        # them would be wasted work (and a window where stores disagree)
        tripped = [n for n in names if self.breaker(n, "write").state == "open"]
        if tripped:
            raise SagaWriteError(
                f"circuit open for {', '.join(tripped)}: nothing of the batch was written", failed=tripped
            )
        snapshots: dict[str, dict[RecordKey, Record | None]] = {}

        async def snapshot(name: str) -> None:
            current = await self._call(name, "read", lambda: self.sinks[name].read(keys))
            snapshots[name] = {key: current.get(key) for key in keys}

        # Nothing is written before every sink could be read: a failure here needs no undo.
        results = await asyncio.gather(*(snapshot(n) for n in names), return_exceptions=True)
        failed = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
        if failed:
            raise SagaWriteError(self._describe("could not read the current state of", failed), failed=list(failed))

        async def write(name: str) -> None:
            await self._call(name, "write", lambda: self.sinks[name].write(batch))

        results = await asyncio.gather(*(write(n) for n in names), return_exceptions=True)
        failed = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
        for result in results:  # cancellation is never turned into a compensation or a retry
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
        refusals = {n: r for n, r in failed.items() if isinstance(r, RecordsRefused)}
        if refusals and len(refusals) == len(failed):
            return await self._quarantine(batch, batch_id, snapshots, refusals)
        if not failed:
            return []
        for name, exc in failed.items():
            log.warning("batch %s: sink %s failed: %s", batch_id, name, exc)
        succeeded = [n for n in names if n not in failed]
        dead_letter_id = await self._compensate(batch, batch_id, snapshots, succeeded, list(failed))
        raise SagaWriteError(
            self._describe("write failed in", failed) + "; the other stores were restored",
            failed=list(failed),
            dead_letter_id=dead_letter_id,
        )

    async def _quarantine(
        self,
        batch: list[Record],
        batch_id: str,
        snapshots: Mapping[str, Mapping[RecordKey, Record | None]],
        refusals: Mapping[str, RecordsRefused],
    ) -> list[Record]:
        """Records some sink can never hold: put every sink back as it was for those keys
        only (the rest of the batch stays committed), and keep them in the dead-letter
        queue with each sink's reason. Without a dead-letter queue this fails loudly."""
        reasons: dict[RecordKey, list[str]] = {}
        for name, exc in refusals.items():
            for key, reason in exc.refused.items():
                reasons.setdefault(RecordKey(*key), []).append(f"{name}: {reason}")
        poison = [r for r in batch if r.key in reasons]
        if self.dead_letters is None:
            raise SagaWriteError(
                "records refused for good and no dead-letter queue is installed to keep them "
                f"(install apex-sink-postgres): {'; '.join(r for rs in reasons.values() for r in rs)[:500]}",
                failed=list(refusals),
            )

        async def restore(name: str) -> None:
            previous = {key: snapshots[name].get(key) for key in reasons}
            await self._call(name, "restore", lambda: self.sinks[name].restore(previous))

        names = list(self.sinks)
        results = await asyncio.gather(*(restore(n) for n in names), return_exceptions=True)
        broken = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
        error = "quarantined: " + "; ".join(f"{key}: {', '.join(rs)}" for key, rs in reasons.items())
        if broken:
            error += "; " + self._describe("taking them back failed in", broken)
        letter = DeadLetter(
            id=None,
            batch_id=f"{batch_id}:quarantine",
            records=poison,
            succeeded=[n for n in names if n not in refusals and n not in broken],
            failed=sorted(refusals),
            error=error[:10_000],
        )
        await self.dead_letters.add_dead_letter(letter)
        for record in poison:
            metrics.RECORDS_QUARANTINED.labels(record.source, ",".join(sorted(refusals))).inc()
        log.warning("batch %s: %d record(s) quarantined: %s", batch_id, len(poison), error[:500])
        return poison

    async def _compensate(
        self,
        batch: list[Record],
        batch_id: str,
        snapshots: Mapping[str, Mapping[RecordKey, Record | None]],
        succeeded: list[str],
        failed: list[str],
    ) -> int | None:
        async def restore(name: str) -> None:
            await self._call(name, "restore", lambda: self.sinks[name].restore(snapshots[name]))

        # The failed sinks are restored too, best effort: a sink may fail after a partial write.
        names = succeeded + failed
        results = await asyncio.gather(*(restore(n) for n in names), return_exceptions=True)
        broken: dict[str, BaseException] = {}
        for name, result in zip(names, results, strict=True):
            ok = not isinstance(result, BaseException)
            metrics.COMPENSATIONS.labels(name, "ok" if ok else "error").inc()
            if not ok and name in succeeded:
                assert isinstance(result, BaseException)
                broken[name] = result
        if not broken:
            return None
        letter = DeadLetter(
            id=None,
            batch_id=batch_id,
            records=batch,
            succeeded=succeeded,
            failed=failed,
            error=self._describe("compensation failed in", broken),
        )
        metrics.DEAD_LETTERS.inc()
        if self.dead_letters is None:
            log.critical("no dead-letter queue installed; lost compensation: %s", letter)
            return None
        return await self.dead_letters.add_dead_letter(letter)

    @staticmethod
    def _describe(what: str, failures: Mapping[str, BaseException]) -> str:
        parts = [f"{name} ({type(exc).__name__}: {exc})" for name, exc in failures.items()]
        return f"{what} " + ", ".join(parts)
