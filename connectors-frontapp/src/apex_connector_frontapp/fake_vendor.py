"""A fake Front for tests and the demo: List Events over real HTTP, and a sender of signed
application webhooks that can drop deliveries (Front does not retry rule webhooks).

`GET /events` serves the documented shape ``{_pagination: {next}, _links: {self},
_results: [event…]}``, newest first, filtered by ``q[after]``, ``q[before]`` and
``q[types][]``, ``limit`` (default 50, at most 100) and ``page_token`` from
``_pagination.next``. Every answer carries ``X-RateLimit-Limit/Remaining/Reset``;
injectable faults: the next n calls 429 with ``Retry-After``, or 5xx. Events can be
`hide`-den (listed only later: the listing is eventually consistent).

`raw_body` serves one answer verbatim instead (a documented example).
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Litestar, Request, Response, get

from apex_connector_frontapp import samples
from apex_connector_frontapp.events_api import EVENTS_PATH
from apex_platform.testing.vendor_server import FakeVendorServer


@dataclass
class FakeFront:
    """State and behaviour of the fake; change the fault fields between calls."""

    token: str = "fake-front-token"  # noqa: S105 - a fake server's token
    rate_limit: int = 100
    #: the next n calls answer 429 with `retry_after`
    rate_limit_next: int = 0
    retry_after: str = "1"
    #: the next n calls answer 503
    fail_next_5xx: int = 0
    #: served verbatim (status 200) by the next call, when set
    raw_body: bytes | None = None
    #: seconds each call takes (to stop a reader mid-pass in tests)
    delay: float = 0.0
    base_url: str = "http://127.0.0.1"
    events: list[dict[str, Any]] = field(default_factory=list)
    hidden: set[str] = field(default_factory=set)
    #: (query parameters, status) of every call
    calls: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def emit(self, event: dict[str, Any]) -> None:
        """Front records an event (it is listed from now on, unless hidden)."""
        with self._lock:
            self.events.append(copy.deepcopy(event))

    def hide(self, event_id: str) -> None:
        self.hidden.add(event_id)

    def reveal(self, event_id: str) -> None:
        self.hidden.discard(event_id)

    def statuses(self) -> list[int]:
        return [status for _, status in self.calls]

    # -- the endpoint -------------------------------------------------------------------------

    def list_events(self, authorization: str | None, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            status, body, headers = self._list(authorization, query)
            self.calls.append(({k: v if len(v) > 1 else v[0] for k, v in query.items()}, status))
        return status, body, headers

    def _limits(self, remaining: int) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset": str(int(time.time()) + 60),
        }

    @staticmethod
    def _error(status: int, title: str, message: str) -> dict[str, Any]:
        return {"_error": {"status": status, "title": title, "message": message}}

    def _list(self, authorization: str | None, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        if authorization != f"Bearer {self.token}":
            return 401, self._error(401, "Unauthorized", "Missing or invalid token"), {}
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            headers = {**self._limits(0), "Retry-After": self.retry_after}
            return 429, self._error(429, "Too Many Requests", "Rate limit exceeded"), headers
        if self.fail_next_5xx > 0:
            self.fail_next_5xx -= 1
            return 503, self._error(503, "Service Unavailable", "Try again later"), {}
        if self.raw_body is not None:
            raw, self.raw_body = self.raw_body, None
            return 200, raw, self._limits(self.rate_limit - 1)

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        try:
            after = float(one("q[after]") or "-inf")
            before = float(one("q[before]") or "inf")
            limit = int(one("limit") or 50)
            offset = int(base64.urlsafe_b64decode(one("page_token") or "MA==").decode()) if one("page_token") else 0
        except ValueError:
            return 400, self._error(400, "Bad Request", "Invalid query parameters"), {}
        if not 1 <= limit <= 100:
            return 400, self._error(400, "Bad Request", "limit must be between 1 and 100"), {}
        types = set(query.get("q[types][]", []))
        listed = [
            e
            for e in self.events
            if after <= float(e["emitted_at"]) < before
            and e["id"] not in self.hidden
            and (not types or e.get("type") in types)
        ]
        listed.sort(key=lambda e: float(e["emitted_at"]), reverse=True)  # newest first, as Front
        page = listed[offset : offset + limit]
        pagination: dict[str, Any] = {}
        if offset + limit < len(listed):
            params = {k: v for k, v in query.items() if k != "page_token"}
            token = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            pairs = [(k, x) for k, vs in params.items() for x in vs] + [("page_token", token)]
            pagination["next"] = str(httpx.URL(f"{self.base_url}{EVENTS_PATH}", params=pairs))
        body: dict[str, Any] = {
            "_pagination": pagination,
            "_links": {"self": f"{self.base_url}{EVENTS_PATH}"},
            "_results": page,
        }
        return 200, body, self._limits(self.rate_limit - 1)


def create_app(fake: FakeFront) -> Litestar:
    """The Litestar app serving `fake`."""

    @get(EVENTS_PATH, sync_to_thread=False)
    def list_events(request: Request[Any, Any, Any]) -> Response[Any]:
        query = {key: request.query_params.getall(key) for key in request.query_params}
        status, body, headers = fake.list_events(request.headers.get("authorization"), query)
        if isinstance(body, bytes):
            return Response(body, status_code=status, headers=headers, media_type="application/json")
        return Response(body, status_code=status, headers=headers)

    return Litestar(route_handlers=[list_events], logging_config=None, openapi_config=None)


class FakeServer(FakeVendorServer):
    """Serves a `FakeFront` on 127.0.0.1 (a free port unless `port` is given) in a background thread."""

    def __init__(self, fake: FakeFront | None = None, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.fake = fake or FakeFront()
        super().__init__(create_app(self.fake), name="fake Front", host=host, port=port)

    def start(self) -> str:
        url = super().start()
        self.fake.base_url = url
        return url


def application_webhook(
    event: dict[str, Any], webhook_type: str, company_id: str = samples.COMPANY_ID
) -> dict[str, Any]:
    """The application webhook envelope Front posts for `event`."""
    return {"type": webhook_type, "authorization": {"id": company_id}, "payload": event}


async def send_webhook(url: str, envelope: dict[str, Any], secret: str) -> httpx.Response:
    """POST one signed application webhook to `url`, as Front does."""
    body = json.dumps(envelope).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, content=body, headers=samples.sign(body, secret))
