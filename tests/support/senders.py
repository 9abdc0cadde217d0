"""Senders that behave like vendors: sign each attempt, retry what was not answered 2xx
with backoff, and remember which deliveries were acknowledged (the promise to check)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from apex_connector_samsara import samples

SAMSARA_SECRET_BYTES = b"samsara-webhook-secret-for-intake-tests"
SAMSARA_SECRET = base64.b64encode(SAMSARA_SECRET_BYTES).decode()


def samsara_headers(body: bytes) -> dict[str, str]:
    """Signed as Samsara documents it (written here, independently of the connector)."""
    ts = str(int(time.time()))
    digest = hmac.new(SAMSARA_SECRET_BYTES, b"v1:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Samsara-Signature": f"v1={digest}", "X-Samsara-Timestamp": ts, "Content-Type": "application/json"}


#: the route of Samsara's documented RouteStopArrival example
SAMSARA_ROUTE = "342341"


def samsara_delivery(event_id: str | None = None) -> tuple[str, bytes]:
    """Samsara's own documented RouteStopArrival example (~4.7 KB), with its own eventId and
    a stop of its own (the stop's id is the eventId): a stop event is a record of the stop
    it describes (`samsara_record_id`), so deliveries that must each land as a record of
    their own arrive at different stops."""
    doc: dict[str, Any] = samples.route_stop_arrival()
    doc["eventId"] = event_id or str(uuid.uuid4())
    doc["data"]["routeStopDetails"]["id"] = doc["eventId"]
    doc["data"]["route"]["stops"][0]["id"] = doc["eventId"]
    return doc["eventId"], json.dumps(doc, separators=(",", ":")).encode()


def samsara_record_id(event_id: str, route: str = SAMSARA_ROUTE) -> str:
    """The record a `samsara_delivery` gives for its stop arrival."""
    return f"route-stop:{route}:{event_id}:arrived"


@dataclass
class Delivery:
    key: str
    path: str
    body: bytes
    sign: Callable[[bytes], dict[str, str]]


@dataclass
class Outcome:
    """What the senders saw: the keys answered 2xx (acknowledged) and every status."""

    acknowledged: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    attempts: int = 0
    retry_after_seen: int = 0
    unacknowledged: set[str] = field(default_factory=set)
    #: the event id the API answered for each acknowledged key (push sources derive their own)
    event_ids: dict[str, str] = field(default_factory=dict)

    def events(self, keys: Iterable[str]) -> list[str]:
        return [self.event_ids.get(k, k) for k in keys]

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def send_all(
    urls: list[str],
    deliveries: list[Delivery],
    *,
    concurrency: int = 32,
    within: float = 300,
    resend_acknowledged: float = 0.0,
    outcome: Outcome | None = None,
    seed: int = 7,
) -> Outcome:
    """Send every delivery until it is answered 2xx (or `within` seconds pass), spreading
    them over `urls` (several API processes), retrying with jittered backoff and the
    server's Retry-After; re-send a share of acknowledged ones, as vendors sometimes do."""
    rng = random.Random(seed)
    out = outcome or Outcome()
    queue: asyncio.Queue[Delivery] = asyncio.Queue()
    for d in deliveries:
        queue.put_nowait(d)
    deadline = time.monotonic() + within

    async def one(http: httpx.AsyncClient, d: Delivery) -> None:
        delay = 0.2
        while time.monotonic() < deadline:
            url = rng.choice(urls)
            out.attempts += 1
            try:
                resp = await http.post(url + d.path, content=d.body, headers=d.sign(d.body))
            except httpx.HTTPError:
                resp = None
            if resp is not None:
                out.count(resp.status_code)
                if 200 <= resp.status_code < 300:
                    out.acknowledged.add(d.key)
                    if resp.headers.get("content-type", "").startswith("application/json"):
                        out.event_ids[d.key] = resp.json().get("event_id") or d.key
                    if rng.random() < resend_acknowledged:  # a vendor re-sending what was answered
                        try:
                            again = await http.post(url + d.path, content=d.body, headers=d.sign(d.body))
                            out.count(again.status_code)
                        except httpx.HTTPError:
                            pass  # the first answer was 2xx: the delivery is acknowledged either way
                    return
                if resp.status_code < 500 and resp.status_code != 429:
                    raise AssertionError(f"{d.key}: answered {resp.status_code}: {resp.text[:300]}")
                if resp.headers.get("retry-after"):
                    out.retry_after_seen += 1
            await asyncio.sleep(delay * (0.5 + rng.random()))
            delay = min(delay * 2, 3.0)
        out.unacknowledged.add(d.key)

    async def worker(http: httpx.AsyncClient) -> None:
        while True:
            try:
                d = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(http, d)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return out
