"""`SinkConformance`: the checks every sink passes against its real store.

Subclass it and provide a `sink` fixture (an open sink on an empty store of its own;
the first-party sinks' conftest.py files have one)::

    from apex_platform.testing.conformance import SinkConformance

    class TestConformance(SinkConformance):
        pass

It holds the write rule (a newer version wins, an older one never overwrites or
resurrects), `read`, the fenced conditional `restore` (`apex_platform.testing.sink_contract`),
tombstones, and the two kinds of failure the saga tells apart: a permanent, per-record
refusal (`RecordsRefused`, with the rest written) and a transient one (anything else,
retried). Two optional fixtures feed the failure checks: `unholdable_record` (a record
the store can never hold) and `unreachable_sink` (the sink configured at an address
where nothing answers); without them those checks are skipped, naming the fixture.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from apex_platform.contracts import Sink
from apex_platform.errors import RecordsRefused
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_platform.testing.sink_contract import SINK_CHECKS, SOURCE, T0, record, stored


def _fail(message: str) -> typing.NoReturn:
    pytest.fail(message, pytrace=False)


def _shown(value: Record | None) -> str:
    if value is None:
        return "nothing"
    return f"version {value.version}{' (tombstone)' if value.deleted else ''} {value.attributes.get('status', '')!r}"


async def _expect(sink: Sink, id: str, want: Record | None, after: str, rule: str) -> None:
    got = await stored(sink, id)
    if want is not None and want.deleted and got is not None:
        # a tombstone is minimal: its key, kind and version are what must hold
        same = got.deleted and (got.kind, got.version) == (want.kind, want.version)
    else:
        same = got == want
    if not same:
        _fail(f"{sink.name}: after {after}, the store holds {_shown(got)} instead of {_shown(want)}. {rule}")


_RULE = (
    "The rule (apex_platform.saga.supersedes): a higher version wins; at an equal version a tombstone wins "
    "and stays; between live records of equal version the later write wins; an older version never "
    "overwrites, nor brings back a tombstone"
)


def rich_record(id: str, version: int) -> Record:
    """A record using every field but the embedding (whose dimension is the store's)."""
    return Record(
        source=SOURCE,
        kind="contract.message",
        id=id,
        version=version,
        occurred_at=T0 + timedelta(microseconds=123_456),
        title="Livraison retardée — 配達遅延 🚚",
        text='Bonjour,\nle camion n°42 est bloqué à Montréal.\t«guillemets» "quotes" \\ backslash',
        attributes={
            "nested": {"list": [1, 2.5, None, True, "x", {"deep": [[], {}]}], "empty": {}},
            "big_float": 1e300,
            "neg": -0.25,
            "unicode": "Zürich → Köln",
        },
        entities=(
            Entity(type="Shipment", key="SH-1", properties={"weight_kg": 1200.5}),
            Entity(type="Truck", key="42"),
        ),
        relations=(Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", properties={"leg": 1}),),
    )


class SinkConformance:
    """The conformance suite of a sink. Needs a `sink` fixture: open, on an empty store."""

    # the checks are coroutines: marked, so that they run under pytest-asyncio's strict mode too
    pytestmark = pytest.mark.asyncio

    @pytest.fixture
    def unholdable_record(self) -> Record | None:
        """Override: a record this store can never hold as it is (it must be refused with
        `RecordsRefused`). None: the store holds every valid record."""
        return None

    @pytest.fixture
    def unreachable_sink(self) -> Sink | None:
        """Override: this sink, not opened, configured at an address where no store answers."""
        return None

    # -- the fenced contract (write returns what it replaced; restore is conditional) -----

    @pytest.mark.parametrize("check", SINK_CHECKS, ids=lambda c: c.__name__)
    async def test_fenced_contract(self, sink: Sink, check: Callable[[Sink], Awaitable[None]]) -> None:
        try:
            await check(sink)
        except AssertionError as exc:
            problem = str(exc) or "the stored state differs from the contract's"
        else:
            return
        doc = " ".join((check.__doc__ or "").split())
        _fail(
            f"{sink.name} breaks the fenced contract in {check.__name__}"
            + (f" ({doc})" if doc else "")
            + f": {problem}. See apex_platform.contracts.Sink: write returns what it replaced, restore with a "
            "writer token undoes only that writer's change, and only where the store still holds it"
        )

    # -- the write rule ---------------------------------------------------------------

    async def test_newer_version_wins(self, sink: Sink) -> None:
        await sink.write([record("a", 2)], writer="w1")
        await sink.write([record("a", 1)], writer="w2")
        await _expect(sink, "a", record("a", 2), "writing version 2 then version 1", _RULE)
        await sink.write([record("a", 3)], writer="w3")
        await _expect(sink, "a", record("a", 3), "writing version 3 over version 2", _RULE)

    async def test_a_batch_is_reduced_by_the_rule(self, sink: Sink) -> None:
        await sink.write([record("b", 1), record("b", 3), record("b", 2)], writer="w1")
        await _expect(sink, "b", record("b", 3), "one batch holding versions 1, 3 and 2 of a key", _RULE)
        await sink.write([record("c", 4, deleted=True), record("c", 4)], writer="w2")
        await _expect(
            sink,
            "c",
            record("c", 4, deleted=True),
            "one batch holding a tombstone and a live record of version 4",
            _RULE,
        )

    async def test_an_older_version_never_resurrects(self, sink: Sink) -> None:
        await sink.write([record("a", 1)], writer="w1")
        await sink.write([record("a", 2, deleted=True)], writer="w2")
        tombstone = await stored(sink, "a")
        if tombstone is None or not tombstone.deleted:
            _fail(f"{sink.name}: a tombstone written over a live record reads back as {_shown(tombstone)}. {_RULE}")
        for late in (record("a", 1), record("a", 2)):
            await sink.write([late], writer="w3")
            await _expect(sink, "a", tombstone, f"a tombstone of version 2, then a live version {late.version}", _RULE)
        await sink.write([record("a", 3)], writer="w4")
        await _expect(sink, "a", record("a", 3), "a newer live version over a tombstone", _RULE)

    async def test_a_correction_at_equal_version_wins(self, sink: Sink) -> None:
        await sink.write([record("a", 5, status="first")], writer="w1")
        await sink.write([record("a", 5, status="corrected")], writer="w2")
        await _expect(sink, "a", record("a", 5, status="corrected"), "two live records of version 5", _RULE)
        if await sink.write([record("a", 5, status="corrected")], writer="w3") != {}:
            _fail(
                f"{sink.name}: writing the record it already holds reported a change: "
                "an identical record changes nothing"
            )

    # -- read and tombstones ------------------------------------------------------------

    async def test_read_gives_what_was_written(self, sink: Sink) -> None:
        rich = [rich_record(f"r{n}", n + 1) for n in range(3)]
        await sink.write(rich, writer="w1")
        keys = [r.key for r in rich]
        got = await sink.read([*keys, RecordKey(SOURCE, "absent")])
        if RecordKey(SOURCE, "absent") in got:
            _fail(
                f"{sink.name}.read returned a record for a key never written: absent keys are missing from the result"
            )
        for want in rich:
            have = got.get(want.key)
            if have != want:
                differs = (
                    "missing"
                    if have is None
                    else ", ".join(f for f in type(want).model_fields if getattr(have, f) != getattr(want, f))
                )
                _fail(
                    f"{sink.name}.read gave record {want.key} back changed ({differs}): read returns live records "
                    "exactly as written (unicode, nested attributes, floats, entities, relations)"
                )

    async def test_a_tombstone_reads_as_a_minimal_deleted_record(self, sink: Sink) -> None:
        await sink.write([record("t", 1)], writer="w1")
        await sink.write([record("t", 2, deleted=True)], writer="w2")
        got = await stored(sink, "t")
        if got is None:
            _fail(
                f"{sink.name}: a deleted record reads as absent; keep a tombstone (key, kind, version, deleted=True) "
                "so that an older version cannot bring it back"
            )
        if not got.deleted or got.version != 2 or got.kind != "contract.shipment":
            _fail(
                f"{sink.name}: a tombstone reads back as {_shown(got)} of kind {got.kind!r}; expected a deleted "
                "record keeping key, kind and version 2"
            )
        if got.text or got.title or got.entities or got.attributes:
            _fail(
                f"{sink.name}: a tombstone still holds the deleted record's content; it must be gone from every search"
            )

    # -- permanent and transient failures -------------------------------------------------

    async def test_a_record_it_cannot_hold_is_refused_alone(self, sink: Sink, unholdable_record: Record | None) -> None:
        if unholdable_record is None:
            pytest.skip("no `unholdable_record` fixture: override it with a record this store refuses, if any")
        good = record("good", 1)
        try:
            await sink.write([good, unholdable_record], writer="w1")
        except RecordsRefused as exc:
            if unholdable_record.key not in exc.refused:
                _fail(f"{sink.name} raised RecordsRefused without naming {unholdable_record.key}: {exc}")
            if good.key in exc.refused:
                _fail(f"{sink.name} refused the valid record {good.key} with the one it cannot hold")
            if exc.previous.get(good.key, "missing") is not None:
                _fail(
                    f"{sink.name}: RecordsRefused.previous lacks the valid record's previous state "
                    "(None: it was absent); the saga needs it to undo the write"
                )
        except Exception as exc:  # noqa: BLE001 - the check reports any other exception
            _fail(
                f"{sink.name} raised {type(exc).__name__}: {exc} for a record it can never hold; raise "
                "apex_platform.errors.RecordsRefused(sink, {key: reason}, previous=...) after writing the rest, "
                "or the saga retries the whole batch forever"
            )
        else:
            _fail(
                f"{sink.name} accepted {unholdable_record.key}, which the `unholdable_record` fixture says "
                "it cannot hold"
            )
        await _expect(sink, "good", good, "a batch with one refused record", "The rest of a batch is written")

    async def test_an_unreachable_store_fails_transiently(self, unreachable_sink: Sink | None) -> None:
        if unreachable_sink is None:
            pytest.skip("no `unreachable_sink` fixture: override it with this sink configured where nothing answers")
        errors: list[BaseException] = []
        for step in (unreachable_sink.open, unreachable_sink.health):
            try:
                await step()
            except RecordsRefused as exc:
                _fail(
                    f"{unreachable_sink.name} raised RecordsRefused when its store is unreachable: that is a "
                    f"permanent refusal, and the records would be quarantined instead of retried ({exc})"
                )
            except Exception as exc:  # noqa: BLE001 - any other exception is transient: the saga retries it
                errors.append(exc)
        try:
            await unreachable_sink.write([record("x", 1)], writer="w1")
        except RecordsRefused as exc:
            _fail(
                f"{unreachable_sink.name}.write raised RecordsRefused when the store is unreachable ({exc}): raise a "
                "transient error (SinkError, OSError…) so the saga retries"
            )
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            with contextlib.suppress(Exception):  # closing what never opened may fail
                await unreachable_sink.close()
        if not errors:
            _fail(f"{unreachable_sink.name}: open, health and write all succeeded with no store to reach")
