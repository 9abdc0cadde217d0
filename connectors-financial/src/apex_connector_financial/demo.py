"""What `apex-platform demo` uses to sync QuickBooks without QuickBooks: the fake
Intuit token endpoint and API, seeded with one company."""

from __future__ import annotations

import json
from collections.abc import Callable

from apex_connector_financial.fake_vendor import (
    CLIENT_ID,
    CLIENT_SECRET,
    REALM,
    FakeQuickBooks,
    FakeQuickBooksServer,
    seed,
)

#: the refresh token the last started fake issued for its company (read by demo_environment)
_started: dict[str, str] = {}


def start_fake_vendor() -> tuple[str, Callable[[], None]]:
    """Start a seeded fake QuickBooks on a free local port; returns (base_url, stop)."""
    fake = FakeQuickBooks()
    refresh = fake.connect(REALM)
    seed(fake, REALM)
    server = FakeQuickBooksServer(fake)
    base_url = server.start()
    _started[base_url] = refresh
    return base_url, server.stop


def demo_environment(base_url: str) -> dict[str, str]:
    """Point the connector at the fake server: API, token endpoint, app keys, the company."""
    return {
        "APEX_FINANCIAL_BASE_URL": base_url,
        "APEX_FINANCIAL_TOKEN_URL": f"{base_url}/oauth2/v1/tokens/bearer",
        "APEX_FINANCIAL_CLIENT_ID": CLIENT_ID,
        "APEX_FINANCIAL_CLIENT_SECRET": CLIENT_SECRET,
        "APEX_FINANCIAL_REFRESH_TOKENS": json.dumps({REALM: _started.get(base_url, "")}),
    }
