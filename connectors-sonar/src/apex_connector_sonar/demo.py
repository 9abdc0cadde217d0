"""Hooks of `apex-platform demo`: a fake SONAR API and the settings that point the connector
at it (throw-away credentials, three tickers, two weeks of history)."""

from __future__ import annotations

from collections.abc import Callable

from apex_connector_sonar.fake_vendor import FakeSonar, start
from apex_connector_sonar.samples import DEMO_TICKERS


def start_fake_vendor() -> tuple[str, Callable[[], None]]:
    _, server = start(FakeSonar())
    return server.base_url, server.stop


def demo_environment(base_url: str) -> dict[str, str]:
    fake = FakeSonar()  # only for its default throw-away credentials
    return {
        "APEX_SONAR_BASE_URL": base_url,
        "APEX_SONAR_USERNAME": fake.username,
        "APEX_SONAR_PASSWORD": fake.password,
        "APEX_SONAR_WEBHOOK_SECRET": fake.webhook_secret,
        "APEX_SONAR_TICKERS": DEMO_TICKERS,
        "APEX_SONAR_INITIAL_DAYS": "14",
    }
