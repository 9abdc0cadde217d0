"""The Turvo connector's samples for the Apex conformance suite
(`apex_platform.testing.conformance`): a fake Turvo API holding the sample entities (the
connector fetches what a webhook names), the sample webhooks with the profile's token,
and a SHIPMENT_DELETE for a shipment the API no longer has."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from apex_connector_turvo import demo, samples
from apex_connector_turvo.fake_vendor import FakeTurvo, start
from apex_platform.testing.conformance.samples import ConformanceSamples


class TurvoSamples(ConformanceSamples):
    # Turvo authenticates webhooks with a static token in a header: no body signature,
    # no timestamp (the inbox's event id is what stops a replay)
    signs_body = False
    timestamped = False

    def __init__(self) -> None:
        self._token = FakeTurvo().webhook_token

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        fake, server = start(FakeTurvo())
        fake.delete("shipments", samples.SHIPMENT_2_ID)  # what the deletion names is gone from the API
        try:
            env = demo.demo_environment(server.base_url + "/v1")
            env.pop("APEX_TURVO_RECONCILE_ACCOUNTS", None)
            yield env
        finally:
            server.stop()

    def deliveries(self) -> list[bytes]:
        return samples.webhook_bodies()

    def sign(self, body: bytes, *, at: float) -> dict[str, str]:
        return samples.webhook_headers(self._token)

    def deletions(self) -> list[bytes]:
        doc = copy.deepcopy(samples.WEBHOOKS[0])
        doc["eventName"] = "SHIPMENT_DELETE"
        doc["eventPayload"] = {"id": samples.SHIPMENT_2_ID}
        return [samples.encode(doc)]
