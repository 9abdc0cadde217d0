"""Hooks of `apex-platform demo`: a fake Turvo API, and the settings that point the connector at it.

The credentials are throw-away values known to the fake server only. Reconciliation is on
for shipments and orders (off by default everywhere else), reaching back to the samples'
fixed times: it finds the shipment and order the webhooks named (identical records: written
once) and the second shipment and order no webhook named (they land from the listing).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from apex_connector_turvo import samples
from apex_connector_turvo.fake_vendor import FakeTurvo, start
from apex_connector_turvo.times import to_us


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
        "APEX_TURVO_RECONCILE_ACCOUNTS": "shipment,order",
        "APEX_TURVO_RECONCILE_LOOKBACK_SECONDS": str(_lookback_to_samples()),
    }


def _lookback_to_samples() -> int:
    oldest = min(
        to_us(entity.get("updated")) or 0
        for collection in ("shipments", "orders")
        for entity in samples.ENTITIES[collection].values()
    )
    return int(max(86_400.0, time.time() - oldest / 1_000_000 + 86_400))
