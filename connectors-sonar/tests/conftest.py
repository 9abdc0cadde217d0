"""Fixtures of the SONAR connector tests: one fake SONAR server (real TCP) per session, reset
before each test, and connectors pointed at it with a fixed 'today' and a private rate budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest

from apex_connector_sonar import SonarConnector, SonarSettings
from apex_connector_sonar.fake_vendor import FakeSonar, start
from apex_platform.ratelimit import MemoryBudgets, RateBudgets
from apex_platform.testing.vendor_server import FakeVendorServer

TODAY = date(2026, 3, 10)
NOW = 1773151512.0  # 2026-03-10T14:05:12Z


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[FakeSonar, FakeVendorServer]]:
    state, server = start(FakeSonar())
    yield state, server
    server.stop()


@pytest.fixture
def fake(fake_server: tuple[FakeSonar, FakeVendorServer]) -> FakeSonar:
    state, _ = fake_server
    state.reset()
    state.published_until = TODAY
    return state


@pytest.fixture
def base_url(fake_server: tuple[FakeSonar, FakeVendorServer]) -> str:
    return fake_server[1].base_url


def settings_for(fake: FakeSonar, base_url: str, **overrides: Any) -> SonarSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "username": fake.username,
        "password": fake.password,
        "webhook_secret": fake.webhook_secret,
        "tickers": "OTRI.USA,OTRI.ATL,NTI.USA",
        "http_retries": 0,
        "initial_days": 10,
        "lookback_days": 3,
        "page_days": 31,
    }
    values.update(overrides)
    return SonarSettings(**values)


@pytest.fixture
def make_connector(fake: FakeSonar, base_url: str) -> Callable[..., SonarConnector]:
    def make(
        budgets: RateBudgets | None = None, today: date = TODAY, window: float = 60.0, **overrides: Any
    ) -> SonarConnector:
        if budgets is None:
            # a generous private budget: only the rate-limit tests exercise the real one
            budgets = MemoryBudgets()
            overrides = {"requests_per_minute": 10_000, "burst": 100, **overrides}
        return SonarConnector(
            settings_for(fake, base_url, **overrides),
            clock=lambda: NOW,
            today=lambda: today,
            budgets=budgets,
            limit_window_seconds=window,
        )

    return make


@pytest.fixture
def connector(make_connector: Callable[..., SonarConnector]) -> SonarConnector:
    return make_connector()
