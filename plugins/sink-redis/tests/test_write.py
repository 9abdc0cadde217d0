"""The Sink contract against a real Redis: the version rule, tombstones, reads, TTLs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from apex_platform.errors import RecordsRefused, SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_redis import RedisSink, RedisSinkSettings

RecordFactory = Callable[..., Record]
K = RecordKey("turvo", "a")


async def stored(sink: RedisSink, key: RecordKey = K) -> Record | None:
    return (await sink.read([key])).get(key)


async def test_upsert_and_read_back(sink: RedisSink, record: RecordFactory) -> None:
    first = record("a", 1)
    await sink.write([first])
    assert await stored(sink) == first
    second = record("a", 2, text="delivered")
    await sink.write([second])
    assert await stored(sink) == second
    assert await sink.get_version("turvo", "a") == (2, False)


async def test_older_version_is_ignored(sink: RedisSink, record: RecordFactory) -> None:
    await sink.write([record("a", 5)])
    await sink.write([record("a", 4, text="stale")])
    assert await stored(sink) == record("a", 5)


async def test_versions_beyond_double_precision_compare_exactly(sink: RedisSink, record: RecordFactory) -> None:
    big = 2**64 + 1  # Lua doubles cannot tell 2**64 from 2**64 + 1
    await sink.write([record("a", big)])
    await sink.write([record("a", big - 1, text="older by one")])
    assert await stored(sink) == record("a", big)
    await sink.write([record("a", 10**30)])
    assert await sink.get_version("turvo", "a") == (10**30, False)
    await sink.write([record("a", 9 * 10**29)])  # shorter number: older
    assert await sink.get_version("turvo", "a") == (10**30, False)


async def test_equal_version_correction_wins_identical_is_a_no_op(
    sink: RedisSink, record: RecordFactory, raw: Redis
) -> None:
    original = record("a", 3)
    await sink.write([original])
    name = sink.keys.record(K)
    await raw.hset(name, "marker", "untouched")  # a no-op write leaves the hash as it is
    await sink.write([original])
    assert await raw.hget(name, "marker") == b"untouched"

    corrected = record("a", 3, text="corrected at the same version")
    await sink.write([corrected])
    assert await stored(sink) == corrected
    # An embedding alone is a correction too (content_hash excludes it; the fingerprint does not).
    embedded = corrected.model_copy(update={"embedding": (0.5, 0.25)})
    await sink.write([embedded])
    assert await stored(sink) == embedded
    # And back: the later write wins, whatever the content's order.
    await sink.write([corrected])
    assert await stored(sink) == corrected


async def test_identical_record_with_other_dict_order_is_identical(sink: RedisSink, record: RecordFactory) -> None:
    one = record("a", 1, attributes={"x": 1, "y": 2})
    other = record("a", 1, attributes={"y": 2, "x": 1})
    await sink.write([one])
    before = await sink.client.hget(sink.keys.record(K), "r")
    await sink.write([other])
    assert await sink.client.hget(sink.keys.record(K), "r") == before


async def test_duplicates_in_one_batch_follow_the_rule(sink: RedisSink, record: RecordFactory) -> None:
    await sink.write([record("a", 2), record("a", 7, text="top"), record("a", 5), record("b", 1)])
    assert await stored(sink) == record("a", 7, text="top")
    assert await stored(sink, RecordKey("turvo", "b")) == record("b", 1)
    # Equal versions in one batch: the later one is a correction and wins...
    await sink.write([record("a", 9, text="first"), record("a", 9, text="second")])
    assert await stored(sink) == record("a", 9, text="second")
    # ...unless one is a tombstone, which wins at its version and stays.
    await sink.write([record("a", 10, deleted=True), record("a", 10, text="after the delete")])
    assert await sink.get_version("turvo", "a") == (10, True)


async def test_tombstone_blocks_resurrection(sink: RedisSink, record: RecordFactory, raw: Redis) -> None:
    await sink.write([record("a", 5, embedding=(1.0, 2.0))])
    await sink.write([record("a", 6, deleted=True, text="content is cleared")])
    tomb = await stored(sink)
    assert tomb is not None
    assert (tomb.deleted, tomb.version, tomb.kind, tomb.source, tomb.id) == (True, 6, "turvo.shipment", "turvo", "a")
    assert (tomb.text, tomb.title, tomb.attributes, tomb.embedding, tomb.entities) == ("", "", {}, None, ())
    fields = await raw.hgetall(sink.keys.record(K))
    assert fields[b"d"] == b"1"
    assert b"content is cleared" not in fields[b"r"]

    await sink.write([record("a", 5)])  # older: ignored
    await sink.write([record("a", 6)])  # equal: the tombstone stays
    assert (await stored(sink)) == tomb
    await sink.write([record("a", 6, deleted=True, text="again")])
    assert (await stored(sink)) == tomb
    newer = record("a", 7, text="back to life")
    await sink.write([newer])
    assert await stored(sink) == newer


async def test_equal_version_tombstone_replaces_live(sink: RedisSink, record: RecordFactory) -> None:
    await sink.write([record("a", 4)])
    await sink.write([record("a", 4, deleted=True)])
    assert await sink.get_version("turvo", "a") == (4, True)


async def test_read_returns_records_exactly_as_written(
    sink: RedisSink, rich_record: RecordFactory, record: RecordFactory
) -> None:
    rich = rich_record()
    plain = record("p", 1, embedding=tuple(random.Random(7).uniform(-1, 1) for _ in range(384)))
    await sink.write([rich, plain])
    got = await sink.read([rich.key, plain.key, RecordKey("turvo", "absent"), plain.key])
    assert set(got) == {rich.key, plain.key}
    assert got[rich.key] == rich
    assert got[rich.key].embedding == rich.embedding
    assert got[rich.key].content_hash() == rich.content_hash()
    assert got[plain.key] == plain
    assert await sink.read([]) == {}


async def test_stored_layout(sink: RedisSink, record: RecordFactory, raw: Redis) -> None:
    written = record("a", 3, embedding=(0.5,))
    await sink.write([written])
    name = f"{sink.settings.prefix}:rec:turvo:a"
    fields = await raw.hgetall(name)
    assert set(fields) == {b"v", b"d", b"f", b"h", b"r"}
    assert (fields[b"v"], fields[b"d"]) == (b"3", b"0")
    assert fields[b"h"].decode() == written.content_hash()
    assert fields[b"f"].decode() == hashlib.sha256(fields[b"r"]).hexdigest()
    assert Record.model_validate(json.loads(fields[b"r"])) == written


async def test_ttl_is_set_and_refreshed(sink: RedisSink, record: RecordFactory, raw: Redis) -> None:
    name = sink.keys.record(K)
    await sink.write([record("a", 2)])
    full = sink.settings.ttl_seconds
    assert full is not None
    assert full - 5 < await raw.ttl(name) <= full
    await raw.expire(name, 100)
    await sink.write([record("a", 2)])  # an identical write still refreshes
    assert await raw.ttl(name) > 100
    await raw.expire(name, 100)
    await sink.write([record("a", 1)])  # so does an older one: the newer record is still wanted
    assert await raw.ttl(name) > 100
    await sink.write([record("a", 3, deleted=True)])
    assert await raw.ttl(name) > 100  # tombstones expire too


async def test_expired_records_are_gone(make_settings: Callable[..., RedisSinkSettings], record: RecordFactory) -> None:
    async with RedisSink(make_settings(ttl_seconds=1)) as sink:
        await sink.write([record("a", 1)])
        assert await stored(sink) is not None
        await asyncio.sleep(1.2)
        assert await stored(sink) is None


@pytest.mark.parametrize("ttl", [None, 0])
async def test_no_ttl_means_no_expiry(
    make_settings: Callable[..., RedisSinkSettings], record: RecordFactory, raw: Redis, ttl: int | None
) -> None:
    async with RedisSink(make_settings(ttl_seconds=ttl)) as sink:
        name = sink.keys.record(K)
        await raw.hset(name, mapping={"v": "0", "d": "0", "f": "", "h": "", "r": "{}"})
        await raw.expire(name, 100)
        await sink.write([record("a", 1)])
        assert await raw.ttl(name) == -1  # PERSIST: a TTL left by an earlier setting is removed
        await sink.restore({K: record("a", 2)})
        assert await raw.ttl(name) == -1


async def test_restore_puts_back_previous_tombstone_or_nothing(
    sink: RedisSink, record: RecordFactory, raw: Redis
) -> None:
    a, b, c = RecordKey("turvo", "a"), RecordKey("turvo", "b"), RecordKey("turvo", "c")
    await sink.write([record("a", 1), record("b", 1), record("c", 1)])
    before = await sink.read([a, b, c, RecordKey("turvo", "d")])
    tomb_b = record("b", 2, deleted=True)
    await sink.write([record("a", 5), tomb_b, record("c", 3), record("d", 1)])
    snapshot = await sink.read([a, b, c, RecordKey("turvo", "d")])

    # Back to the earlier state, ignoring versions: lower versions come back, d disappears.
    await sink.restore({key: before.get(key) for key in (a, b, c, RecordKey("turvo", "d"))})
    assert await sink.read([a, b, c, RecordKey("turvo", "d")]) == before
    assert await raw.exists(sink.keys.record(RecordKey("turvo", "d"))) == 0
    assert await raw.ttl(sink.keys.record(a)) > 0

    # Forward again, including a tombstone restored as a tombstone.
    await sink.restore(snapshot)
    assert await sink.read([a, b, c, RecordKey("turvo", "d")]) == snapshot
    assert await sink.get_version("turvo", "b") == (2, True)
    await sink.write([record("b", 1)])  # the restored tombstone still blocks older versions
    assert await sink.get_version("turvo", "b") == (2, True)

    # None removes a tombstone completely: any version may then be written.
    await sink.restore({b: None})
    assert await sink.get_version("turvo", "b") is None
    await sink.write([record("b", 1)])
    assert await sink.get_version("turvo", "b") == (1, False)
    await sink.restore({})


async def test_restore_refuses_a_record_under_another_key(sink: RedisSink, record: RecordFactory) -> None:
    with pytest.raises(SinkError, match="was given record"):
        await sink.restore({K: record("b", 1)})


async def test_unstorable_records_are_refused_one_by_one(sink: RedisSink, record: RecordFactory) -> None:
    """Each kind of record Redis cannot cache faithfully (NaN, infinities) is refused by name, for good
    (`RecordsRefused`: the saga quarantines it), while the rest of the batch is written."""
    ok = record("ok", 1)
    with pytest.raises(RecordsRefused, match=r"turvo:nan \(version 1\)") as caught:
        await sink.write([ok, record("nan", 1, attributes={"x": float("nan")})])
    assert set(caught.value.refused) == {RecordKey("turvo", "nan")}
    assert caught.value.previous == {ok.key: None}
    with pytest.raises(RecordsRefused, match="turvo:inf"):
        await sink.write([record("inf", 1, embedding=(1.0, float("inf")))])
    # a lone surrogate is cached exactly (test_faithful.py)
    assert await sink.write([record("sur", 1, text="bad \ud800"), record("ok2", 1)])
    stored = await sink.read([RecordKey("turvo", k) for k in ("ok", "ok2", "nan", "inf", "sur")])
    assert set(stored) == {RecordKey("turvo", "ok"), RecordKey("turvo", "ok2"), RecordKey("turvo", "sur")}


async def test_concurrent_writers_leave_the_max_version(sink: RedisSink, record: RecordFactory) -> None:
    """Two tasks write interleaved versions of one key; a reader never sees it go back."""
    rounds = 150
    seen: list[int] = []
    done = asyncio.Event()

    async def writer(versions: list[int]) -> None:
        for version in versions:
            await sink.write([record("a", version), record("b", version)])

    async def watcher() -> None:
        while not done.is_set():
            current = await sink.get_version("turvo", "a")
            if current is not None:
                seen.append(current[0])
            await asyncio.sleep(0)

    versions = list(range(1, 2 * rounds + 1))
    random.Random(3).shuffle(versions)
    watching = asyncio.create_task(watcher())
    await asyncio.gather(writer(versions[:rounds]), writer(versions[rounds:]))
    done.set()
    await watching
    assert await sink.get_version("turvo", "a") == (2 * rounds, False)
    assert await stored(sink, RecordKey("turvo", "b")) == record("b", 2 * rounds)
    assert seen == sorted(seen)  # never decreased


async def test_two_sinks_on_one_server_race_safely(
    settings: RedisSinkSettings, sink: RedisSink, record: RecordFactory
) -> None:
    """Separate clients (as separate workers have): the script is the only arbiter."""
    async with RedisSink(settings) as other:
        writes = [(s, v) for v in range(1, 101) for s in (sink, other)]
        random.Random(5).shuffle(writes)
        await asyncio.gather(*(s.write([record("a", v, text=f"v{v}")]) for s, v in writes))
    assert await stored(sink) == record("a", 100, text="v100")


async def test_script_is_reloaded_after_script_flush(sink: RedisSink, record: RecordFactory, raw: Redis) -> None:
    await sink.write([record("a", 1)])
    await raw.script_flush()  # e.g. a failover to a replica that never saw the script
    await sink.write([record("a", 2)])
    assert await sink.get_version("turvo", "a") == (2, False)


async def test_not_open_is_a_clear_error(settings: RedisSinkSettings, record: RecordFactory) -> None:
    with pytest.raises(SinkError, match="not open"):
        await RedisSink(settings).write([record("a", 1)])
