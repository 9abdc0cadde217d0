"""Waiting, from a test, for something the worker does in the background."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = 60,
    what: str | Callable[[], str] = "the condition was not met",
    every: float = 0.25,
) -> None:
    """Until `condition()` (plain or async) is true; `TimeoutError(what)` after `within`
    seconds (`what` may be a callable, to say the state at the moment it gave up)."""
    deadline = time.monotonic() + within
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(what() if callable(what) else what)
        await asyncio.sleep(every)
