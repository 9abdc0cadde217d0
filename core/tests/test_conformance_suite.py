"""The conformance suites themselves: a correct connector, sink and enricher pass them,
and each deliberately broken one fails with a message that tells its author what to
fix. Every suite runs in a pytester session of its own, as an author's would."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

#: the inner sessions have no pytest configuration: pytest-asyncio's loop scope set, not warned about
QUIET = ("-o", "asyncio_default_fixture_loop_scope=function")

#: a small, correct webhook source; `BROKEN` names the one defect a test builds in
ACME = """
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

import apex_platform

from apex_platform.contracts import SampleDelivery
from apex_platform.errors import PayloadError, SignatureError
from apex_platform.models import InboundEvent, Record
from apex_platform.payloads import decode_json_object
from apex_platform.testing.conformance import ConformanceSamples, SourceConformance

BROKEN = {broken!r}
SECRET = "acme-conformance-signing-secret"


class AcmeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APEX_ACME_")

    signing_secret: SecretStr | None = Field(default=None, description="HMAC secret of the webhooks")
    max_age_seconds: int = Field(default=300, description="Replay window, seconds")


def signature(body: bytes, secret: str, timestamp: str) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


class AcmeConnector:
    name = "acme"
    mode = "webhook"
    priority = "P1"
    settings_model: ClassVar[type[BaseSettings] | None] = AcmeSettings
    parsed = 0

    def __init__(self) -> None:
        self.settings = AcmeSettings()

    def __repr__(self) -> str:
        if BROKEN == "secret in repr":
            return f"AcmeConnector(settings={{self.settings.signing_secret.get_secret_value()!r}})"
        return "AcmeConnector()"

    def verify(self, headers, body):
        lowered = {{k.lower(): v for k, v in headers.items()}}
        timestamp, provided = lowered.get("x-acme-timestamp", ""), lowered.get("x-acme-signature", "")
        if not timestamp.isdigit() or not provided or self.settings.signing_secret is None:
            raise SignatureError("Acme webhook rejected: no signature")
        if BROKEN == "accepts a bad signature":
            return
        if BROKEN != "accepts a stale signature" and abs(time.time() - int(timestamp)) > self.settings.max_age_seconds:
            raise SignatureError("Acme webhook rejected: stale")
        expected = signature(body, self.settings.signing_secret.get_secret_value(), timestamp)
        if not hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace")):
            raise SignatureError("Acme webhook rejected: bad signature")

    if BROKEN != "ships no samples":

        def conformance_samples(self):
            return AcmeSamples()

    def demo_environment(self):
        return {{"APEX_ACME_SIGNING_SECRET": SECRET}}

    def demo_deliveries(self):
        samples = AcmeSamples()
        return [
            SampleDelivery(path="/webhooks/acme", body=body, headers=samples.sign(body, at=time.time()))
            for body in samples.deliveries()
        ]

    def receive(self, headers, body):
        doc = decode_json_object(body, what="Acme webhook body")
        event_id = doc.get("id")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 200:
            raise PayloadError("Acme webhook: id is missing")
        return InboundEvent(source="acme", event_id=event_id, received_at=datetime.now(UTC), payload=doc)

    def parse(self, event):
        doc = event.payload
        if BROKEN == "parse crashes with KeyError":
            shipment = doc["shipment"]
            shipment_id, status, version = shipment["id"], shipment["status"], shipment["version"]
        else:
            shipment = doc.get("shipment") if isinstance(doc, dict) else None
            if not isinstance(shipment, dict):
                raise PayloadError(f"Acme event {{event.event_id}}: shipment is missing")
            shipment_id, status, version = shipment.get("id"), shipment.get("status"), shipment.get("version")
            if not isinstance(shipment_id, str) or not 0 < len(shipment_id) <= 100 or not isinstance(status, str):
                raise PayloadError(f"Acme event {{event.event_id}}: shipment.id and shipment.status are strings")
            if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**62:
                raise PayloadError(f"Acme event {{event.event_id}}: shipment.version is a whole number")
        if BROKEN == "parse does I/O":
            open("/etc/hostname").close()
        if BROKEN == "parse gives random ids":
            AcmeConnector.parsed += 1
            shipment_id = f"{{shipment_id}}-{{AcmeConnector.parsed}}"
        return [
            Record(
                source="acme",
                kind="acme.shipment",
                id=str(shipment_id),
                version=version,
                occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
                text=f"Shipment {{shipment_id}} is {{status}}"[:1000],
                deleted=status == "deleted",
            )
        ]


class AcmeSamples(ConformanceSamples):
    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        yield {{"APEX_ACME_SIGNING_SECRET": SECRET}}

    def deliveries(self):
        return [
            json.dumps({{"id": "evt_1", "shipment": {{"id": "SH-1", "status": "in transit", "version": 3}}}}).encode(),
            json.dumps({{"id": "evt_2", "shipment": {{"id": "SH-2", "status": "delivered", "version": 9}}}}).encode(),
        ]

    def deletions(self):
        return [json.dumps({{"id": "evt_3", "shipment": {{"id": "SH-1", "status": "deleted", "version": 4}}}}).encode()]

    def sign(self, body, *, at):
        timestamp = str(int(at))
        return {{"X-Acme-Timestamp": timestamp, "X-Acme-Signature": signature(body, SECRET, timestamp)}}


@apex_platform.hookimpl
def apex_register_sources(register):
    register(AcmeConnector())


class TestAcmeConformance(SourceConformance):
    source = "acme"

    def make_connector(self):
        return AcmeConnector()

    if BROKEN != "ships no samples":

        def samples(self, connector):
            return AcmeSamples()
"""


def run_acme(pytester: pytest.Pytester, broken: str | None) -> pytest.RunResult:
    pytester.makepyfile(test_acme=ACME.format(broken=broken))
    return pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-q", "-rfEs")


def test_a_correct_connector_passes(pytester: pytest.Pytester) -> None:
    result = run_acme(pytester, None)
    # poll and files are not this source's mode: skipped, and said so
    result.assert_outcomes(passed=14, skipped=2)
    result.stdout.fnmatch_lines(["*acme is not read page by page (no poll)*", "*acme reads no files*"])


def test_a_connector_with_only_its_demo_capabilities_gets_the_checks_they_allow(pytester: pytest.Pytester) -> None:
    """No `conformance_samples()`: the demo's environment and signed deliveries are used;
    what needs `sign(body, at=...)` is skipped, saying so."""
    result = run_acme(pytester, "ships no samples")
    result.assert_outcomes(passed=9, skipped=7)
    result.stdout.fnmatch_lines(["*the samples cannot sign: write ConformanceSamples.sign(body, at=…)*"])


@pytest.mark.parametrize(
    ("broken", "failing", "message"),
    [
        pytest.param(
            "accepts a bad signature",
            "test_verify_rejects_mis_signed_requests",
            "*verify accepted a body altered after signing (one space appended): compute the signature over "
            "the raw body with the configured secret, compare it in constant time*",
            id="accepts-a-bad-signature",
        ),
        pytest.param(
            "accepts a stale signature",
            "test_verify_rejects_stale_requests",
            "*verify accepted a delivery signed 360 s ago (replay window 300 s*check the signed timestamp "
            "against now and refuse it outside the replay window*",
            id="accepts-a-stale-signature",
        ),
        pytest.param(
            "parse crashes with KeyError",
            "test_malformed_input_gives_payload_errors",
            "*parse raised KeyError: 'shipment' on a body with $.shipment removed*",
            id="parse-crashes-with-KeyError",
        ),
        pytest.param(
            "parse gives random ids",
            "test_parse_is_deterministic",
            "*acme.parse gave different records for the same event evt_1: record acme:SH-1-* differs in id*"
            "parse must be a function of the event only*",
            id="parse-gives-random-ids",
        ),
        pytest.param(
            "secret in repr",
            "test_secrets_are_hidden",
            "*the secret APEX_ACME_SIGNING_SECRET shows in repr(connector 'acme')*leave them out of __repr__*",
            id="secret-in-repr",
        ),
        pytest.param(
            "parse does I/O",
            "test_parse_does_no_io",
            "*acme.parse tried to do I/O: open('/etc/hostname')*parse must be pure*",
            id="parse-does-I/O",
        ),
    ],
)
def test_a_broken_connector_fails_saying_what_to_fix(
    pytester: pytest.Pytester, broken: str, failing: str, message: str
) -> None:
    result = run_acme(pytester, broken)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"FAILED test_acme.py::TestAcmeConformance::{failing}*"])
    result.stdout.fnmatch_lines([message])
    if broken == "parse crashes with KeyError":
        result.stdout.fnmatch_lines(["*a malformed delivery must raise apex_platform.errors.PayloadError*"])


LEDGER = """
from datetime import UTC, datetime

from apex_platform.errors import PayloadError
from apex_platform.models import Page, Record
from apex_platform.testing.conformance import ConformanceSamples, SourceConformance

BROKEN = {broken!r}
#: the vendor's entries (id, deleted), two a page
ENTRIES = [(f"T-{{n}}", n == 4) for n in range(7)]


class Ledger:
    name = "ledger"
    mode = "poll"
    priority = "P2"
    settings_model = None
    poll_interval_seconds = 60.0

    def __init__(self):
        self.position = 0

    def accounts(self):
        return ["main"]

    async def poll(self, account, cursor):
        start = self.position if BROKEN == "position kept in the instance" else int(cursor or 0)
        chunk = ENTRIES[start : start + 2]
        self.position = start + len(chunk)
        records = tuple(
            Record(
                source="ledger",
                kind="ledger.entry",
                id=entry,
                version=1,
                occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
                deleted=deleted,
            )
            for entry, deleted in chunk
        )
        return Page(records=records, next_cursor=str(self.position), has_more=self.position < len(ENTRIES))

    def parse(self, event):
        raise PayloadError("ledger entries are read by poll, never delivered")


class TestLedgerConformance(SourceConformance):
    source = "ledger"

    def make_connector(self):
        return Ledger()

    def samples(self, connector):
        return ConformanceSamples()
"""


def test_a_poller_that_keeps_its_position_in_the_instance_fails_saying_what_to_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ledger=LEDGER.format(broken=None))
    pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-q").assert_outcomes(passed=6, skipped=10)
    pytester.makepyfile(test_ledger=LEDGER.format(broken="position kept in the instance"))
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-q", "-rf")
    result.assert_outcomes(passed=5, skipped=10, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*reading ledger with a new instance at every page, from the cursor the page before gave, did not end "
            "after 8 pages (one uninterrupted pass took 4): the cursor must hold the whole position*"
        ]
    )


SINK = '''
import pytest

from apex_platform.testing.conformance import SinkConformance
from apex_platform.testing.sinks import MemorySink, _tombstone

BROKEN = {broken!r}


class LastWriteWins(MemorySink):
    """Stores whatever it is given last: a late older version overwrites a newer one."""

    async def write(self, records, *, writer=None):
        if BROKEN is None:
            return await super().write(records, writer=writer)
        changed = {{}}
        for record in records:
            stored = _tombstone(record) if record.deleted else record
            if self.rows.get(record.key) != stored:
                changed[record.key] = self.rows.get(record.key)
                self.rows[record.key] = stored
                self.tokens[record.key] = (writer, writer)
        return changed


class TestSinkConformance(SinkConformance):
    @pytest.fixture
    def sink(self):
        return LastWriteWins()
'''


def test_a_correct_sink_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sink=SINK.format(broken=None))
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-q", "-rfEs")
    result.assert_outcomes(passed=14, skipped=2)
    result.stdout.fnmatch_lines(["*no `unholdable_record` fixture*", "*no `unreachable_sink` fixture*"])


def test_a_sink_whose_older_version_overwrites_fails_saying_what_to_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sink=SINK.format(broken="older overwrites"))
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-q", "-rfEs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*memory: after writing version 2 then version 1, the store holds version 1 'status 1' instead of "
            "version 2 'status 2'. The rule*a higher version wins*an older version never overwrites*",
            "*memory: after a tombstone of version 2, then a live version 1, the store holds version 1*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED test_sink.py::TestSinkConformance::test_newer_version_wins*",
            "FAILED test_sink.py::TestSinkConformance::test_an_older_version_never_resurrects*",
        ]
    )


ENRICHER = '''
import itertools

from apex_platform.testing.conformance import EnricherConformance

counter = itertools.count()


class Stamping:
    """Adds a run number to every record: a retry would write a different record."""

    name = "stamping"

    async def enrich(self, records):
        run = next(counter)
        return [r.model_copy(update={"attributes": {**r.attributes, "run": run}}) for r in records]


class TestEnricherConformance(EnricherConformance):
    enricher = "stamping"

    def make_enricher(self):
        return Stamping()
'''


def test_a_non_deterministic_enricher_fails_saying_what_to_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_enricher=ENRICHER)
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-q", "-rfEs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*was enriched differently by two instances: an activity retry would write a different record*"]
    )
    result.stdout.fnmatch_lines(["FAILED test_enricher.py::TestEnricherConformance::test_enrich_is_deterministic*"])


def test_the_option_runs_the_suite_of_a_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pytest --apex-conformance acme` in a folder whose only test file is not collected:
    the plugin (loaded by import path, as APEX_PLUGIN_MODULES loads one in development)
    is found by name and its own `conformance_samples()` used."""
    pytester.makepyfile(
        acme_plugin=ACME.format(broken=None), test_other="def test_other():\n    raise AssertionError\n"
    )
    pytester.syspathinsert()
    monkeypatch.setenv("APEX_PLUGIN_MODULES", "acme_plugin")
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-q", "-rs", "--apex-conformance", "acme")
    result.assert_outcomes(passed=14, skipped=2)
    result.stdout.fnmatch_lines(["*acme reads no files*"])


def test_the_option_names_what_is_installed_when_the_name_is_not(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(acme_plugin=ACME.format(broken=None))
    pytester.syspathinsert()
    monkeypatch.setenv("APEX_PLUGIN_MODULES", "acme_plugin")
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-q", "--apex-conformance", "no-such-plugin")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--apex-conformance no-such-plugin: no installed source, sink or enricher has that name (installed: *acme*"]
    )


MEMORY_PLUGIN = """
import contextlib

import apex_platform
from apex_platform.testing.sinks import MemorySink


class ConformingMemorySink(MemorySink):
    @contextlib.asynccontextmanager
    async def conformance_sink(self):
        yield ConformingMemorySink("memory")


@apex_platform.hookimpl
def apex_register_sinks(register):
    register(ConformingMemorySink("memory"))
"""


def test_the_option_runs_the_suite_of_a_sink_that_provides_its_store(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(memory_plugin=MEMORY_PLUGIN)
    pytester.syspathinsert()
    monkeypatch.setenv("APEX_PLUGIN_MODULES", "memory_plugin")
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-q", "-rs", "--apex-conformance", "memory")
    result.assert_outcomes(passed=14, skipped=2)
