"""`GET /v1/status` (admin): the status document of `apex-platform status`, gathered by the
API process (in `apex-platform dev` it is also the worker, so its breakers are there)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get

from apex_platform import status
from apex_platform.api.admin import admin_guard
from apex_platform.api.deps import RuntimeDep
from apex_platform.api.errors import error_responses


class StatusController(Controller):
    path = "/v1/status"
    tags = ["admin"]
    guards = [admin_guard]

    @get(
        "/",
        operation_id="platformStatus",
        summary="Stack and store health, sources, backlogs, breakers, dead letters, workers",
        responses=error_responses(401, 403),
    )
    async def status(self, runtime: RuntimeDep) -> dict[str, Any]:
        """Everything `apex-platform status --json` shows; `healthy` false names each problem."""
        return await status.collect(runtime)
