"""HTTP resources, one controller each."""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from datetime import timedelta
from typing import Annotated, Any, cast

import anyio
from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from apex_platform import __version__, metrics
from apex_platform.api.admin import is_admin
from apex_platform.api.deps import RuntimeDep
from apex_platform.api.errors import error_responses, problem
from apex_platform.api.ingest import accept, edge_source, trigger_poll
from apex_platform.capabilities import single_process
from apex_platform.contracts import PollTrigger, WebhookReply, WebhookSource
from apex_platform.errors import PayloadError, SettingsError, SignatureError, VerificationUnavailable
from apex_platform.plugins import PluginInfo
from apex_platform.runtime import Runtime

log = logging.getLogger(__name__)

SourceName = Annotated[str, PathParameter(description="Installed source connector name", max_length=64)]


#: worker threads one source's `verify` may hold at once (anyio's shared pool has 40)
VERIFY_THREADS_PER_SOURCE = 8
#: the largest body a `LocalVerification` source's signature is checked on the event loop
#: (an HMAC-SHA256 of 64 KiB takes well under a millisecond; larger ones go to a thread,
#: where hashlib releases the GIL)
INLINE_VERIFY_BYTES = 64 * 1024


def verify_limiter(runtime: Runtime, source: str) -> anyio.CapacityLimiter:
    """The thread slots of `source`'s signature checks, created on first use (per event loop)."""
    by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, anyio.CapacityLimiter]]
    by_loop = runtime.edge.setdefault("verify_limiters", weakref.WeakKeyDictionary())
    limiters = by_loop.setdefault(asyncio.get_running_loop(), {})
    limiter = limiters.get(source)
    if limiter is None:
        limiter = limiters[source] = anyio.CapacityLimiter(VERIFY_THREADS_PER_SOURCE)
    return limiter


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["ingest"]

    @post(
        "/{source:str}",
        operation_id="receiveWebhook",
        status_code=202,
        summary="Receive a vendor webhook",
        description="200: a duplicate, or an immediate answer (a set-up handshake, a ping); 202: accepted.",
        responses={
            200: ResponseSpec(data_container=dict[str, Any], description="A duplicate or an immediate answer"),
            **error_responses(400, 401, 404, 413, 500, 503),
        },
    )
    async def receive(self, source: SourceName, request: Request[Any, Any, Any], runtime: RuntimeDep) -> Response[Any]:
        """Verify the signature on the raw body, then commit the delivery to the inbox (202)."""
        installed = runtime.registry.sources.get(source)
        edge = edge_source(runtime, installed) if installed is not None else None
        if edge is None or not edge.webhook:
            metrics.WEBHOOKS.labels("unknown", "not_found").inc()
            return problem(404, f"no webhook source named {source!r} is installed")
        connector = cast(WebhookSource, edge.connector)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            if edge.verify_inline and len(body) <= INLINE_VERIFY_BYTES:
                # an HMAC of a small body (`LocalVerification`): cheaper here than a thread hop
                connector.verify(headers, body)
            else:
                # in a worker thread: a connector may fetch a verification key (Plaid's JWKs);
                # with the source's own slots, so a flood at one source never stalls another's
                await anyio.to_thread.run_sync(connector.verify, headers, body, limiter=verify_limiter(runtime, source))
        except SignatureError as exc:
            metrics.WEBHOOKS.labels(source, "unauthorized").inc()
            return problem(401, str(exc), source=source)
        except VerificationUnavailable as exc:
            # the signature could not be checked (the vendor's key service is down): not a
            # forgery — the vendor is asked to send it again
            log.warning("%s: %s", source, exc)
            metrics.WEBHOOKS.labels(source, "unavailable").inc()
            return problem(503, str(exc), source=source, retry_after=max(1, round(exc.retry_after)))
        except SettingsError as exc:
            # e.g. an empty or too short secret: the vendor retries, the operator reads the log
            log.error("%s: %s", source, exc)
            metrics.WEBHOOKS.labels(source, "unavailable").inc()
            return problem(503, f"the {source} source is misconfigured; see the API log", source=source, retry_after=60)
        try:
            received = connector.receive(headers, body)
        except PayloadError as exc:
            metrics.WEBHOOKS.labels(source, "malformed").inc()
            return problem(400, str(exc), source=source)
        if isinstance(received, WebhookReply):
            metrics.WEBHOOKS.labels(source, "reply").inc()
            return Response(
                received.content,
                status_code=received.status_code,
                media_type=received.media_type,
                headers=received.headers,
            )
        if isinstance(received, PollTrigger):
            return await trigger_poll(runtime, connector, received)
        if received.source != source:
            return problem(500, f"connector {source!r} produced an event for {received.source!r}")
        return await accept(runtime, connector, received, headers, body)


class HealthController(Controller):
    tags = ["health"]

    @get("/healthz", operation_id="healthz", summary="Liveness")
    async def healthz(self) -> dict[str, str]:
        """The process is up and serving."""
        return {"status": "ok", "version": __version__}

    @get(
        "/readyz",
        operation_id="readyz",
        summary="Readiness: Temporal and every store answer",
        responses={503: ResponseSpec(data_container=dict[str, Any], description="Not ready: a check failed")},
    )
    async def readyz(self, runtime: RuntimeDep, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """200 only when Temporal and each configured sink answer within a few seconds. Each
        check says `ok` or `error`; with the admin token, an error says what failed."""
        checks = await readiness_checks(runtime)
        ready = all(v == "ok" for v in checks.values())
        if not is_admin(request):
            # exception text names hosts, users and modules: for operators only
            checks = {name: "ok" if v == "ok" else "error" for name, v in checks.items()}
        return Response({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def readiness_checks(runtime: Runtime, *, unopened: str = "ok") -> dict[str, str]:
    """`/readyz`'s checks (also `apex-platform status` and the console): Temporal, the
    inbox and each sink, each `ok` or `error: …` within a few seconds. A single-process
    sink this process did not open (Qdrant local mode, owned by the worker) is `unopened`."""
    checks: dict[str, str] = {}

    async def temporal() -> None:
        client = await runtime.connect(lazy=True)
        await client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=3))

    async def check(name: str, fn: Any) -> None:
        try:
            await asyncio.wait_for(fn(), timeout=5)
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks[name] = f"error: {type(exc).__name__}: {exc}"[:300]

    async def inbox() -> None:
        pool = await runtime.inbox.pool()
        await pool.fetchval("SELECT 1")

    jobs = [check("temporal", temporal), check("inbox", inbox)]
    for name, sink in runtime.registry.sinks.items():
        if name not in runtime.opened and single_process(sink):
            # owned by the worker process (e.g. Qdrant local mode): not ours to open
            checks[f"sink:{name}"] = unopened
            continue
        jobs.append(check(f"sink:{name}", sink.health))
    await asyncio.gather(*jobs)
    return checks


class MetricsController(Controller):
    path = "/metrics"
    tags = ["health"]

    @get(
        "/",
        operation_id="metrics",
        summary="Prometheus metrics",
        media_type="text/plain",
        description="The Prometheus text exposition format (text/plain; version=0.0.4).",
    )
    async def metrics(self, runtime: RuntimeDep) -> Response[bytes]:
        """Every metric of this process (docs/operations.md), the inbox read at most once
        per APEX_METRICS_INBOX_CACHE_SECONDS."""
        await metrics.INBOX.refresh(runtime.inbox)
        registry: CollectorRegistry = REGISTRY
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class PluginsController(Controller):
    path = "/v1/plugins"
    tags = ["plugins"]

    @get("/", operation_id="listPlugins", summary="Installed plugins and what they provide")
    async def list_plugins(self, runtime: RuntimeDep, request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Plugins with their distributions and versions, sources, enrichers, sinks, problems.
        Module paths and loading errors only with the admin token."""
        return plugins_document(runtime, details=is_admin(request))


def plugins_document(runtime: Runtime, *, details: bool = True) -> dict[str, Any]:
    """What is installed; without `details`, no module path and no exception text (each
    problem is then only said to exist)."""
    reg = runtime.registry

    def named(info: PluginInfo) -> str | None:
        # a plugin loaded by import path (APEX_PLUGIN_MODULES) is named by that path
        return info.name if details or info.name != info.module else None

    def owner(kind: str, name: str) -> dict[str, str | None]:
        info = reg.owner_of(kind, name)
        return {
            "plugin": named(info) if info else None,
            "distribution": info.distribution if info else None,
            "version": info.version if info else None,
        }

    def failed(error: str | None) -> str | None:
        return error if details or error is None else "failed to load (details with the admin token)"

    return {
        "plugins": [
            {
                "name": named(p),
                "distribution": p.distribution,
                "version": p.version,
                "module": p.module if details else None,
                "error": failed(p.error),
                "api": p.api,
            }
            for p in reg.plugins
        ],
        "sources": [
            {"name": n, "mode": s.mode, "priority": s.priority, **owner("source", n)}
            for n, s in sorted(reg.sources.items())
        ],
        "enrichers": [{"name": n, **owner("enricher", n)} for n in reg.enrichers],
        "sinks": [{"name": n, **owner("sink", n)} for n in reg.sinks],
        "problems": list(reg.problems)
        if details
        else ["a plugin problem (details with the admin token)"] * len(reg.problems),
    }
