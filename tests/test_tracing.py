"""Tracing and logs (issue 13, item 3): a webhook delivery through the real API app, the
real inbox (session PostgreSQL) and a real worker on the session's Temporal dev server
gives one connected trace — the HTTP request, its `apex.inbox.put`, the drain workflow
and activity, and a write span per sink — read from an in-memory span exporter; with
`APEX_LOG_FORMAT=json` every line of intake, drain and saga names its source, record,
delivery and workflow. Tracing is off unless the `OTEL_*` variables turn it on."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from litestar.testing import AsyncTestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from apex_platform import logs, tracing
from apex_platform.api import create_app
from apex_platform.errors import PayloadError
from apex_platform.inbox import Inbox
from apex_platform.models import InboundEvent, Record
from apex_platform.runtime import Runtime
from apex_platform.testing.inbox import wait_delivered
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import running_worker

pytestmark = pytest.mark.timeout(180)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


class TracedSource:
    """A webhook source: `{"id": ..., "bad": true}` cannot be parsed."""

    name = "traced"
    mode = "webhook"
    priority = "P1"
    settings_model: ClassVar[Any] = None

    def verify(self, headers: Any, body: bytes) -> None:
        return None

    def receive(self, headers: Any, body: bytes) -> InboundEvent:
        doc = json.loads(body)
        return InboundEvent(source=self.name, event_id=doc["id"], received_at=datetime.now(UTC), payload=doc)

    def parse(self, event: InboundEvent) -> list[Record]:
        if event.payload.get("bad"):
            raise PayloadError("bad event")
        return [Record(source=self.name, kind="trace.ping", id=f"rec-{event.event_id}", version=1, occurred_at=T0)]


class FlakySink(MemorySink):
    """Fails its first write (a transient error: the saga logs it, Temporal retries)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.fail = 1

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Any:
        if self.fail:
            self.fail -= 1
            raise ConnectionError(f"{self.name} is down for a moment")
        return await super().write(records, writer=writer)


@pytest.fixture
def traced() -> Iterator[InMemorySpanExporter]:
    tracing.configure(PROVIDER)
    EXPORTER.clear()
    try:
        yield EXPORTER
    finally:
        tracing.disable()


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def ancestors(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[str]:
    """Names of the span's parents up the tree (within what was exported)."""
    index = {s.context.span_id: s for s in spans if s.context is not None}
    out: list[str] = []
    parent = span.parent
    while parent is not None and parent.span_id in index:
        up = index[parent.span_id]
        out.append(up.name)
        parent = up.parent
    return out


@contextlib.asynccontextmanager
async def api(runtime: Runtime) -> AsyncIterator[Callable[[str, dict[str, Any]], Awaitable[Any]]]:
    """The real app on the worker's plugins (as `apex-platform dev` runs it), with an inbox
    of its own (the app closes its inbox when it stops)."""
    edge = copy.copy(runtime)
    edge.inbox = Inbox(runtime.inbox.settings)
    async with AsyncTestClient(create_app(edge, open_sinks=False)) as client:

        async def post(source: str, body: dict[str, Any]) -> Any:
            return await client.post(f"/webhooks/{source}", content=json.dumps(body).encode())

        yield post


async def test_a_webhook_delivery_is_one_trace_from_the_request_to_each_sink_write(
    traced: InMemorySpanExporter, apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> None:
    source = TracedSource()
    sinks = [MemorySink("memory_a"), MemorySink("memory_b")]
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        sources=[source],
        sinks=sinks,
        priorities=["P1"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        eid = f"evt-{uuid.uuid4().hex[:8]}"
        async with api(harness.runtime) as post:
            answer = await post(source.name, {"id": eid})
        assert answer.status_code == 202, answer.text
        await wait_delivered(
            apex_postgres_server.dsn, source.name, [eid], schema=harness.runtime.inbox.settings.schema_name
        )
        pool = await harness.runtime.inbox.pool()
        stored = json.loads(
            await pool.fetchval(
                f'SELECT headers::text FROM "{harness.runtime.inbox.settings.schema_name}".deliveries '
                "WHERE event_id = $1",
                eid,
            )
        )
    PROVIDER.force_flush()
    spans = traced.get_finished_spans()

    # the request and its inbox commit: one trace, the put a child of the server span
    (put,) = [s for s in by_name(spans, "apex.inbox.put") if s.attributes and s.attributes["apex.event_id"] == eid]
    assert put.context is not None
    assert put.parent is not None
    (server,) = [
        s for s in spans if s.kind == SpanKind.SERVER and s.context and s.context.span_id == put.parent.span_id
    ]
    assert server.context is not None
    assert server.context.trace_id == put.context.trace_id
    assert "/webhooks/" in server.name
    # the delivery carries the put's context into the inbox (the vendor's own headers untouched)
    parent = stored[tracing.TRACEPARENT_HEADER]
    assert parent.startswith(f"00-{put.context.trace_id:032x}-{put.context.span_id:016x}-")

    # the batch that drained it links back to the put, and runs in the drain activity of the drain workflow
    here = (put.context.trace_id, put.context.span_id)
    linked = [
        s
        for s in by_name(spans, "apex.drain.batch")
        if any((lk.context.trace_id, lk.context.span_id) == here for lk in s.links)
    ]
    assert len(linked) == 1, [s.name for s in spans]
    batch = linked[0]
    assert batch.attributes is not None
    assert batch.attributes["apex.source"] == source.name
    assert ancestors(batch, spans) == [
        "RunActivity:apex.drain_inbox",
        "StartActivity:apex.drain_inbox",
        "StartWorkflow:DrainWorkflow",  # by the worker's drain keeper, not by the request
    ]
    assert batch.context is not None
    in_trace = {s.name for s in spans if s.context and s.context.trace_id == batch.context.trace_id}
    assert "RunWorkflow:DrainWorkflow" in in_trace, in_trace

    # one write span per sink, children of the batch, all in the batch's trace
    writes = [s for s in by_name(spans, "apex.sink.write") if s.parent and s.parent.span_id == batch.context.span_id]
    assert sorted(str((s.attributes or {})["apex.sink"]) for s in writes) == ["memory_a", "memory_b"]
    assert {s.context.trace_id for s in writes if s.context} == {batch.context.trace_id}
    assert all(s.rows for s in sinks)


async def test_json_logs_of_intake_drain_and_saga_name_source_record_delivery_and_workflow(
    apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APEX_LOG_FORMAT", "json")
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = logs.install(Capture(level=logging.DEBUG))
    root = logging.getLogger()
    root.addHandler(handler)
    levels = {name: logging.getLogger(name).level for name in ("", "apex_platform", "temporalio")}
    root.setLevel(logging.DEBUG)
    logging.getLogger("apex_platform").setLevel(logging.DEBUG)
    source = TracedSource()
    try:
        async with running_worker(
            apex_temporal_server.address,
            tmp_path,
            sources=[source],
            sinks=[MemorySink("memory_a"), FlakySink("flaky")],
            priorities=["P1"],
            inbox_dsn=apex_postgres_server.dsn,
        ) as harness:
            good, bad = f"ok-{uuid.uuid4().hex[:8]}", f"bad-{uuid.uuid4().hex[:8]}"
            schema = harness.runtime.inbox.settings.schema_name
            async with api(harness.runtime) as post:
                assert (await post(source.name, {"id": good})).status_code == 202
                await wait_delivered(apex_postgres_server.dsn, source.name, [good], schema=schema)
                assert (await post(source.name, {"id": bad, "bad": True})).status_code == 202
                await wait_delivered(apex_postgres_server.dsn, source.name, [bad], schema=schema)
            drain = f"{harness.prefix}:drain:{source.name}"
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name or None).setLevel(level)
    docs: list[dict[str, Any]] = [json.loads(line) for line in lines]  # every line is one JSON object
    mine = [d for d in docs if d.get("source") == source.name]

    def find(logger: str, needle: str) -> dict[str, Any]:
        hits = [d for d in mine if d["logger"] == logger and needle in d["message"]]
        assert hits, f"no {logger} line with {needle!r} among {[(d['logger'], d['message']) for d in mine]}"
        return hits[0]

    intake = find("apex_platform.api.ingest", "committed to the inbox")
    assert (intake["event_id"], intake["workflow_id"], intake["level"]) == (good, drain, "DEBUG")
    saga = find("apex_platform.saga", "sink flaky failed")  # the first attempt of the good delivery
    assert (saga["record_id"], saga["event_id"], saga["workflow_id"]) == (f"rec-{good}", good, drain)
    parse = find("temporalio.activity", "not parsed")
    assert (parse["event_id"], parse["workflow_id"]) == (bad, drain)
    assert {"time", "level", "logger", "message"} <= set(parse)


def test_tracing_is_off_unless_the_otel_variables_turn_it_on() -> None:
    assert tracing.wanted({}) == []
    assert tracing.wanted({"OTEL_SERVICE_NAME": "apex"}) == []
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp,console"}) == ["otlp", "console"]
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == ["otlp"]
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}) == []
    tracing.disable()
    assert not tracing.enabled()
    assert tracing.temporal_interceptors() == []
    assert tracing.litestar_plugins() == []
    assert tracing.current_traceparent() is None


def test_the_provider_from_the_environment_uses_the_sdks_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    monkeypatch.setenv("OTEL_SERVICE_NAME", "apex-worker-p0")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    provider = tracing._provider_from_env(["otlp", "console"])  # no gRPC exporter installed: OTLP/HTTP
    assert provider.resource.attributes["service.name"] == "apex-worker-p0"
    processors = provider._active_span_processor._span_processors
    exporters = [p.span_exporter for p in processors if isinstance(p, BatchSpanProcessor)]
    assert sorted(type(e).__name__ for e in exporters) == sorted(
        [OTLPSpanExporter.__name__, ConsoleSpanExporter.__name__]
    )
    provider.shutdown()
    assert trace.get_tracer_provider() is not provider


def exported(log: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The spans the console exporter printed (indented JSON objects) and the JSON log
    lines (one object per line) of a process's output."""
    spans: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    block: list[str] | None = None
    for line in log.read_text(errors="replace").splitlines():
        if block is not None:
            block.append(line)
            if line == "}":
                spans.append(json.loads("\n".join(block)))
                block = None
        elif line == "{":
            block = [line]
        elif line.startswith("{"):
            lines.append(json.loads(line))
    return spans, lines


async def test_real_processes_trace_and_log_as_the_otel_and_apex_variables_say(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any
) -> None:
    """`apex-platform api` and `apex-platform worker` as child processes, configured only
    by the environment: OTEL_TRACES_EXPORTER=console prints each process's spans, linked
    across the inbox; APEX_LOG_FORMAT=json makes every log line one JSON object."""
    from conftest import Deployment, dumps, front_event, front_headers

    dep = Deployment(
        tmp_path,
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        OTEL_TRACES_EXPORTER="console",
        OTEL_SERVICE_NAME="apex-trace-test",
        OTEL_BSP_SCHEDULE_DELAY="200",
        APEX_LOG_FORMAT="json",
    ).start()
    try:
        event = front_event()
        body = dumps(event)
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(f"{dep.url}/webhooks/frontapp", content=body, headers=front_headers(body))
        assert answer.status_code == 202, answer.text
        await dep.landed(event["payload"]["id"])
    finally:
        dep.stop()  # the processes flush their spans as they exit
    api_spans, api_lines = exported(dep.api.log)
    worker_spans, worker_lines = exported(dep.workers[0].log)
    assert api_lines  # JSON log lines (every "{…" line parsed above)
    assert worker_lines
    assert all({"time", "level", "logger", "message"} <= set(line) for line in api_lines + worker_lines)

    (put,) = [s for s in api_spans if s["name"] == "apex.inbox.put"]
    assert put["attributes"]["apex.event_id"] == event["payload"]["id"]
    assert put["resource"]["attributes"]["service.name"] == "apex-trace-test"
    (server,) = [s for s in api_spans if s["context"]["span_id"] == put["parent_id"]]
    assert server["kind"] == "SpanKind.SERVER"
    batches = [
        s
        for s in worker_spans
        if s["name"] == "apex.drain.batch"
        and any(lk["context"]["span_id"] == put["context"]["span_id"] for lk in s["links"])
    ]
    assert len(batches) == 1, [s["name"] for s in worker_spans]
    batch = batches[0]
    assert {lk["context"]["trace_id"] for lk in batch["links"]} == {put["context"]["trace_id"]}
    writes = [
        s for s in worker_spans if s["name"] == "apex.sink.write" and s["parent_id"] == batch["context"]["span_id"]
    ]
    assert [w["attributes"]["apex.sink"] for w in writes] == ["postgres"]
