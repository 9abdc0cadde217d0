"""The Plaid connector's samples for the Apex conformance suite
(`apex_platform.testing.conformance`): a fake Plaid holding the demo Item (nine changes,
one a removal) read three per `/transactions/sync` page, and webhooks signed by the
fake as Plaid signs them (an ES256 JWT with the body's SHA-256, its key served by the
fake's `/webhook_verification_key/get`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from apex_connector_plaid import demo, samples
from apex_connector_plaid.fake_vendor import FakePlaid, FakeVendorServer
from apex_platform.testing.conformance.samples import ConformanceSamples


class PlaidSamples(ConformanceSamples):
    replay_window_seconds = 300.0  # APEX_PLAID_WEBHOOK_MAX_AGE_SECONDS' default

    def __init__(self) -> None:
        self._fake: FakePlaid | None = None

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        # a fake of the suite's own (not the demo's process-wide one, which other tests share)
        server = FakeVendorServer(demo.demo_fake())
        server.start()
        self._fake = server.fake
        try:
            env = demo.demo_environment(server.base_url)
            env["APEX_PLAID_PAGE_SIZE"] = "3"
            yield env
        finally:
            self._fake = None
            server.stop()

    def deliveries(self) -> list[bytes]:
        return [
            samples.sync_updates_available_body(),  # a poll trigger for the configured Item
            samples.webhook_body(
                samples.DEMO_ITEM_ID,
                code="ERROR",
                webhook_type="ITEM",
                error={"error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED", "error_message": "re-link"},
            ),
            json.dumps(
                {"webhook_type": "HOLDINGS", "webhook_code": "DEFAULT_UPDATE", "item_id": samples.DEMO_ITEM_ID},
            ).encode(),
        ]

    def sign(self, body: bytes, *, at: float) -> dict[str, str]:
        if self._fake is None:
            raise NotImplementedError  # only inside environment(): the fake holds the signing key
        return self._fake.sign(body, iat=at)
