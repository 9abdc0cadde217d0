"""What `apex-platform demo` needs to reconcile Front against a fake Front.

`start_fake_vendor()` starts the fake List Events API holding the sample conversation's
events; `demo_environment()` points the connector at it and turns reconciliation on for
the account `default` (it is off by default everywhere else). The demo's webhooks carry
the same events, so the reconciler finds them already in the inbox: nothing is doubled.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from apex_connector_frontapp import samples
from apex_connector_frontapp.fake_vendor import FakeFront, FakeServer

DEMO_TOKEN = "demo-front-token"  # noqa: S105 - the fake server's token, not a credential

_running: FakeServer | None = None


def start_fake_vendor() -> tuple[str, Callable[[], None]]:
    """Start the fake Front with the sample events listed → (base URL, stop)."""
    global _running
    fake = FakeFront(token=DEMO_TOKEN)
    for envelope in samples.events():
        fake.emit(envelope["payload"])
    server = FakeServer(fake)
    base_url = server.start()
    _running = server

    def stop() -> None:
        global _running
        server.stop()
        _running = None

    return base_url, stop


def demo_environment(base_url: str | None = None) -> dict[str, str]:
    """Settings pointing the reconciler at the fake (the running one unless `base_url` is given)."""
    oldest = min(float(e["payload"]["emitted_at"]) for e in samples.events())
    env = {
        "APEX_FRONTAPP_API_TOKEN": DEMO_TOKEN,
        "APEX_FRONTAPP_RECONCILE_ACCOUNTS": "default",
        # the sample conversation has fixed times: the first pass reaches back to them
        "APEX_FRONTAPP_RECONCILE_LOOKBACK_SECONDS": str(int(max(86_400.0, time.time() - oldest + 86_400))),
    }
    url = base_url or (_running.base_url if _running is not None else None)
    if url:
        env["APEX_FRONTAPP_API_URL"] = url
    return env
