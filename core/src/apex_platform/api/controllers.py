"""HTTP resources, one controller each."""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import timedelta
from typing import Annotated, Any

import anyio
from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from apex_platform import __version__, metrics
from apex_platform.api.deps import RuntimeDep
from apex_platform.api.errors import problem
from apex_platform.api.ingest import accept, trigger_poll
from apex_platform.contracts import PollTrigger, WebhookReply, WebhookSource
from apex_platform.errors import PayloadError, SignatureError
from apex_platform.runtime import Runtime

log = logging.getLogger(__name__)

SourceName = Annotated[str, PathParameter(description="Installed source connector name", max_length=64)]


#: worker threads one source's `verify` may hold at once (anyio's shared pool has 40)
VERIFY_THREADS_PER_SOURCE = 8


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
        responses=None,
    )
    async def receive(self, source: SourceName, request: Request[Any, Any, Any], runtime: RuntimeDep) -> Response[Any]:
        """Verify the signature on the raw body, then commit the delivery to the inbox (202)."""
        connector = runtime.registry.sources.get(source)
        if connector is None or not isinstance(connector, WebhookSource):
            metrics.WEBHOOKS.labels("unknown", "not_found").inc()
            return problem(404, f"no webhook source named {source!r} is installed")
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            # in a worker thread: a connector may fetch a verification key (Plaid's JWKs);
            # with the source's own slots, so a flood at one source never stalls another's
            await anyio.to_thread.run_sync(connector.verify, headers, body, limiter=verify_limiter(runtime, source))
        except SignatureError as exc:
            metrics.WEBHOOKS.labels(source, "unauthorized").inc()
            return problem(401, str(exc), source=source)
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

    @get("/readyz", operation_id="readyz", summary="Readiness: Temporal and every store answer")
    async def readyz(self, runtime: RuntimeDep) -> Response[dict[str, Any]]:
        """200 only when Temporal and each configured sink answer within a few seconds."""
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
            if name not in runtime.opened and getattr(sink, "single_process", False):
                # owned by the worker process (e.g. Qdrant local mode): not ours to open
                checks[f"sink:{name}"] = "ok"
                continue
            jobs.append(check(f"sink:{name}", sink.health))
        await asyncio.gather(*jobs)
        ready = all(v == "ok" for v in checks.values())
        return Response({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


class PluginsController(Controller):
    path = "/v1/plugins"
    tags = ["plugins"]

    @get("/", operation_id="listPlugins", summary="Installed plugins and what they provide")
    async def list_plugins(self, runtime: RuntimeDep) -> dict[str, Any]:
        """Plugins with their distributions and versions, sources, enrichers, sinks, problems."""
        return plugins_document(runtime)


def plugins_document(runtime: Runtime) -> dict[str, Any]:
    reg = runtime.registry

    def owner(kind: str, name: str) -> dict[str, str | None]:
        info = reg.owner_of(kind, name)
        return {
            "plugin": info.name if info else None,
            "distribution": info.distribution if info else None,
            "version": info.version if info else None,
        }

    return {
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version, "module": p.module, "error": p.error}
            for p in reg.plugins
        ],
        "sources": [
            {"name": n, "mode": s.mode, "priority": s.priority, **owner("source", n)}
            for n, s in sorted(reg.sources.items())
        ],
        "enrichers": [{"name": n, **owner("enricher", n)} for n in reg.enrichers],
        "sinks": [{"name": n, **owner("sink", n)} for n in reg.sinks],
        "problems": list(reg.problems),
    }
