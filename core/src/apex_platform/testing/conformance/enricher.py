"""`EnricherConformance`: the checks every enricher passes.

    from apex_platform.testing.conformance import EnricherConformance

    class TestConformance(EnricherConformance):
        enricher = "entities"

An enricher runs inside the ingest activity between parse and the saga, and a retry
runs it again: it must give the same records for the same input (or a retry would
write new versions), keep each record's identity, be total on any valid record, and
be idempotent. Under its default settings it must do no I/O (an HTTP backend is a
setting an operator turns on; set `does_io = True` on the suite if yours always does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from apex_platform.capabilities import Configurable
from apex_platform.contracts import Enricher
from apex_platform.models import Entity, Record, Relation, is_utf8
from apex_platform.testing.conformance.guard import IOAttempted, no_io
from apex_platform.testing.conformance.samples import ConformanceRecordsProvider, plugin_modules
from apex_platform.testing.conformance.settings_checks import check_documented, check_secrets_hidden, fail
from apex_platform.testing.sink_contract import SOURCE, T0, record


def sample_records() -> list[Record]:
    """Valid records an enricher meets: ordinary, rich, awkward, and a tombstone."""
    rich = Record(
        source=SOURCE,
        kind="contract.message",
        id="rich",
        version=7,
        occurred_at=T0 + timedelta(seconds=1),
        title="Load 4471823 / PRO 0286-55431 — delivery Thursday?",
        text=(
            "Hi, truck 42 (VIN 1FUJGLDR5CLBP8834) left Zürich at 08:10; call +1 (312) 555-0142 or "
            "dispatch@apex-logistics.example. Invoice INV-2031 for $1,250.00 is due 2026-03-15."
        ),
        attributes={"load": "4471823", "amount": 1250.0, "nested": {"list": [1, None, "x"]}},
        entities=(Entity(type="Shipment", key="4471823"),),
        relations=(Relation(src="Shipment:4471823", type="CARRIED_BY", dst="Truck:42"),),
    )
    return [
        record("plain", 1),
        rich,
        record("empty", 2).model_copy(update={"text": "", "title": "", "attributes": {}, "entities": ()}),
        record("long", 3).model_copy(update={"text": "word " * 40_000}),
        record("odd", 4).model_copy(update={"text": "NUL \x00 lone \ud800 surrogate, RTL \u202e, emoji 🚚" * 10}),
        record("gone", 5, deleted=True),
    ]


def _same_identity(before: Record, after: Record) -> bool:
    return (before.key, before.kind, before.version, before.deleted) == (
        after.key,
        after.kind,
        after.version,
        after.deleted,
    )


class EnricherConformance:
    """The conformance suite of an enricher. Set `enricher` (the name it registers)."""

    #: the name the enricher registers
    enricher: ClassVar[str] = ""
    #: True when the enricher does I/O under its default settings (an HTTP backend)
    does_io: ClassVar[bool] = False

    def make_enricher(self) -> Enricher:
        """A fresh instance, as the platform makes it: the installed plugins' hooks, run again."""
        from apex_platform.plugins import build_registry

        if not self.enricher:
            fail(f'{type(self).__name__} names no enricher: set `enricher = "<name>"` on the class')
        registry = build_registry(extra_module_paths=plugin_modules())
        if self.enricher not in registry.enrichers:
            installed = ", ".join(sorted(registry.enrichers)) or "none"
            fail(f"no installed enricher is named {self.enricher!r} (installed: {installed})")
        return registry.enrichers[self.enricher]

    def records(self) -> list[Record]:
        """The records the checks enrich: `sample_records()`, plus the enricher's own
        `conformance_records()` when it has one."""
        enricher = self.make_enricher()
        own = enricher.conformance_records() if isinstance(enricher, ConformanceRecordsProvider) else []
        return [*sample_records(), *own]

    def _enrich(self, enricher: Enricher, records: Sequence[Record]) -> list[Record]:
        try:
            if self.does_io:
                out = asyncio.run(enricher.enrich(list(records)))
            else:
                with no_io(f"{enricher.name}.enrich") as attempts:
                    out = asyncio.run(enricher.enrich(list(records)))
                if attempts:
                    fail(f"{enricher.name}.enrich tried to do I/O and hid it: {', '.join(attempts)}")
        except IOAttempted as exc:
            fail(
                f"{exc}. Under its default settings an enricher must do no I/O (load a model once, at first use, "
                "outside enrich; or set does_io = True on the suite if the enricher always calls a service)"
            )
        except pytest.fail.Exception:
            raise
        except Exception as exc:  # noqa: BLE001 - the check reports any exception on valid records
            fail(
                f"{enricher.name}.enrich raised {type(exc).__name__}: {exc} on valid records; it must be total "
                "(a record it cannot enrich goes through unchanged)"
            )
        if not isinstance(out, list) or not all(isinstance(r, Record) for r in out):
            fail(f"{enricher.name}.enrich returned {type(out).__name__}, not a list of Record")
        return out

    def test_settings_are_documented(self) -> None:
        enricher = self.make_enricher()
        check_documented(enricher.settings_model if isinstance(enricher, Configurable) else None)

    def test_secrets_are_hidden(self) -> None:
        enricher = self.make_enricher()
        check_secrets_hidden(
            enricher.settings_model if isinstance(enricher, Configurable) else None,
            {},
            self.make_enricher,
            f"enricher {enricher.name!r}",
        )

    def test_enrich_keeps_every_record_and_its_identity(self) -> None:
        enricher = self.make_enricher()
        records = self.records()
        out = self._enrich(enricher, records)
        if len(out) != len(records):
            fail(f"{enricher.name}.enrich returned {len(out)} records for {len(records)}: one out for each one in")
        for before, after in zip(records, out, strict=True):
            if not _same_identity(before, after):
                fail(
                    f"{enricher.name}.enrich changed record {before.key} (version {before.version}) into "
                    f"{after.key} (version {after.version}, deleted={after.deleted}): keep source, id, kind, version "
                    "and deleted, in the same order"
                )

    def test_enrich_is_deterministic(self) -> None:
        records = self.records()
        first = self._enrich(self.make_enricher(), records)
        second = self._enrich(self.make_enricher(), records)
        for a, b in zip(first, second, strict=True):
            if a != b:
                fail(
                    f"{a.source}:{a.id} was enriched differently by two instances: an activity retry would write "
                    "a different record. enrich must be a function of its input"
                )

    def test_enrich_is_idempotent(self) -> None:
        enricher = self.make_enricher()
        once = self._enrich(enricher, self.records())
        twice = self._enrich(enricher, once)
        for a, b in zip(once, twice, strict=True):
            if a != b:
                fail(
                    f"enriching {a.key} again changed it: enrich must be idempotent (a record enriched twice "
                    "is the record enriched once)"
                )

    def test_enriched_records_round_trip_through_temporal(self) -> None:
        from apex_platform.testing.conformance.source import round_trip

        # the strict JSON decoder refuses lone surrogates at the edge: no source record holds one
        records = [r for r in self.records() if is_utf8(r.text + r.title)]
        out = self._enrich(self.make_enricher(), records)
        back: Any = asyncio.run(round_trip(out, list[Record]))
        if back != out:
            fail("enriched records change through Temporal's data converter: keep entity properties JSON values")
