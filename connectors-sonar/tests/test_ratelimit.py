"""The token bucket's own arithmetic, on a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from apex_connector_sonar.ratelimit import TokenBucket, shared_bucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def schedule(bucket: TokenBucket, clock: Clock, n: int) -> list[float]:
    """When each of `n` back-to-back requests may go (reservations made at one instant)."""
    return [clock.now + bucket.reserve() for _ in range(n)]


def test_burst_then_steady_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 60.0, burst=5, clock=clock)
    times = schedule(bucket, clock, 8)
    assert times[:5] == [1000.0] * 5
    step = 60.0 / (100 - 5 - 1)
    assert times[5:] == pytest.approx([1000.0 + step, 1000.0 + 2 * step, 1000.0 + 3 * step])


@pytest.mark.parametrize(("limit", "period", "burst"), [(100, 60.0, 5), (10, 2.0, 2), (3, 1.0, 1), (100, 60.0, 100)])
def test_no_window_holds_more_than_the_limit(limit: int, period: float, burst: int) -> None:
    clock = Clock()
    bucket = TokenBucket(limit, period, burst=burst, clock=clock)
    times = schedule(bucket, clock, limit * 4)
    for i, t in enumerate(times):
        in_window = sum(1 for u in times[i:] if u < t + period)
        assert in_window <= limit - 1


def test_tokens_refill_while_idle() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 2.0, burst=2, clock=clock)
    assert schedule(bucket, clock, 2) == [1000.0, 1000.0]
    clock.now += 60
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 0.0
    assert bucket.reserve() > 0


def test_one_bucket_per_key_in_the_process() -> None:
    a = shared_bucket("https://api.freightwaves.com|u", 100)
    assert shared_bucket("https://api.freightwaves.com|u", 100) is a
    assert shared_bucket("https://api.freightwaves.com|v", 100) is not a


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        TokenBucket(1, 60.0)
