"""The Samsara connector's samples for the Apex conformance suite
(`apex_platform.testing.conformance`): a fake Samsara whose vehicle stats feed takes
several pages (5 vehicles x 20 GPS points, 40 a page), and the sample webhooks signed as
Samsara signs them (HMAC-SHA256 of `v1:<timestamp>:<body>` with the base64 secret)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from apex_connector_samsara import demo, samples, signatures
from apex_platform.testing.conformance.samples import ConformanceSamples


class SamsaraSamples(ConformanceSamples):
    replay_window_seconds = 300.0  # APEX_SAMSARA_MAX_AGE_SECONDS' default
    vendor_deletes = False  # the feed reports positions and engine states: nothing is deleted

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        base_url, stop = demo.start_fake_vendor()
        try:
            env = demo.demo_environment(base_url)
            env.pop("APEX_SAMSARA_RECONCILE_ACCOUNTS", None)
            yield env
        finally:
            stop()

    def deliveries(self) -> list[bytes]:
        return [samples.encode(event) for event in samples.events()]

    def sign(self, body: bytes, *, at: float) -> dict[str, str]:
        return {**signatures.sign(body, demo.demo_secret(), int(at)), "Content-Type": "application/json"}
