"""Alert deliveries: receive (event ids, malformed bodies) and the `sonar.alert` record."""

from __future__ import annotations

import json

import pytest

from apex_connector_sonar import SonarConnector, SonarSettings, samples
from apex_platform.errors import PayloadError

NOW = 1773151512.0


@pytest.fixture
def c() -> SonarConnector:
    return SonarConnector(SonarSettings(webhook_secret="sonar-alerts-test-secret"), clock=lambda: NOW)  # type: ignore[arg-type]


def test_alert_record(c: SonarConnector) -> None:
    event = c.receive({}, samples.encode(samples.ALERTS[0]))
    assert event.event_id == "al-20260310-otri-atl"
    assert event.headers == {}
    (record,) = c.parse(event)
    assert (record.kind, record.id) == ("sonar.alert", "alert:al-20260310-otri-atl")
    assert record.version == 1773147900000000  # triggeredAt 2026-03-10T13:05:00Z
    assert record.title == "Atlanta tender rejections spiking: SONAR alert: OTRI.ATL above 8 (now 9.84)"
    assert record.attributes["value"] == 9.84
    assert record.attributes["threshold"] == 8.0
    assert {e.ref for e in record.entities} == {"Index:OTRI", "Market:ATL"}
    assert [(r.src, r.type, r.dst) for r in record.relations] == [("Index:OTRI", "MEASURES", "Market:ATL")]


def test_alert_without_id_gets_a_stable_hash(c: SonarConnector) -> None:
    a = c.receive({}, samples.encode(samples.ALERTS[1]))
    b = c.receive({}, json.dumps(samples.ALERTS[1], indent=1).encode())
    assert a.event_id == b.event_id
    assert a.event_id.startswith("NTI.USA-")
    (record,) = c.parse(a)
    assert record.attributes["ticker"] == "NTI.USA"
    assert next(e for e in record.entities if e.type == "Market").properties == {"level": "national"}


def test_lane_ticker_entities(c: SonarConnector) -> None:
    (record,) = c.parse(c.receive({}, b'{"alertId": "x", "ticker": "VOTRI.ATLCHI", "value": 3}'))
    rels = {(r.src, r.type, r.dst) for r in record.relations}
    assert rels == {
        ("Index:VOTRI", "MEASURES", "Lane:ATLCHI"),
        ("Lane:ATLCHI", "FROM_MARKET", "Market:ATL"),
        ("Lane:ATLCHI", "TO_MARKET", "Market:CHI"),
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"alertId": "a1", "ticker": "OTRI.ATL"', "not valid JSON"),
        (b"[]", "JSON object"),
        (b"", "empty"),
        (b"\xfe", "UTF-8"),
        (b'{"alertId": "a1", "ticker": "\\ud800"}', "unpaired UTF-16 surrogate"),
        (b'{"alertId": "a1", "ticker": "OTRI.ATL", "x": ' + b"[" * 40 + b"]" * 40 + b"}", "nests deeper than 32"),
        (b'{"alertId": "a1", "value": 3}', "no 'ticker'"),
        (b'{"alertId": "a1", "ticker": "OTRI"}', "no granularity"),
        (b'{"alertId": "a1", "ticker": "OTRI/../ATL"}', "not INDEX.GRANULARITY"),
    ],
)
def test_malformed_alerts_name_the_problem(c: SonarConnector, body: bytes, says: str) -> None:
    with pytest.raises(PayloadError, match=says):
        c.receive({}, body)
