"""Hooks of `apex-platform demo`: a fake Turvo API, and the settings that point the connector at it.

The credentials are throw-away values known to the fake server only.
"""

from __future__ import annotations

from collections.abc import Callable

from apex_connector_turvo.fake_vendor import FakeTurvo, start


def start_fake_vendor() -> tuple[str, Callable[[], None]]:
    """Start the fake Turvo API with the sample entities; returns (API base URL, stop)."""
    _, server = start(FakeTurvo())
    return server.base_url + "/v1", server.stop


def demo_environment(base_url: str) -> dict[str, str]:
    fake = FakeTurvo()  # only for its default throw-away credentials
    return {
        "APEX_TURVO_BASE_URL": base_url,
        "APEX_TURVO_API_KEY": fake.api_key,
        "APEX_TURVO_CLIENT_ID": fake.client_id,
        "APEX_TURVO_CLIENT_SECRET": fake.client_secret,
        "APEX_TURVO_USERNAME": fake.username,
        "APEX_TURVO_PASSWORD": fake.password,
        "APEX_TURVO_WEBHOOK_TOKEN": fake.webhook_token,
        "APEX_TURVO_WEBHOOK_HEADER": "Authorization",
    }
