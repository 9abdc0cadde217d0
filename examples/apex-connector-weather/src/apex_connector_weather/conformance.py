"""What the Apex conformance suite runs this connector with (`conformance_samples()`):
a fake NWS holding three pages of Texas alerts, one of them cancelled (a tombstone)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from apex_connector_weather.fake_vendor import FakeNwsServer, alert
from apex_platform.testing.conformance import ConformanceSamples


class WeatherSamples(ConformanceSamples):
    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        now = datetime.now(UTC).replace(microsecond=0)

        def sent(hours_ago: int) -> str:
            return (now - timedelta(hours=hours_ago)).isoformat()

        with FakeNwsServer() as server:
            server.fake.publish(
                *(alert(f"urn:oid:conformance.{i}", sent=sent(6 - i), ugc=["TXC113"]) for i in range(5)),
                alert(
                    "urn:oid:conformance.cancel",
                    sent=sent(0),
                    message_type="Cancel",
                    ugc=["TXC113"],
                    references=["urn:oid:conformance.2"],
                ),
            )
            yield {
                "APEX_WEATHER_BASE_URL": server.base_url,
                "APEX_WEATHER_USER_AGENT": "(apex-conformance, ops@example.com)",
                "APEX_WEATHER_AREAS": "TX",
                "APEX_WEATHER_PAGE_SIZE": "2",
            }
