"""What `apex-platform demo` needs to show Plaid without a Plaid account: a fake Plaid
server in this process, the environment that points the connector at it, and the
signed SYNC_UPDATES_AVAILABLE webhook that wakes the demo Item's poller."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from apex_connector_plaid import samples
from apex_connector_plaid.fake_vendor import FakeItem, FakePlaid, FakeVendorServer
from apex_platform.contracts import SampleDelivery

_lock = threading.Lock()
_running: FakeVendorServer | None = None


def demo_fake() -> FakePlaid:
    """A fake Plaid holding the demo Item (added, modified and removed transactions)."""
    fake = FakePlaid(samples.DEMO_CLIENT_ID, samples.DEMO_SECRET)
    fake.add_item(
        FakeItem(
            item_id=samples.DEMO_ITEM_ID,
            access_token=samples.DEMO_ACCESS_TOKEN,
            accounts=samples.demo_accounts(),
            log=samples.demo_changes(),
        )
    )
    return fake


def start_fake_vendor() -> tuple[str, Callable[[], None]]:
    """Start the demo's fake Plaid (once per process); return (base URL, stop)."""
    global _running
    with _lock:
        if _running is None:
            server = FakeVendorServer(demo_fake())
            server.start()
            _running = server
        server = _running

    def stop() -> None:
        global _running
        with _lock:
            if _running is server:
                _running = None
        server.stop()

    return server.base_url, stop


def running_fake() -> FakePlaid | None:
    with _lock:
        return _running.fake if _running is not None else None


def demo_environment(base_url: str | None = None) -> dict[str, str]:
    """`APEX_PLAID_*` pointing the connector at the fake (started here when none runs)."""
    if base_url is None:
        base_url, _ = start_fake_vendor()
    return {
        "APEX_PLAID_BASE_URL": base_url,
        "APEX_PLAID_CLIENT_ID": samples.DEMO_CLIENT_ID,
        "APEX_PLAID_SECRET": samples.DEMO_SECRET,
        "APEX_PLAID_ACCESS_TOKENS": json.dumps({samples.DEMO_ITEM_ID: samples.DEMO_ACCESS_TOKEN}),
    }


def demo_deliveries() -> list[SampleDelivery]:
    """The published SYNC_UPDATES_AVAILABLE sample, signed now by the running fake."""
    fake = running_fake()
    if fake is None:
        from apex_platform.errors import SettingsError

        raise SettingsError("the Plaid demo needs its fake server: call apex_connector_plaid.demo.start_fake_vendor()")
    body = samples.sync_updates_available_body()
    return [SampleDelivery(path="/webhooks/plaid", body=body, headers=fake.sign(body))]
