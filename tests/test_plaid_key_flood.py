"""Unauthenticated callers cannot make the server call Plaid at will, nor stall the other
sources: the real Litestar app under uvicorn, the Plaid connector against the fake Plaid
over TCP (which holds every key request unanswered, a slow or rate-limited Plaid), and
signed Front deliveries sent meanwhile.

- A flood of forged JWTs with random kids costs at most APEX_PLAID_KEY_FETCHES_PER_MINUTE
  key requests; the rest are refused (401) without asking Plaid.
- Genuine webhooks signed with a key not cached yet share one fetch, and however many
  wait for it, they hold only the Plaid source's own verification threads.
- Meanwhile Front deliveries are verified and answered: they come back while the Plaid
  requests are still held at the fake (behaviour, not timing).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import FRONT_SECRET, front_headers
from cryptography.hazmat.primitives.asymmetric import ec

from apex_connector_frontapp import FrontConnector, FrontSettings
from apex_connector_plaid import PlaidConnector, PlaidSettings, samples
from apex_connector_plaid.fake_vendor import FakePlaid, FakeVendorServer
from apex_platform import hookimpl
from apex_platform.api import create_app
from apex_platform.runtime import Runtime
from apex_platform.settings import CoreSettings

pytestmark = [pytest.mark.timeout(120)]

CLIENT_ID = "flood-client"
SECRET = "flood-secret-0123456789abcdef"
BUDGET = 5
FORGER = ec.generate_private_key(ec.SECP256R1())
#: a non-trigger webhook: once verified it is accepted for the inbox (503 here: there is none)
PLAID_BODY = samples.webhook_body("item-flood", "ITEM_LOGIN_REQUIRED", webhook_type="ITEM")
FRONT_SYNC = json.dumps({"type": "sync", "authorization": {"id": "cmp_flood"}}).encode()


class Edge:
    def __init__(self, url: str, fake: FakePlaid) -> None:
        self.url = url
        self.fake = fake


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    fake = FakePlaid(CLIENT_ID, SECRET)
    vendor = FakeVendorServer(fake)
    vendor_url = vendor.start()
    plaid = PlaidConnector(
        PlaidSettings(
            base_url=vendor_url,
            client_id=CLIENT_ID,
            secret=SECRET,
            key_fetches_per_minute=BUDGET,
            key_fetch_timeout_seconds=30,
        )
    )
    front = FrontConnector(FrontSettings(signing_secret=FRONT_SECRET))

    class Plugin:
        @hookimpl
        def apex_register_sources(self, register: Callable[[Any], None]) -> None:
            register(plaid)
            register(front)

    runtime = Runtime.build([], modules=[Plugin()], use_entry_points=False, core=CoreSettings(home=tmp_path))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, open_sinks=False), log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield Edge(f"http://127.0.0.1:{port}", fake)
    finally:
        fake.key_hold.clear()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        vendor.stop()


async def wait_until(check: Callable[[], bool], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def front_answers(http: httpx.AsyncClient, n: int) -> list[httpx.Response]:
    """`n` signed Front set-up handshakes, one after the other (verified, then answered 200)."""
    out = []
    for i in range(n):
        headers = {**front_headers(FRONT_SYNC), "X-Front-Challenge": f"challenge-{i}"}
        out.append(await http.post("/webhooks/frontapp", content=FRONT_SYNC, headers=headers, timeout=15))
    return out


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=400))


async def test_forged_kids_cost_at_most_the_budget_and_front_is_answered_meanwhile(edge: Edge) -> None:
    edge.fake.key_hold.set()
    async with client(edge.url) as http:
        flood = [
            asyncio.create_task(
                http.post(
                    "/webhooks/plaid",
                    content=PLAID_BODY,
                    headers=edge.fake.sign(PLAID_BODY, kid=f"forged-{uuid.uuid4()}", private_key=FORGER),
                )
            )
            for _ in range(200)
        ]
        await wait_until(lambda: edge.fake.key_requests >= BUDGET)
        await asyncio.sleep(0.5)  # the rest of the flood has reached the API by now
        fronts = await front_answers(http, 10)
        held = sum(not t.done() for t in flood)
        edge.fake.key_hold.clear()
        answers = await asyncio.gather(*flood)
    assert [r.status_code for r in fronts] == [200] * 10
    assert [r.json()["challenge"] for r in fronts] == [f"challenge-{i}" for i in range(10)]
    assert held >= 1, "Front was answered only after Plaid's key requests were released"
    assert edge.fake.key_requests <= BUDGET
    assert {r.status_code for r in answers} == {401}
    refused = [r for r in answers if "APEX_PLAID_KEY_FETCHES_PER_MINUTE" in r.json()["error"]]
    assert len(refused) >= 200 - BUDGET


async def test_many_genuine_webhooks_waiting_for_one_key_do_not_stall_front(edge: Edge) -> None:
    edge.fake.key_hold.set()
    async with client(edge.url) as http:
        burst = [
            asyncio.create_task(http.post("/webhooks/plaid", content=PLAID_BODY, headers=edge.fake.sign(PLAID_BODY)))
            for _ in range(80)
        ]
        await wait_until(lambda: edge.fake.key_requests >= 1)
        await asyncio.sleep(0.5)  # every verification of the burst is waiting for that fetch
        fronts = await front_answers(http, 10)
        held = sum(not t.done() for t in burst)
        edge.fake.key_hold.clear()
        answers = await asyncio.gather(*burst)
    assert [r.status_code for r in fronts] == [200] * 10
    assert held >= 1, "Front was answered only after Plaid's key request was released"
    assert edge.fake.key_requests == 1  # one fetch for the whole burst
    assert all(r.status_code not in (401, 500) for r in answers), {r.status_code for r in answers}
