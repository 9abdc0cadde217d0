"""Group commit for high-rate webhook sources.

Deliveries that arrive within a few milliseconds of each other share one
signal-with-start of the source's accumulator workflow; each request is answered
(202) only after that one signal is persisted by Temporal, so nothing is acknowledged
that is not durable. One RPC per group instead of one per event is what lets the edge
keep up with a fleet's event rate on a small machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from apex_platform.models import InboundEvent

Send = Callable[[list[InboundEvent]], Awaitable[None]]


@dataclass
class GroupCommit:
    send: Send
    max_events: int = 200
    max_bytes: int = 1_000_000
    linger_seconds: float = 0.005
    _pending: list[tuple[InboundEvent, asyncio.Future[None]]] = field(default_factory=list)
    _bytes: int = 0
    _timer: asyncio.TimerHandle | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def submit(self, event: InboundEvent, size: int) -> None:
        """Queue the event and wait until the group holding it is persisted (or failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._pending and self._bytes + size > self.max_bytes:
            self._flush()
        self._pending.append((event, future))
        self._bytes += size
        if len(self._pending) >= self.max_events:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.linger_seconds, self._flush)
        await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._pending, self._bytes = self._pending, [], 0
        if group:
            task = asyncio.get_running_loop().create_task(self._commit(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _commit(self, group: list[tuple[InboundEvent, asyncio.Future[None]]]) -> None:
        try:
            await self.send([event for event, _ in group])
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure (→ 503)
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for _, future in group:
            if not future.done():
                future.set_result(None)
