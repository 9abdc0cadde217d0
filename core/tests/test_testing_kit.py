"""The testing kit itself (apex_platform.testing and its pytest plugin): each fixture and
helper does what docs/plugins.md, "The testing kit", says."""

from __future__ import annotations

import asyncio
import functools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest
from temporalio import workflow

from apex_platform.models import InboundEvent, Page, Record, RecordKey
from apex_platform.testing import pytest_plugin
from apex_platform.testing.polling import drain_poll
from apex_platform.testing.records import make_record
from apex_platform.testing.signing import HmacScheme, SignedRequest, check_verify, hmac_digest, signed
from apex_platform.testing.sinks import CountingSink, MemorySink
from apex_platform.testing.worker import ExplicitPlugins, sort_plugins

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


class ListPoll:
    """A poll source over a fixed list: `per_page` records a page, cursor = index."""

    name = "kitpoll"
    mode = "poll"
    priority = "P2"
    settings_model: ClassVar[Any] = None
    poll_interval_seconds = 3600.0

    def __init__(self, n: int = 5, per_page: int = 2, name: str = "kitpoll") -> None:
        self.name = name
        self.account = f"acct-{uuid.uuid4().hex[:8]}"
        self.records = [
            Record(source=name, kind="kit.item", id=f"i{i}", version=1, occurred_at=T0 + timedelta(seconds=i))
            for i in range(n)
        ]
        self.per_page = per_page
        self.calls: list[str | None] = []

    def accounts(self) -> list[str]:
        return [self.account]

    def parse(self, event: InboundEvent) -> list[Record]:
        return []

    async def poll(self, account: str, cursor: str | None) -> Page:
        self.calls.append(cursor)
        start = int(cursor or 0)
        end = start + self.per_page
        return Page(records=tuple(self.records[start:end]), next_cursor=str(end), has_more=end < len(self.records))


class Enrich:
    name = "kitenrich"

    async def enrich(self, records: Any) -> list[Record]:
        return list(records)


# -- plugins: exactly the given ones ------------------------------------------------------


def test_sort_plugins_tells_names_modules_and_bare_plugins_apart() -> None:
    source, sink, enricher, module = ListPoll(), MemorySink("m"), Enrich(), ExplicitPlugins()
    names, modules, bare = sort_plugins(["frontapp, postgres", source, sink, enricher, module])
    assert names == ["frontapp", "postgres"]
    assert modules == [module]
    assert bare == {"sources": [source], "enrichers": [enricher], "sinks": [sink]}
    with pytest.raises(TypeError, match="is not a plugin"):
        sort_plugins([object()])


def test_the_runtime_has_exactly_the_given_plugins(tmp_path: Any) -> None:
    from apex_platform.testing.worker import build_runtime

    runtime = build_runtime(
        "127.0.0.1:1", tmp_path, [ListPoll(name="a"), MemorySink("one"), Enrich()], inbox_dsn="postgresql://x/y"
    )
    assert sorted(runtime.registry.sources) == ["a"]  # no installed entry point came along
    assert sorted(runtime.registry.sinks) == ["one"]
    assert sorted(runtime.registry.enrichers) == ["kitenrich"]
    assert runtime.inbox.settings.schema_name == f"inbox_{runtime.temporal.task_queue_prefix.lower()}"
    named = build_runtime("127.0.0.1:1", tmp_path, ["llm"], inbox_dsn="postgresql://x/y")
    assert sorted(named.registry.sources) == ["llm"]  # by entry-point name: that one only
    assert not named.registry.sinks


# -- signed requests ----------------------------------------------------------------------


FRONT = HmacScheme(
    "X-Front-Signature",
    "X-Front-Request-Timestamp",
    message="{timestamp}:{body}",
    encoding="base64",
    timestamp_unit="ms",
)
SAMSARA = HmacScheme("X-Samsara-Signature", "X-Samsara-Timestamp", message="v1:{timestamp}:{body}", prefix="v1=")


def test_hmac_scheme_signs_the_documented_message() -> None:
    headers = SAMSARA.sign(b'{"a":1}', b"key", at=1773151512.9)
    assert headers["X-Samsara-Timestamp"] == "1773151512"
    assert headers["X-Samsara-Signature"] == "v1=" + hmac_digest(b"key", b'v1:1773151512:{"a":1}')
    # braces in the body are never taken for the template's
    assert SAMSARA.signed_message(b"{timestamp}{body}", "7") == b"v1:7:{timestamp}{body}"
    assert FRONT.sign(b"x", "s", at=2.5)["X-Front-Request-Timestamp"] == "2500"


def test_signed_request_variants() -> None:
    request = signed({"id": "evt_1", "n": 1}, FRONT.signer("s", at=100.0))
    assert request.body == b'{"id":"evt_1","n":1}'
    tampered = request.tampered()
    assert tampered.headers == request.headers
    assert tampered.body != request.body
    assert len(tampered.body) == len(request.body)
    assert set(request.unsigned().headers) == {"Content-Type"}
    assert set(request.unsigned("X-Front-Signature").headers) == {"Content-Type", "X-Front-Request-Timestamp"}
    assert request.resigned(FRONT.signer("other", at=100.0)).headers != request.headers
    assert SignedRequest(b"", {}).tampered().body == b" "


def test_front_verify_accepts_the_generic_and_the_connector_signer_and_rejects_variants() -> None:
    front = pytest.importorskip("apex_connector_frontapp")
    from apex_connector_frontapp import samples
    from apex_platform.errors import SignatureError

    now = 1773151512.5
    connector = front.FrontConnector(
        front.FrontSettings(signing_secret="front-secret-for-the-kit-tests"), clock=lambda: now
    )
    doc = samples.events()[0]
    for signer in (
        FRONT.signer("front-secret-for-the-kit-tests", at=now),
        functools.partial(samples.sign, secret="front-secret-for-the-kit-tests", timestamp_ms=int(now * 1000)),
    ):
        request = signed(doc, signer)
        assert check_verify(connector.verify, request) is None
        for bad in (
            request.tampered(),
            request.unsigned(),
            request.resigned(FRONT.signer("wrong-secret-for-the-kit-tests", at=now)),
            request.resigned(FRONT.signer("front-secret-for-the-kit-tests", at=now - 3600)),  # stale
        ):
            assert isinstance(check_verify(connector.verify, bad), SignatureError), bad.headers


def test_samsara_verify_accepts_the_generic_signer_and_rejects_a_tampered_body() -> None:
    samsara = pytest.importorskip("apex_connector_samsara")
    import base64

    key = b"samsara-webhook-secret-for-kit-32"
    now = 1773151512
    connector = samsara.SamsaraConnector(
        samsara.SamsaraSettings(webhook_secret=base64.b64encode(key).decode(), api_token="t"), clock=lambda: float(now)
    )
    request = signed({"eventId": "e1", "eventType": "Ping"}, SAMSARA.signer(key, at=now))
    assert check_verify(connector.verify, request) is None
    assert check_verify(connector.verify, request.tampered()) is not None


# -- polls, sinks -------------------------------------------------------------------------


async def test_drain_poll_reads_a_whole_run_and_keeps_the_cursor() -> None:
    source = ListPoll(n=5, per_page=2)
    records, cursor = await drain_poll(source, source.account)
    assert [r.id for r in records] == ["i0", "i1", "i2", "i3", "i4"]
    assert (cursor, source.calls) == ("6", [None, "2", "4"])
    with pytest.raises(AssertionError, match="within 2 pages"):
        await drain_poll(ListPoll(n=5, per_page=2), "a", limit=2)


async def test_counting_sink_counts_handed_and_changed() -> None:
    sink = CountingSink()
    one, two = make_record("r1", 1), make_record("r1", 2)
    await sink.write([one])
    await sink.write([one])  # the same again: handed over, nothing changes
    await sink.write([two])
    assert sink.received["r1"] == 3
    assert sink.changes["r1"] == 2
    assert sink.records_written == 3
    assert sink.rows[RecordKey("turvo", "r1")] == two


# -- the fixtures, with servers -----------------------------------------------------------


async def test_apex_worker_runs_exactly_the_given_plugins(apex_worker: Any) -> None:
    source, sink = ListPoll(n=5, per_page=2), MemorySink("kitmem")
    async with apex_worker(source, sink, priorities=["P2"]) as harness:
        assert harness.plugin_names() == {"sources": ["kitpoll"], "enrichers": [], "sinks": ["kitmem"]}
        state = await harness.sync(source, source.account)
    assert state.cursor == "6"
    assert sorted(key.id for key in sink.rows) == ["i0", "i1", "i2", "i3", "i4"]


async def test_apex_stack_takes_a_signed_webhook_over_http_into_the_sink(apex_stack: Any) -> None:
    front = pytest.importorskip("apex_connector_frontapp")
    from apex_connector_frontapp import samples

    connector = front.FrontConnector(front.FrontSettings(signing_secret="front-secret-for-the-kit-tests"))
    sink = MemorySink("kitmem")
    doc = samples.events()[0]
    doc["payload"]["id"] = f"evt_kit{uuid.uuid4().hex[:8]}"
    request = signed(doc, FRONT.signer("front-secret-for-the-kit-tests"))
    async with apex_stack(connector, sink, priorities=["P0"]) as stack:
        assert stack.url.startswith("http://127.0.0.1:")
        bad = await stack.webhook("frontapp", request.tampered().body, request.headers)
        assert bad.status_code == 401, bad.text
        resp = await stack.webhook("frontapp", request.body, request.headers)
        assert resp.status_code == 202, resp.text
        event_id = resp.json()["event_id"]
        await stack.wait_delivered("frontapp", [event_id])
        rows = await stack.deliveries("frontapp")
        assert [(r["event_id"], r["status"]) for r in rows] == [(event_id, "delivered")]  # the 401 left none
        assert {m["id"] for m in await stack.produced("frontapp", event_id)} <= {key.id for key in sink.rows}
    assert sink.rows


async def test_apex_app_client_serves_the_real_app_with_the_given_plugins(apex_app_client: Any) -> None:
    async with apex_app_client(ListPoll(name="kitpoll"), MemorySink("kitmem")) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200, health.text
        listed = await client.get("/v1/plugins")
        assert listed.status_code == 200, listed.text
        text = listed.text
    assert "kitpoll" in text
    assert "kitmem" in text
    assert "frontapp" not in text  # installed, but not given


async def test_apex_fake_vendor_serves_an_app_over_tcp(apex_fake_vendor: Any) -> None:
    from litestar import Litestar, get

    @get("/ping", sync_to_thread=False)
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    server = apex_fake_vendor(Litestar([ping]), name="fake kit vendor")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get("/ping")).json() == {"pong": "yes"}
    assert server.running


def test_apex_isolated_home_clears_the_given_variables_and_the_settings_cache(
    apex_isolated_home: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from apex_platform.settings import core_settings

    monkeypatch.setenv("APEX_KITTEST_URL", "redis://elsewhere")
    monkeypatch.setenv("APEX_OTHER_KEEP", "kept")
    monkeypatch.setenv("APEX_HOME", str(tmp_path / "not-this-one"))
    before = core_settings()
    home = apex_isolated_home("APEX_KITTEST_", chdir=True)
    import os
    from pathlib import Path

    assert "APEX_KITTEST_URL" not in os.environ
    assert os.environ["APEX_OTHER_KEEP"] == "kept"
    assert home.is_dir()
    assert not any(home.iterdir())
    assert Path.cwd() == home
    assert core_settings() is not before  # the cache was cleared
    assert core_settings().home == home


@workflow.defn(sandboxed=False)
class SleepsAnHour:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(hours=1))
        return "woke"


async def test_apex_time_skipping_passes_an_hour_at_once(apex_time_skipping: Any) -> None:
    from temporalio.worker import Worker

    queue = f"kit-{uuid.uuid4().hex[:8]}"
    async with Worker(apex_time_skipping.client, task_queue=queue, workflows=[SleepsAnHour]):
        result = await asyncio.wait_for(
            apex_time_skipping.client.execute_workflow(SleepsAnHour.run, id=queue, task_queue=queue), 60
        )
    assert result == "woke"


def test_the_plugin_documents_every_fixture_it_defines() -> None:
    fixtures = [name for name in vars(pytest_plugin) if name.startswith("apex_")]
    assert fixtures, "no fixtures found"
    doc = pytest_plugin.__doc__ or ""
    assert [name for name in fixtures if f"`{name}" not in doc] == []
