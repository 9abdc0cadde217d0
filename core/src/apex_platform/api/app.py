"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import OpenAPIConfig
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from apex_platform import __version__, metrics, tracing
from apex_platform.api.admin import AdminController
from apex_platform.api.codec import CodecController, codec_cors
from apex_platform.api.console import ConsoleController
from apex_platform.api.controllers import HealthController, MetricsController, PluginsController, WebhookController
from apex_platform.api.inbox import InboxController
from apex_platform.api.push import PushController
from apex_platform.api.status import StatusController
from apex_platform.runtime import Runtime
from apex_platform.settings import AdminSettings, PushSettings, load

if TYPE_CHECKING:
    from temporalio.client import Client

log = logging.getLogger(__name__)


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    """Unexpected failures: logged with their traceback, answered without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response({"error": "internal error; see the API log"}, status_code=500)


def _too_large(request: Request[Any, Any, Any], exc: RequestEntityTooLarge) -> Response[dict[str, Any]]:
    """413 as the framework answers it, and the connection closed after it: the body was not
    read, so on a kept-alive connection its unread bytes would be parsed as the next request
    (the server then answered that next request 431, with nothing said)."""
    return Response(
        {"status_code": exc.status_code, "detail": exc.detail},
        status_code=exc.status_code,
        headers={"Connection": "close"},
    )


async def _warm_temporal(client: Client) -> None:
    """Open the (lazy) Temporal connection at start, in the background: the first request
    that needs it (a Plaid trigger, the console) no longer pays for the connection, and the
    process's threads and descriptors are all there from the start (soaks saw an API grow by
    five to seven descriptors at its first trigger, at minute 6 or 20). Intake never waits for it: a
    Temporal that is down at start is only logged, and the client connects on first use."""
    try:
        await client.service_client.check_health(timeout=timedelta(seconds=10))
    except Exception as exc:  # noqa: BLE001 - only a warm-up; every caller handles Temporal's absence
        log.info("Temporal not reachable at start (the API connects on first use): %s", exc)


def create_app(runtime: Runtime, *, open_sinks: bool = True) -> Litestar:
    """Build the app around a runtime. With `open_sinks`, the app opens the sinks at start
    (for readiness and trace); in `apex-platform dev` the worker shares them instead."""
    # an empty or too short admin token or push key stops the start, naming the variable
    load(AdminSettings)
    load(PushSettings)
    tracing.configure()  # OTEL_* (off by default): a server span per request

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client = await runtime.connect(lazy=True)
        warm = asyncio.create_task(_warm_temporal(client), name="apex-api-temporal-warm-up")
        if open_sinks:
            try:
                await runtime.open_sinks(skip_single_process=True)
            except Exception as exc:  # noqa: BLE001 - the API still accepts webhooks; readyz says why
                log.error("%s", exc)
        try:
            await runtime.inbox.pool()
        except Exception as exc:  # noqa: BLE001 - deliveries get 503 until it answers; readyz says why
            log.error("the inbox is not reachable yet: %s", exc)
        try:
            yield
        finally:
            warm.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm
            if open_sinks:
                await runtime.close_sinks()
            await runtime.inbox.close()

    def provide_runtime() -> Runtime:
        return runtime

    return Litestar(
        route_handlers=[
            WebhookController,
            PushController,
            HealthController,
            PluginsController,
            AdminController,
            InboxController,
            StatusController,
            ConsoleController,
            CodecController,
            MetricsController,
        ],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        lifespan=[lifespan],
        # HTTP metrics by route template and installed source (docs/operations.md)
        middleware=[metrics.http_middleware(lambda: runtime.registry.sources)],
        plugins=tracing.litestar_plugins(),
        request_max_body_size=runtime.core.max_body_bytes,
        cors_config=codec_cors(),  # the Temporal UI's origins only (APEX_CODEC_CORS_ORIGINS), else none
        openapi_config=OpenAPIConfig(title="Apex ingestion API", version=__version__, path="/schema"),
        exception_handlers={HTTP_500_INTERNAL_SERVER_ERROR: _internal_error, RequestEntityTooLarge: _too_large},
        logging_config=None,  # the process configures logging (CLI), not the app
        debug=False,
    )
