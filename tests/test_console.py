"""`/console` in a real headless browser: Debian's Chromium (/usr/bin/chromium) driven by
Playwright (`executable_path`; no browser is downloaded) against a real API process (session
Temporal, PostgreSQL and Redis; the PostgreSQL and Redis sinks).

A Front delivery lands through a real worker (a recent record with its trace), the worker
stops and two more wait in the inbox (the backlog; a third arrives while the page is open
and shows without a reload). Three real dead letters are made by the saga over the same
stores, Redis failing its writes and PostgreSQL its undo (what a failed compensation
leaves). In the browser: a wrong token is refused, the admin token signs in (an HttpOnly,
SameSite=Strict cookie), the page shows the sources and the backlog; "replay" writes a
letter's record into both stores, "discard" marks one discarded, and a POST without the
CSRF token is refused (403) and changes nothing. A screenshot is saved under the test's
tmp dir (and copied to docs/console.png with APEX_UPDATE_DOCS_SCREENSHOT=1).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_TOKEN, Deployment, dumps, front_event, front_headers

from apex_platform.models import Record, RecordKey
from apex_platform.saga import Saga, SagaSettings, SagaWriteError
from apex_platform.testing.sinks import Faults, FaultySink
from apex_sink_postgres import PostgresSink, PostgresSinkSettings
from apex_sink_redis import RedisSink, RedisSinkSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SHOT = Path(__file__).resolve().parents[1] / "docs" / "console.png"
# as this machine's browser probe starts it: no sandbox as root, no background connections
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def rec(id: str) -> Record:
    return Record(
        source="trk",
        kind="trk.shipment",
        id=id,
        version=1,
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
        title=f"Shipment {id}",
        text=f"PRO {id}",
    )


class Stores:
    """The API's two stores, opened by the test to make dead letters and to read."""

    def __init__(self, dsn: str, schema: str, redis_url: str, prefix: str) -> None:
        self.postgres = PostgresSink(PostgresSinkSettings(dsn=dsn, schema=schema))
        self.redis = RedisSink(RedisSinkSettings(url=redis_url, prefix=prefix))

    async def versions(self, id: str) -> dict[str, int | None]:
        key = RecordKey("trk", id)
        out: dict[str, int | None] = {}
        for name, sink in (("postgres", self.postgres), ("redis", self.redis)):
            found = (await sink.read([key])).get(key)
            out[name] = None if found is None else found.version
        return out

    async def dead_letter(self, id: str) -> int:
        """A real failed compensation: Redis refuses the write, PostgreSQL its undo."""
        faulty: dict[str, Any] = {
            "postgres": FaultySink(self.postgres, Faults(fail_restores_forever=True)),
            "redis": FaultySink(self.redis, Faults(fail_writes_forever=True)),
        }
        settings = SagaSettings(retry_attempts=1, retry_initial_seconds=0.01, breaker_failures=50)
        saga = Saga(faulty, settings, coordinator=self.redis, dead_letters=self.postgres)  # type: ignore[arg-type]
        with pytest.raises(SagaWriteError) as info:
            await saga.write([rec(id)], batch_id=f"console-test:{id}")
        assert info.value.dead_letter_id is not None
        return info.value.dead_letter_id

    async def status_of(self, letter_id: int) -> str:
        letter = await self.postgres.get_dead_letter(letter_id)
        assert letter is not None
        return letter.status


@pytest.fixture
async def world(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any, apex_redis_server: Any
) -> AsyncIterator[tuple[Deployment, Stores]]:
    tag = f"cs{uuid.uuid4().hex[:10]}"
    dep = Deployment(
        tmp_path,
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGINS="frontapp,postgres,redis",
        APEX_POSTGRES_SCHEMA=tag,
        APEX_REDIS_URL=apex_redis_server.url,
        APEX_REDIS_PREFIX=tag,
    )
    dep.start()
    stores = Stores(apex_postgres_server.dsn, tag, apex_redis_server.url, tag)
    try:
        await stores.postgres.open()
        await stores.redis.open()
        yield dep, stores
    finally:
        await stores.postgres.close()
        await stores.redis.close()
        dep.stop()


def require_chromium() -> None:
    """As tests/test_alerts.py does for promtool: a skip that says so, a failure in CI
    (which installs the browser)."""
    if CHROMIUM.exists():
        return
    reason = "Debian's chromium is not installed: apt-get install chromium (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set: this is a failure, not a skip)")
    pytest.skip(reason)


def save_screenshot(shot: Path) -> None:
    """Keep the screenshot under the test's tmp dir; with APEX_UPDATE_DOCS_SCREENSHOT=1 also
    as the docs' picture (a test run leaves the checkout as it was otherwise)."""
    assert shot.stat().st_size > 10_000
    if os.environ.get("APEX_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shot, DOCS_SHOT)


def send_front(dep: Deployment) -> str:
    event = front_event()
    body = dumps(event)
    resp = httpx.post(f"{dep.url}/webhooks/frontapp", content=body, headers=front_headers(body), timeout=30)
    assert resp.status_code == 202, resp.text
    return str(event["payload"]["id"])


async def test_console_signs_in_shows_the_platform_and_replays_and_discards_dead_letters(
    world: tuple[Deployment, Stores], tmp_path: Path
) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    dep, stores = world
    landed = await dep.landed(send_front(dep))
    record = landed["produced"][0]
    dep.workers[0].stop()  # what comes next waits in the inbox
    send_front(dep)
    send_front(dep)
    replay_id = await stores.dead_letter("replay-me")
    discard_id = await stores.dead_letter("discard-me")
    keep_id = await stores.dead_letter("keep-me")
    assert await stores.versions("replay-me") == {"postgres": 1, "redis": None}  # the stores disagree

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await context.new_page()

        await page.goto(f"{dep.url}/console")
        await page.fill("#token", "not-the-admin-token-at-all")
        await page.click("button[type=submit]")
        await expect(page.locator(".error")).to_contain_text("not an admin token")
        assert not await context.cookies()

        await page.fill("#token", ADMIN_TOKEN)
        await page.click("button[type=submit]")
        await expect(page.locator("#health")).not_to_have_text("loading…", timeout=30_000)
        (cookie,) = await context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
            "apex_console",
            True,
            "Strict",
            "/console",
        )
        assert ADMIN_TOKEN not in cookie["value"]

        await expect(page.locator("#sources tbody")).to_contain_text("frontapp")
        backlog = page.locator('#backlog tr[data-source="frontapp"] td')
        await expect(backlog.nth(1)).to_have_text("2")
        await expect(page.locator("#checks tbody")).to_contain_text("sink:redis")
        letters = page.locator("#dead-letters tbody")
        for letter in (replay_id, discard_id, keep_id):
            await expect(letters.locator(f'tr[data-id="{letter}"]')).to_contain_text("failed compensation")
        await expect(page.locator("#recent tbody")).to_contain_text(record["id"])
        await expect(page.locator("#health")).to_have_text("unhealthy")  # open dead letters
        shot = tmp_path / "console.png"
        await page.screenshot(path=str(shot), full_page=True)
        save_screenshot(shot)

        # live: a delivery arriving while the page is open shows without a reload
        send_front(dep)
        await expect(backlog.nth(1)).to_have_text("3", timeout=20_000)

        # replay: the record lands in both stores, the letter leaves the open list
        await page.click(f'button[data-action="replay"][data-id="{replay_id}"]')
        await expect(page.locator("#message")).to_contain_text(f"dead letter {replay_id}: replayed (1 written")
        await expect(letters.locator(f'tr[data-id="{replay_id}"]')).to_have_count(0)
        assert await stores.versions("replay-me") == {"postgres": 1, "redis": 1}
        assert await stores.status_of(replay_id) == "replayed"

        # discard, after the page's confirmation
        page.once("dialog", lambda dialog: dialog.accept())
        await page.click(f'button[data-action="discard"][data-id="{discard_id}"]')
        await expect(page.locator("#message")).to_contain_text(f"dead letter {discard_id}: discarded")
        await expect(letters.locator(f'tr[data-id="{discard_id}"]')).to_have_count(0)
        assert await stores.status_of(discard_id) == "discarded"
        assert await stores.versions("discard-me") == {"postgres": 1, "redis": None}  # nothing written

        # a change without the CSRF token (the session cookie alone), or with a wrong one: 403
        url = f"{dep.url}/console/dead-letters/{keep_id}/replay"
        refused = await page.request.post(url)
        assert refused.status == 403
        refused = await page.request.post(url, headers={"X-CSRF-Token": "0" * 64})
        assert refused.status == 403
        # and without the session (another browser): 401
        async with httpx.AsyncClient() as anonymous:
            resp = await anonymous.post(url, headers={"X-CSRF-Token": "0" * 64})
            assert resp.status_code == 401
            assert (await anonymous.get(f"{dep.url}/console/state")).status_code == 401
        assert await stores.status_of(keep_id) == "open"
        assert await stores.versions("keep-me") == {"postgres": 1, "redis": None}

        # the recent record's trace link: where it is in every store
        await page.click(f'#recent tr:has-text("{record["id"]}") a.trace')
        await expect(page.locator("h1")).to_contain_text(f"frontapp / {record['id']}")
        stores_table = page.locator("#trace-stores tbody")
        await expect(stores_table.locator("tr", has_text="postgres")).to_contain_text("yes")
        await expect(stores_table.locator("tr", has_text="redis")).to_contain_text("yes")
        await browser.close()
