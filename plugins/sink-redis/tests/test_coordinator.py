"""The saga's Coordinator capability: record locks and the commit ledger."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from apex_platform.contracts import Coordinator, Sink
from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.saga import Saga
from apex_platform.stack.ports import free_port
from apex_platform.testing.sinks import MemorySink
from apex_sink_redis import RedisSink, RedisSinkSettings

SettingsFactory = Callable[..., RedisSinkSettings]


def keys(*ids: str) -> list[RecordKey]:
    return [RecordKey("turvo", i) for i in ids]


@pytest.fixture
async def other(settings: RedisSinkSettings) -> AsyncIterator[RedisSink]:
    """A second sink on its own connection pool: another worker, as far as Redis can tell."""
    async with RedisSink(settings) as opened:
        yield opened


def test_is_a_sink_and_the_saga_picks_it_as_coordinator() -> None:
    sink = RedisSink()
    assert isinstance(sink, Sink)
    assert isinstance(sink, Coordinator)
    saga = Saga.from_sinks({"memory": MemorySink(), "redis": sink})
    assert saga.coordinator is sink


async def test_lock_is_taken_and_released(sink: RedisSink, raw: Redis) -> None:
    names = [sink.keys.lock(k) for k in keys("a", "b")]
    async with sink.lock(keys("b", "a", "b"), ttl_seconds=30):
        tokens = await raw.mget(names)
        assert tokens[0] is not None
        assert tokens[0] == tokens[1]
        assert 25_000 < await raw.pttl(names[0]) <= 30_000
    assert await raw.exists(*names) == 0
    with pytest.raises(RuntimeError, match="boom"):
        async with sink.lock(keys("a"), ttl_seconds=30):
            raise RuntimeError("boom")
    assert await raw.exists(*names) == 0
    async with sink.lock([], ttl_seconds=1):
        pass


async def test_mutual_exclusion_over_overlapping_keys(sink: RedisSink, other: RedisSink) -> None:
    """Two holders whose key sets overlap (on b) never run their blocks at once."""
    inside: set[str] = set()
    overlaps: list[tuple[str, ...]] = []
    counter = [0]

    async def holder(who: str, client: RedisSink, ids: list[str]) -> None:
        for _ in range(25):
            async with client.lock(keys(*ids), ttl_seconds=10):
                if inside:
                    overlaps.append((who, *inside))
                inside.add(who)
                value = counter[0]
                await asyncio.sleep(random.uniform(0, 0.003))  # a lost update shows if both run
                counter[0] = value + 1
                inside.discard(who)
            await asyncio.sleep(0)

    await asyncio.gather(holder("first", sink, ["a", "b"]), holder("second", other, ["c", "b"]))
    assert overlaps == []
    assert counter[0] == 50


async def test_overlapping_key_sets_in_any_order_do_not_deadlock(
    make_settings: SettingsFactory, sink: RedisSink
) -> None:
    """Eight writers lock random overlapping subsets given in random order."""
    ids = [f"k{i}" for i in range(6)]
    async with RedisSink(make_settings(lock_wait_seconds=20)) as patient:
        held: dict[str, int] = {}
        violations: list[str] = []

        async def writer(seed: int) -> None:
            rng = random.Random(seed)
            client = patient if seed % 2 else sink
            for _ in range(12):
                chosen = rng.sample(ids, rng.randint(2, 4))  # unsorted on purpose
                async with client.lock(keys(*chosen), ttl_seconds=10):
                    for i in chosen:
                        if held.get(i):
                            violations.append(i)
                        held[i] = held.get(i, 0) + 1
                    await asyncio.sleep(rng.uniform(0, 0.002))
                    for i in chosen:
                        held[i] -= 1

        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(writer(s) for s in range(8))), timeout=30)
        assert violations == []
        assert time.monotonic() - started < 30


async def test_wait_timeout_names_the_keys_and_releases_what_it_took(
    make_settings: SettingsFactory, sink: RedisSink, raw: Redis
) -> None:
    async with (
        RedisSink(make_settings(lock_wait_seconds=0.3)) as impatient,
        sink.lock(keys("z-held"), ttl_seconds=30),
    ):
        started = time.monotonic()
        with pytest.raises(SinkError) as caught:
            async with impatient.lock(keys("z-held", "a-free"), ttl_seconds=30):
                pytest.fail("the block must not run without the lock")
        assert 0.3 <= time.monotonic() - started < 2
        message = str(caught.value)
        assert "turvo:z-held" in message
        assert "turvo:a-free" in message
        assert "0.3s" in message
        assert "APEX_REDIS_LOCK_WAIT_SECONDS" in message
        # a-free sorts first and was taken while waiting: it must be given back.
        assert await raw.exists(sink.keys.lock(RecordKey("turvo", "a-free"))) == 0


async def test_a_waiting_writer_gets_the_lock_once_released(make_settings: SettingsFactory, sink: RedisSink) -> None:
    order: list[str] = []
    async with RedisSink(make_settings(lock_wait_seconds=5)) as waiter:
        async with sink.lock(keys("a"), ttl_seconds=30):

            async def second() -> None:
                async with waiter.lock(keys("a"), ttl_seconds=30):
                    order.append("second")

            task = asyncio.create_task(second())
            await asyncio.sleep(0.2)
            order.append("first done")
        await asyncio.wait_for(task, 5)
    assert order == ["first done", "second"]


async def test_held_locks_are_renewed(make_settings: SettingsFactory, sink: RedisSink, raw: Redis) -> None:
    name = sink.keys.lock(RecordKey("turvo", "a"))
    async with RedisSink(make_settings(lock_wait_seconds=0)) as contender, sink.lock(keys("a"), ttl_seconds=0.3):
        for _ in range(4):  # 1.2 s, four TTLs
            await asyncio.sleep(0.3)
            assert await raw.pttl(name) > 0
        with pytest.raises(SinkError, match="turvo:a"):
            async with contender.lock(keys("a"), ttl_seconds=1):
                pass
    assert await raw.exists(name) == 0


async def test_release_spares_a_lock_another_holder_took_after_expiry(sink: RedisSink, raw: Redis) -> None:
    name = sink.keys.lock(RecordKey("turvo", "a"))
    async with sink.lock(keys("a"), ttl_seconds=30):
        await raw.set(name, b"someone-else", px=30_000)  # ours expired; another writer took it
    assert await raw.get(name) == b"someone-else"


_HOLDER = """
import asyncio, sys
from pydantic import SecretStr
from apex_platform.models import Record, RecordKey
from apex_sink_redis import RedisSink, RedisSinkSettings

async def main() -> None:
    settings = RedisSinkSettings(url=SecretStr(sys.argv[1]), prefix=sys.argv[2])
    async with RedisSink(settings) as sink:
        async with sink.lock([RecordKey("turvo", "a")], ttl_seconds=float(sys.argv[3])):
            print("held", flush=True)
            await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_the_lock_of_a_dead_holder_expires(
    make_settings: SettingsFactory, redis_url: str, prefix: str, raw: Redis
) -> None:
    """A worker killed while holding a lock stops renewing it; it expires within its TTL."""
    ttl = 0.8
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, redis_url, prefix, str(ttl), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), 30)
        assert line.strip() == b"held"
        name = f"{prefix}:lock:turvo:a"
        await asyncio.sleep(2 * ttl)  # alive: it renews, so the lock outlives its TTL
        assert await raw.exists(name) == 1
        holder.kill()  # SIGKILL: no finally block, no release
        await asyncio.wait_for(holder.wait(), 10)
        killed = time.monotonic()
        async with (
            RedisSink(make_settings(lock_wait_seconds=10)) as survivor,
            survivor.lock(keys("a"), ttl_seconds=5),
        ):
            waited = time.monotonic() - killed
        assert waited <= ttl + 0.5
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def test_ledger_round_trip(sink: RedisSink, raw: Redis) -> None:
    assert await sink.committed([]) == set()
    assert await sink.committed(["x", "y"]) == set()
    await sink.mark_committed(["x", "z", "x"])
    await sink.mark_committed([])
    assert await sink.committed(["x", "y", "z", "x"]) == {"x", "z"}
    ttl = await raw.ttl(sink.keys.committed("x"))
    assert sink.settings.ledger_ttl_seconds - 5 < ttl <= sink.settings.ledger_ttl_seconds


async def test_ledger_entries_expire(make_settings: SettingsFactory) -> None:
    async with RedisSink(make_settings(ledger_ttl_seconds=1)) as sink:
        await sink.mark_committed(["x"])
        assert await sink.committed(["x"]) == {"x"}
        await asyncio.sleep(1.2)
        assert await sink.committed(["x"]) == set()


async def test_prefixes_keep_namespaces_apart(make_settings: SettingsFactory, sink: RedisSink) -> None:
    async with RedisSink(make_settings(prefix=f"{sink.settings.prefix}-other")) as neighbour:
        await sink.mark_committed(["x"])
        assert await neighbour.committed(["x"]) == set()
        async with sink.lock(keys("a"), ttl_seconds=5), neighbour.lock(keys("a"), ttl_seconds=5):
            pass


async def test_locks_and_ledger_on_a_separate_server(
    make_settings: SettingsFactory, redis_url: str, raw: Redis, record: Callable[..., Record]
) -> None:
    """APEX_REDIS_COORDINATOR_URL: locks and ledger go there, records stay on APEX_REDIS_URL
    (database 1 of the same test server stands in for a second server)."""
    other_db = redis_url.rsplit("/", 1)[0] + "/1"
    async with RedisSink(make_settings(coordinator_url=SecretStr(other_db))) as sink:
        await sink.health()
        await sink.write([record("a", 1)])
        await sink.mark_committed(["x"])
        assert await sink.committed(["x"]) == {"x"}
        async with sink.lock(keys("a"), ttl_seconds=5):
            second = Redis.from_url(other_db)
            try:
                assert await second.exists(sink.keys.lock(RecordKey("turvo", "a")), sink.keys.committed("x")) == 2
                assert await second.exists(sink.keys.record(RecordKey("turvo", "a"))) == 0
            finally:
                await second.aclose()
        assert await raw.exists(sink.keys.committed("x"), sink.keys.lock(RecordKey("turvo", "a"))) == 0
        assert await raw.exists(sink.keys.record(RecordKey("turvo", "a"))) == 1


async def test_an_unreachable_coordinator_server_fails_open_naming_it(make_settings: SettingsFactory) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    sink = RedisSink(make_settings(coordinator_url=SecretStr(dead), connect_timeout_seconds=1))
    with pytest.raises(SinkError, match="APEX_REDIS_COORDINATOR_URL"):
        await sink.open()
    assert not sink.is_open
    with pytest.raises(SinkError, match="APEX_REDIS_COORDINATOR_URL"):
        await sink.health()


async def test_an_evicting_server_is_warned_about(
    settings: RedisSinkSettings, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    found = await raw.config_get("maxmemory-policy")
    before = found.get("maxmemory-policy") or found[b"maxmemory-policy"]
    await raw.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level(logging.WARNING, logger="apex_sink_redis"):
            async with RedisSink(settings):
                pass
    finally:
        await raw.config_set("maxmemory-policy", before)
    assert "maxmemory-policy allkeys-lru" in caplog.text
    assert "APEX_REDIS_COORDINATOR_URL" in caplog.text
    caplog.clear()
    async with RedisSink(settings):
        pass
    assert "maxmemory-policy" not in caplog.text


async def test_coordinator_calls_need_an_open_sink(settings: RedisSinkSettings) -> None:
    closed = RedisSink(settings)
    with pytest.raises(SinkError, match="not open"):
        closed.lock(keys("a"), ttl_seconds=1)
    with pytest.raises(SinkError, match="not open"):
        await closed.committed(["x"])
    with pytest.raises(SinkError, match="not open"):
        await closed.mark_committed(["x"])
