"""Fixtures of the Turvo connector tests: one fake Turvo server (real TCP) per session,
reset before each test, and connectors pointed at it with a controllable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apex_connector_turvo import TurvoConnector, TurvoSettings
from apex_connector_turvo.fake_vendor import FakeTurvo, start
from apex_platform.models import InboundEvent
from apex_platform.testing.vendor_server import FakeVendorServer

NOW = 1773157331.0  # 2026-03-10T15:42:11Z, just after the sample shipment's update


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[FakeTurvo, FakeVendorServer]]:
    state, server = start(FakeTurvo())
    yield state, server
    server.stop()


@pytest.fixture
def fake(fake_server: tuple[FakeTurvo, FakeVendorServer]) -> FakeTurvo:
    state, _ = fake_server
    state.reset()
    return state


@pytest.fixture
def base_url(fake_server: tuple[FakeTurvo, FakeVendorServer]) -> str:
    return fake_server[1].base_url + "/v1"


def settings_for(fake: FakeTurvo, base_url: str, **overrides: Any) -> TurvoSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "api_key": fake.api_key,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "username": fake.username,
        "password": fake.password,
        "webhook_token": fake.webhook_token,
        "http_retries": 0,
    }
    values.update(overrides)
    return TurvoSettings(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_connector(fake: FakeTurvo, base_url: str, clock: Clock) -> Callable[..., TurvoConnector]:
    def make(**overrides: Any) -> TurvoConnector:
        return TurvoConnector(settings_for(fake, base_url, **overrides), clock=clock)

    return make


@pytest.fixture
def connector(make_connector: Callable[..., TurvoConnector]) -> TurvoConnector:
    return make_connector()


@pytest.fixture
def deliver(connector: TurvoConnector, fake: FakeTurvo) -> Callable[[dict[str, Any]], InboundEvent]:
    """Authenticate and receive a webhook body as the API edge does."""

    def _deliver(doc: dict[str, Any]) -> InboundEvent:
        body, headers = fake.webhook(doc)
        connector.verify(headers, body)
        return connector.receive(headers, body)

    return _deliver
