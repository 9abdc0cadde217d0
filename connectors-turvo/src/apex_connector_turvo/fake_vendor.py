"""A fake Turvo public API for tests and the demo: a small Litestar app on a real port.

Serves ``POST /v1/oauth/token`` (password and refresh_token grants, expiring tokens,
``x-api-key`` checked, client credentials in the JSON body only: a query string holding
credentials is refused), ``GET /v1/{shipments|orders|carriers|customers|locations}/{id}``
(``{"Status": "SUCCESS", "details": …}`` or 404), ``GET /v1/{collection}/list`` (``updated``
filters, ``start`` / ``pageSize`` paging), entities the API user may not see (404, left out
of lists), failures on demand (429 with Retry-After, 5xx), token revocation, and
token-authenticated webhook deliveries to an Apex API.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import httpx
from litestar import Litestar, Request, Response, get, post
from litestar.params import Parameter

from apex_connector_turvo import samples
from apex_platform.testing.vendor_server import FakeVendorServer


@dataclass
class Fault:
    status: int
    remaining: int
    retry_after: float | None = None
    path_contains: str = ""


# Throw-away credentials known only to this fake.
@dataclass
class FakeTurvo:
    """State of the fake tenant. Methods are safe to call from the test thread."""

    api_key: str = "fake-turvo-api-key"
    client_id: str = "publicapi"
    client_secret: str = "fake-client-secret"  # noqa: S105
    username: str = "api@apex-logistics.example"
    password: str = "fake-password"  # noqa: S105
    webhook_token: str = "fake-webhook-token"  # noqa: S105
    token_ttl_seconds: float = 3600.0
    issue_refresh_tokens: bool = True
    entities: dict[str, dict[str, dict[str, Any]]] = field(default_factory=samples.entities)
    #: (collection, id) the API user may not see: read as 404 and left out of lists, as a
    #: missing permission looks from the API (the entity is not deleted)
    hidden: set[tuple[str, str]] = field(default_factory=set)
    #: every request as (method, path, status)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    #: the query parameters of every list request
    list_queries: list[dict[str, str]] = field(default_factory=list)
    #: while true, `send_webhook` delivers nothing (Turvo's webhooks are lost for a while)
    drop_webhooks: bool = False
    #: the webhook bodies dropped so far
    dropped: list[dict[str, Any]] = field(default_factory=list)
    #: every token grant served, by grant type
    grants: list[str] = field(default_factory=list)
    #: the query parameters of every token request (credentials belong in the body)
    token_queries: list[dict[str, str]] = field(default_factory=list)
    _access: dict[str, float] = field(default_factory=dict)
    _refresh: set[str] = field(default_factory=set)
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control ----------------------------------------------------------------------------

    def fail_next(
        self, status: int, times: int = 1, *, retry_after: float | None = None, path_contains: str = ""
    ) -> None:
        """The next `times` entity reads (whose path contains `path_contains`) answer `status`."""
        with self._lock:
            self._faults.append(Fault(status, times, retry_after, path_contains))

    def reset(self) -> None:
        """Back to the sample entities, no tokens, no faults, an empty log."""
        with self._lock:
            self.entities = samples.entities()
            self.hidden.clear()
            self.log.clear()
            self.list_queries.clear()
            self.dropped.clear()
            self.grants.clear()
            self.token_queries.clear()
            self._access.clear()
            self._refresh.clear()
            self._faults.clear()
        self.drop_webhooks = False
        self.token_ttl_seconds = 3600.0
        self.issue_refresh_tokens = True

    def forget_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()

    def revoke_access_tokens(self) -> None:
        """Every issued access token becomes invalid (refresh tokens stay valid)."""
        with self._lock:
            self._access.clear()

    def put(self, collection: str, entity: dict[str, Any]) -> None:
        with self._lock:
            self.entities.setdefault(collection, {})[str(entity["id"])] = entity

    def delete(self, collection: str, entity_id: object) -> None:
        with self._lock:
            self.entities.get(collection, {}).pop(str(entity_id), None)

    def hide(self, collection: str, entity_id: object) -> None:
        """The API user loses its permission on one entity: 404 for it, nothing else changes."""
        with self._lock:
            self.hidden.add((collection, str(entity_id)))

    def statuses(self, path_contains: str = "") -> list[int]:
        with self._lock:
            return [status for _, path, status in self.log if path_contains in path]

    def webhook(
        self, doc: dict[str, Any], *, token: str | None = None, header: str = "Authorization"
    ) -> tuple[bytes, dict[str, str]]:
        """A delivery as Turvo's webhook profile would send it: (body, headers)."""
        return samples.encode(doc), samples.webhook_headers(token or self.webhook_token, header)

    def send_webhook(self, apex_url: str, doc: dict[str, Any], **kwargs: Any) -> httpx.Response | None:
        """Deliver a webhook to an Apex API; None when webhooks are being dropped."""
        if self.drop_webhooks:
            with self._lock:
                self.dropped.append(doc)
            return None
        body, headers = self.webhook(doc, **kwargs)
        return httpx.post(f"{apex_url.rstrip('/')}/webhooks/turvo", content=body, headers=headers, timeout=30)

    # -- request handling -----------------------------------------------------------------

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append((method, path, status))

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.path_contains in path:
                    fault.remaining -= 1
                    return fault
        return None

    def _issue(self) -> dict[str, Any]:
        access = "at-" + secrets.token_hex(12)
        doc: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": int(self.token_ttl_seconds),
            "scope": "read trust write",
        }
        with self._lock:
            self._access[access] = time.time() + self.token_ttl_seconds
            if self.issue_refresh_tokens:
                refresh = "rt-" + secrets.token_hex(12)
                self._refresh.add(refresh)
                doc["refresh_token"] = refresh
        return doc

    def token(self, headers: dict[str, str], query: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.token_queries.append(dict(query))
        if headers.get("x-api-key") != self.api_key:
            return 403, {"message": "Forbidden"}
        if set(query) & {"client_secret", "password", "refresh_token"}:
            # the token request carries its credentials in the JSON body, never in the URL
            return 400, {"error": "invalid_request", "error_description": "credentials in the query string"}
        client_id = body.get("client_id")
        client_secret = body.get("client_secret")
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Bad client credentials"}
        grant = body.get("grant_type")
        if grant == "password":
            if body.get("username") != self.username or body.get("password") != self.password:
                return 400, {"error": "invalid_grant", "error_description": "Bad credentials"}
        elif grant == "refresh_token":
            with self._lock:
                known = body.get("refresh_token") in self._refresh
            if not known:
                return 401, {"error": "invalid_token", "error_description": "Invalid refresh token"}
        else:
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            self.grants.append(str(grant))
        return 200, self._issue()

    def read(
        self, headers: dict[str, str], collection: str, entity_id: str, path: str, query: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        if headers.get("x-api-key") != self.api_key:
            return 403, {"message": "Forbidden"}, {}
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        with self._lock:
            expires = self._access.get(token)
        if expires is None or expires < time.time():
            return 401, {"error": "invalid_token", "error_description": "Access token expired"}, {}
        fault = self._fault_for(path)
        if fault is not None:
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return fault.status, {"Status": "ERROR", "details": {"errorMessage": "injected failure"}}, extra
        if entity_id == "list":
            status, doc = self.listing(collection, query or {})
            return status, doc, {}
        with self._lock:
            entity = self.entities.get(collection, {}).get(entity_id)
            if (collection, entity_id) in self.hidden:
                entity = None
        if entity is None:
            return (
                404,
                {
                    "Status": "ERROR",
                    "details": {"errorCode": "NOT_FOUND", "errorMessage": f"{collection} {entity_id} not found"},
                },
                {},
            )
        return 200, {"Status": "SUCCESS", "details": entity}, {}

    def listing(self, collection: str, query: dict[str, str]) -> tuple[int, Any]:
        """``GET /v1/{collection}/list``: ``updated[gte]`` / ``updated[lte]`` filters and
        ``start`` / ``pageSize`` offset paging, sorted by update time then id, in the envelope
        public integrations show: ``details.pagination`` and ``details.<collection>``."""
        with self._lock:
            self.list_queries.append(dict(query))
            items = [
                copy.deepcopy(e)
                for i, e in self.entities.get(collection, {}).items()
                if (collection, i) not in self.hidden
            ]
        try:
            start = int(query.get("start", "0"))
            size = int(query.get("pageSize", "24"))
            since = _iso_us(query["updated[gte]"]) if "updated[gte]" in query else None
            until = _iso_us(query["updated[lte]"]) if "updated[lte]" in query else None
        except (ValueError, TypeError):
            return 400, {"Status": "ERROR", "details": {"errorMessage": "bad filter"}}
        if start < 0 or not 0 < size <= 500:
            return 400, {"Status": "ERROR", "details": {"errorMessage": "bad paging"}}

        def updated(entity: dict[str, Any]) -> int:
            return _iso_us(entity.get("updated")) or 0

        chosen = [e for e in items if (since is None or updated(e) >= since) and (until is None or updated(e) <= until)]
        chosen.sort(key=lambda e: (updated(e), str(e.get("id"))))
        page = chosen[start : start + size]
        pagination = {
            "start": start,
            "pageSize": size,
            "totalRecordsInPage": len(page),
            "moreAvailable": start + size < len(chosen),
        }
        return 200, {"Status": "SUCCESS", "details": {"pagination": pagination, collection: page}}


def _iso_us(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1_000_000)


def create_app(state: FakeTurvo) -> Litestar:
    @post("/v1/oauth/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001 - a bad body is the client's problem
            body = {}
        status, doc = state.token(
            {k.lower(): v for k, v in request.headers.items()},
            dict(request.query_params),
            body if isinstance(body, dict) else {},
        )
        state._record("POST", request.url.path, status)
        return Response(doc, status_code=status)

    @get("/v1/{collection:str}/{entity_id:str}")
    async def read(
        request: Request[Any, Any, Any],
        collection: Annotated[str, Parameter()],
        entity_id: Annotated[str, Parameter()],
    ) -> Response[Any]:
        status, doc, extra = state.read(
            {k.lower(): v for k, v in request.headers.items()},
            collection,
            entity_id,
            request.url.path,
            dict(request.query_params),
        )
        state._record("GET", request.url.path, status)
        return Response(doc, status_code=status, headers=extra)

    return Litestar([token, read], debug=False)


def start(state: FakeTurvo | None = None) -> tuple[FakeTurvo, FakeVendorServer]:
    """A running fake Turvo: its state and server; the API base URL is ``server.base_url + "/v1"``."""
    state = state or FakeTurvo()
    server = FakeVendorServer(create_app(state), name="fake Turvo")
    server.start()
    return state, server
