"""The SONAR connector's samples for the Apex conformance suite
(`apex_platform.testing.conformance`): the fake SONAR API with two weeks of ticker
history in pages of four days, and the sample alerts signed as the connector expects
(HMAC-SHA256 of the timestamp and body)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from apex_connector_sonar import demo, samples
from apex_connector_sonar.fake_vendor import FakeSonar
from apex_platform.testing.conformance.samples import ConformanceSamples


class SonarSamples(ConformanceSamples):
    replay_window_seconds = 300.0  # APEX_SONAR_MAX_AGE_SECONDS' default
    vendor_deletes = False  # a ticker value is revised, never deleted

    def __init__(self) -> None:
        self._secret = FakeSonar().webhook_secret

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        base_url, stop = demo.start_fake_vendor()
        try:
            env = demo.demo_environment(base_url)
            # several pages per ticker, each re-reading two days for revisions
            env.update({"APEX_SONAR_PAGE_DAYS": "4", "APEX_SONAR_LOOKBACK_DAYS": "2"})
            # the fake has no rate limit: the suite's dozens of calls need not wait for SONAR's
            env.update({"APEX_SONAR_REQUESTS_PER_MINUTE": "10000", "APEX_SONAR_BURST": "100"})
            yield env
        finally:
            stop()

    def deliveries(self) -> list[bytes]:
        return [samples.encode(doc) for doc in samples.alerts()]

    def sign(self, body: bytes, *, at: float) -> dict[str, str]:
        return samples.sign_headers(body, self._secret, now=at)
