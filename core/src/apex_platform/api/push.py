"""The push API: our own clients (LLM agents, applications) send records with an API key."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.params import PathParameter

from apex_platform import metrics
from apex_platform.api.deps import RuntimeDep
from apex_platform.api.errors import problem
from apex_platform.api.ingest import accept
from apex_platform.contracts import PushSource
from apex_platform.errors import PayloadError
from apex_platform.settings import PushSettings, load


@lru_cache(maxsize=1)
def _key_digests() -> tuple[bytes, ...]:
    return tuple(load(PushSettings).digests())


def authorized(header: str | None) -> bool:
    """Constant-time check of `Authorization: Bearer <key>` against every configured key
    (compared as SHA-256 digests, so key lengths leak nothing)."""
    if not header:
        return False
    scheme, _sep, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        return False
    given = hashlib.sha256(key.strip().encode()).digest()
    ok = False
    for digest in _key_digests():
        ok |= hmac.compare_digest(given, digest)
    return ok


class PushController(Controller):
    path = "/v1/records"
    tags = ["ingest"]

    @post("/{source:str}", operation_id="pushRecords", status_code=202, summary="Push a record (API key)")
    async def push(
        self,
        source: Annotated[str, PathParameter(max_length=64)],
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
    ) -> Response[Any]:
        """Authenticate with `Authorization: Bearer <key>` (APEX_API_KEYS), decode with the
        source's connector, and commit it to the inbox (202 / 200 duplicate / 503)."""
        connector = runtime.registry.sources.get(source)
        if connector is None or connector.mode != "push" or not isinstance(connector, PushSource):
            return problem(404, f"no push source named {source!r} is installed")
        if not _key_digests():
            return problem(401, "the push API is disabled: no API key is configured (set APEX_API_KEYS)")
        if not authorized(request.headers.get("authorization")):
            metrics.WEBHOOKS.labels(source, "unauthorized").inc()
            return problem(401, "a valid API key is required: Authorization: Bearer <key>")
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            event = connector.receive(headers, body)
        except PayloadError as exc:
            metrics.WEBHOOKS.labels(source, "malformed").inc()
            return problem(400, str(exc), source=source)
        return await accept(runtime, connector, event, headers, body)
