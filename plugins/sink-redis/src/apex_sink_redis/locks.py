"""Record locks: the single-instance Redis lock pattern, one lock per record key.

Each lock is `SET lock-key token NX PX ttl` with a random token per `hold()`; it is
released by compare-and-delete, so a holder whose lock expired never deletes the
lock someone else took since. Keys are taken in sorted order (a prefix at a time,
in one script call) and waited for with jittered exponential backoff; while held,
the locks are renewed every third of their TTL so a long block keeps them, and a
holder that dies stops renewing so its locks expire after at most one TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from apex_platform.errors import SinkError
from apex_platform.models import RecordKey
from apex_sink_redis import scripts
from apex_sink_redis.keys import KeySpace

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger(__name__)

#: The locks the current task holds (token, lock key names) while inside `hold()`: the
#: commit ledger is written only while they are still held (`scripts.COMMIT`).
HELD: contextvars.ContextVar[tuple[str, list[str]] | None] = contextvars.ContextVar("apex_redis_held", default=None)

#: First and largest pause between two attempts to take a held lock, in seconds.
BACKOFF_FIRST = 0.005
BACKOFF_MAX = 0.5


class KeyLocks:
    """Takes, renews and releases the locks of a set of record keys on one client."""

    def __init__(self, client: Redis, keys: KeySpace) -> None:
        self._keys = keys
        self._acquire: AsyncScript = client.register_script(scripts.ACQUIRE)
        self._extend: AsyncScript = client.register_script(scripts.EXTEND)
        self._release: AsyncScript = client.register_script(scripts.RELEASE)

    @contextlib.asynccontextmanager
    async def hold(self, keys: Sequence[RecordKey], *, ttl_seconds: float, wait_seconds: float) -> AsyncIterator[None]:
        """Hold every key's lock for the block; `SinkError` naming the keys if they stay
        held by another writer for `wait_seconds`."""
        ordered = sorted({RecordKey(*key) for key in keys})
        if not ordered:
            yield
            return
        names = [self._keys.lock(key) for key in ordered]
        token = secrets.token_hex(16)
        ttl_ms = max(1, round(ttl_seconds * 1000))
        held = [0]  # how many of `names` (a prefix) this token holds; read by the renewer
        renewer = asyncio.create_task(self._renew(names, held, token, ttl_ms, ttl_seconds / 3))
        try:
            try:
                await self._take(ordered, names, held, token, ttl_ms, wait_seconds)
            except (RedisError, OSError) as exc:
                raise SinkError(
                    f"redis sink: locking {len(ordered)} records (first: {ordered[0]}) failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            held_now = HELD.set((token, names))
            try:
                yield
            finally:
                HELD.reset(held_now)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            # All of them, not just the counted prefix: a call cancelled after the server took
            # a lock would leave it counted nowhere. Compare-and-delete spares other holders.
            await self._give_back(names, token)

    async def _take(
        self,
        ordered: list[RecordKey],
        names: list[str],
        held: list[int],
        token: str,
        ttl_ms: int,
        wait_seconds: float,
    ) -> None:
        deadline = time.monotonic() + wait_seconds
        pause = BACKOFF_FIRST
        while True:
            taken = await self._acquire(keys=names[held[0] :], args=[token, ttl_ms])
            held[0] += int(taken)
            if held[0] == len(names):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise SinkError(_timeout_message(ordered, held[0], wait_seconds))
            # Full jitter keeps contending writers from retrying in lockstep.
            await asyncio.sleep(min(left, random.uniform(0, pause)))  # noqa: S311 - not cryptographic
            pause = min(BACKOFF_MAX, pause * 2)

    async def _renew(self, names: list[str], held: list[int], token: str, ttl_ms: int, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            mine = names[: held[0]]
            if not mine:
                continue
            try:
                kept = int(await self._extend(keys=mine, args=[token, ttl_ms]))
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried; the lock may still hold
                log.warning("redis sink: could not renew %d record locks: %s", len(mine), exc)
                continue
            if kept < len(mine):
                log.warning(
                    "redis sink: %d of %d record locks expired while held (first: %s); "
                    "another writer may run concurrently; the version rule still protects the data",
                    len(mine) - kept,
                    len(mine),
                    mine[0],
                )

    async def _give_back(self, names: list[str], token: str) -> None:
        if not names:
            return
        try:
            await self._release(keys=names, args=[token])
        except Exception as exc:  # noqa: BLE001 - never hide the block's own outcome; the locks expire
            log.warning("redis sink: could not release %d record locks (they expire on their own): %s", len(names), exc)


def _timeout_message(ordered: list[RecordKey], held: int, wait_seconds: float) -> str:
    blocked = ordered[held]
    shown = ", ".join(str(key) for key in ordered[:10])
    if len(ordered) > 10:
        shown += f" and {len(ordered) - 10} more"
    return (
        f"redis sink: could not lock record {blocked} within {wait_seconds:g}s: another writer holds it "
        f"(locking {len(ordered)} keys: {shown}); "
        "it is released when that writer finishes or its lock expires (APEX_REDIS_LOCK_WAIT_SECONDS)"
    )
