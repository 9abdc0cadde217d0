"""`RedisSink`: a hot cache of the latest version of each record, and the saga's
coordinator (record locks and the commit ledger).

A batch is one call of a Lua script (`scripts.WRITE`) that applies the winner rule
of `entries.py` to every key atomically: an older version never overwrites a newer
one, re-applying a batch changes nothing, a tombstone cannot be resurrected by an
older (or equal) version. Reads and restores are one pipelined round trip each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic_settings import BaseSettings

from apex_platform.contracts import Previous
from apex_platform.errors import RecordsRefused, SettingsError, SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.settings import load
from apex_sink_redis import scripts
from apex_sink_redis.entries import Entry, from_json, storable_winners, to_entry
from apex_sink_redis.keys import KeySpace
from apex_sink_redis.locks import HELD, KeyLocks
from apex_sink_redis.settings import RedisSinkSettings, redact, resolve_url

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript


log = logging.getLogger(__name__)


def _redis_errors() -> tuple[type[BaseException], ...]:
    """What a lost or refused connection raises (redis-py's errors, sockets, timeouts)."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


class RedisSink:
    """The Redis sink. Implements `apex_platform.contracts.Sink` and the saga's optional
    `Coordinator` capability (`lock`, `committed`, `mark_committed`).

    Construction does no I/O and reads no settings; `open()` resolves the URL and
    connects.
    """

    name = "redis"
    #: read by `apex-platform plugins settings` (`Configurable`)
    settings_model: ClassVar[type[BaseSettings] | None] = RedisSinkSettings

    def __init__(self, settings: RedisSinkSettings | None = None) -> None:
        self._settings = settings
        self._client: Redis | None = None
        self._coordinator: Redis | None = None  # None: locks and ledger live on _client
        self._where = "redis (not opened)"
        self._coordinator_where: str | None = None
        self._from_stack = False
        self._write: AsyncScript | None = None
        self._undo: AsyncScript | None = None
        self._commit: AsyncScript | None = None
        self._locks: KeyLocks | None = None

    @property
    def settings(self) -> RedisSinkSettings:
        """The settings given, or read from the environment on first use (`SettingsError` if invalid)."""
        if self._settings is None:
            self._settings = load(RedisSinkSettings)
        return self._settings

    @property
    def keys(self) -> KeySpace:
        return KeySpace(self.settings.prefix)

    @property
    def client(self) -> Redis:
        """The open redis-py asyncio client (for inspection and tools)."""
        return self._require()

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def __repr__(self) -> str:
        return f"RedisSink(where={self._where!r}, open={self.is_open})"

    async def __aenter__(self) -> RedisSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _connect(self) -> Redis:
        url, self._from_stack = resolve_url(self.settings)
        self._where = redact(url)
        return self._client_for(url, "APEX_REDIS_URL")

    def _client_for(self, url: str, variable: str) -> Redis:
        from redis.asyncio import Redis

        settings = self.settings
        try:
            return Redis.from_url(
                url,
                decode_responses=False,
                socket_connect_timeout=settings.connect_timeout_seconds,
                socket_timeout=settings.socket_timeout_seconds,
                health_check_interval=30,
            )
        except ValueError as exc:
            raise SettingsError(f"{variable} is not a usable Redis URL ({redact(url)}): {exc}") from None

    def _hint(self) -> str:
        return " (address from stack.json: is `apex-platform dev` running?)" if self._from_stack else ""

    async def open(self) -> None:
        """Connect and check the server(s) answer. Idempotent. Redis needs no schema.

        Logs a warning when the server holding locks and the ledger may evict keys.
        """
        if self._client is not None:
            return
        client = self._connect()
        coordinator: Redis | None = None
        where = self._where
        try:
            await client.ping()
            if self.settings.coordinator_url is not None:
                url = self.settings.coordinator_url.get_secret_value()
                self._coordinator_where = redact(url)
                where = f"{self._coordinator_where} (APEX_REDIS_COORDINATOR_URL)"
                coordinator = self._client_for(url, "APEX_REDIS_COORDINATOR_URL")
                await coordinator.ping()
        except BaseException as exc:
            for opened in (client, coordinator):
                if opened is not None:
                    await opened.aclose()
            if isinstance(exc, _redis_errors()):
                raise SinkError(f"redis sink: cannot open {where}{self._hint()}: {_describe(exc)}") from exc
            raise
        self._client, self._coordinator = client, coordinator
        self._write = client.register_script(scripts.WRITE)
        self._undo = client.register_script(scripts.UNDO)
        self._commit = (coordinator or client).register_script(scripts.COMMIT)
        self._locks = KeyLocks(coordinator or client, self.keys)
        await self._check_eviction(coordinator or client)

    async def _check_eviction(self, client: Redis) -> None:
        """Warn when locks and ledger entries (keys with a TTL) could be evicted under memory pressure."""
        try:
            found: dict[Any, Any] = await client.config_get("maxmemory-policy")
        except _redis_errors():  # CONFIG is often disabled on managed services: nothing to check
            return
        policy = found.get(b"maxmemory-policy", found.get("maxmemory-policy"))
        if isinstance(policy, str):
            policy = policy.encode()
        if policy is not None and policy != b"noeviction":
            log.warning(
                "redis sink: %s has maxmemory-policy %s: under memory pressure it may evict record locks and "
                "commit-ledger entries; use noeviction there, or a separate server via APEX_REDIS_COORDINATOR_URL",
                self._coordinator_where or self._where,
                policy.decode(errors="replace"),
            )

    async def close(self) -> None:
        clients = (self._client, self._coordinator)
        self._client = self._coordinator = None
        self._write = self._undo = self._commit = self._locks = None
        for client in clients:
            if client is not None:
                await client.aclose()

    async def health(self) -> None:
        """PING every server within `health_timeout_seconds`; `SinkError` if one does not
        answer (also when the sink has no address; when not open, temporary connections)."""
        import asyncio

        temporary = self._client is None
        targets: list[tuple[Redis, str]] = []
        try:
            timeout = self.settings.health_timeout_seconds
            if not temporary:
                assert self._client is not None
                targets.append((self._client, self._where))
                if self._coordinator is not None:
                    targets.append((self._coordinator, f"{self._coordinator_where} (APEX_REDIS_COORDINATOR_URL)"))
            else:
                targets.append((self._connect(), self._where))
                if self.settings.coordinator_url is not None:
                    url = self.settings.coordinator_url.get_secret_value()
                    client = self._client_for(url, "APEX_REDIS_COORDINATOR_URL")
                    targets.append((client, f"{redact(url)} (APEX_REDIS_COORDINATOR_URL)"))
            for client, where in targets:
                try:
                    async with asyncio.timeout(timeout):
                        await client.ping()
                except _redis_errors() as exc:
                    raise SinkError(f"redis sink: {where} does not answer{self._hint()}: {_describe(exc)}") from exc
        except SettingsError as exc:
            raise SinkError(f"redis sink: {exc}") from None
        finally:
            if temporary:
                for client, _ in targets:
                    await client.aclose()

    def _require(self) -> Redis:
        if self._client is None:
            raise SinkError("redis sink is not open: call open() first")
        return self._client

    def _coordinator_client(self) -> Redis:
        return self._coordinator or self._require()

    def _ledger_where(self) -> str:
        return self._coordinator_where or self._where

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        """Upsert a batch in one script call; see the module docstring for what wins.
        Returns what it replaced for every key whose content changed (the fenced contract
        of `apex_platform.contracts.Sink`). NUL characters and lone surrogates are cached
        exactly (see `entries.py`); records with NaN or infinities, which no JSON gives
        back equal, are refused one by one (`RecordsRefused`) after the others are written."""
        if not records:
            return {}
        self._require()
        assert self._write is not None
        entries, refused = storable_winners(records)
        changed: Previous = {}
        if entries:
            args: list[Any] = [self.settings.record_ttl_ms, writer or ""]
            for entry in entries:
                args.extend(entry.values())
            try:
                found = await self._write(keys=[self.keys.record(e.key) for e in entries], args=args)
            except _redis_errors() as exc:
                raise self._error("write", [e.key for e in entries], exc) from exc
            for index, body in zip(found[::2], found[1::2], strict=True):
                changed[entries[int(index) - 1].key] = _readable(body)
        if refused:
            raise RecordsRefused(self.name, refused, previous=changed)
        return changed

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        """What is stored under `keys`: live records as written, tombstones as minimal
        records with `deleted=True`; absent (or expired) keys are missing."""
        unique = list(dict.fromkeys(RecordKey(*k) for k in keys))
        if not unique:
            return {}
        client = self._require()
        try:
            async with client.pipeline(transaction=False) as pipe:
                for key in unique:
                    pipe.hget(self.keys.record(key), "r")
                bodies = await pipe.execute()
        except _redis_errors() as exc:
            raise self._error("read", unique, exc) from exc
        found: dict[RecordKey, Record] = {}
        for key, body in zip(unique, bodies, strict=True):
            if body is None:
                continue
            try:
                found[key] = from_json(body)
            except ValueError as exc:
                raise SinkError(f"redis sink: {self.keys.record(key)} holds no readable record: {exc}") from None
        return found

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        """Put back `previous` (a key mapped to None is deleted completely, tombstone
        included). With `writer`, in one script call and only where the key still holds
        that writer's change; without, exactly, ignoring versions, in one MULTI/EXEC."""
        if not previous:
            return
        client = self._require()
        puts: list[Entry] = []
        gone: list[RecordKey] = []
        for key, record in previous.items():
            key = RecordKey(*key)
            if record is None:
                gone.append(key)
            elif record.key != key:
                raise SinkError(f"redis sink: restore of {key} was given record {record.key}")
            else:
                puts.append(to_entry(record))
        ttl_ms = self.settings.record_ttl_ms
        try:
            if writer is not None:
                assert self._undo is not None
                args: list[Any] = [ttl_ms, writer]
                names = []
                for key in gone:
                    names.append(self.keys.record(key))
                    args.append("0")
                for entry in puts:
                    names.append(self.keys.record(entry.key))
                    args.extend(("1", *entry.values()))
                await self._undo(keys=names, args=args)
                return
            async with client.pipeline(transaction=True) as pipe:
                for key in gone:
                    pipe.delete(self.keys.record(key))
                for entry in puts:
                    name = self.keys.record(entry.key)
                    pipe.delete(name)
                    pipe.hset(name, items=entry.items())
                    if ttl_ms:
                        pipe.pexpire(name, ttl_ms)
                await pipe.execute()
        except _redis_errors() as exc:
            raise self._error("restore", [e.key for e in puts] + gone, exc) from exc

    async def get_version(self, source: str, id: str) -> tuple[int, bool] | None:
        """`(version, deleted)` stored for the key; None if nothing is cached."""
        version, deleted = await self._require().hmget(self.keys.record(RecordKey(source, id)), ["v", "d"])
        return None if version is None else (int(version), deleted == b"1")

    # The saga's Coordinator capability (apex_platform.contracts.Coordinator).

    def lock(self, keys: Sequence[RecordKey], *, ttl_seconds: float | None = None) -> AbstractAsyncContextManager[None]:
        """Hold an exclusive lock on every key for the block.

        Keys are taken in sorted order; a held key is waited for up to
        `lock_wait_seconds` (jittered backoff), then `SinkError` names it. Locks expire
        after `ttl_seconds` (default `lock_ttl_seconds`) unless renewed, which happens
        every third of it while the block runs.
        """
        self._require()
        assert self._locks is not None
        settings = self.settings
        return self._locks.hold(
            keys,
            ttl_seconds=settings.lock_ttl_seconds if ttl_seconds is None else ttl_seconds,
            wait_seconds=settings.lock_wait_seconds,
        )

    async def committed(self, idempotency_keys: Sequence[str]) -> set[str]:
        """The subset of `idempotency_keys` in the commit ledger (one pipelined round trip)."""
        unique = list(dict.fromkeys(idempotency_keys))
        if not unique:
            return set()
        client = self._coordinator_client()
        try:
            async with client.pipeline(transaction=False) as pipe:
                for key in unique:
                    pipe.exists(self.keys.committed(key))
                found = await pipe.execute()
        except _redis_errors() as exc:
            raise SinkError(
                f"redis sink: reading the commit ledger at {self._ledger_where()} failed: {_describe(exc)}"
            ) from exc
        return {key for key, hit in zip(unique, found, strict=True) if hit}

    async def mark_committed(self, idempotency_keys: Sequence[str]) -> None:
        """Record `idempotency_keys` in the ledger for `ledger_ttl_seconds`.

        Inside `lock()` (the saga's case) the ledger is written only while this task's
        record locks are still held, in one script: if Redis restarted empty or the locks
        expired, what the batch wrote to Redis may be gone, so `SinkError` says so and the
        batch is retried instead of being marked committed."""
        unique = list(dict.fromkeys(idempotency_keys))
        if not unique:
            return
        client = self._coordinator_client()
        ttl = self.settings.ledger_ttl_seconds
        held = HELD.get()
        if held is not None:
            token, locks = held
            assert self._commit is not None
            try:
                done = await self._commit(
                    keys=[*locks, *(self.keys.committed(key) for key in unique)], args=[token, len(locks), ttl]
                )
            except _redis_errors() as exc:
                raise SinkError(
                    f"redis sink: writing the commit ledger at {self._ledger_where()} failed: {_describe(exc)}"
                ) from exc
            if int(done) < 0:
                raise SinkError(
                    f"redis sink: the record locks were lost before the commit ledger at {self._ledger_where()} "
                    "was written (Redis restarted, failed over or the locks expired); the batch is written again"
                )
            return
        try:
            async with client.pipeline(transaction=False) as pipe:
                for key in unique:
                    pipe.set(self.keys.committed(key), b"1", ex=ttl)
                await pipe.execute()
        except _redis_errors() as exc:
            raise SinkError(
                f"redis sink: writing the commit ledger at {self._ledger_where()} failed: {_describe(exc)}"
            ) from exc

    def _error(self, op: str, keys: Sequence[RecordKey], exc: BaseException) -> SinkError:
        shown = ", ".join(str(key) for key in keys[:5])
        if len(keys) > 5:
            shown += f" and {len(keys) - 5} more"
        return SinkError(
            f"redis sink: {op} of {shown or 'no records'} at {self._where} failed{self._hint()}: {_describe(exc)}"
        )


def _readable(body: bytes) -> Record | None:
    """What a key held before a write: None if absent, or not a record this sink wrote."""
    if not body:
        return None
    try:
        return from_json(body)
    except ValueError:
        log.warning("redis sink: a key held no readable record before a write (%.60r); undoing it removes it", body)
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
