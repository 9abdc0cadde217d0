"""A fake SONAR API for tests and the demo: a small Litestar app on a real port.

Serves ``POST /Credential/authenticate`` (``{"token"}``), ``GET /data/{INDEX}/{GRANULARITY}/{date}``
and ``…/{start}/{end}`` (lists of ``{"ticker", "granularity", "data_Timestamp", "data_Value"}``),
a sliding-window rate limit (100 requests per 60 s by default, configurable) answering 429
with Retry-After, failures on demand, value revisions, and signed alert deliveries.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from litestar import Litestar, Request, Response, get, post
from litestar.params import Parameter

from apex_connector_sonar import samples
from apex_platform.testing.vendor_server import FakeVendorServer


@dataclass
class Fault:
    status: int
    remaining: int
    retry_after: float | None = None


# Throw-away credentials known only to this fake.
@dataclass
class FakeSonar:
    username: str = "sonar-api@apex-logistics.example"
    password: str = "fake-sonar-password"  # noqa: S105
    webhook_secret: str = "fake-sonar-webhook-secret"  # noqa: S105
    #: the rate limit: at most `limit` accepted requests in any `window` seconds
    limit: int = 100
    window: float = 60.0
    #: the last date with published data (None: today, UTC)
    published_until: date | None = None
    include_revision_field: bool = False
    #: accepted or refused requests as (monotonic time, method, path, status)
    log: list[tuple[float, str, str, int]] = field(default_factory=list)
    _tokens: set[str] = field(default_factory=set)
    _faults: list[Fault] = field(default_factory=list)
    _revisions: dict[tuple[str, str, date], tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.log.clear()
            self._tokens.clear()
            self._faults.clear()
            self._revisions.clear()
        self.limit, self.window, self.published_until, self.include_revision_field = 100, 60.0, None, False

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None) -> None:
        """The next `times` data requests answer `status`."""
        with self._lock:
            self._faults.append(Fault(status, times, retry_after))

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def revise(self, ticker: str, day: date, value: float) -> None:
        """SONAR recomputed a value: serve `value` (with a higher revision number) from now on."""
        index, granularity = ticker.split(".")
        with self._lock:
            _, rev = self._revisions.get((index, granularity, day), (0.0, 0))
            self._revisions[(index, granularity, day)] = (value, rev + 1)

    def value(self, index: str, granularity: str, day: date) -> tuple[float, int]:
        with self._lock:
            revised = self._revisions.get((index, granularity, day))
        return revised if revised is not None else (samples.series_value(index, granularity, day), 0)

    def accepted(self, path_contains: str = "") -> list[tuple[float, str]]:
        with self._lock:
            return [(t, p) for t, _, p, s in self.log if s != 429 and path_contains in p]

    def statuses(self, path_contains: str = "") -> list[int]:
        with self._lock:
            return [s for _, _, p, s in self.log if path_contains in p]

    def max_in_window(self, window: float | None = None) -> int:
        """The most accepted requests the server saw in any window of `window` seconds."""
        window = self.window if window is None else window
        times = sorted(t for t, _ in self.accepted())
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def alert(self, doc: dict[str, Any], **kwargs: Any) -> tuple[bytes, dict[str, str]]:
        """A signed alert delivery: (body, headers); `kwargs` as `samples.sign_headers`."""
        body = samples.encode(doc)
        secret = kwargs.pop("secret", self.webhook_secret)
        return body, samples.sign_headers(body, secret, **kwargs)

    # -- request handling -----------------------------------------------------------------

    def admit(self, method: str, path: str) -> float | None:
        """Rate limiting: None when admitted, else the seconds until a slot frees up."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t, _, _, s in self.log if s != 429 and t > now - self.window]
            if len(recent) >= self.limit:
                self.log.append((now, method, path, 429))
                return max(0.0, min(recent) + self.window - now)
        return None

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append((time.monotonic(), method, path, status))

    def authenticate(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or body.get("username") != self.username or body.get("password") != self.password:
            return 401, {"message": "Invalid username or password"}
        token = "sonar-" + secrets.token_hex(16)
        with self._lock:
            self._tokens.add(token)
        return 200, {"token": token, "expiration": (datetime.now(UTC) + timedelta(days=365)).isoformat()}

    def data(
        self, auth: str, index: str, granularity: str, start: str, end: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        with self._lock:
            known = token in self._tokens
            fault = next((f for f in self._faults if f.remaining > 0), None)
            if known and fault is not None:
                fault.remaining -= 1
        if not known:
            return 401, {"message": "Authorization has been denied for this request."}, {}
        if fault is not None:
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return fault.status, {"message": "injected failure"}, extra
        try:
            first, last = date.fromisoformat(start), date.fromisoformat(end or start)
        except ValueError:
            return 400, {"message": "Dates must be yyyy-mm-dd"}, {}
        if last < first or (last - first).days > 366:
            return 400, {"message": "Invalid date range"}, {}
        until = self.published_until or datetime.now(UTC).date()
        points = []
        day = first
        while day <= min(last, until):
            value, rev = self.value(index, granularity, day)
            point: dict[str, Any] = {
                "ticker": index,
                "granularity": granularity,
                "data_Timestamp": f"{day.isoformat()}T00:00:00",
                "data_Value": value,
            }
            if self.include_revision_field:
                point["data_Revision"] = rev
            points.append(point)
            day += timedelta(days=1)
        return 200, points, {}


def create_app(state: FakeSonar) -> Litestar:
    def limited(request: Request[Any, Any, Any]) -> Response[Any] | None:
        wait = state.admit(request.method, request.url.path)
        if wait is None:
            return None
        return Response(
            {"message": "API rate limit exceeded"}, status_code=429, headers={"Retry-After": str(math.ceil(wait))}
        )

    @post("/Credential/authenticate", status_code=200)
    async def authenticate(request: Request[Any, Any, Any]) -> Response[Any]:
        if (refused := limited(request)) is not None:
            return refused
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001 - a bad body is the client's problem
            body = None
        status, doc = state.authenticate(body)
        state.record("POST", request.url.path, status)
        return Response(doc, status_code=status)

    async def serve_data(
        request: Request[Any, Any, Any], index: str, granularity: str, start: str, end: str | None
    ) -> Response[Any]:
        if (refused := limited(request)) is not None:
            return refused
        status, doc, extra = state.data(request.headers.get("authorization", ""), index, granularity, start, end)
        state.record("GET", request.url.path, status)
        return Response(doc, status_code=status, headers=extra)

    @get("/data/{index:str}/{granularity:str}/{start:str}")
    async def one_day(
        request: Request[Any, Any, Any],
        index: Annotated[str, Parameter()],
        granularity: Annotated[str, Parameter()],
        start: Annotated[str, Parameter()],
    ) -> Response[Any]:
        return await serve_data(request, index, granularity, start, None)

    @get("/data/{index:str}/{granularity:str}/{start:str}/{end:str}")
    async def date_range(
        request: Request[Any, Any, Any],
        index: Annotated[str, Parameter()],
        granularity: Annotated[str, Parameter()],
        start: Annotated[str, Parameter()],
        end: Annotated[str, Parameter()],
    ) -> Response[Any]:
        return await serve_data(request, index, granularity, start, end)

    return Litestar([authenticate, one_day, date_range], debug=False)


def start(state: FakeSonar | None = None) -> tuple[FakeSonar, FakeVendorServer]:
    """A running fake SONAR API: its state and server (the API base URL is ``server.base_url``)."""
    state = state or FakeSonar()
    server = FakeVendorServer(create_app(state), name="fake SONAR")
    server.start()
    return state, server
