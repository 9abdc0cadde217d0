"""`SourceConformance`: the checks every source connector passes, whoever wrote it.

Subclass it in one line and pytest runs the whole suite against the installed
connector of that name::

    from apex_platform.testing.conformance import SourceConformance

    class TestConformance(SourceConformance):
        source = "mysource"

What only the author knows (test secrets, how the vendor signs, sample bodies, a fake
vendor) comes from `samples()`: by default the connector's own `conformance_samples()`
(see `ConformanceSamples`). A check whose samples are missing is skipped, and the skip
names the method to write; a check that fails says what to fix. `pytest
--apex-conformance NAME` runs the same class against any installed connector.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from apex_platform.capabilities import DeliverySource
from apex_platform.contracts import (
    BatchSource,
    BatchUnit,
    FetchingSource,
    PollSource,
    PollTrigger,
    PushSource,
    SourceConnector,
    WebhookReply,
    WebhookSource,
)
from apex_platform.errors import PayloadError, SignatureError
from apex_platform.models import InboundEvent, Page, Record
from apex_platform.testing.conformance.guard import IOAttempted, no_io
from apex_platform.testing.conformance.malformed import NOT_AN_OBJECT, variants
from apex_platform.testing.conformance.samples import (
    ConformanceProvider,
    ConformanceSamples,
    DemoSamples,
    plugin_modules,
)
from apex_platform.testing.conformance.settings_checks import (
    check_documented,
    check_secrets_hidden,
    fail,
    secret_variables,
)

#: the mode's protocol, and what it adds, for the contract check
_MODE_PROTOCOLS: dict[str, tuple[type, str]] = {
    "webhook": (WebhookSource, "verify(headers, body) and receive(headers, body)"),
    "push": (PushSource, "receive(headers, body)"),
    "poll": (PollSource, "poll_interval_seconds, accounts() and async poll(account, cursor)"),
    "stream": (PollSource, "poll_interval_seconds, accounts() and async poll(account, cursor)"),
    "batch": (BatchSource, "split(path) and read(path)"),
}

#: what a malformed request must raise, and why, in failure messages
_RAISE_PAYLOAD_ERROR = (
    "a malformed delivery must raise apex_platform.errors.PayloadError naming what is wrong "
    "(the API answers it 400, the drain keeps it as an apex.unparsed record); any other exception "
    "is a crash (500 at the edge)"
)

_fail = fail


def _short(body: bytes, limit: int = 160) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return text + ("…" if len(body) > limit else "")


def _parse_total_on(
    connector: SourceConnector, event: InboundEvent, what: str, failures: dict[tuple[str, str], str]
) -> None:
    """Parse `event`; anything but `PayloadError` is recorded in `failures` (once per error type)."""
    try:
        parse_pure(connector, event)
    except PayloadError:
        pass
    except pytest.fail.Exception:
        raise
    except Exception as exc:  # noqa: BLE001 - the check is that nothing else escapes
        failures.setdefault(("parse", type(exc).__name__), f"parse raised {_error(exc)} on {what}")


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


@dataclass
class ConformanceRun:
    """One suite run's view of the connector: its samples, the environment they set,
    and a way to make fresh instances (the platform's: its plugin's hook, run again)."""

    name: str
    samples: ConformanceSamples
    environment: dict[str, str]
    make: Callable[[], SourceConnector]
    #: records every check produced, for the converter check
    produced: list[Record] = field(default_factory=list)

    def connector(self) -> SourceConnector:
        return self.make()

    def secrets(self) -> list[str]:
        """Values of the environment that configure secret settings (they must never show)."""
        names = secret_variables(self.make().settings_model)
        return [value for key, value in self.environment.items() if key.upper() in names and len(value) >= 8]

    def can_sign(self) -> bool:
        try:
            self.samples.sign(b"{}", at=time.time())
        except NotImplementedError:
            return False
        return True

    def sign(self, body: bytes, at: float | None = None) -> dict[str, str]:
        return dict(self.samples.sign(body, at=time.time() if at is None else at))

    def request_headers(self, connector: SourceConnector, body: bytes) -> dict[str, str]:
        """Headers that go with `body` into `receive`: signed ones for webhook sources."""
        if isinstance(connector, WebhookSource) and self.can_sign():
            return self.sign(body)
        return dict(self.samples.headers(body))


def parse_pure(connector: SourceConnector, event: InboundEvent) -> list[Record]:
    """`connector.parse(event)` under the I/O guard; an I/O attempt fails the check even
    when the connector caught the guard's exception."""
    try:
        with no_io(f"{connector.name}.parse") as attempts:
            records = connector.parse(event)
    except IOAttempted as exc:
        _fail(
            f"{exc} (event {event.event_id}). parse must be pure: fetch objects in `fetch` (FetchingSource), "
            "read files in `split`, connect in the vendor client used by `poll`"
        )
    if attempts:
        _fail(
            f"{connector.name}.parse tried to do I/O and hid it: {', '.join(attempts)} (event {event.event_id}). "
            "parse must be pure: no file, socket or process"
        )
    if not isinstance(records, list) or not all(isinstance(r, Record) for r in records):
        _fail(f"{connector.name}.parse returned {type(records).__name__}, not a list of apex_platform.models.Record")
    return records


def _record_diff(a: Sequence[Record], b: Sequence[Record]) -> str:
    if len(a) != len(b):
        return f"{len(a)} records, then {len(b)}"
    for left, right in zip(a, b, strict=True):
        if left != right:
            one, two = left.model_dump(), right.model_dump()
            fields = [name for name in one if one[name] != two[name]]
            return f"record {left.key} differs in {', '.join(fields)}: {one[fields[0]]!r} then {two[fields[0]]!r}"
    return "the same records"


class SourceConformance:
    """The conformance suite of a source connector. Set `source` (the name it registers)
    and, unless the connector ships `conformance_samples()`, override `samples()`."""

    #: the name the connector registers (`POST /webhooks/{source}`)
    source: ClassVar[str] = ""

    # -- what an author may override ---------------------------------------------------

    def samples(self, connector: SourceConnector) -> ConformanceSamples:
        """The samples the suite runs with: the connector's own `conformance_samples()`,
        else what its demo capabilities give (`DemoSamples`); the checks needing more are
        skipped, naming the method to write."""
        if isinstance(connector, ConformanceProvider):
            return connector.conformance_samples()
        return DemoSamples(connector)

    def make_connector(self) -> SourceConnector:
        """A fresh instance, as the platform makes it: the installed plugins' hooks, run
        again (under the samples' environment, which the suite has set)."""
        return installed_source(self.source, type(self).__name__)

    # -- the harness ---------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def conformance(cls) -> Iterator[ConformanceRun]:
        suite = cls()
        first = suite.make_connector()
        samples = suite.samples(first)
        with samples.environment() as env, pytest.MonkeyPatch.context() as patch:
            model = first.settings_model
            prefix = str(model.model_config.get("env_prefix", "")) if model is not None else ""
            if prefix and prefix != "APEX_":
                # the developer's own settings of this source must not leak into the run
                for name in list(os.environ):
                    if name.upper().startswith(prefix.upper()) and name not in env:
                        patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            yield ConformanceRun(cls.source or first.name, samples, dict(env), suite.make_connector)

    # -- the contract --------------------------------------------------------------------

    def test_declares_the_contract(self, conformance: ConformanceRun) -> None:
        """Name, mode, priority and the methods of its mode."""
        connector = conformance.connector()
        if connector.mode not in _MODE_PROTOCOLS:
            _fail(f"{connector.name}: mode {connector.mode!r} is not one of {', '.join(_MODE_PROTOCOLS)}")
        if connector.priority not in ("P0", "P1", "P2"):
            _fail(f"{connector.name}: priority {connector.priority!r} is not P0, P1 or P2 (it picks the task queue)")
        protocol, needs = _MODE_PROTOCOLS[connector.mode]
        if not isinstance(connector, protocol):
            _fail(f"{connector.name} is a {connector.mode} source but lacks {needs} ({protocol.__name__})")
        if conformance.name != connector.name:
            _fail(f"the connector registered as {conformance.name!r} says its name is {connector.name!r}")

    def test_settings_are_documented(self, conformance: ConformanceRun) -> None:
        """Every setting has a description (`apex-platform plugins settings` shows it)."""
        check_documented(conformance.connector().settings_model)

    def test_secrets_are_hidden(self, conformance: ConformanceRun) -> None:
        """SecretStr settings never show in the repr, str or JSON dump of the settings or the connector."""
        connector = conformance.connector()
        check_secrets_hidden(
            connector.settings_model, conformance.environment, conformance.connector, f"connector {connector.name!r}"
        )

    # -- verify: webhook sources -------------------------------------------------------

    def _webhook(self, conformance: ConformanceRun) -> WebhookSource:
        connector = conformance.connector()
        if not isinstance(connector, WebhookSource):
            pytest.skip(f"{connector.name} takes no webhooks (no verify/receive)")
        return connector

    def _signed(self, conformance: ConformanceRun) -> list[bytes]:
        bodies = conformance.samples.deliveries()
        if not bodies:
            pytest.skip("the samples give no deliveries: write ConformanceSamples.deliveries()")
        if not conformance.can_sign():
            pytest.skip("the samples cannot sign: write ConformanceSamples.sign(body, at=…)")
        return bodies

    def _refused(
        self, conformance: ConformanceRun, headers: Mapping[str, str], body: bytes, what: str, fix: str
    ) -> None:
        connector = conformance.connector()
        assert isinstance(connector, WebhookSource)
        try:
            connector.verify(dict(headers), body)
        except SignatureError as exc:
            for secret in conformance.secrets():
                if secret in str(exc):
                    _fail(f"verify's refusal of {what} shows a configured secret in its message: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - the check reports any other exception
            _fail(
                f"verify raised {_error(exc)} for {what}; it must raise "
                "apex_platform.errors.SignatureError (the API answers 401; anything else is a 500)"
            )
        _fail(f"verify accepted {what}: {fix}")

    def test_verify_accepts_signed_deliveries(self, conformance: ConformanceRun) -> None:
        """Every sample delivery, signed now, passes `verify` (else the samples are wrong)."""
        self._webhook(conformance)
        for body in self._signed(conformance):
            connector = conformance.connector()
            assert isinstance(connector, WebhookSource)
            headers = conformance.sign(body)
            try:
                connector.verify(headers, body)
            except Exception as exc:  # noqa: BLE001
                _fail(
                    f"verify refused a sample delivery signed now ({_error(exc)}); body {_short(body)}. "
                    "Either the connector rejects genuine deliveries or ConformanceSamples.sign / environment() "
                    "do not sign as the vendor does"
                )

    def test_verify_rejects_unsigned_requests(self, conformance: ConformanceRun) -> None:
        """No headers at all, or the signature headers left out: refused."""
        self._webhook(conformance)
        bodies = conformance.samples.deliveries() or [b"{}", b'{"type": "test"}']
        fix = "without a valid signature a request must raise SignatureError (401)"
        for body in bodies:
            self._refused(conformance, {}, body, f"a request with no headers (body {_short(body)})", fix)
            self._refused(
                conformance, {"Content-Type": "application/json"}, body, "a request without signature headers", fix
            )
            if conformance.can_sign():
                signed = conformance.sign(body)
                for name in self._body_headers(conformance, body):
                    kept = {k: v for k, v in signed.items() if k != name}
                    self._refused(conformance, kept, body, f"a request whose {name} header was left out", fix)

    def _body_headers(self, conformance: ConformanceRun, body: bytes) -> list[str]:
        """The headers that carry the credential: those whose value depends on the body
        (a signature), or for a token scheme those `sign` adds to the plain headers."""
        at = time.time()
        one = conformance.sign(body, at)
        if not conformance.samples.signs_body:
            plain = conformance.samples.headers(body)
            return [name for name in one if plain.get(name) != one[name]]
        other = conformance.sign(body + b" ", at)
        names = [name for name in one if one.get(name) != other.get(name)]
        if not names:
            _fail(
                "ConformanceSamples.sign gives the same headers for two different bodies: it does not sign "
                "the body (for a static token, set signs_body = False on the samples)"
            )
        return names

    def test_verify_rejects_mis_signed_requests(self, conformance: ConformanceRun) -> None:
        """An altered body, a corrupted signature, another body's signature: refused."""
        self._webhook(conformance)
        bodies = self._signed(conformance)
        fix = (
            "compute the signature over the raw body with the configured secret, compare it in constant "
            "time (hmac.compare_digest) and raise SignatureError when it differs"
        )
        for index, body in enumerate(bodies):
            headers = conformance.sign(body)
            if not conformance.samples.signs_body:
                for name in self._body_headers(conformance, body):
                    self._refused(
                        conformance, {**headers, name: headers[name] + "x"}, body, f"a wrong {name} token", fix
                    )
                    self._refused(conformance, {**headers, name: ""}, body, f"an empty {name} token", fix)
                continue
            self._refused(conformance, headers, body + b" ", "a body altered after signing (one space appended)", fix)
            if len(body) > 2:
                flipped = body[:-2] + bytes([body[-2] ^ 0x01]) + body[-1:]
                self._refused(conformance, headers, flipped, "a body with one bit changed after signing", fix)
            for name in self._body_headers(conformance, body):
                value = headers[name]
                middle = len(value) // 2
                # a digit for a digit: a hex signature may be compared case-insensitively
                swapped = value[:middle] + ("1" if value[middle] == "0" else "0") + value[middle + 1 :]
                for what, bad in (
                    (f"a corrupted {name} header", swapped),
                    (f"an empty {name} header", ""),
                    (f"a {name} header of 10,000 characters", value + "A" * 10_000),
                ):
                    self._refused(conformance, {**headers, name: bad}, body, what, fix)
            other = bodies[(index + 1) % len(bodies)] if len(bodies) > 1 else body + b"\n"
            if other != body:
                self._refused(
                    conformance, conformance.sign(other), body, "a request carrying the signature of another body", fix
                )

    def test_verify_rejects_stale_requests(self, conformance: ConformanceRun) -> None:
        """Signed further in the past or the future than the replay window: refused."""
        self._webhook(conformance)
        if not conformance.samples.timestamped:
            pytest.skip("the vendor signs no time (ConformanceSamples.timestamped = False): no replay window to check")
        window = conformance.samples.replay_window_seconds
        for body in self._signed(conformance):
            now = time.time()
            for what, at in (
                (f"a delivery signed {window + 60:.0f} s ago", now - window - 60),
                (f"a delivery signed a day and {window:.0f} s ago", now - window - 86_400),
                (f"a delivery signed {window + 60:.0f} s in the future", now + window + 60),
            ):
                self._refused(
                    conformance,
                    conformance.sign(body, at),
                    body,
                    f"{what} (replay window {window:.0f} s, ConformanceSamples.replay_window_seconds)",
                    "check the signed timestamp against now and refuse it outside the replay window "
                    "(both directions): a captured request must not be accepted again later",
                )

    def test_verify_rejects_replayed_requests(self, conformance: ConformanceRun) -> None:
        """A captured request with its timestamp header refreshed is refused; the same
        delivery sent twice in the window has one event id (the inbox keeps it once)."""
        self._webhook(conformance)
        window = conformance.samples.replay_window_seconds
        for body in self._signed(conformance):
            now = time.time()
            old, new = conformance.sign(body, now - window - 600), conformance.sign(body, now)
            changed = [name for name in new if old.get(name) != new.get(name)]
            signature = set(self._body_headers(conformance, body))
            refreshed = [name for name in changed if name not in signature]
            if refreshed and conformance.samples.signs_body:
                replay = {**old, **{name: new[name] for name in refreshed}}
                self._refused(
                    conformance,
                    replay,
                    body,
                    f"an old request replayed with a fresh {', '.join(refreshed)} header",
                    "the signature must cover the timestamp, so that an attacker cannot refresh it",
                )
            ids = []
            for _ in range(2):
                connector = conformance.connector()
                assert isinstance(connector, WebhookSource)
                received = self._receive(connector, conformance.sign(body), body)
                if isinstance(received, WebhookReply):
                    break
                ids.append(received.event_id)
            if len(set(ids)) > 1:
                _fail(
                    f"the same delivery received twice got two event ids ({ids[0]!r}, {ids[1]!r}): a vendor's "
                    "retry would be ingested twice. Derive the event id from the delivery (the vendor's event id, "
                    "or a hash of the body), never from the time it arrived or a random number"
                )

    # -- receive and parse -----------------------------------------------------------

    def _receive(
        self, connector: SourceConnector, headers: Mapping[str, str], body: bytes
    ) -> InboundEvent | WebhookReply | PollTrigger:
        assert isinstance(connector, DeliverySource)
        try:
            received = connector.receive(dict(headers), body)
        except Exception as exc:  # noqa: BLE001
            _fail(f"receive refused a sample delivery ({_error(exc)}); body {_short(body)}")
        if not isinstance(received, InboundEvent | WebhookReply | PollTrigger):
            _fail(f"receive returned {type(received).__name__}: an InboundEvent, WebhookReply or PollTrigger expected")
        if isinstance(received, InboundEvent) and received.source != connector.name:
            _fail(f"receive made an event of source {received.source!r}, not {connector.name!r}")
        return received

    def _fetched(self, connector: SourceConnector, event: InboundEvent) -> InboundEvent:
        """`event` as `parse` gets it: after `fetch` for a fetching source (Turvo)."""
        if not isinstance(connector, FetchingSource):
            return event
        try:
            return asyncio.run(connector.fetch(event))
        except Exception as exc:  # noqa: BLE001
            _fail(
                f"{connector.name}.fetch failed for the sample event {event.event_id} ({_error(exc)}): "
                "ConformanceSamples.environment() must start a fake vendor holding the objects the deliveries name"
            )

    def _events(self, conformance: ConformanceRun) -> list[tuple[bytes, InboundEvent]]:
        """(body, event) of every sample delivery that is ingested (not a reply or a trigger)."""
        connector = conformance.connector()
        if not isinstance(connector, DeliverySource):
            pytest.skip(f"{connector.name} receives no requests")
        bodies = conformance.samples.deliveries()
        if not bodies:
            pytest.skip("the samples give no deliveries: write ConformanceSamples.deliveries()")
        out = []
        for body in bodies:
            received = self._receive(connector, conformance.request_headers(connector, body), body)
            if isinstance(received, InboundEvent):
                out.append((body, self._fetched(connector, received)))
        if not out:
            pytest.skip("no sample delivery is ingested (each is a reply or a poll trigger)")
        return out

    def _unit_events(self, conformance: ConformanceRun, folder: Path) -> list[InboundEvent]:
        connector = conformance.connector()
        if not isinstance(connector, BatchSource):
            return []
        files = conformance.samples.files(folder)
        if not files:
            pytest.skip("the samples give no files: write ConformanceSamples.files(folder)")
        events = []
        for path in files:
            for item in connector.split(path):
                if isinstance(item, BatchUnit):
                    events.append(
                        InboundEvent(
                            source=connector.name,
                            event_id=f"{path.name}:{item.id}"[:256],
                            received_at=time_now(),
                            payload=item.payload,
                        )
                    )
        if not events:
            _fail(f"{connector.name}.split found no unit in the sample files {', '.join(p.name for p in files)}")
        return events

    def _all_events(self, conformance: ConformanceRun, folder: Path) -> list[InboundEvent]:
        connector = conformance.connector()
        if isinstance(connector, BatchSource):
            return self._unit_events(conformance, folder)
        return [event for _, event in self._events(conformance)]

    def test_parse_is_deterministic(self, conformance: ConformanceRun, tmp_path: Path) -> None:
        """The same event gives the same records: twice, and in a fresh instance after a
        second `receive` of the stored body (what the drain does)."""
        connector = conformance.connector()
        if isinstance(connector, BatchSource):
            pairs: list[tuple[bytes | None, InboundEvent]] = [
                (None, e) for e in self._unit_events(conformance, tmp_path)
            ]
        else:
            pairs = list(self._events(conformance))
        for body, event in pairs:
            first = parse_pure(connector, event)
            again = parse_pure(connector, event)
            if first != again:
                _fail(
                    f"{connector.name}.parse gave different records for the same event {event.event_id}: "
                    f"{_record_diff(first, again)}. parse must be a function of the event only "
                    "(no clock, no random, no state kept between calls)"
                )
            fresh = conformance.connector()
            if body is not None and not isinstance(fresh, FetchingSource):
                received = self._receive(fresh, conformance.request_headers(fresh, body), body)
                if not isinstance(received, InboundEvent):
                    _fail(f"a second receive of the same body gave {type(received).__name__}, first an event")
                stored = received.model_copy(update={"received_at": event.received_at, "event_id": event.event_id})
            else:
                stored = event
            other = parse_pure(fresh, stored)
            if first != other:
                _fail(
                    f"a fresh {connector.name} instance parsed event {event.event_id} differently: "
                    f"{_record_diff(first, other)}. The drain parses in another process than the edge: "
                    "parse must depend on the event only, not on the instance"
                )
            conformance.produced.extend(first)

    def test_parse_gives_stable_ids(self, conformance: ConformanceRun, tmp_path: Path) -> None:
        """Receiving the same delivery again (a vendor's retry, later) gives the same
        event id and records with the same ids, of this source."""
        connector = conformance.connector()
        if isinstance(connector, BatchSource):
            for event in self._unit_events(conformance, tmp_path):
                for record in parse_pure(connector, event):
                    self._own(connector, record)
            return
        for body, event in self._events(conformance):
            records = parse_pure(connector, event)
            for record in records:
                self._own(connector, record)
            time.sleep(0.002)
            fresh = conformance.connector()
            received = self._receive(fresh, conformance.request_headers(fresh, body), body)
            assert isinstance(received, InboundEvent)
            again = self._fetched(fresh, received)
            if again.event_id != event.event_id:
                _fail(
                    f"the same delivery received twice got event ids {event.event_id!r} and {again.event_id!r}: "
                    "derive it from the delivery, not from the time or a random number (it is the inbox key)"
                )
            ids, ids_again = Counter(r.key for r in records), Counter(r.key for r in parse_pure(fresh, again))
            if ids != ids_again:
                changed = sorted(str(k) for k in set(ids) ^ set(ids_again))[:5]
                _fail(
                    f"the same delivery, received again, gave records with other ids ({', '.join(changed)}): "
                    "record ids must come from the vendor's object ids, so a version replaces the one before"
                )

    def _own(self, connector: SourceConnector, record: Record) -> None:
        if record.source != connector.name:
            _fail(f"{connector.name}.parse made record {record.key} of another source ({record.source!r})")

    def test_parse_does_no_io(self, conformance: ConformanceRun, tmp_path: Path) -> None:
        """`parse` opens no file, socket or process (the guard refuses them)."""
        connector = conformance.connector()
        for event in self._all_events(conformance, tmp_path):
            parse_pure(connector, event)

    def test_malformed_input_gives_payload_errors(self, conformance: ConformanceRun, tmp_path: Path) -> None:
        """`receive` and `parse` are total: on any malformed body, a `PayloadError` or
        records, never another exception (each sample mutated in hundreds of ways). For
        a fetching or batch source, `parse` also gets mutations of the fetched payloads
        or of the file's units."""
        connector = conformance.connector()
        failures: dict[tuple[str, str], str] = {}
        if isinstance(connector, DeliverySource):
            seeds = conformance.samples.deliveries()
            cases = [case for body in seeds for case in variants(body)] if seeds else list(NOT_AN_OBJECT)
            for what, body in cases:
                self._total_on(conformance, connector, what, body, failures)
                if len(failures) >= 5:
                    break
        payloads: list[tuple[str, Any]] = [
            ("no payload", None),
            ("an empty object payload", {}),
            ("a list payload", []),
            ("a string payload", "garbage"),
            ("a number payload", 42),
        ]
        fetched = isinstance(connector, FetchingSource) and conformance.samples.deliveries()
        if fetched or (isinstance(connector, BatchSource) and conformance.samples.files(tmp_path)):
            for event in self._all_events(conformance, tmp_path):
                try:
                    seed = json.dumps(event.payload).encode()
                except (TypeError, ValueError):
                    continue  # not a JSON document: only the payloads above apply
                for what, body in variants(seed, hostile=False, limit=200):
                    try:
                        payloads.append((f"a payload with {what}", json.loads(body)))
                    except (ValueError, RecursionError):
                        continue
        for what, payload in payloads:
            event = InboundEvent(
                source=connector.name, event_id="conformance-malformed", received_at=time_now(), payload=payload
            )
            _parse_total_on(connector, event, f"an event with {what}", failures)
            if len(failures) >= 5:
                break
        if failures:
            listed = "\n  - ".join(failures.values())
            _fail(f"{connector.name} crashed on malformed input:\n  - {listed}\n{_RAISE_PAYLOAD_ERROR}")

    def _total_on(
        self,
        conformance: ConformanceRun,
        connector: SourceConnector,
        what: str,
        body: bytes,
        failures: dict[tuple[str, str], str],
    ) -> None:
        assert isinstance(connector, DeliverySource)
        headers = conformance.request_headers(connector, body)
        try:
            received = connector.receive(headers, body)
        except PayloadError:
            return
        except Exception as exc:  # noqa: BLE001
            failures.setdefault(
                ("receive", type(exc).__name__), f"receive raised {_error(exc)} on a body with {what}: {_short(body)}"
            )
            return
        if not isinstance(received, InboundEvent) or isinstance(connector, FetchingSource):
            return  # a fetching source's events are parsed after `fetch`: their payloads are mutated instead
        _parse_total_on(connector, received, f"a body with {what}: {_short(body)}", failures)

    def test_deletions_give_tombstones(self, conformance: ConformanceRun) -> None:
        """A delivery that deletes something gives a tombstone (`deleted=True`)."""
        connector = conformance.connector()
        bodies = conformance.samples.deletions()
        if not bodies:
            if isinstance(connector, PollSource) and conformance.samples.vendor_deletes:
                pytest.skip(
                    "no delivery deletes; the fake vendor's deletions are checked by test_cursor_survives_a_restart"
                )
            pytest.skip("the samples name no deletion: write ConformanceSamples.deletions() if the vendor deletes")
        for body in bodies:
            received = self._receive(connector, conformance.request_headers(connector, body), body)
            if not isinstance(received, InboundEvent):
                _fail(f"the deletion {_short(body)} was answered {type(received).__name__}, not ingested")
            records = parse_pure(connector, self._fetched(connector, received))
            if not any(r.deleted for r in records):
                _fail(
                    f"no record of the deletion {_short(body)} is a tombstone: give "
                    "Record(deleted=True) with the deleted object's id and a higher version, so every store drops it "
                    "and an older version cannot bring it back"
                )
            conformance.produced.extend(records)

    # -- poll and stream -----------------------------------------------------------

    def _poller(self, conformance: ConformanceRun) -> tuple[PollSource, str]:
        connector = conformance.connector()
        if not isinstance(connector, PollSource):
            pytest.skip(f"{connector.name} is not read page by page (no poll)")
        accounts = connector.accounts()
        if not accounts:
            pytest.skip(
                f"{connector.name}.accounts() is empty: ConformanceSamples.environment() must start a fake "
                "vendor and configure an account to read"
            )
        return connector, accounts[0]

    def _pass(
        self,
        conformance: ConformanceRun,
        account: str,
        cursor: str | None,
        *,
        pages: int | None = None,
        restart_each_page: bool = False,
    ) -> tuple[list[Page], list[str | None]]:
        """Pages read from `cursor` until has_more is false (or `pages` of them). With
        `restart_each_page`, every page is read by a new instance from the cursor the
        last one gave, carried through Temporal's data converter: a worker restart
        between every two pages."""
        limit = conformance.samples.max_pages
        connector = conformance.connector()
        out: list[Page] = []
        cursors: list[str | None] = []
        while True:
            assert isinstance(connector, PollSource)
            page = asyncio.run(connector.poll(account, cursor))
            if not isinstance(page, Page):
                _fail(f"{connector.name}.poll returned {type(page).__name__}, not apex_platform.models.Page")
            out.append(page)
            cursors.append(page.next_cursor)
            if page.next_cursor is not None and not isinstance(page.next_cursor, str):
                _fail(f"{connector.name}.poll gave a cursor of type {type(page.next_cursor).__name__}: a string")
            if page.next_cursor is not None:
                cursor = page.next_cursor
            if not page.has_more or (pages is not None and len(out) >= pages):
                return out, cursors
            if len(out) >= limit:
                _fail(f"{connector.name}.poll still has_more after {limit} pages (ConformanceSamples.max_pages)")
            if restart_each_page:
                carried = asyncio.run(round_trip(cursor, str | None))
                if carried != cursor:
                    _fail(f"the cursor {cursor!r} came back from Temporal's data converter as {carried!r}")
                connector = conformance.connector()

    def test_cursor_survives_a_restart(self, conformance: ConformanceRun) -> None:
        """Cursors, carried through Temporal's converter into a new instance at every
        page, resume without losing or repeating a record; they hold no secret; the
        vendor's deletions are tombstones."""
        connector, account = self._poller(conformance)
        whole, cursors = self._pass(conformance, account, None)
        if len(whole) < 2:
            _fail(
                f"the fake vendor of {connector.name} gave one page only: ConformanceSamples.environment() must "
                "hold more than one page (lower the page size) so that resuming mid-way is tested"
            )
        for secret in conformance.secrets():
            if any(cursor and secret in cursor for cursor in cursors):
                _fail(f"a cursor of {connector.name} holds a configured secret: cursors are kept in workflow history")
        resumed_pages, _ = self._pass(conformance, account, None, pages=2 * len(whole), restart_each_page=True)
        if resumed_pages[-1].has_more:
            _fail(
                f"reading {connector.name} with a new instance at every page, from the cursor the page before gave, "
                f"did not end after {len(resumed_pages)} pages (one uninterrupted pass took {len(whole)}): the "
                "cursor must hold the whole position (nothing kept in the instance between two polls)"
            )
        expected = Counter((r.key, r.deleted) for p in whole for r in p.records)
        resumed = Counter((r.key, r.deleted) for p in resumed_pages for r in p.records)
        lost = sorted(f"{k}{' (tombstone)' if d else ''}" for k, d in expected - resumed)
        doubled = sorted(f"{k}{' (tombstone)' if d else ''}" for k, d in resumed - expected)
        if lost or doubled:
            parts = []
            if lost:
                parts.append(f"lost {len(lost)} record(s) ({', '.join(lost[:5])})")
            if doubled:
                parts.append(f"repeated {len(doubled)} ({', '.join(doubled[:5])})")
            _fail(
                f"reading {connector.name} with a new instance at every page, from the cursor the page before gave, "
                f"{' and '.join(parts)}, compared to one uninterrupted pass: the cursor must hold the whole position "
                "(nothing kept in the instance between two polls)"
            )
        final = next((c for c in reversed(cursors) if c is not None), None)
        after, _ = self._pass(conformance, account, final, pages=1)
        if sum(expected.values()) and Counter((r.key, r.deleted) for r in after[0].records) == expected:
            _fail(f"polling {connector.name} from the final cursor read everything again: the cursor does not advance")
        records = [r for p in whole for r in p.records]
        conformance.produced.extend(records)
        if conformance.samples.vendor_deletes and not any(r.deleted for r in records):
            _fail(
                f"no record read from the fake vendor of {connector.name} is a tombstone: a deleted object must give "
                "Record(deleted=True) (or set ConformanceSamples.vendor_deletes = False if the vendor never deletes)"
            )
        pages_back = asyncio.run(round_trip(whole, list[Page]))
        if pages_back != whole:
            _fail(f"pages of {connector.name} changed through Temporal's data converter")

    # -- batch ---------------------------------------------------------------------

    def test_read_is_split_and_parse(self, conformance: ConformanceRun, tmp_path: Path) -> None:
        """`read(path)` gives the records of `split` + `parse`, lazily."""
        connector = conformance.connector()
        if not isinstance(connector, BatchSource):
            pytest.skip(f"{connector.name} reads no files")
        files = conformance.samples.files(tmp_path)
        if not files:
            pytest.skip("the samples give no files: write ConformanceSamples.files(folder)")
        for path in files:
            read = list(connector.read(path))
            units = [u for u in connector.split(path) if isinstance(u, BatchUnit)]
            parsed = [
                r
                for u in units
                for r in parse_pure(
                    connector,
                    InboundEvent(
                        source=connector.name, event_id=u.id[:256] or "unit", received_at=time_now(), payload=u.payload
                    ),
                )
            ]
            if Counter(r.key for r in read) != Counter(r.key for r in parsed):
                _fail(f"{connector.name}.read({path.name}) gives other records than split + parse of its units")
            conformance.produced.extend(read)

    # -- Temporal ------------------------------------------------------------------

    def test_records_round_trip_through_temporal(self, conformance: ConformanceRun, tmp_path: Path) -> None:
        """Records cross Temporal unchanged: the platform's data converter, encryption included."""
        connector = conformance.connector()
        records = list(conformance.produced)
        if not records:
            events = []
            if isinstance(connector, DeliverySource) and conformance.samples.deliveries():
                events = [event for _, event in self._events(conformance)]
            elif isinstance(connector, BatchSource) and conformance.samples.files(tmp_path):
                events = self._unit_events(conformance, tmp_path)
            records = [r for event in events for r in parse_pure(connector, event)]
            if not records and isinstance(connector, PollSource) and connector.accounts():
                pages, _ = self._pass(conformance, connector.accounts()[0], None)
                records = [r for page in pages for r in page.records]
        if not records:
            pytest.skip("the samples produce no record (deliveries, files or a fake vendor)")
        back = asyncio.run(round_trip(records, list[Record]))
        for before, after in zip(records, back, strict=True):
            if before != after:
                _fail(
                    f"record {before.key} changed through Temporal's data converter: "
                    f"{_record_diff([before], [after])}. "
                    "Keep attributes JSON values (str, int, float, bool, None, lists, dicts with str keys)"
                )


#: source name -> the entry point that registers it (found once, then loaded alone)
_entry_point_of: dict[str, str] = {}


def installed_source(name: str, suite: str = "the conformance suite") -> SourceConnector:
    """A fresh instance of the installed source `name`: its plugin's hook, run again."""
    from apex_platform.plugins import build_registry

    if not name:
        _fail(f'{suite} names no connector: set `source = "<name>"` on the class')
    entry_point = _entry_point_of.get(name)
    registry = build_registry(entry_point or "all", extra_module_paths=plugin_modules())
    if name not in registry.sources:
        installed = ", ".join(sorted(registry.sources)) or "none"
        problems = "; ".join(registry.problems)
        _fail(
            f"no installed source connector is named {name!r} (installed: {installed})"
            + (f"; plugin problems: {problems}" if problems else "")
        )
    owner = registry.owner_of("source", name)
    if owner is not None and owner.distribution is not None:
        _entry_point_of[name] = owner.name
    return registry.sources[name]


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def round_trip(value: Any, hint: Any) -> Any:
    """`value` encoded and decoded by the platform's data converter (payload guard and
    encryption as in production, with a key of the check's own)."""
    from apex_platform.settings import TemporalSettings
    from apex_platform.temporal.client import data_converter
    from apex_platform.temporal.encryption import PayloadSettings, new_key_entry

    converter = data_converter(
        TemporalSettings(max_payload_bytes=0),
        PayloadSettings(keys=SecretStr(new_key_entry("conformance")), keys_file=None),
    )
    payloads = await converter.encode([value])
    (decoded,) = await converter.decode(payloads, [hint])
    return decoded
