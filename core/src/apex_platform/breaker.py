"""A small async circuit breaker: closed → open after N consecutive failures →
half-open after a cool-down (one probe call) → closed on success, open on failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from apex_platform.errors import ApexError

T = TypeVar("T")
State = Literal["closed", "open", "half_open"]


class CircuitOpenError(ApexError):
    """The breaker is open: the call was not attempted."""


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        ignore: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.ignore = ignore
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe = asyncio.Lock()

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_timeout:
            return "half_open"
        return "open"

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        state = self.state
        if state == "open":
            raise CircuitOpenError(f"circuit {self.name!r} is open after {self._failures} failures")
        if state == "half_open":
            if self._probe.locked():
                raise CircuitOpenError(f"circuit {self.name!r} is half-open; a probe is running")
            async with self._probe:
                return await self._attempt(fn)
        return await self._attempt(fn)

    async def _attempt(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await fn()
        except self.ignore:
            # a permanent, record-level refusal says nothing about the store's health
            self._failures = 0
            self._opened_at = None
            raise
        except Exception:
            self._failures += 1
            if self._opened_at is not None or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            raise
        self._failures = 0
        self._opened_at = None
        return result
