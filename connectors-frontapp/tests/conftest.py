"""Fixtures of the Front connector tests: a connector with a fixed clock and delivery helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apex_connector_frontapp import FrontConnector, FrontSettings, samples
from apex_platform.models import InboundEvent, Record

SECRET = "front-app-secret-for-tests"
# 2026-03-10 14:05:12.500 UTC, half a second after the first sample event.
NOW = 1773151512.5
NOW_MS = int(NOW * 1000)


@pytest.fixture
def connector() -> FrontConnector:
    return FrontConnector(FrontSettings(signing_secret=SECRET), clock=lambda: NOW)


@pytest.fixture
def now() -> float:
    """The connector's clock, in unix seconds."""
    return NOW


@pytest.fixture
def signed() -> Callable[[bytes], dict[str, str]]:
    """The headers Front would send with a body, signed with the test secret at `now`."""
    return lambda body: samples.sign(body, SECRET, NOW_MS)


@pytest.fixture
def deliver(connector: FrontConnector) -> Callable[[dict[str, Any]], InboundEvent]:
    """Sign a body as Front would, verify it and receive it: the path of a real delivery."""

    def _deliver(event: dict[str, Any]) -> InboundEvent:
        body = samples.encode(event)
        headers = samples.sign(body, SECRET, NOW_MS)
        connector.verify(headers, body)
        result = connector.receive(headers, body)
        assert isinstance(result, InboundEvent), result
        return result

    return _deliver


@pytest.fixture
def records_of(
    connector: FrontConnector, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> Callable[[str], dict[str, Record]]:
    """The records of one sample event (by webhook type), keyed by record kind."""

    def _records_of(name: str) -> dict[str, Record]:
        records = connector.parse(deliver(samples.events()[list(samples.EVENTS).index(name)]))
        by_kind = {record.kind: record for record in records}
        assert len(by_kind) == len(records), "one record per kind per event"
        return by_kind

    return _records_of
