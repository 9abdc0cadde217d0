"""Admin endpoints: trace a record, work the dead-letter queue. Bearer-token protected
(`APEX_ADMIN_TOKEN`); disabled when no token is configured."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import PathParameter, QueryParameter

from apex_platform import operations
from apex_platform.api.deps import RuntimeDep
from apex_platform.api.errors import error_responses, problem
from apex_platform.errors import ApexError
from apex_platform.settings import AdminSettings, digest, load

#: dead letter ids are PostgreSQL bigints: a number beyond them is no id (400, not a database
#: error); 2**53 keeps the bound exact for JSON Schema's float numbers (no id ever gets there)
LetterId = Annotated[int, PathParameter(description="Dead letter id", ge=1, le=2**53)]


def bearer_matches(header: str | None, digests: Sequence[bytes]) -> bool:
    """Whether `Authorization: Bearer <secret>` carries one of the secrets whose SHA-256
    `digests` are given. Constant time: every digest is compared (equal lengths, so no
    length leaks), and an empty or missing secret never matches."""
    scheme, _sep, value = (header or "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or not digests:
        return False
    given = digest(value)
    ok = False
    for expected in digests:
        ok |= hmac.compare_digest(given, expected)
    return ok


def is_admin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """The request carries a valid admin token (public endpoints then show their details)."""
    return bearer_matches(connection.headers.get("authorization"), load(AdminSettings).digests())


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    digests = load(AdminSettings).digests()
    if not digests:
        raise PermissionDeniedException("admin endpoints are disabled: set APEX_ADMIN_TOKEN")
    if not bearer_matches(connection.headers.get("authorization"), digests):
        raise NotAuthorizedException("a valid admin bearer token is required")


class AdminController(Controller):
    path = "/v1"
    tags = ["admin"]
    guards = [admin_guard]

    @get(
        "/trace",
        operation_id="traceRecord",
        summary="Where a record is, in every store",
        responses=error_responses(400, 401, 403),
    )
    async def trace(
        self,
        runtime: RuntimeDep,
        source: Annotated[str, QueryParameter(name="source", max_length=64)],
        record_id: Annotated[str, QueryParameter(name="id", max_length=512)],
    ) -> dict[str, Any]:
        """For each installed sink: present or not, and which version; the workflows that wrote it."""
        client = await runtime.connect(lazy=True)
        return await operations.trace(runtime, client, source, record_id)

    @get(
        "/dead-letters",
        operation_id="listDeadLetters",
        summary="Dead letters",
        responses=error_responses(400, 401, 403, 409),
    )
    async def list_letters(
        self,
        runtime: RuntimeDep,
        status: Annotated[str | None, QueryParameter(name="status")] = "open",
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
    ) -> Response[Any]:
        """Failed compensations, oldest first."""
        return await _run(operations.dlq_list(runtime, None if status == "all" else status, limit))

    @get(
        "/dead-letters/{letter_id:int}",
        operation_id="showDeadLetter",
        summary="One dead letter",
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def show(self, runtime: RuntimeDep, letter_id: LetterId) -> Response[Any]:
        """Everything kept to replay it: records, which sinks succeeded and failed, the error."""
        return await _run(operations.dlq_show(runtime, letter_id))

    @post(
        "/dead-letters/{letter_id:int}/replay",
        operation_id="replayDeadLetter",
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def replay(self, runtime: RuntimeDep, letter_id: LetterId) -> Response[Any]:
        """Write the letter's records through the saga again, then mark it replayed."""
        return await _run(operations.dlq_replay(runtime, letter_id))

    @post(
        "/dead-letters/{letter_id:int}/rollback",
        operation_id="rollBackDeadLetter",
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def rollback(self, runtime: RuntimeDep, letter_id: LetterId) -> Response[Any]:
        """Undo the letter's batch where its compensation failed (only where the stores still
        hold that attempt's change), then mark it rolled back."""
        return await _run(operations.dlq_rollback(runtime, letter_id))

    @post(
        "/dead-letters/{letter_id:int}/discard",
        operation_id="discardDeadLetter",
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def discard(self, runtime: RuntimeDep, letter_id: LetterId) -> Response[Any]:
        """Mark a dead letter discarded (it is kept, never deleted)."""
        return await _run(operations.dlq_discard(runtime, letter_id))


async def _run(job: Any) -> Response[Any]:
    try:
        return Response(await job)
    except ApexError as exc:
        status = 404 if str(exc).startswith("no dead letter") else 409
        return problem(status, str(exc))
