"""poll() against the fake Samsara over TCP: pagination, records, 429, 401/403, 5xx,
expired cursors, unreadable answers; and the account/token settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apex_connector_samsara import SamsaraConnector, SamsaraSettings
from apex_connector_samsara.fake_vendor import FakeServer, vehicle_id
from apex_connector_samsara.feed import feed_answer, retry_after_seconds
from apex_platform.errors import PayloadError, SettingsError, VendorError
from apex_platform.models import Page

TOKEN = "samsara-api-token-for-tests"


def connector_for(server: FakeServer, **settings: Any) -> SamsaraConnector:
    settings.setdefault("api_token", TOKEN)
    return SamsaraConnector(SamsaraSettings(base_url=server.base_url, **settings))


async def drain(
    connector: SamsaraConnector, cursor: str | None = None, limit: int = 1000
) -> tuple[list[Page], str | None]:
    pages = []
    for _ in range(limit):
        page = await connector.poll("default", cursor)
        pages.append(page)
        cursor = page.next_cursor or cursor
        if not page.has_more:
            break
    return pages, cursor


async def test_pages_through_the_whole_feed(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(vehicles=7, points=30, page_size=50)
    connector = connector_for(server)
    pages, cursor = await drain(connector)
    assert len(pages) == 5  # 210 points, 50 per page
    assert [p.has_more for p in pages] == [True, True, True, True, False]
    records = [r for p in pages for r in p.records]
    assert len(records) == 210
    assert {r.id for r in records} == server.fake.expected_ids("gps")
    # the feed was followed by its cursors: the first call without, then each endCursor
    assert server.fake.calls[0] == (None, 200)
    assert [after for after, _ in server.fake.calls[1:]] == [p.next_cursor for p in pages[:-1]]
    # drained: the next call answers nothing new, with a cursor still usable
    again = await connector.poll("default", cursor)
    assert (again.records, again.has_more) == ((), False)


async def test_location_record_shape(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(vehicles=1, points=1)
    page = await connector_for(server).poll("default", None)
    (record,) = page.records
    point = server.fake._items[0].point
    assert record.kind == "samsara.vehicle_location"
    assert record.id == f"{vehicle_id(0)}:{point['time']}"
    assert record.version == 1_773_144_000_000_000  # 2026-03-10T12:00:00.000Z in µs
    assert record.attributes["latitude"] == point["latitude"]
    assert record.attributes["speed_mph"] == point["speedMilesPerHour"]
    assert record.attributes["account"] == "default"
    assert record.title == "Truck 4400 at near Columbus, OH"
    (vehicle,) = record.entities
    assert (vehicle.type, vehicle.key, vehicle.properties["name"]) == ("Vehicle", vehicle_id(0), "Truck 4400")


async def test_engine_states_become_their_own_records(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(vehicles=3, points=10, engine_every=5, page_size=100)
    pages, _ = await drain(connector_for(server))
    records = [r for p in pages for r in p.records]
    engines = {r.id for r in records if r.kind == "samsara.engine_state"}
    assert engines == server.fake.expected_ids("engineStates")
    assert len(engines) == 6
    assert {r.id for r in records if r.kind == "samsara.vehicle_location"} == server.fake.expected_ids("gps")


async def test_only_the_configured_types_are_asked_for(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(vehicles=2, points=10, engine_every=5)
    pages, _ = await drain(connector_for(server, feed_types="engineStates"))
    assert {r.kind for p in pages for r in p.records} == {"samsara.engine_state"}


async def test_429_is_a_retryable_vendor_error_with_retry_after(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(rate_limit_every=1)
    with pytest.raises(VendorError) as info:
        await connector_for(server).poll("default", None)
    assert info.value.retryable
    assert info.value.retry_after == 1.0
    assert "samsara account 'default': GET /fleet/vehicles/stats/feed was rate limited (429)" in str(info.value)
    server.fake.retry_after = "0.40235"  # Samsara documents decimal seconds
    with pytest.raises(VendorError) as info:
        await connector_for(server).poll("default", None)
    assert info.value.retry_after == pytest.approx(0.40235)


async def test_401_is_not_retryable_and_says_which_setting(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server()
    with pytest.raises(VendorError) as info:
        await connector_for(server, api_token="wrong-token").poll("default", None)
    assert not info.value.retryable
    assert "401" in str(info.value)
    assert "APEX_SAMSARA_API_TOKEN" in str(info.value)
    assert "wrong-token" not in str(info.value)


async def test_403_is_not_retryable_and_names_the_scope(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(forbidden=True)
    with pytest.raises(VendorError, match="Read Vehicle Statistics") as info:
        await connector_for(server).poll("default", None)
    assert not info.value.retryable


async def test_a_passing_5xx_is_retried_inside_the_call(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(fail_next_5xx=2)
    page = await connector_for(server, http_attempts=3).poll("default", None)
    assert len(page.records) == 100
    assert [status for _, status in server.fake.calls] == [503, 503, 200]


async def test_a_lasting_5xx_is_a_retryable_vendor_error(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(fail_next_5xx=10)
    with pytest.raises(VendorError, match="answered 503: Service Unavailable") as info:
        await connector_for(server, http_attempts=2).poll("default", None)
    assert info.value.retryable


async def test_unreachable_samsara_is_retryable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = SamsaraConnector(SamsaraSettings(base_url=f"http://127.0.0.1:{port}", api_token=TOKEN, http_attempts=1))
    with pytest.raises(VendorError, match="failed: ConnectError") as info:
        await connector.poll("default", None)
    assert info.value.retryable


async def test_expired_cursor_fails_clearly_by_default(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(vehicles=2, points=10, page_size=5)
    connector = connector_for(server)
    page = await connector.poll("default", None)
    server.fake.expire_cursors()
    with pytest.raises(VendorError) as info:
        await connector.poll("default", page.next_cursor)
    assert not info.value.retryable
    message = str(info.value)
    assert "rejected the stored cursor (400: Invalid 'after' cursor" in message
    assert "expire after 30 days" in message
    assert "APEX_SAMSARA_EXPIRED_CURSOR=restart" in message


async def test_expired_cursor_restart_reads_on_and_records_the_gap(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(vehicles=2, points=10, page_size=5)
    connector = connector_for(server, expired_cursor="restart")
    page = await connector.poll("default", None)
    server.fake.expire_cursors()
    restarted = await connector.poll("default", page.next_cursor)
    gap, *points = restarted.records
    assert gap.kind == "samsara.feed_gap"
    assert gap.attributes["rejected_cursor"] == page.next_cursor
    assert "expire after 30 days" in gap.text
    assert len(points) == 5
    assert restarted.next_cursor is not None
    assert (await connector.poll("default", restarted.next_cursor)).records  # the new cursor works


async def test_400_without_a_cursor_is_not_taken_for_an_expired_cursor(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server()
    with pytest.raises(VendorError, match="answered 400: Invalid value for parameter 'types'") as info:
        await connector_for(server, feed_types=" , ", expired_cursor="restart").poll("default", None)
    assert not info.value.retryable


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "must be a JSON object, got array"),
        ({"pagination": {"endCursor": "c", "hasNextPage": False}}, "'data' must be an array, got null"),
        ({"data": []}, "'pagination' must be an object, got null"),
        ({"data": [], "pagination": {"endCursor": 5, "hasNextPage": False}}, "endCursor' must be a string"),
        ({"data": [], "pagination": {"endCursor": "c"}}, "hasNextPage' must be a boolean, got null"),
    ],
)
def test_unreadable_feed_answers(doc: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        feed_answer(doc, "default")


def test_bad_points_are_kept_as_anomalies_not_dropped() -> None:
    doc = {
        "data": [
            {"id": "1", "name": "T1", "gps": [{"time": "2026-03-10T12:00:00Z", "latitude": 95.5, "longitude": 1}]},
            {
                "id": "1",
                "gps": [{"latitude": 1}, "junk"],
                "fuelPercents": [{"time": "2026-03-10T12:00:00Z", "value": 54}],
            },
            {"name": "no id"},
        ],
        "pagination": {"endCursor": "c2", "hasNextPage": True},
    }
    answer = feed_answer(doc, "default")
    kinds = [r.kind for r in answer.records]
    assert kinds.count("samsara.feed_anomaly") == 3
    assert "samsara.vehicle_stat" in kinds
    location = next(r for r in answer.records if r.kind == "samsara.vehicle_location")
    assert location.attributes["oddities"] == ["latitude 95.5 out of range at gps"]
    stat = next(r for r in answer.records if r.kind == "samsara.vehicle_stat")
    assert (stat.id, stat.attributes["value"]) == ("1:fuelPercents:2026-03-10T12:00:00Z", 54)
    assert (answer.end_cursor, answer.has_next_page) == ("c2", True)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1", 1.0), ("0.40235", 0.40235), ("-3", 0.0), ("99999", 300.0), ("soon", None), (None, None)],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == (pytest.approx(seconds) if seconds is not None else None)


def test_accounts_and_tokens() -> None:
    assert SamsaraConnector(SamsaraSettings()).accounts() == []
    assert SamsaraConnector(SamsaraSettings(api_token="t")).accounts() == ["default"]
    s = SamsaraSettings(api_token="t", api_tokens='{"east": "te", "west": "tw"}')
    assert SamsaraConnector(s).accounts() == ["default", "east", "west"]
    assert (s.token_for("east"), s.token_for("default")) == ("te", "t")
    with pytest.raises(SettingsError, match="no Samsara API token for account 'north'"):
        s.token_for("north")
    assert SamsaraSettings(accounts="east", api_tokens='{"east": "te"}').account_names() == ["east"]
    with pytest.raises(SettingsError, match="APEX_SAMSARA_API_TOKENS is not valid JSON") as info:
        SamsaraSettings(api_tokens='{"east": "secret-token"').token_map()
    assert "secret-token" not in str(info.value)
    with pytest.raises(SettingsError, match="must be a JSON object of strings"):
        SamsaraSettings(api_tokens='["t"]').token_map()


def test_feed_wait_is_at_least_five_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from apex_platform.settings import load

    assert SamsaraConnector(SamsaraSettings()).poll_interval_seconds == 5.0
    assert SamsaraConnector(SamsaraSettings(feed_wait_seconds=30)).poll_interval_seconds == 30.0
    monkeypatch.setenv("APEX_SAMSARA_FEED_WAIT_SECONDS", "1")
    with pytest.raises(SettingsError, match="APEX_SAMSARA_FEED_WAIT_SECONDS"):
        load(SamsaraSettings)
    assert SamsaraConnector().poll_interval_seconds == 5.0  # never fails; poll() reports the setting


async def test_invalid_settings_surface_at_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_SAMSARA_FEED_WAIT_SECONDS", "1")
    with pytest.raises(VendorError, match="APEX_SAMSARA_FEED_WAIT_SECONDS") as info:
        await SamsaraConnector().poll("default", None)
    assert not info.value.retryable
    monkeypatch.delenv("APEX_SAMSARA_FEED_WAIT_SECONDS")
    with pytest.raises(VendorError, match="no Samsara API token for account 'north'"):
        await SamsaraConnector(SamsaraSettings()).poll("north", None)
