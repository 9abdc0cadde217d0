"""Group commit: concurrent requests share one write.

Items submitted within `linger_seconds` of each other (or until `max_items` /
`max_bytes`) are handed to one `commit` call; each submitter is answered with its own
result, or the shared failure, only once that call returned. One transaction per group
instead of one per request is what lets the edge take a fleet's event rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Items submitted within `linger_seconds` of each other share one `commit` call;
    each submitter gets its own result (or the shared failure) once that call returns."""

    def __init__(
        self,
        commit: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_items: int = 500,
        max_bytes: int = 16 * 1024 * 1024,
        linger_seconds: float = 0.002,
    ) -> None:
        self.commit = commit
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.linger_seconds = linger_seconds
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T, size: int) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self._pending and self._bytes + size > self.max_bytes:
            self._flush()
        self._pending.append((item, future))
        self._bytes += size
        if len(self._pending) >= self.max_items:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.linger_seconds, self._flush)
        # shielded: a client that hangs up must not cancel the commit others wait on
        return await asyncio.shield(future)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._pending, self._bytes = self._pending, [], 0
        if group:
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self.commit([item for item, _ in group])
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure (→ 503)
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
