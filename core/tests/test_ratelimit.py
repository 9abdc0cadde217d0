"""Shared rate budgets (apex_platform.ratelimit) against the real PostgreSQL: several
instances (each its own pool, as separate processes have) and several real processes take
slots of one budget together, on a controllable clock; grants are counted per window of the
simulated clock, never timed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from apex_platform.ratelimit import (
    MemoryBudgets,
    PostgresBudgets,
    RateBudgetExceeded,
    RateBudgets,
    RateBudgetUnavailable,
    RateLimitSettings,
    budget_key,
    open_budgets,
)

pytestmark = pytest.mark.timeout(120)

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of `times` inside one closed interval of `window` seconds."""
    ordered = sorted(times)
    best = 0
    j = 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j + 1 < len(ordered) and ordered[j + 1] <= start + window + 1e-5:  # float8 epoch seconds: µs apart
            j += 1
        best = max(best, j - i + 1)
    return best


@pytest.fixture
def schema() -> str:
    return f"rl_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def make(apex_postgres_server: Any, schema: str) -> AsyncIterator[Callable[..., PostgresBudgets]]:
    made: list[PostgresBudgets] = []

    def factory(clock: Clock | None = None, **overrides: Any) -> PostgresBudgets:
        settings = RateLimitSettings(schema_name=schema, **overrides)
        budgets = PostgresBudgets(apex_postgres_server.dsn, settings, clock=clock)
        made.append(budgets)
        return budgets

    yield factory
    for budgets in made:
        await budgets.close()


async def test_instances_sharing_one_database_never_exceed_the_budget(make: Callable[..., PostgresBudgets]) -> None:
    clock = Clock()
    instances = [make(clock) for _ in range(4)]  # four "processes": four pools
    rate, burst = 94 / 60, 5  # SONAR: 100 a minute, one of slack

    async def take(budgets: PostgresBudgets, n: int) -> list[float]:
        return [(await budgets.reserve("sonar:acct", rate, burst, max_wait=10_000)).go for _ in range(n)]

    results = await asyncio.gather(*(take(b, 60) for b in instances))
    times = [t for r in results for t in r]
    assert len(times) == 240
    assert most_in_any_window(times, 60.0) == 99  # burst + 94: never 100
    assert sorted(times)[:5] == [T0] * 5  # the burst goes at once
    assert len(set(times)) == 240 - 4  # every other slot is its own


async def test_slots_free_up_as_the_clock_moves(make: Callable[..., PostgresBudgets]) -> None:
    clock = Clock()
    a, b = make(clock), make(clock)
    granted = []
    for second in range(20):  # 20 simulated seconds, both instances ask 10 times a second
        clock.now = T0 + second
        for budgets in (a, b) * 5:
            grant = await budgets.reserve("hubspot-search", 4.0, 1, max_wait=0)
            if grant.granted:
                granted.append(grant.go)
    assert most_in_any_window(granted, 1.0) <= 5  # HubSpot's 5 a second, with 4/s and a burst of 1
    assert len(granted) == 20  # asked at whole seconds, 4/s without burst: one slot is free each time
    clock.now = T0 + 100
    assert (await a.reserve("hubspot-search", 4.0, 1, max_wait=0)).granted


async def test_a_block_set_by_one_instance_holds_every_other(make: Callable[..., PostgresBudgets]) -> None:
    clock = Clock()
    a, b = make(clock), make(clock)
    assert (await a.reserve("acct", 10.0, 10, max_wait=0)).granted
    end = await a.block("acct", seconds=600, reason="SONAR block after a 429")
    assert end == T0 + 600
    with pytest.raises(RateBudgetExceeded) as caught:
        await b.acquire("acct", 10.0, 10, max_wait=30)
    assert caught.value.retryable
    assert caught.value.retry_after == pytest.approx(600)
    assert caught.value.reason == "SONAR block after a 429"
    assert "rate budget acct: paused until" in str(caught.value)
    # a shorter block later changes nothing; the first slots after the block are the burst
    assert await b.block("acct", seconds=5, reason="short") == T0 + 600
    clock.now = T0 + 600
    grants = [await b.reserve("acct", 10.0, 10, max_wait=0) for _ in range(11)]
    assert [g.granted for g in grants] == [True] * 10 + [False]
    assert all(g.go == T0 + 600 for g in grants[:10])
    state = await a.state("acct")
    assert state is not None
    assert state.blocked_until == T0 + 600


async def test_block_until_an_absolute_time(make: Callable[..., PostgresBudgets]) -> None:
    clock = Clock()
    budgets = make(clock)
    await budgets.block("hubspot", until=T0 + 3 * 3600, reason="HubSpot DAILY limit")
    grant = await budgets.reserve("hubspot", 8.0, 10, max_wait=60)
    assert not grant.granted
    assert grant.go == T0 + 3 * 3600


async def test_acquire_sleeps_until_its_slot(make: Callable[..., PostgresBudgets]) -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    budgets = make(clock)
    budgets._sleep = sleep
    for _ in range(3):
        await budgets.acquire("q", 2.0, 1, max_wait=5)
    assert slept == [0.5, 1.0]
    with pytest.raises(RateBudgetExceeded, match="queue is full"):
        await budgets.acquire("q", 2.0, 1, max_wait=1.0)


async def test_the_database_clock_is_used_without_one(make: Callable[..., PostgresBudgets]) -> None:
    budgets = make()
    first = await budgets.reserve("db-clock", 1.0, 1, max_wait=10)
    second = await budgets.reserve("db-clock", 1.0, 1, max_wait=10)
    assert first.granted
    assert second.granted
    assert second.go - first.go == pytest.approx(1.0, abs=0.5)


_CHILD = """
import asyncio, json, sys
from apex_platform.ratelimit import PostgresBudgets, RateLimitSettings

async def main() -> None:
    dsn, schema, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    budgets = PostgresBudgets(dsn, RateLimitSettings(schema_name=schema), clock=lambda: float(sys.argv[4]))
    times = [(await budgets.reserve("shared", 5.0, 5, max_wait=10_000)).go for _ in range(n)]
    await budgets.close()
    print(json.dumps(times))

asyncio.run(main())
"""


async def test_real_processes_share_one_budget(apex_postgres_server: Any, schema: str) -> None:
    # the schema exists before the children race for it
    parent = PostgresBudgets(apex_postgres_server.dsn, RateLimitSettings(schema_name=schema), clock=lambda: T0)
    await parent.reserve("warm-up", 1.0)
    await parent.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            apex_postgres_server.dsn,
            schema,
            "40",
            str(T0),
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for _ in range(3)
    ]
    outs = await asyncio.gather(*(p.communicate() for p in procs))
    assert all(p.returncode == 0 for p in procs)
    times = [t for out, _ in outs for t in json.loads(out)]
    assert len(times) == 120
    assert most_in_any_window(times, 1.0) == 10  # burst 5 + 5 a second
    assert most_in_any_window(times, 10.0) == 55


async def test_memory_fallback_keeps_the_same_rule() -> None:
    clock = Clock()
    budgets = MemoryBudgets(clock=clock)
    times = [(await budgets.reserve("m", 94 / 60, 5, max_wait=10_000)).go for _ in range(300)]
    assert most_in_any_window(times, 60.0) == 99
    await budgets.block("m", seconds=60, reason="r")
    assert not (await budgets.reserve("m", 94 / 60, 5, max_wait=0)).granted


def test_open_budgets_falls_back_to_memory_without_a_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for var in ("APEX_RATELIMIT_DSN", "APEX_INBOX_DSN", "APEX_POSTGRES_DSN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no .apex/stack.json here
    from apex_platform.settings import core_settings

    core_settings.cache_clear()
    try:
        budgets: RateBudgets = open_budgets(RateLimitSettings())
    finally:
        core_settings.cache_clear()
    assert isinstance(budgets, MemoryBudgets)
    assert not budgets.shared
    assert "every process keeps its own budget" in caplog.text


async def test_open_budgets_uses_the_configured_database_and_says_when_it_is_down() -> None:
    budgets = open_budgets(RateLimitSettings(dsn="postgresql://u:p@127.0.0.1:1/apex", connect_timeout=1))
    assert isinstance(budgets, PostgresBudgets)
    assert budgets.shared
    with pytest.raises(RateBudgetUnavailable, match="cannot be reached") as caught:
        await budgets.acquire("x", 1.0)
    assert caught.value.retryable


def test_bad_arguments_are_named() -> None:
    budgets = MemoryBudgets()
    with pytest.raises(ValueError, match="rate must be a positive"):
        asyncio.run(budgets.reserve("x", 0.0))
    with pytest.raises(ValueError, match="burst must be at least 1"):
        asyncio.run(budgets.reserve("x", 1.0, 0))
    with pytest.raises(ValueError, match="either seconds or until"):
        asyncio.run(budgets.block("x", reason="r"))


def test_budget_keys_never_hold_the_credential() -> None:
    key = budget_key("crm", "https://api.hubapi.com", "pat-na1-secret-token")
    assert key.startswith("crm:")
    assert "secret" not in key
    assert "hubapi" not in key
    assert key == budget_key("crm", "https://api.hubapi.com", "pat-na1-secret-token")
    assert key != budget_key("crm", "https://api.hubapi.com", "another-token")
