"""The push API: our own clients (LLM agents, applications) send records with an API key."""

from __future__ import annotations

import hmac
from functools import lru_cache
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, post
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter

from apex_platform import metrics, rollout
from apex_platform.api.admin import bearer_matches
from apex_platform.api.deps import RuntimeDep
from apex_platform.api.errors import error_responses, problem
from apex_platform.contracts import PushSource
from apex_platform.errors import PayloadError
from apex_platform.settings import PushSettings, digest, load


@lru_cache(maxsize=1)
def _key_scopes() -> dict[bytes, frozenset[str] | None]:
    return load(PushSettings).scopes()


Verdict = Literal["allowed", "unauthorized", "forbidden"]


def authorize(header: str | None, source: str) -> Verdict:
    """Constant-time check of `Authorization: Bearer <key>` against every configured key
    (compared as SHA-256 digests, so key lengths leak nothing), then of the key's scope:
    `forbidden` when the key is valid but may not push to `source`."""
    scopes = _key_scopes()
    if not bearer_matches(header, list(scopes)):
        return "unauthorized"
    given = digest(header.partition(" ")[2].strip()) if header else b""
    allowed = next(sources for key, sources in scopes.items() if hmac.compare_digest(key, given))
    return "allowed" if allowed is None or source in allowed else "forbidden"


def authorized(header: str | None) -> bool:
    """A valid key for some push source (kept for callers of the unscoped check)."""
    return bearer_matches(header, list(_key_scopes()))


class PushController(Controller):
    path = "/v1/records"
    tags = ["ingest"]

    @post(
        "/{source:str}",
        operation_id="pushRecords",
        status_code=202,
        summary="Push a record (API key)",
        description="200: a duplicate; 202: accepted. Credentials are checked before the source is looked up.",
        responses={
            200: ResponseSpec(data_container=dict[str, Any], description="A duplicate: landed already"),
            **error_responses(400, 401, 403, 404, 413, 503),
        },
    )
    async def push(
        self,
        source: Annotated[str, PathParameter(max_length=64)],
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
    ) -> Response[Any]:
        """Authenticate with `Authorization: Bearer <key>` (APEX_API_KEYS; a key may be scoped to
        some sources: 403 elsewhere), decode with the source's connector, and commit it to the
        inbox (202 / 200 duplicate / 503)."""
        # credentials first: without a valid key nobody learns which sources exist
        if not _key_scopes():
            return problem(401, "the push API is disabled: no API key is configured (set APEX_API_KEYS)")
        connector = runtime.registry.sources.get(source)
        known = connector is not None and connector.mode == "push" and isinstance(connector, PushSource)
        verdict = authorize(request.headers.get("authorization"), source)
        if verdict == "unauthorized":
            metrics.WEBHOOKS.labels(source if known else "unknown", "unauthorized").inc()
            return problem(401, "a valid API key is required: Authorization: Bearer <key>")
        if verdict == "forbidden":
            metrics.WEBHOOKS.labels(source if known else "unknown", "forbidden").inc()
            return problem(403, f"this API key may not push to {source!r} (see its scope in APEX_API_KEYS)")
        if not known or not isinstance(connector, PushSource):
            return problem(404, f"no push source named {source!r} is installed")
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            event = connector.receive(headers, body)
        except PayloadError as exc:
            metrics.WEBHOOKS.labels(source, "malformed").inc()
            return problem(400, str(exc), source=source)
        # the inbox, or (APEX_DURABLE_ROLLOUT below 100) a direct saga write for some records
        return await rollout.push(runtime, connector, event, headers, body)
