"""The Front connector's samples for the Apex conformance suite
(`apex_platform.testing.conformance`): a test signing secret and the sample events,
signed as Front signs application webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from apex_connector_frontapp import samples
from apex_platform.testing.conformance.samples import ConformanceSamples

SECRET = "conformance-front-app-secret"  # noqa: S105 - a test secret, not a credential


class FrontSamples(ConformanceSamples):
    replay_window_seconds = 300.0  # APEX_FRONTAPP_MAX_AGE_SECONDS' default

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        yield {"APEX_FRONTAPP_SIGNING_SECRET": SECRET}

    def deliveries(self) -> list[bytes]:
        return [samples.encode(event) for event in samples.events()]

    def sign(self, body: bytes, *, at: float) -> dict[str, str]:
        return samples.sign(body, SECRET, int(at * 1000))
