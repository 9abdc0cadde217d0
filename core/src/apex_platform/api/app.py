"""The Litestar application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from apex_platform import __version__
from apex_platform.api.controllers import HealthController, PluginsController, WebhookController
from apex_platform.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(runtime: Runtime, *, open_sinks: bool = True) -> Litestar:
    """Build the app around a runtime. With `open_sinks`, the app opens the sinks at start
    (for readiness and trace); in `apex-platform dev` the worker shares them instead."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await runtime.connect(lazy=True)
        if open_sinks:
            try:
                await runtime.open_sinks()
            except Exception as exc:  # noqa: BLE001 - the API still accepts webhooks; readyz says why
                log.error("%s", exc)
        try:
            yield
        finally:
            if open_sinks:
                await runtime.close_sinks()

    def provide_runtime() -> Runtime:
        return runtime

    prometheus = PrometheusConfig(app_name="apex", prefix="apex", group_path=True, exclude=["/metrics"])
    return Litestar(
        route_handlers=[WebhookController, HealthController, PluginsController, PrometheusController],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        lifespan=[lifespan],
        middleware=[prometheus.middleware],
        request_max_body_size=runtime.core.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Apex ingestion API", version=__version__, path="/schema"),
        debug=False,
    )
