"""Front's List Events API (`GET /events`), read page by page for reconciliation.

Front does not retry rule webhooks and advises listing events to fill gaps. A pass lists
the events emitted since the newest one seen (less an overlap: the listing is eventually
consistent, and re-listed events are deduplicated by the inbox), up to the moment the
pass began: Front recommends a fixed `q[before]` so that pages do not change while they
are read. Front lists newest first and pages with `_pagination.next`; only its
`page_token` is taken from that URL, so the token is never sent to another host.

Each listed event becomes a `FoundDelivery` whose body is the bare event (the shape rule
webhooks deliver, which `receive` reads) and whose id is the event's `evt_…` id, the id
an application webhook of the same event carries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from apex_connector_frontapp.envelope import MAX_DEPTH, microseconds
from apex_connector_frontapp.settings import FrontSettings
from apex_platform.errors import PayloadError, VendorError
from apex_platform.payloads import decode_json_object, json_type
from apex_platform.reconcile import FoundDelivery, ReconcilePage
from apex_platform.vendor_http import TransientFailure, retry_transient, status_error

log = logging.getLogger(__name__)

EVENTS_PATH = "/events"
#: the wait after a 429 that carries no Retry-After (Front's documented example says 20 s)
RATE_LIMIT_BACKOFF = 20.0


@dataclass(frozen=True)
class PassCursor:
    """The reconciler's cursor: `after` is the newest emitted_at of the completed passes;
    a pass in progress also keeps its fixed `before`, the next `page_token` and the newest
    emitted_at it has seen so far. Kept in workflow history: no secret in it."""

    after: float
    before: float | None = None
    page_token: str | None = None
    seen: float | None = None

    def encode(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> PassCursor:
        try:
            doc = json.loads(text)
            cursor = cls(
                after=float(doc["after"]),
                before=None if doc.get("before") is None else float(doc["before"]),
                page_token=None if doc.get("page_token") is None else str(doc["page_token"]),
                seen=None if doc.get("seen") is None else float(doc["seen"]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise VendorError(
                f"frontapp: the stored reconcile cursor {text[:80]!r} is unreadable ({exc}); stop the "
                "reconciler and start it again to list from APEX_FRONTAPP_RECONCILE_LOOKBACK_SECONDS back",
                retryable=False,
            ) from None
        return cursor


def _transient(message: str) -> TransientFailure:
    return TransientFailure(VendorError(message, retryable=True))


def _found(event: object) -> FoundDelivery:
    """The delivery a listed event stands for. An entry without a usable `evt_…` id is
    kept all the same, under a digest of its content (the drain makes it an
    `apex.unparsed` record that names what is wrong)."""
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    event_id = event.get("id") if isinstance(event, dict) else None
    if not (isinstance(event_id, str) and event_id.startswith("evt_") and event_id.isprintable()):
        event_id = "listed:" + hashlib.sha256(body).hexdigest()[:32]
    return FoundDelivery(event_id=event_id, body=body)


def _page_token(next_url: object) -> str | None:
    if next_url is None or next_url == "":
        return None
    if not isinstance(next_url, str):
        raise PayloadError(f"Front List Events '_pagination.next' must be a URL string, got {json_type(next_url)}")
    tokens = parse_qs(urlsplit(next_url).query).get("page_token")
    if not tokens or not tokens[0]:
        raise PayloadError("Front List Events '_pagination.next' has no page_token")
    return tokens[0]


class EventsReader:
    """Reads one List Events page for one configured account."""

    def __init__(
        self,
        settings: FrontSettings,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._transport = transport

    def _where(self, account: str) -> str:
        return f"frontapp account {account!r}: GET {EVENTS_PATH}"

    async def read_page(self, account: str, cursor: str | None) -> ReconcilePage:
        settings = self.settings
        token = settings.token_for(account)
        now = self._clock()
        state = (
            PassCursor.decode(cursor)
            if cursor
            else PassCursor(after=max(0.0, now - settings.reconcile_lookback_seconds))
        )
        if state.before is None:  # a pass begins: its upper bound stays fixed until it ends
            state = replace(state, before=round(now, 3), page_token=None, seen=None)
        assert state.before is not None
        params: dict[str, str | int] = {
            "q[after]": f"{max(0.0, state.after - settings.reconcile_overlap_seconds):.3f}",
            "q[before]": f"{state.before:.3f}",
            "limit": settings.reconcile_page_size,
        }
        if state.page_token:
            params["page_token"] = state.page_token
        where = self._where(account)
        async with httpx.AsyncClient(
            base_url=settings.api_url.rstrip("/"),
            timeout=settings.http_timeout_seconds,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            transport=self._transport,
        ) as client:
            response = await retry_transient(lambda: self._get(client, params, where), attempts=settings.http_attempts)
        if response.status_code == 400 and state.page_token:
            # Front does not say how long a page token lives: a refused one starts the pass
            # again from `after` (what it had listed is in the inbox already)
            log.warning("%s refused the page token of a pass in progress; the pass starts again", where)
            return await self.read_page(account, PassCursor(after=state.after).encode())
        doc = self._document(response, where, token)
        results = doc.get("_results")
        if not isinstance(results, list):
            raise PayloadError(f"{where}: '_results' must be an array, got {json_type(results)}")
        pagination = doc.get("_pagination", {})
        if pagination is None:
            pagination = {}
        if not isinstance(pagination, dict):
            raise PayloadError(f"{where}: '_pagination' must be an object, got {json_type(pagination)}")
        next_token = _page_token(pagination.get("next"))
        if len(results) > settings.reconcile_page_size:
            raise PayloadError(f"{where}: {len(results)} events on a page of limit {settings.reconcile_page_size}")
        seen = state.seen
        for event in results:
            emitted = microseconds(event.get("emitted_at")) if isinstance(event, dict) else None
            if emitted is not None:
                seen = max(seen or 0.0, emitted / 1_000_000)
        deliveries = tuple(_found(event) for event in results)
        if next_token:
            after = replace(state, page_token=next_token, seen=seen)
        else:  # the pass is complete: the next one starts from the newest event seen
            after = PassCursor(after=max(state.after, seen or 0.0))
        return ReconcilePage(
            deliveries=deliveries,
            next_cursor=after.encode(),
            has_more=next_token is not None,
            retry_after=self._spacing(response, now),
        )

    def _spacing(self, response: httpx.Response, now: float) -> float:
        """The wait before the next call: the share of Front's per-company budget this
        reconciler may use, or until the window resets when Front says none is left."""
        wait = 60.0 / self.settings.reconcile_requests_per_minute
        remaining, reset = response.headers.get("x-ratelimit-remaining"), response.headers.get("x-ratelimit-reset")
        try:
            if remaining is not None and int(remaining) <= 0 and reset is not None:
                wait = max(wait, min(float(reset) - now, 3600.0))
        except ValueError:
            pass  # unreadable rate-limit headers only cost the default spacing
        return wait

    async def _get(self, client: httpx.AsyncClient, params: dict[str, Any], where: str) -> httpx.Response:
        try:
            response = await client.get(EVENTS_PATH, params=params)
        except httpx.TimeoutException:
            raise _transient(f"{where} timed out after {self.settings.http_timeout_seconds} s") from None
        except httpx.TransportError as exc:
            raise _transient(f"{where} failed: {type(exc).__name__}: {exc}"[:500]) from None
        if response.status_code >= 500:
            raise TransientFailure(status_error(response, where=where, rate_limit_backoff=RATE_LIMIT_BACKOFF))
        return response

    def _document(self, response: httpx.Response, where: str, token: str) -> dict[str, Any]:
        status = response.status_code
        if status == 401:
            raise VendorError(
                f"{where} answered 401: the API token is missing, revoked or invalid; check "
                "APEX_FRONTAPP_API_TOKEN / APEX_FRONTAPP_API_TOKENS",
                retryable=False,
            )
        if status == 403:
            raise VendorError(
                f"{where} answered 403: the API token may not read events (give it access to the inboxes "
                "whose events are reconciled)",
                retryable=False,
            )
        if status != 200:
            raise status_error(response, where=where, rate_limit_backoff=RATE_LIMIT_BACKOFF, secrets=[token])
        return decode_json_object(response.content, what=f"{where} answer", max_depth=MAX_DEPTH)
