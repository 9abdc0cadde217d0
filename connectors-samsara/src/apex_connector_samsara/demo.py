"""What `apex-platform demo` needs to run the Samsara stream against a fake Samsara.

`start_fake_vendor()` starts the fake feed (and the route updates feed) on a free local port;
`demo_environment()` gives the settings that point the connector at it, a throw-away webhook
secret, and turns reconciliation on for the account `default`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from functools import cache
from typing import Any

from apex_connector_samsara import samples
from apex_connector_samsara.fake_vendor import FakeSamsara, FakeServer

DEMO_TOKEN = "demo-samsara-token"  # noqa: S105 - the fake server's token, not a credential


@cache
def demo_secret() -> str:
    """A random webhook secret, base64 as Samsara shows it; the same for the whole process."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


_running: FakeServer | None = None


def feed_entry_of(webhook: dict[str, Any]) -> dict[str, Any]:
    """The route updates feed entry (RouteFeedObject, `expand=route`) of a RouteStopArrival /
    RouteStopDeparture webhook: its `data`, with the driver and vehicle inside the route and
    the stop in `changes.after.stops`."""
    data = webhook["data"]
    return {
        "time": data["time"],
        "type": data["type"],
        "operation": data["operation"],
        "source": "automatic",
        "route": {**data["route"], "driver": data["driver"], "vehicle": data["vehicle"]},
        "changes": {"after": {"stops": [data["routeStopDetails"]]}},
    }


def start_fake_vendor() -> tuple[str, Callable[[], None]]:
    """Start the fake Samsara (5 vehicles x 20 GPS points, engine states) → (base URL, stop)."""
    global _running
    fake = FakeSamsara(vehicles=5, points=20, page_size=40, token=DEMO_TOKEN, engine_every=5)
    # the route updates feed lists the route update of Samsara's RouteStopArrival example the
    # demo sends as a webhook: the reconciler commits it as a delivery of its own, whose
    # records are identical to the webhook's (the saga writes them once)
    fake.route_updates.append(feed_entry_of(samples.route_stop_arrival()))
    server = FakeServer(fake)
    base_url = server.start()
    _running = server

    def stop() -> None:
        global _running
        server.stop()
        _running = None

    return base_url, stop


def demo_environment(base_url: str | None = None) -> dict[str, str]:
    """Settings pointing the connector at the fake (the running one unless `base_url` is given)."""
    env = {
        "APEX_SAMSARA_WEBHOOK_SECRET": demo_secret(),
        "APEX_SAMSARA_API_TOKEN": DEMO_TOKEN,
        # reconciliation is off by default; the demo turns it on
        "APEX_SAMSARA_RECONCILE_ACCOUNTS": "default",
    }
    url = base_url or (_running.base_url if _running is not None else None)
    if url:
        env["APEX_SAMSARA_BASE_URL"] = url
    return env
