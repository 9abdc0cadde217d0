"""Error responses: always JSON `{"error": …}` that says what was wrong; and the OpenAPI
description of every status the routes answer besides their success."""

from __future__ import annotations

from typing import Any

from litestar import Response
from litestar.openapi import ResponseSpec
from pydantic import BaseModel, ConfigDict


def problem(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra.pop("retry_after"))
    return Response({"error": message, **extra}, status_code=status, headers=headers)


class ErrorBody(BaseModel):
    """An error answer: `error` from Apex's handlers, `detail` (with `status_code` and
    `extra`) from the framework's own (a guard, parameter validation, a body too large)."""

    model_config = ConfigDict(extra="allow")

    error: str | None = None
    detail: str | None = None
    status_code: int | None = None


_MEANINGS = {
    400: "Malformed: the body, a header or a parameter is wrong (the answer says what)",
    401: "Missing or invalid credentials (signature, API key or admin token)",
    403: "Valid credentials that do not allow this (a key's scope), or the endpoint is disabled",
    404: "No such source, dead letter or delivery",
    409: "The dead letter is in a state that does not allow this",
    413: "The body is larger than APEX_MAX_BODY_BYTES",
    500: "An internal error (logged; the answer names nothing internal)",
    503: "Not available now (the inbox, Temporal, a misconfigured source, or the server's concurrency "
    "limit); nothing was accepted, retry later (Retry-After)",
}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """`responses=` of a route handler: what each of its error statuses means."""
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_MEANINGS[code], generate_examples=False)
        for code in codes
    }
