"""Prometheus metrics of Apex, by layer (docs/operations.md lists every one with its labels).

Every process that serves HTTP exposes them on `GET /metrics`; a worker started alone
serves them on its own port (`APEX_METRICS_WORKER_PORT`), and the Temporal SDK's runtime
metrics (`temporal_*`) on another (`APEX_METRICS_TEMPORAL_PORT`). Labels stay bounded:
source, kind, sink, op, outcome, workflow and activity type, never a record or delivery id;
a label fed from outside (a source name in a URL) is capped by `bounded`.

Names follow Prometheus conventions: `apex_` prefix, `_total` counters, `_seconds` times,
`_timestamp_seconds` for moments (an age is `time() - …` in PromQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from apex_platform.errors import SettingsError
from apex_platform.settings import apex_config, load, parse_duration

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send
    from temporalio.worker import (
        ActivityInboundInterceptor,
        ExecuteActivityInput,
        ExecuteWorkflowInput,
        WorkflowInboundInterceptor,
        WorkflowInterceptorClassInput,
    )

    from apex_platform.inbox import Inbox

log = logging.getLogger(__name__)

# -- settings ------------------------------------------------------------------------------


class MetricsSettings(BaseSettings):
    """Where a worker serves its metrics, and what the silence alerts compare with."""

    model_config = apex_config("APEX_METRICS_")

    worker_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of a worker's own /metrics (apex-platform worker); unset: none "
        "(the API's /metrics already covers a worker in the same process, as in dev)",
    )
    host: str = Field(default="127.0.0.1", description="Address the worker and Temporal metrics ports bind")
    temporal_port: int | None = Field(
        default=None, ge=0, le=65535, description="Port of the Temporal SDK's runtime metrics (temporal_*); unset: off"
    )
    inbox_cache_seconds: float = Field(
        default=10.0, gt=0, description="How long one reading of the inbox serves scrapes (backlog, oldest age)"
    )
    expected_intervals: str = Field(
        default="",
        description="Longest normal silence per source, e.g. 'frontapp=1h,turvo=30m' (the source-silent alert)",
    )
    default_expected_interval: timedelta = Field(
        default=timedelta(hours=6), description="Longest normal silence of a source not named in expected_intervals"
    )

    @field_validator("default_expected_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    def expected_interval(self, source: str) -> float:
        for item in filter(None, (part.strip() for part in self.expected_intervals.split(","))):
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"APEX_METRICS_EXPECTED_INTERVALS: {item!r} is not source=duration")
            if name.strip() == source:
                return parse_duration(value).total_seconds()
        return self.default_expected_interval.total_seconds()


@lru_cache(maxsize=1)
def metrics_settings() -> MetricsSettings:
    """The process's metrics settings, read once."""
    return load(MetricsSettings)


# -- bounded labels ------------------------------------------------------------------------

#: distinct values a label fed from outside may take before further ones read "other"
MAX_LABEL_VALUES = 200
_seen: dict[str, set[str]] = {}
_seen_lock = threading.Lock()


def bounded(value: str, label: str = "source") -> str:
    """`value` as a label, unless `MAX_LABEL_VALUES` others were seen already ("other")."""
    value = value[:64]
    with _seen_lock:
        seen = _seen.setdefault(label, set())
        if value in seen:
            return value
        if len(seen) >= MAX_LABEL_VALUES:
            return "other"
        seen.add(value)
        return value


# -- 1. HTTP -------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "apex_http_requests_total",
    "HTTP requests answered, by route template, method, status code and source",
    ["route", "method", "status", "source"],
)
HTTP_SECONDS = Histogram(
    "apex_http_request_duration_seconds",
    "HTTP request latency until the last byte of the answer, by route template, method and source",
    ["route", "method", "source"],
)
HTTP_IN_PROGRESS = Gauge("apex_http_requests_in_progress", "HTTP requests being answered now")

# -- 2. intake -----------------------------------------------------------------------------

WEBHOOKS = Counter(
    "apex_webhook_deliveries_total",
    "Webhook and push deliveries by source and outcome",
    ["source", "outcome"],
)

# -- 3. workflows and activities (the Temporal interceptor below) ---------------------------

WORKFLOWS_STARTED = Counter(
    "apex_workflows_started_total", "Workflow runs started on this worker, by type and source", ["workflow", "source"]
)
WORKFLOWS_FINISHED = Counter(
    "apex_workflows_finished_total",
    "Workflow runs ended on this worker, by type, source and outcome",
    ["workflow", "source", "outcome"],
)
WORKFLOW_SECONDS = Histogram(
    "apex_workflow_run_duration_seconds",
    "Workflow run time, from the run's start to its end (workflow time), by type and source",
    ["workflow", "source"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, float("inf")),
)
ACTIVITIES_STARTED = Counter(
    "apex_activities_started_total", "Activity attempts started, by type and source", ["activity", "source"]
)
ACTIVITIES_FINISHED = Counter(
    "apex_activities_finished_total",
    "Activity attempts ended, by type, source and outcome",
    ["activity", "source", "outcome"],
)
ACTIVITY_RETRIES = Counter(
    "apex_activity_retries_total",
    "Activity attempts after the first (Temporal retrying a failed attempt), by type and source",
    ["activity", "source"],
)
ACTIVITY_ATTEMPT_SECONDS = Histogram(
    "apex_activity_attempt_duration_seconds",
    "Activity attempt run time, by type and source",
    ["activity", "source"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf")),
)
ACTIVITY_SECONDS = Histogram(
    "apex_activity_seconds", "Run time of a successful activity step, by step and source", ["activity", "source"]
)

# -- 4. saga, per sink ---------------------------------------------------------------------

SINK_CALLS = Counter("apex_sink_calls_total", "Saga calls per sink, operation and outcome", ["sink", "op", "outcome"])
SINK_RETRIES = Counter(
    "apex_sink_retries_total", "Saga retries of a transient sink failure, per sink and operation", ["sink", "op"]
)
SINK_SECONDS = Histogram("apex_sink_call_seconds", "Saga call latency per sink and operation", ["sink", "op"])
BREAKER_STATE = Gauge(
    "apex_saga_breaker_state", "Circuit breaker per sink and operation: 0 closed, 1 half-open, 2 open", ["sink", "op"]
)
COMPENSATIONS = Counter("apex_saga_compensations_total", "Compensations per sink and outcome", ["sink", "outcome"])
DEAD_LETTERS = Counter("apex_dead_letters_total", "Batches sent to the dead-letter table")
RECORDS_QUARANTINED = Counter(
    "apex_records_quarantined_total",
    "Records a sink refused for good, kept in the dead-letter queue (the rest of their batch committed)",
    ["source", "sinks"],
)
RECORDS_WRITTEN = Counter("apex_records_written_total", "Records committed to every sink", ["source"])
RECORDS_SKIPPED = Counter(
    "apex_records_skipped_total", "Records skipped because already committed (idempotency key)", ["source"]
)

# -- 5. data quality -----------------------------------------------------------------------

RECORDS_WITHOUT_ENTITIES = Counter(
    "apex_records_without_entities_total", "Data quality: records that carry no entity", ["source"]
)
RECORDS_WITHOUT_TEXT = Counter(
    "apex_records_without_text_total", "Data quality: records with neither title nor text", ["source"]
)
PARSE_WARNINGS = Counter(
    "apex_parse_warnings_total", "Data quality: warnings of a connector while reading a file", ["source"]
)
UNPARSED = Counter(
    "apex_unparsed_deliveries_total",
    "Data quality: deliveries or events their connector could not read, kept as apex.unparsed records",
    ["source"],
)

# -- 6. business ---------------------------------------------------------------------------

RECORDS_PARSED = Counter("apex_records_parsed_total", "Records produced by connectors", ["source", "kind"])
SOURCE_LAST_WRITE = Gauge(
    "apex_source_last_write_timestamp_seconds",
    "When this worker last took a record of the source through the saga, written or skipped "
    "(or started, if it has not yet)",
    ["source"],
)
SOURCE_EXPECTED_INTERVAL = Gauge(
    "apex_source_expected_interval_seconds",
    "Longest normal silence of the source (APEX_METRICS_EXPECTED_INTERVALS)",
    ["source"],
)

# -- 7. pollers ----------------------------------------------------------------------------

POLLER_LAST_SUCCESS = Gauge(
    "apex_poller_last_success_timestamp_seconds",
    "When a page of the source was last read and written (or this worker started, if not yet)",
    ["source"],
)
POLLER_CURSOR_LAG = Gauge(
    "apex_poller_cursor_lag_seconds",
    "Age of the newest record of the last non-empty page when it was written (how far behind the vendor)",
    ["source"],
)
POLLER_INTERVAL = Gauge(
    "apex_poller_interval_seconds", "The source's poll interval (poll_interval_seconds)", ["source"]
)

# -- infrastructure -------------------------------------------------------------------------

BUILD_INFO = Gauge("apex_build_info", "Always 1: the platform version and the process's role", ["version", "role"])


def record_quality(records: Iterable[Any]) -> None:
    """Business and data-quality counts of records a connector produced."""
    for record in records:
        RECORDS_PARSED.labels(record.source, record.kind).inc()
        if not record.entities:
            RECORDS_WITHOUT_ENTITIES.labels(record.source).inc()
        if not (record.title or record.text):
            RECORDS_WITHOUT_TEXT.labels(record.source).inc()


def record_unparsed(source: str) -> None:
    UNPARSED.labels(source).inc()
    RECORDS_PARSED.labels(source, "apex.unparsed").inc()


def record_poll_success(source: str, records: Sequence[Any]) -> None:
    """A page was read and written (an empty page too): the poller is alive."""
    now = time.time()
    POLLER_LAST_SUCCESS.labels(source).set(now)
    newest = max((r.occurred_at for r in records if r.occurred_at is not None), default=None)
    if newest is not None:
        POLLER_CURSOR_LAG.labels(source).set(max(0.0, now - newest.timestamp()))


def announce_sources(
    role: str, sources: Iterable[tuple[str, float | None]], settings: MetricsSettings | None = None
) -> None:
    """At a worker's start: its role, each source's expected silence, poll interval, and a
    'last' time of now, so that a source silent since the start is seen as silent."""
    from apex_platform import __version__

    settings = settings or metrics_settings()
    BUILD_INFO.labels(__version__, role).set(1)
    now = time.time()
    for name, poll_interval in sources:
        SOURCE_EXPECTED_INTERVAL.labels(name).set(settings.expected_interval(name))
        SOURCE_LAST_WRITE.labels(name).set(now)
        if poll_interval is not None:
            POLLER_INTERVAL.labels(name).set(poll_interval)
            POLLER_LAST_SUCCESS.labels(name).set(now)


# -- intake at scrape time: the inbox read with a short cache -------------------------------


class InboxCollector(Collector):
    """Backlog, bytes, stuck and oldest pending age per source, from the inbox's own status
    query, read at most once per `APEX_METRICS_INBOX_CACHE_SECONDS` (`refresh`). A process
    that never read the inbox exports none of these; one whose last reading failed says
    so in `apex_inbox_up`."""

    GAUGES = {
        "apex_inbox_backlog": ("Deliveries pending in the inbox, per source", "backlog"),
        "apex_inbox_backlog_bytes": ("Bytes of the deliveries pending in the inbox, per source", "backlog_bytes"),
        "apex_inbox_stuck": ("Pending deliveries tried before or older than APEX_INBOX_STUCK_AFTER", "stuck"),
        "apex_inbox_oldest_pending_seconds": (
            "Age of the oldest pending delivery, per source",
            "oldest_pending_seconds",
        ),
        "apex_inbox_delivered_last_hour": (
            "Deliveries that landed in the last hour, per source",
            "delivered_last_hour",
        ),
    }

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] | None = None
        self.up: bool | None = None
        self.read_at = 0.0

    async def refresh(self, inbox: Inbox, max_age: float | None = None) -> None:
        """Read the inbox unless the last reading is younger than `max_age` seconds
        (default `APEX_METRICS_INBOX_CACHE_SECONDS`)."""
        if max_age is None:
            max_age = metrics_settings().inbox_cache_seconds
        if time.monotonic() - self.read_at < max_age:
            return
        # no lock: two scrapes at once read twice, harmlessly (and a lock made at import
        # would belong to whichever event loop used it first)
        self.read_at = time.monotonic()
        try:
            self.rows = await asyncio.wait_for(inbox.status(), timeout=5)
            self.up = True
        except Exception as exc:  # noqa: BLE001 - the scrape goes on; apex_inbox_up says why not
            log.warning("metrics: the inbox could not be read: %s", exc)
            self.up = False

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily("apex_inbox_up", "1 when the last reading of the inbox succeeded, else 0")
        for name, (doc, _) in self.GAUGES.items():
            yield GaugeMetricFamily(name, doc, labels=["source"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.up is None:
            return
        yield GaugeMetricFamily(
            "apex_inbox_up", "1 when the last reading of the inbox succeeded, else 0", value=1 if self.up else 0
        )
        for name, (doc, key) in self.GAUGES.items():
            family = GaugeMetricFamily(name, doc, labels=["source"])
            for row in self.rows or ():
                value = row.get(key)
                family.add_metric([str(row["source"])], float(value) if value is not None else 0.0)
            yield family


INBOX = InboxCollector()
REGISTRY.register(INBOX)


async def keep_inbox_read(inbox: Inbox, stop: asyncio.Event, settings: MetricsSettings | None = None) -> None:
    """A worker's refresher of `INBOX` (its metrics port is served from a thread)."""
    every = (settings or metrics_settings()).inbox_cache_seconds
    while not stop.is_set():
        await INBOX.refresh(inbox, max_age=every / 2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


# -- HTTP middleware ------------------------------------------------------------------------


def http_middleware(known_sources: Callable[[], Iterable[str]]) -> Callable[[ASGIApp], ASGIApp]:
    """A Litestar middleware counting every HTTP answer by route template (never the raw
    path), method, status and source (an installed source, else "unknown")."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            route = str(scope.get("path_template") or "unmatched")
            if route.rstrip("/") == "/metrics":
                await app(scope, receive, send)
                return
            params: dict[str, Any] = scope.get("path_params") or {}
            named = params.get("source")
            source = "none" if named is None else (str(named) if str(named) in set(known_sources()) else "unknown")
            method = str(scope.get("method", "GET"))
            status = {"code": 500}

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = int(message["status"])
                await send(message)

            started = time.perf_counter()
            HTTP_IN_PROGRESS.inc()
            try:
                await app(scope, receive, sending)
            finally:
                HTTP_IN_PROGRESS.dec()
                HTTP_SECONDS.labels(route, method, source).observe(time.perf_counter() - started)
                HTTP_REQUESTS.labels(route, method, str(status["code"]), source).inc()

        return wrapped

    return middleware


# -- Temporal: interceptor and the SDK's runtime metrics -------------------------------------


def _source_of(args: Sequence[Any]) -> str:
    """The source an activity or workflow input names (`source`, `event.source`, `batch.source`)."""
    if not args:
        return "none"
    arg = args[0]
    for path in (("source",), ("event", "source"), ("batch", "source")):
        value: Any = arg
        for name in path:
            value = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
        if isinstance(value, str):
            return bounded(value)
    return "none"


def temporal_interceptor() -> Any:
    """A `temporalio.worker.Interceptor` counting workflow runs and activity attempts by
    type and source. Workflow counts skip replay (a run evicted from the cache and
    replayed is not started again) and use workflow time only."""
    from temporalio import activity, workflow
    from temporalio.exceptions import CancelledError as TemporalCancelled
    from temporalio.worker import ActivityInboundInterceptor, Interceptor, WorkflowInboundInterceptor

    class _Activities(ActivityInboundInterceptor):
        async def execute_activity(self, input: ExecuteActivityInput) -> Any:
            info = activity.info()
            name, source = info.activity_type, _source_of(input.args)
            ACTIVITIES_STARTED.labels(name, source).inc()
            if info.attempt > 1:
                ACTIVITY_RETRIES.labels(name, source).inc()
            outcome = "failed"
            started = time.perf_counter()
            try:
                result = await self.next.execute_activity(input)
                outcome = "completed"
                return result
            except (asyncio.CancelledError, TemporalCancelled):
                outcome = "cancelled"
                raise
            finally:
                ACTIVITIES_FINISHED.labels(name, source, outcome).inc()
                ACTIVITY_ATTEMPT_SECONDS.labels(name, source).observe(time.perf_counter() - started)

    class _Workflows(WorkflowInboundInterceptor):
        async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
            info = workflow.info()
            name, source = info.workflow_type, _source_of(input.args)
            if not workflow.unsafe.is_replaying():
                WORKFLOWS_STARTED.labels(name, source).inc()
            outcome = "failed"
            try:
                result = await self.next.execute_workflow(input)
                outcome = "completed"
                return result
            except workflow.ContinueAsNewError:
                outcome = "continued_as_new"
                raise
            except (asyncio.CancelledError, TemporalCancelled):
                outcome = "cancelled"
                raise
            finally:
                if not workflow.unsafe.is_replaying():
                    WORKFLOWS_FINISHED.labels(name, source, outcome).inc()
                    elapsed = (workflow.now() - info.start_time).total_seconds()
                    WORKFLOW_SECONDS.labels(name, source).observe(max(0.0, elapsed))

    class MetricsInterceptor(Interceptor):
        def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
            return _Activities(next)

        def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
            return _Workflows

    return MetricsInterceptor()


def install_temporal_runtime_metrics(settings: MetricsSettings | None = None) -> str | None:
    """With `APEX_METRICS_TEMPORAL_PORT`, make the default Temporal runtime export the SDK's
    own metrics (temporal_request, temporal_workflow_task_*, temporal_activity_*, worker
    slots …) in the Prometheus format on that port. Must run before the first client
    connects; returns the address, or None when off."""
    settings = settings or metrics_settings()
    if settings.temporal_port is None:
        return None
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    address = f"{settings.host}:{settings.temporal_port}"
    try:
        runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True))
        )
    except Exception as exc:  # the SDK's core raises a plain exception when the port is taken
        raise SettingsError(
            f"the Temporal SDK metrics address {address} cannot be bound ({exc}): "
            "set APEX_METRICS_TEMPORAL_PORT to a free port (or APEX_METRICS_HOST)"
        ) from exc
    Runtime.set_default(runtime, error_if_already_set=False)
    log.info("Temporal SDK metrics on http://%s/metrics", address)
    return address


def serve_worker_metrics(settings: MetricsSettings | None = None) -> int | None:
    """With `APEX_METRICS_WORKER_PORT`, serve this process's registry on that port (a
    thread; `/metrics` or any path). Returns the port bound (0 picks a free one), or None."""
    settings = settings or metrics_settings()
    if settings.worker_port is None:
        return None
    from prometheus_client import start_http_server

    try:
        server, _ = start_http_server(settings.worker_port, addr=settings.host)
    except OSError as exc:
        raise SettingsError(
            f"the worker's metrics port {settings.host}:{settings.worker_port} cannot be bound ({exc}): "
            "set APEX_METRICS_WORKER_PORT to a free port (or APEX_METRICS_HOST)"
        ) from exc
    port = int(server.server_address[1])
    log.info("worker metrics on http://%s:%d/metrics", settings.host, port)
    return port
