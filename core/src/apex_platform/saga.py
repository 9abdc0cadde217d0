"""The saga: write one batch of records to every sink, all or nothing.

Per batch: dedupe keys (highest version wins), skip what the coordinator says is
committed everywhere, lock the keys, write all sinks concurrently (each call behind
tenacity retries and a circuit breaker) with a writer token unique to each call, and
on any failure undo, in every sink, what this attempt changed — each sink's write
returns what it replaced — before raising a retryable error for Temporal.

Compensation never destroys another writer's data: a restore is conditional (the store
puts a key back only where it still holds this writer's change, see `contracts.Sink`),
so an expired lock, a Redis failover or no coordinator at all can slow writers down
but never roll back a newer version, nor an identical one another writer committed.
A compensation that still fails is kept in the dead-letter queue (one letter per batch,
resolved when a later attempt of the batch succeeds) with what it needs to roll back.
Records a sink refuses for good are quarantined there and the rest commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
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

from apex_platform import metrics, tracing
from apex_platform.breaker import CircuitBreaker, CircuitOpenError
from apex_platform.contracts import Coordinator, DeadLetter, DeadLetterQueue, Previous, Sink
from apex_platform.errors import ApexError, RecordsRefused, SinkError
from apex_platform.logs import log_context
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


@functools.cache
def _fenced_type(cls: type[Sink]) -> bool:
    try:
        parameters = inspect.signature(cls.write).parameters
    except (TypeError, ValueError):
        return True
    fenced = "writer" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not fenced:
        log.warning(
            "sink %s.%s implements the earlier Sink contract (write without `writer`): its "
            "compensation is an unconditional restore of a snapshot, not fenced; update it "
            "(see apex_platform.contracts.Sink)",
            cls.__module__,
            cls.__qualname__,
        )
    return fenced


def _fenced(sink: Sink) -> bool:
    """Whether `sink` keeps the fenced contract (`write(..., writer=)` returning `Previous`)."""
    return _fenced_type(type(sink))


def supersedes(new: Record, old: Record) -> bool:
    """The rule every sink keeps: a higher version wins; at an equal version a tombstone
    wins and stays; between live records of equal version the later one (a correction)
    wins."""
    if new.version != old.version:
        return new.version > old.version
    return not old.deleted


def latest_positions(records: Sequence[Record]) -> list[int]:
    """Where in `records` the one record per key of `latest_per_key` stands, in its order.
    It depends on each record's key, version and `deleted` only, which enrichers keep: the
    drain enriches just these (`IngestActivities._enrich_written`)."""
    best: dict[RecordKey, int] = {}
    for position, record in enumerate(records):
        current = best.get(record.key)
        if current is None or supersedes(record, records[current]):
            best[record.key] = position
    return list(best.values())


def latest_per_key(records: Sequence[Record]) -> list[Record]:
    """One record per key: what the stores would end with if written one by one."""
    return [records[position] for position in latest_positions(records)]


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
            with tracing.span(f"apex.sink.{op}", {"apex.sink": sink, "apex.op": op}):  # off: nothing
                async for attempt in retrying:
                    with attempt:
                        if attempt.retry_state.attempt_number > 1:
                            metrics.SINK_RETRIES.labels(sink, op).inc()
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
        """Write `records` to every sink or none. `batch_id` names the batch across attempts
        (a retry of the same batch gives the same id): dead letters are kept per batch id
        and resolved when a later attempt of that batch succeeds."""
        if not self.sinks:
            raise SinkError("no sink is installed: install one (e.g. apex-sink-postgres) or check APEX_PLUGINS")
        sources = {r.source for r in records}
        ids = {r.id for r in records}
        # log lines of a batch of one source (or one record) say which (apex_platform.logs)
        with log_context(
            source=next(iter(sources)) if len(sources) == 1 else None,
            record_id=next(iter(ids)) if len(ids) == 1 else None,
        ):
            return await self._write(records, batch_id)

    async def _write(self, records: Sequence[Record], batch_id: str | None) -> WriteResult:
        batch = await self._uncommitted(latest_per_key(records))
        quarantined: list[Record] = []
        bid = batch_id or uuid.uuid4().hex
        if batch:
            async with self._locked([r.key for r in batch]):
                # another writer may have committed some of them while we waited for the locks
                batch = await self._uncommitted(batch)
                if batch:
                    quarantined = await self._write_all(batch, bid)
                    if quarantined:
                        poison = {r.key for r in quarantined}
                        batch = [r for r in batch if r.key not in poison]
                    if self.coordinator is not None and batch:
                        await self._mark_committed(batch, bid)
        if batch_id is not None and self.dead_letters is not None:
            # an earlier attempt's letter is settled: this attempt wrote every store
            resolved = await self.dead_letters.resolve_dead_letters(batch_id)
            if resolved:
                log.info("batch %s: %d dead letter(s) of an earlier attempt resolved", batch_id, resolved)
        written = Counter(r.source for r in batch)
        for source, seen in Counter(r.source for r in records).items():
            metrics.RECORDS_WRITTEN.labels(source).inc(written[source])
            metrics.RECORDS_SKIPPED.labels(source).inc(seen - written[source])
            metrics.SOURCE_LAST_WRITE.labels(source).set_to_current_time()
        return WriteResult(
            written=len(batch),
            skipped=len(records) - len(batch) - len(quarantined),
            sinks=tuple(self.sinks),
            quarantined=len(quarantined),
        )

    async def _mark_committed(self, batch: list[Record], batch_id: str) -> None:
        """The ledger entry, last: a coordinator that cannot write it (or refuses because
        its locks were lost, e.g. a Redis that restarted empty) fails the batch as
        retryable — every store holds it, and the retry writes it again harmlessly."""
        assert self.coordinator is not None
        try:
            await self.coordinator.mark_committed([r.idempotency_key for r in batch])
        except Exception as exc:
            log.warning("batch %s: written everywhere but not marked committed: %s", batch_id, exc)
            raise SagaWriteError(
                f"batch {batch_id} was written but could not be marked committed ({type(exc).__name__}: {exc})",
                failed=[getattr(self.coordinator, "name", "coordinator")],
            ) from exc

    async def _uncommitted(self, batch: list[Record]) -> list[Record]:
        """The records whose idempotency key the coordinator's ledger does not hold yet."""
        if self.coordinator is None or not batch:
            return batch
        done = await self.coordinator.committed([r.idempotency_key for r in batch])
        return [r for r in batch if r.idempotency_key not in done]

    async def _write_all(self, batch: list[Record], batch_id: str) -> list[Record]:
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
        changed: dict[str, Previous] = {}
        # One token per sink call, a retried call included: an earlier call that applied and
        # then failed is another writer (its change is left to be superseded or confirmed),
        # so a retry can never re-claim a key another batch has written since.
        writers: dict[str, str] = {}

        async def write(name: str) -> None:
            sink = self.sinks[name]
            if not _fenced(sink):
                changed[name] = await self._legacy_write(name, batch)
                return

            async def call() -> Previous:
                writers[name] = token = uuid.uuid4().hex
                return await sink.write(batch, writer=token)

            changed[name] = dict(await self._call(name, "write", call))

        results = await asyncio.gather(*(write(n) for n in names), return_exceptions=True)
        for result in results:  # cancellation is never turned into a compensation or a retry
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
        failed = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
        refusals = {n: r for n, r in failed.items() if isinstance(r, RecordsRefused)}
        for name, refusal in refusals.items():
            changed[name] = {RecordKey(*k): v for k, v in refusal.previous.items()}
        if refusals and len(refusals) == len(failed):
            return await self._quarantine(batch, batch_id, writers, changed, refusals)
        if not failed:
            await self._repair(batch, changed)
            return []
        for name, exc in failed.items():
            log.warning("batch %s: sink %s failed: %s", batch_id, name, exc)
        dead_letter_id = await self._compensate(batch, batch_id, writers, changed, list(failed))
        raise SagaWriteError(
            self._describe("write failed in", failed) + "; what the others wrote was undone",
            failed=list(failed),
            dead_letter_id=dead_letter_id,
        )

    async def _repair(self, batch: list[Record], changed: Mapping[str, Previous]) -> None:
        """Read-repair: a key the batch changed in some stores but not in others means a
        store holds a version the others do not (e.g. a Redis that lost its data took a
        late older event the others already had a newer version of). Read those keys from
        every store and write the newest to the stores behind it, so they agree again."""
        if len(changed) < 2:
            return
        sets = [set(keys) for keys in changed.values()]
        every: set[RecordKey] = set().union(*sets)
        suspect = sorted(every - sets[0].intersection(*sets[1:]))
        if not suspect:
            return
        names = list(self.sinks)

        async def read(name: str) -> dict[RecordKey, Record]:
            return await self._call(name, "read", lambda: self.sinks[name].read(suspect))

        async def put(name: str, record: Record) -> None:
            sink = self.sinks[name]
            if _fenced(sink):
                await self._call(name, "write", lambda: sink.write([record], writer=uuid.uuid4().hex))
            else:
                await self._call(name, "write", lambda: sink.write([record]))

        held = dict(zip(names, await asyncio.gather(*(read(n) for n in names)), strict=True))
        mine = {r.key: r for r in batch}
        for key in suspect:
            newest = mine.get(key)
            for rows in held.values():
                record = rows.get(key)
                if record is not None and (newest is None or supersedes(record, newest)):
                    newest = record
            if newest is None:
                continue
            for name in names:
                record = held[name].get(key)
                if record is None or (record != newest and supersedes(newest, record)):
                    log.warning(
                        "read-repair: %s held %s at version %s, the newest is %s",
                        name,
                        key,
                        None if record is None else record.version,
                        newest.version,
                    )
                    metrics.COMPENSATIONS.labels(name, "repair").inc()
                    await put(name, newest)

    async def _legacy_write(self, name: str, batch: list[Record]) -> Previous:
        """A sink of the earlier contract (no `writer`, nothing returned): snapshot, then
        write; its undo is the unconditional restore of the snapshot (not fenced)."""
        sink = self.sinks[name]
        keys = [r.key for r in batch]
        current = await self._call(name, "read", lambda: sink.read(keys))
        await self._call(name, "write", lambda: sink.write(batch))
        return {key: current.get(key) for key in keys}

    async def _restore(self, writers: Mapping[str, str], previous: Mapping[str, Previous]) -> dict[str, BaseException]:
        """Undo this writer's changes (conditional restore) in every sink that has some;
        return the sinks where that failed."""
        names = [n for n, p in previous.items() if p]

        async def restore(name: str) -> None:
            sink = self.sinks[name]
            if not _fenced(sink):
                await self._call(name, "restore", lambda: sink.restore(previous[name]))
                return
            await self._call(name, "restore", lambda: sink.restore(previous[name], writer=writers[name]))

        results = await asyncio.gather(*(restore(n) for n in names), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
        broken: dict[str, BaseException] = {}
        for name, result in zip(names, results, strict=True):
            ok = not isinstance(result, BaseException)
            metrics.COMPENSATIONS.labels(name, "ok" if ok else "error").inc()
            if isinstance(result, BaseException):
                broken[name] = result
        return broken

    async def _quarantine(
        self,
        batch: list[Record],
        batch_id: str,
        writers: Mapping[str, str],
        changed: Mapping[str, Previous],
        refusals: Mapping[str, RecordsRefused],
    ) -> list[Record]:
        """Records some sink can never hold: undo them in every sink that took them, for
        those keys only (the rest of the batch stays committed), and keep them in the
        dead-letter queue with each sink's reason. Without a dead-letter queue this fails
        loudly."""
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
        taken = {name: {k: v for k, v in previous.items() if k in reasons} for name, previous in changed.items()}
        broken = await self._restore(writers, taken)
        swept: Exception | None = None
        try:
            await self._sweep_remnants(poison, skip=set(refusals) | set(broken))
        except Exception as exc:  # noqa: BLE001 - a store that cannot be read now: the letter says so
            swept = exc
        error = "quarantined: " + "; ".join(f"{key}: {', '.join(rs)}" for key, rs in reasons.items())
        if broken:
            error += "; " + self._describe("taking them back failed in", broken)
        if swept is not None:
            error += f"; looking for earlier attempts' copies failed ({type(swept).__name__}: {swept})"
        letter = DeadLetter(
            id=None,
            batch_id=f"{batch_id}:quarantine",
            records=poison,
            succeeded=[n for n in self.sinks if n not in refusals and n not in broken],
            failed=sorted(refusals),
            error=error[:10_000],
            writers={name: writers[name] for name in broken if name in writers},
            previous={name: taken[name] for name in broken},
        )
        await self._dead_letter(letter)
        for record in poison:
            metrics.RECORDS_QUARANTINED.labels(record.source, ",".join(sorted(refusals))).inc()
        log.warning("batch %s: %d record(s) quarantined: %s", batch_id, len(poison), error[:500])
        return poison

    async def _sweep_remnants(self, poison: Sequence[Record], *, skip: set[str]) -> None:
        """A quarantined record an earlier attempt of this batch wrote before it was cut off
        (a heartbeat timeout or a killed worker after some store took it) is that
        attempt's change, so the conditional restore of this attempt leaves it — and a
        record quarantined for good would stay in that store (the soak found such Samsara
        events in Redis). The batch's record locks are held here, so read the quarantined
        keys from every store: where a store holds exactly the quarantined version, put
        back the newest older version another store holds (the refusing store still has
        the version before it), or take the key out where no store holds another one."""
        names = [n for n in self.sinks if n not in skip]
        if not names or not poison:
            return
        keys = [r.key for r in poison]
        everywhere = list(self.sinks)

        async def read(name: str) -> dict[RecordKey, Record]:
            return await self._call(name, "read", lambda: self.sinks[name].read(keys))

        held = dict(zip(everywhere, await asyncio.gather(*(read(n) for n in everywhere)), strict=True))
        for bad in poison:

            def same(r: Record | None, bad: Record = bad) -> bool:
                return r is not None and r.version == bad.version and r.content_hash == bad.content_hash

            older = [
                r
                for rows in held.values()
                if (r := rows.get(bad.key)) is not None and not same(r) and supersedes(bad, r)
            ]
            target: Record | None = None
            for r in older:
                if target is None or supersedes(r, target):
                    target = r
            for name in names:
                if not same(held[name].get(bad.key)):
                    continue
                log.warning(
                    "quarantine: %s still held %s at the quarantined version %s (an earlier attempt's write); "
                    "put back %s",
                    name,
                    bad.key,
                    bad.version,
                    "nothing" if target is None else f"version {target.version}",
                )
                metrics.COMPENSATIONS.labels(name, "sweep").inc()
                await self._call(name, "restore", functools.partial(self.sinks[name].restore, {bad.key: target}))

    async def _compensate(
        self,
        batch: list[Record],
        batch_id: str,
        writers: Mapping[str, str],
        changed: Mapping[str, Previous],
        failed: list[str],
    ) -> int | None:
        """Undo what this attempt changed. A failed sink that wrote part of the batch before
        failing returned nothing to undo: its partial write is superseded or confirmed by
        the retry, which writes the same records again."""
        broken = await self._restore(writers, changed)
        if not broken:
            return None
        letter = DeadLetter(
            id=None,
            batch_id=batch_id,
            records=batch,
            succeeded=[n for n in self.sinks if n not in failed],
            failed=failed,
            error=self._describe("compensation failed in", broken),
            writers={name: writers[name] for name in broken if name in writers},
            previous={name: dict(changed[name]) for name in broken},
        )
        metrics.DEAD_LETTERS.inc()
        return await self._dead_letter(letter)

    async def _dead_letter(self, letter: DeadLetter) -> int | None:
        """Keep `letter`; a dead-letter queue that cannot be written fails the batch loudly."""
        if self.dead_letters is None:
            log.critical("no dead-letter queue installed; lost compensation: %s", letter)
            return None
        try:
            return await self.dead_letters.add_dead_letter(letter)
        except Exception as exc:
            log.critical("batch %s: the dead-letter queue could not keep its letter: %s", letter.batch_id, exc)
            raise SagaWriteError(
                f"batch {letter.batch_id}: {letter.error[:500]}; and the dead-letter queue could not keep "
                f"the letter ({type(exc).__name__}: {exc})",
                failed=letter.failed,
            ) from exc

    @staticmethod
    def _describe(what: str, failures: Mapping[str, BaseException]) -> str:
        parts = [f"{name} ({type(exc).__name__}: {exc})" for name, exc in failures.items()]
        return f"{what} " + ", ".join(parts)
