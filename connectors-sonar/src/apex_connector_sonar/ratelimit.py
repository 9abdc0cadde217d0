"""A client-side token bucket that keeps every window of `period` seconds at or under `limit`
requests, shared by every call of one process.

SONAR allows 100 requests per minute. A bucket of capacity `burst` refilled at
``(limit - burst - 1) / period`` tokens per second schedules at most
``burst + (limit - burst - 1) = limit - 1`` requests in any window of `period` seconds; the
one request of slack absorbs network jitter (two requests scheduled apart can arrive
closer together), so the vendor never counts more than `limit`.

Acquiring *reserves* a slot under a thread lock (tokens may go negative) and then sleeps
outside it, so concurrent callers on any event loop or thread queue up fairly.
Several worker processes each have their own bucket: give each a share of the budget
(`APEX_SONAR_REQUESTS_PER_MINUTE`) when you run more than one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        limit: int,
        period: float = 60.0,
        burst: int = 5,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 2 or period <= 0:
            raise ValueError("limit must be >= 2 and period > 0")
        self.limit = limit
        self.period = period
        self.burst = max(1, min(burst, limit - 1))
        self.rate = max(limit - self.burst - 1, 1) / period  # tokens per second
        self._clock = clock
        self._tokens = float(self.burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token; the seconds to wait before the request may go."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> float:
        """Wait for a slot; returns how long it waited."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        return delay


_shared: dict[tuple[str, int, float, int], TokenBucket] = {}
_shared_lock = threading.Lock()


def shared_bucket(key: str, limit: int, period: float = 60.0, burst: int = 5) -> TokenBucket:
    """The process-wide bucket for `key` (the API base URL and user) at these limits."""
    with _shared_lock:
        bucket = _shared.get((key, limit, period, burst))
        if bucket is None:
            bucket = _shared[(key, limit, period, burst)] = TokenBucket(limit, period, burst)
        return bucket
