"""OpenTelemetry tracing: off by default, configured by the standard `OTEL_*` variables.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`, …; `none` is off)
or an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` /
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: then `otlp`); `OTEL_SDK_DISABLED=true` wins. The
SDK reads everything else itself: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
(the resource), `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*` (the batch processor),
`OTEL_EXPORTER_OTLP_*` (endpoint, protocol, headers, timeout). Needs the `otel` extra
(`pip install 'apex-platform[otel]'`); without it a configured exporter is an error.

One trace per delivery: the HTTP request (Litestar's OpenTelemetry plugin), its
`apex.inbox.put` span, whose W3C `traceparent` is stored with the delivery's headers
(`TRACEPARENT_HEADER`), so the batch that drains it later — the drain workflow and its
activity (`temporalio.contrib.opentelemetry.TracingInterceptor` on the client, and so on
every worker built on it) — starts an `apex.drain.batch` span linked to every
delivery's request; each sink call of the saga is an `apex.sink.<op>` span below it.
A batch holds up to 1,000 deliveries of many requests, so they are links, not parents.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Link

log = logging.getLogger(__name__)

#: the header, kept with a delivery in the inbox, that carries its request's trace context
#: (not `traceparent`: a vendor's own trace header is left as it sent it)
TRACEPARENT_HEADER = "apex-traceparent"
TRACER_NAME = "apex_platform"
#: OpenTelemetry's default limit of links per span
MAX_LINKS = 128

_enabled = False


def enabled() -> bool:
    return _enabled


def wanted(environ: Mapping[str, str] | None = None) -> list[str]:
    """The span exporters the environment asks for (empty: tracing off)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if names:
        return [] if names.lower() == "none" else [n.strip() for n in names.split(",") if n.strip()]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return ["otlp"]
    return []


def configure(provider: TracerProvider | None = None) -> bool:
    """Turn tracing on as the environment says (once per process), or with `provider`
    (tests: an in-memory exporter). Returns whether tracing is on."""
    global _enabled
    if provider is None:
        if _enabled:
            return True
        names = wanted()
        if not names:
            return False
        provider = _provider_from_env(names)
    from opentelemetry import trace

    if trace.get_tracer_provider() is not provider:
        trace.set_tracer_provider(provider)  # the first one set stays (the SDK warns on a second)
    _enabled = True
    return True


def disable() -> None:
    """Stop adding spans, interceptors and middleware (tests; the provider stays set)."""
    global _enabled
    _enabled = False


def _provider_from_env(names: list[str]) -> TracerProvider:
    try:
        from opentelemetry.sdk._configuration import _get_exporter_entry_point, _import_exporters
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            f"OTEL_TRACES_EXPORTER asks for {','.join(names)} but the OpenTelemetry SDK is not installed: "
            "pip install 'apex-platform[otel]' (or unset OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT)"
        ) from exc
    # the SDK's own names: `otlp` is gRPC unless OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL says
    # http/protobuf; the `otel` extra ships the HTTP exporter, so fall back to it
    points = [_get_exporter_entry_point(n, "traces") for n in names]
    try:
        exporters, _, _ = _import_exporters(points, [], [])
    except RuntimeError:
        if "otlp_proto_grpc" not in points:
            raise
        log.info("the OTLP gRPC exporter is not installed: exporting spans over OTLP/HTTP")
        exporters, _, _ = _import_exporters(
            ["otlp_proto_http" if p == "otlp_proto_grpc" else p for p in points], [], []
        )
    provider = TracerProvider(resource=Resource.create())  # sampler from OTEL_TRACES_SAMPLER
    for exporter in exporters.values():
        provider.add_span_processor(BatchSpanProcessor(exporter()))
    log.info("tracing on: spans exported by %s", ", ".join(exporters))
    return provider


def temporal_interceptors() -> list[Any]:
    """The Temporal client's interceptors (workers built on the client get them too)."""
    if not _enabled:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    # drains and pollers are started by workers, not in a request: create their
    # workflow spans anyway (they are linked to the deliveries' requests, see above)
    return [TracingInterceptor(always_create_workflow_spans=True)]


def litestar_plugins() -> list[Any]:
    """Litestar's OpenTelemetry plugin: one server span per request (with the caller's
    `traceparent` as parent, when it sends one)."""
    if not _enabled:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    # no spans for the ASGI receive/send messages of a request: one span is the request
    config = OpenTelemetryConfig(exclude=["/metrics", "/healthz", "/readyz"], exclude_spans=["receive", "send"])
    return [OpenTelemetryPlugin(config)]


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None, links: Iterable[Link] = ()) -> Iterator[None]:
    """A span around the block (nothing when tracing is off)."""
    if not _enabled:
        yield
        return
    from opentelemetry import trace

    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, attributes=dict(attributes or {}), links=list(links)):
        yield


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (None when tracing is off or no span)."""
    if not _enabled:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def links(traceparents: Iterable[str | None]) -> list[Link]:
    """Links to the spans these `traceparent` values name (distinct, at most `MAX_LINKS`)."""
    if not _enabled:
        return []
    from opentelemetry import trace
    from opentelemetry.trace import Link
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    out: list[Link] = []
    for value in dict.fromkeys(t for t in traceparents if t):
        context = trace.get_current_span(propagator.extract({"traceparent": value})).get_span_context()
        if context.is_valid:
            out.append(Link(context))
        if len(out) >= MAX_LINKS:
            break
    return out
