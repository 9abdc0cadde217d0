"""Admin endpoints of the inbox: status per source, deliveries (stuck ones first of all),
one delivery and what it produced, and replay. Same bearer token as the other admin
endpoints (`APEX_ADMIN_TOKEN`)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.params import Body, PathParameter, QueryParameter
from pydantic import BaseModel, Field, field_validator

from apex_platform import operations
from apex_platform.api.admin import admin_guard
from apex_platform.api.deps import RuntimeDep
from apex_platform.api.errors import error_responses, problem
from apex_platform.errors import ApexError


class ReplayRequest(BaseModel):
    """Which deliveries to re-drive: some event ids of one source, or every stuck one."""

    source: str | None = Field(default=None, max_length=64)
    event_ids: list[str] = Field(default_factory=list, max_length=10000)
    stuck: bool = False

    @field_validator("stuck", mode="before")
    @classmethod
    def _boolean(cls, value: object) -> object:
        # the framework validates leniently: `0` or `"no"` would pass as false
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value


#: the request's contract in the OpenAPI document: some event ids, or every stuck delivery
_REPLAY_NAMES_SOMETHING: dict[str, Any] = {
    "anyOf": [
        {"required": ["event_ids"], "properties": {"event_ids": {"minItems": 1}}},
        {"required": ["stuck"], "properties": {"stuck": {"const": True}}},
    ]
}


class InboxController(Controller):
    path = "/v1/inbox"
    tags = ["admin"]
    guards = [admin_guard]

    @get(
        "/",
        operation_id="inboxStatus",
        summary="Backlog, oldest pending age, stuck and rate per source",
        responses=error_responses(401, 403, 503),
    )
    async def status(self, runtime: RuntimeDep) -> Response[Any]:
        """Per source: pending deliveries, their bytes, the oldest one's age, stuck ones, rate."""
        return await _run(operations.inbox_status(runtime))

    @get(
        "/deliveries",
        operation_id="listDeliveries",
        summary="Deliveries in the inbox",
        responses=error_responses(400, 401, 403, 503),
    )
    async def deliveries(
        self,
        runtime: RuntimeDep,
        source: Annotated[str | None, QueryParameter(name="source", max_length=64)] = None,
        stuck: Annotated[bool, QueryParameter(name="stuck")] = False,
        status: Annotated[str | None, QueryParameter(name="status", pattern="^(pending|delivered)$")] = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=10000)] = 100,
    ) -> Response[Any]:
        """Oldest first; `stuck` keeps the pending ones that failed or wait too long."""
        return await _run(runtime.inbox.deliveries(source=source, stuck=stuck, status=status, limit=limit))

    @get(
        "/{source:str}/{event_id:str}",
        operation_id="showDelivery",
        summary="One delivery and what it produced",
        responses=error_responses(400, 401, 403, 404, 503),
    )
    async def show(
        self,
        runtime: RuntimeDep,
        source: Annotated[str, PathParameter(max_length=64)],
        event_id: Annotated[str, PathParameter(max_length=256)],
    ) -> Response[Any]:
        """Its state, attempts, last error, the run that wrote it and the records it produced."""

        async def job() -> Any:
            row = await runtime.inbox.get(source, event_id)
            if row is None:
                raise LookupError(f"no delivery {event_id!r} of {source!r} in the inbox")
            produced = await runtime.inbox.records_from(f"delivery:{source}:{event_id}")
            row["produced"] = [{"id": rid, "version": version} for _s, rid, version in produced]
            return row

        return await _run(job())

    @post(
        "/replay",
        operation_id="replayDeliveries",
        status_code=200,
        summary="Re-drive deliveries",
        responses=error_responses(400, 401, 403, 413, 503),
    )
    async def replay(
        self, runtime: RuntimeDep, data: Annotated[ReplayRequest, Body(schema_extra=_REPLAY_NAMES_SOMETHING)]
    ) -> Response[Any]:
        """Stuck ones start afresh; delivered ones (body still kept) go through again (idempotent)."""
        if not data.event_ids and not data.stuck:
            return problem(400, "name event_ids (with their source) or ask for stuck=true")
        return await _run(runtime.inbox.replay(source=data.source, event_ids=data.event_ids, stuck=data.stuck))


async def _run(job: Any) -> Response[Any]:
    try:
        return Response(await job)
    except LookupError as exc:
        return problem(404, str(exc))
    except ApexError as exc:
        return problem(503, str(exc), retry_after=5)
