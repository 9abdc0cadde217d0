"""The connector inside core's PollWorkflow (real Temporal dev server, in-process worker,
memory sinks) and the webhook path over real HTTP (the Litestar API under uvicorn)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from apex_connector_plaid import PlaidConnector, PlaidSettings, samples
from apex_connector_plaid.cursor import SyncCursor
from apex_connector_plaid.fake_vendor import Change, FakeItem, FakePlaid, FakeVendorServer
from apex_platform.models import Record, RecordKey
from apex_platform.pollers import poller_id, start_poller
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.client import task_queue
from apex_platform.temporal.inputs import PollInput, PollState
from apex_platform.temporal.workflows import PollWorkflow
from apex_platform.testing.inbox import produced, wait_delivered
from apex_platform.testing.sinks import FaultySink, MemorySink
from apex_platform.testing.stack import serving_app
from apex_platform.testing.waiting import wait_until
from apex_platform.testing.worker import WorkerHarness, build_runtime, running_worker

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

CLIENT_ID = "wf-client"
SECRET = "wf-secret-0f1e2d3c"


class ShiftedClock:
    """The connector's clock (the API's and the worker's): real time plus `offset`, so a test
    can stand a day later without waiting a day."""

    offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


CLOCK = ShiftedClock()


class Env:
    def __init__(
        self, fake: FakePlaid, url: str, connector: PlaidConnector, client: Client, sink: FaultySink, prefix: str
    ) -> None:
        self.fake = fake
        self.url = url
        self.connector = connector
        self.client = client
        self.sink = sink
        self.prefix = prefix
        self.temporal = TemporalSettings(task_queue_prefix=prefix, activity_heartbeat_seconds=5)

    def new_item(self, changes: list[Change]) -> str:
        item = f"item-{uuid.uuid4().hex[:12]}"
        self.fake.add_item(FakeItem(item, f"access-sandbox-{uuid.uuid4()}", samples.demo_accounts(), changes))
        return item

    def rows(self, item: str) -> dict[str, Record]:
        rows: dict[RecordKey, Record] = self.sink.inner.rows  # type: ignore[attr-defined]
        return {
            k.id: r
            for k, r in list(rows.items())
            if r.kind == "plaid.transaction" and (r.attributes.get("item_id") == item or r.deleted)
        }

    def live(self, item: str) -> dict[str, Record]:
        return {k: r for k, r in self.rows(item).items() if not r.deleted}

    async def run_once(self, item: str) -> PollState:
        handle: WorkflowHandle[Any, PollState] = await start_poller(
            self.client, self.connector, item, self.temporal, once=True
        )
        return await handle.result()


def txn(tid: str, amount: float = 10.0, **more: Any) -> dict[str, Any]:
    return samples.transaction(
        tid, samples.FUEL_CARD, amount, "2026-03-02", more.pop("name", f"FUEL {tid}"), merchant_name="Pilot Flying J",
        merchant_entity_id="merchant-pilot", category=samples.FUEL, **more,
    )  # fmt: skip


def changes(prefix: str, n: int) -> list[Change]:
    """n added, then t1 modified and t2 removed: n + 2 changes."""
    out: list[Change] = [("added", txn(f"{prefix}-t{i}", 10.0 + i)) for i in range(n)]
    out.append(("modified", txn(f"{prefix}-t1", 99.5, name="CORRECTED")))
    out.append(("removed", {"transaction_id": f"{prefix}-t2", "account_id": samples.FUEL_CARD}))
    return out


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakePlaid, str]]:
    fake = FakePlaid(CLIENT_ID, SECRET)
    server = FakeVendorServer(fake)
    url = server.start()
    yield fake, url
    server.stop()


@pytest.fixture(scope="module")
async def env(
    apex_temporal_server: Any,
    apex_postgres_server: Any,
    fake_server: tuple[FakePlaid, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Env]:
    fake, url = fake_server
    settings = PlaidSettings(base_url=url, client_id=CLIENT_ID, secret=SECRET, page_size=2)
    # Tokens come from the fake (a "vault"): every Item added by a test is known at once.
    connector = PlaidConnector(settings, token_provider=lambda item: fake.items[item].access_token, clock=CLOCK)
    sink = FaultySink(MemorySink("memory"))

    prefix = f"plaid{uuid.uuid4().hex[:8]}"
    home = tmp_path_factory.mktemp("plaid-worker")
    async with running_worker(
        apex_temporal_server.address,
        home,
        sources=[connector],
        sinks=[sink],
        priorities=["P1"],
        prefix=prefix,
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        e = Env(fake, url, connector, harness.client, sink, prefix)
        e.harness, e.home = harness, home  # type: ignore[attr-defined]
        yield e


async def test_multi_page_sync_lands_exactly_the_vendors_final_state(env: Env) -> None:
    item = env.new_item(changes("a", 7))  # 9 changes, 2 per page: 5 pages
    state = await env.run_once(item)
    assert (state.pages, state.restarts) == (5, 0)
    truth = env.fake.final_state(item)
    assert set(env.live(item)) == set(truth) == {f"a-t{i}" for i in (0, 1, 3, 4, 5, 6)}
    assert env.live(item)["a-t1"].attributes["amount"] == 99.5
    assert env.rows(item)["a-t2"].deleted
    assert SyncCursor.decode(state.cursor).plaid == env.fake._cursor(item, 9)
    for account in (samples.CHECKING, samples.FUEL_CARD):
        assert env.sink.inner.rows[RecordKey("plaid", account)].kind == "plaid.account"  # type: ignore[attr-defined]


async def test_mutation_during_pagination_restarts_from_the_loops_first_cursor(env: Env) -> None:
    item = env.new_item(changes("m", 5))  # 7 changes: 4 pages
    env.fake.mutation_on_page(item, 3, ("modified", txn("m-t0", 55.0, name="MUTATED")))
    state = await env.run_once(item)
    assert state.restarts == 1
    assert env.fake.sync_calls[item] == [0, 2, 4, 0, 2, 4, 6]
    assert set(env.live(item)) == set(env.fake.final_state(item))
    assert env.live(item)["m-t0"].attributes["name"] == "MUTATED"
    assert env.rows(item)["m-t2"].deleted


@pytest.fixture
def short_lived_mid_loop_cursors(env: Env) -> Iterator[None]:
    """The shared connector with APEX_PLAID_LOOP_CURSOR_MAX_AGE_SECONDS=1 and a 2 s poll
    interval (the wait after an error), for one test."""
    saved = env.connector.settings
    env.connector._settings = saved.model_copy(
        update={"loop_cursor_max_age_seconds": 1.0, "poll_interval_seconds": 2.0}
    )
    saved_retry_after = env.fake.rate_limit_retry_after
    try:
        yield
    finally:
        env.connector._settings = saved
        env.fake.rate_limit_retry_after = saved_retry_after


@pytest.mark.usefixtures("short_lived_mid_loop_cursors")
@pytest.mark.parametrize("failure", ["login_required", "rate_limit"])
async def test_a_loop_interrupted_longer_than_the_mid_loop_cursor_age_restarts_from_its_first_cursor(
    env: Env, failure: str
) -> None:
    """Page 3 of a 4-page loop fails: ITEM_LOGIN_REQUIRED (the poller waits its interval, 2 s)
    or a 429 whose Retry-After (3 s) Temporal's retry honours. Either way the next read would
    use page 3's mid-loop cursor more than APEX_PLAID_LOOP_CURSOR_MAX_AGE_SECONDS (1 s) after
    page 2 was read: Plaid promises only the final cursor is long-lived, so the staged pages
    are dropped and the loop is read again from its first cursor, never resumed mid-loop."""
    env.fake.rate_limit_retry_after = "3"
    item = env.new_item(changes("k", 5))  # 7 changes: 4 pages
    env.fake.fail_on_call(item, 3, failure)
    state = await env.run_once(item)
    assert env.fake.sync_calls[item] == [0, 2, 4, 0, 2, 4, 6]  # not [0, 2, 4, 4, 6]
    assert (state.pages, state.restarts) == (4, 1)
    assert SyncCursor.decode(state.cursor).plaid == env.fake._cursor(item, 7)
    assert set(env.live(item)) == set(env.fake.final_state(item))


async def activity_failures(client: Client, handle: WorkflowHandle[Any, PollState], activity_type: str) -> list[str]:
    """[last failure, attempt] of the pending `activity_type` activity once it has failed, else [].
    The failure's message is encrypted with the payloads: the client's converter reads it."""
    desc = await handle.describe()
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name == activity_type and pending.HasField("last_failure"):
            failure = await client.data_converter.decode_failure(pending.last_failure)
            return [str(failure), str(pending.attempt)]
    return []


async def test_saga_failure_on_page_3_keeps_the_cursor_at_the_loops_start_then_completes(env: Env) -> None:
    item = env.new_item(changes("s", 6))  # 8 changes: 4 pages; page 3 holds s-t4 and s-t5
    original = env.sink.write
    failing = {"on": True}

    async def write(records: Any, **kwargs: Any) -> Any:
        if failing["on"] and any(r.id == "s-t4" for r in records):
            raise RuntimeError("store down while writing page 3")
        return await original(records, **kwargs)

    env.sink.write = write  # type: ignore[method-assign]
    try:
        handle: WorkflowHandle[Any, PollState] = await start_poller(
            env.client, env.connector, item, env.temporal, once=True
        )
        # the loop is staged whole, then written page by page (apex.poll_commit): page 3
        # keeps failing in the saga and being retried; pages 1 and 2 are in the stores, but
        # the cursor stays where the loop began until every page of it is
        failures: list[str] = []
        for _ in range(200):
            state = await handle.query(PollWorkflow.state)
            failures = await activity_failures(env.client, handle, "apex.poll_commit")
            if state.pages == 2 and len(failures) >= 1:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # the saga keeps failing and being retried
        state = await handle.query(PollWorkflow.state)
        failures = await activity_failures(env.client, handle, "apex.poll_commit")
        assert (state.pages, state.staged_pages, state.stage) == (2, 2, "committing")
        assert failures, "apex.poll_commit has not failed"
        assert "store down while writing page 3" in failures[0], failures
        assert int(failures[1]) >= 2  # retried, not given up
        assert state.cursor is None  # the loop began at the empty cursor
        assert env.fake.sync_calls[item] == [0, 2, 4, 6]  # Plaid is not read again meanwhile
        assert "s-t4" not in env.rows(item)
        assert "s-t0" in env.rows(item)
        failing["on"] = False
        final = await handle.result()
    finally:
        env.sink.write = original  # type: ignore[method-assign]
    assert SyncCursor.decode(final.cursor).plaid == env.fake._cursor(item, 8)
    assert set(env.live(item)) == set(env.fake.final_state(item))


async def test_continue_as_new_carries_the_cursor(env: Env) -> None:
    item = env.new_item(changes("c", 7))  # 5 pages
    wf_id = f"{poller_id(env.connector, item)}:can"
    await env.client.start_workflow(
        PollWorkflow.run,
        PollInput(source="plaid", account=item, once=True, pages_before_continue=2),
        id=wf_id,
        task_queue=task_queue("P1", env.temporal),
    )
    state = await env.client.get_workflow_handle(wf_id, result_type=PollState).result()
    assert state.pages == 5
    assert SyncCursor.decode(state.cursor).plaid == env.fake._cursor(item, 9)
    runs = [w async for w in env.client.list_workflows(f"WorkflowId = '{wf_id}'")]
    assert len(runs) >= 3  # two continue-as-new hops
    assert env.fake.sync_calls[item] == [0, 2, 4, 6, 8]  # no page read twice across the hops
    assert set(env.live(item)) == set(env.fake.final_state(item))


# -- the webhook over real HTTP --------------------------------------------------------------


@pytest.fixture(scope="module")
async def api(env: Env) -> AsyncIterator[str]:
    """The Apex API (create_app) under uvicorn on a free port, in this event loop."""
    harness: WorkerHarness = env.harness  # type: ignore[attr-defined]
    runtime = build_runtime(
        harness.temporal.address,
        env.home,  # type: ignore[attr-defined]
        [env.connector, env.sink],
        prefix=env.prefix,
        inbox=harness.runtime.inbox.settings,
    )
    async with serving_app(runtime) as url:
        yield url


async def test_signed_sync_updates_available_wakes_the_items_poller(env: Env, api: str) -> None:
    item = env.new_item(changes("w", 3))
    body = samples.webhook_body(item)
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        resp = await http.post("/webhooks/plaid", content=body, headers=env.fake.sign(body))
        assert resp.status_code == 202, resp.text
        assert resp.json()["workflow_id"] == poller_id(env.connector, item, env.temporal.task_queue_prefix)
        await wait_until(
            lambda: set(env.live(item)) == set(env.fake.final_state(item)), every=0.1, what="condition not met in time"
        )
        wf_id = poller_id(env.connector, item, env.temporal.task_queue_prefix)
        handle = env.client.get_workflow_handle(wf_id, result_type=PollState)
        for _ in range(100):
            if (await handle.query(PollWorkflow.state)).stage == "waiting":
                break
            await asyncio.sleep(0.1)

        # New data at the bank: the poller sleeps for an hour, only the webhook can wake it.
        env.fake.append(item, ("added", txn("w-new", 7.0)))
        resp = await http.post("/webhooks/plaid", content=body, headers=env.fake.sign(body))
        assert resp.status_code == 202, resp.text
        await wait_until(lambda: "w-new" in env.live(item), every=0.1, what="condition not met in time")
    await handle.signal(PollWorkflow.stop)
    assert (await handle.result()).stage == "stopped"


async def test_forged_or_stale_webhooks_are_401_and_start_nothing(env: Env, api: str) -> None:
    item = env.new_item(changes("f", 2))
    body = samples.webhook_body(item)
    forger = ec.generate_private_key(ec.SECP256R1())
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        forged = await http.post("/webhooks/plaid", content=body, headers=env.fake.sign(body, private_key=forger))
        stale = await http.post("/webhooks/plaid", content=body, headers=env.fake.sign(body, iat=time.time() - 600))
        unsigned = await http.post("/webhooks/plaid", content=body, headers={"Content-Type": "application/json"})
    for resp in (forged, stale, unsigned):
        assert resp.status_code == 401, resp.text
    assert "signature does not match" in forged.text
    assert "s ago" in stale.text
    with pytest.raises(RPCError):
        await env.client.get_workflow_handle(poller_id(env.connector, item, env.temporal.task_queue_prefix)).describe()
    assert item not in env.fake.sync_calls


async def test_a_webhook_plaid_cannot_be_asked_to_verify_is_503_with_retry_after(env: Env, api: str) -> None:
    """The key service failing (a kid the API has not fetched yet) is not a forgery: 503 and
    Retry-After, so Plaid sends it again; once the key service answers, the same webhook is
    taken."""
    item = env.new_item(changes("u", 2))
    body = samples.webhook_body(item)
    env.fake.key_outage = 500
    try:
        env.fake.rotate_key()  # a kid this API has never fetched
        async with httpx.AsyncClient(base_url=api, timeout=30) as http:
            resp = await http.post("/webhooks/plaid", content=body, headers=env.fake.sign(body))
    finally:
        env.fake.key_outage = None
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["retry-after"]) >= 1
    assert "not verified yet" in resp.text
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        again = await http.post("/webhooks/plaid", content=body, headers=env.fake.sign(body))
    assert again.status_code == 202, again.text
    handle = env.client.get_workflow_handle(again.json()["workflow_id"], result_type=PollState)
    await wait_until(
        lambda: set(env.live(item)) == set(env.fake.final_state(item)), every=0.1, what="condition not met in time"
    )
    await handle.signal(PollWorkflow.stop)
    assert (await handle.result()).stage == "stopped"


async def test_an_identical_item_webhook_after_the_repeat_window_is_a_new_version_a_retry_inside_it_a_duplicate(
    env: Env, api: str, plaid_body: Callable[[str], bytes]
) -> None:
    """Plaid's published ITEM ERROR (ITEM_LOGIN_REQUIRED) example, signed as Plaid signs each
    attempt, through the API: Plaid's retry inside the repeat window is answered duplicate
    and writes nothing; the same body a window later (the Item broke again) is accepted and
    lands as a new version of the same record."""
    body = plaid_body("ItemErrorWebhook")
    window = env.connector.settings.webhook_repeat_window_seconds
    harness: WorkerHarness = env.harness  # type: ignore[attr-defined]
    dsn, schema = harness.inbox_dsn, harness.inbox_schema
    now = time.time()
    CLOCK.offset = (now // window + 1) * window + 1000 - now  # 1000 s into a window
    try:
        async with httpx.AsyncClient(base_url=api, timeout=30) as http:

            async def deliver() -> httpx.Response:
                return await http.post("/webhooks/plaid", content=body, headers=env.fake.sign(body, iat=CLOCK()))

            first = await deliver()
            assert first.status_code == 202, first.text
            event_id = first.json()["event_id"]
            await wait_delivered(dsn, "plaid", [event_id], schema=schema)
            (landed,) = await produced(dsn, "plaid", event_id, schema=schema)
            key = RecordKey("plaid", landed["id"])
            v1 = env.sink.inner.rows[key].version  # type: ignore[attr-defined]
            assert env.sink.inner.rows[key].attributes["error_code"] == "ITEM_LOGIN_REQUIRED"  # type: ignore[attr-defined]

            CLOCK.offset += 30 + 120 + 480  # Plaid's third retry (30 s, then 4 times longer each)
            retry = await deliver()
            assert retry.status_code == 200, retry.text
            assert (retry.json()["status"], retry.json()["event_id"]) == ("duplicate", event_id)

            CLOCK.offset += window  # the next window: the Item needs its login again
            again = await deliver()
            assert again.status_code == 202, again.text
            assert again.json()["event_id"] != event_id
            await wait_delivered(dsn, "plaid", [again.json()["event_id"]], schema=schema)
            (relanded,) = await produced(dsn, "plaid", again.json()["event_id"], schema=schema)
    finally:
        CLOCK.offset = 0.0
    assert relanded["id"] == landed["id"]
    assert env.sink.inner.rows[key].version == relanded["version"] > v1  # type: ignore[attr-defined]
    assert relanded["version"] - v1 >= window * 1_000_000
