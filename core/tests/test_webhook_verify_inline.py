"""Where the webhook route checks a signature (issue 15: the hand-off to a worker thread
cost more CPU than the HMAC it ran): on the event loop for a `LocalVerification` source and
a body up to INLINE_VERIFY_BYTES, in a worker thread for every other source (its `verify`
may fetch a key) and for larger bodies. The answers are the same either way."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from apex_platform.api.controllers import INLINE_VERIFY_BYTES
from apex_platform.errors import SettingsError, SignatureError
from apex_platform.models import InboundEvent, Record

pytestmark = pytest.mark.timeout(120)

SECRET = b"inline-verify-test-secret"


def on_the_loop() -> bool:
    """Whether this thread runs an event loop (the app's; anyio's worker threads do not)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Hooked:
    """A webhook source signed with an HMAC of the body; `verify` notes its thread."""

    mode = "webhook"
    priority = "P0"
    settings_model: ClassVar[Any] = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.on_loop: list[bool] = []  # per call: was it on the event loop's thread
        self.fail: Exception | None = None

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        self.on_loop.append(on_the_loop())
        if self.fail is not None:
            raise self.fail
        expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("x-signature", "")):
            raise SignatureError(f"{self.name} webhook rejected: the signature does not match")

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        doc = json.loads(body)
        return InboundEvent(source=self.name, event_id=doc["id"], received_at=datetime.now(UTC), payload=doc)

    def parse(self, event: InboundEvent) -> list[Record]:
        return []


class Local(Hooked):
    verify_is_local: ClassVar[bool] = True


class SaysSoLoosely(Hooked):
    verify_is_local: ClassVar[Any] = "yes"  # not True: a thread checks it


def signed(doc: dict[str, Any], pad: int = 0) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({**doc, "pad": "x" * pad}).encode()
    return body, {"x-signature": hmac.new(SECRET, body, hashlib.sha256).hexdigest()}


async def test_a_local_source_is_checked_on_the_loop_others_in_a_thread(apex_app_client: Any) -> None:
    local, other, loose = Local("local"), Hooked("other"), SaysSoLoosely("loose")
    async with apex_app_client(sources=[local, other, loose]) as client:
        for source in (local, other, loose):
            body, headers = signed({"id": f"{source.name}-1"})
            response = await client.post(f"/webhooks/{source.name}", content=body, headers=headers)
            assert response.status_code == 202, response.text
        assert local.on_loop == [True]
        assert other.on_loop == [False]
        assert loose.on_loop == [False]

        # a body over the limit goes to a thread even for a local source
        body, headers = signed({"id": "local-big"}, pad=INLINE_VERIFY_BYTES)
        assert (await client.post("/webhooks/local", content=body, headers=headers)).status_code == 202
        assert local.on_loop == [True, False]


@pytest.mark.parametrize("source", [Local("src"), Hooked("src")])
async def test_refusals_are_the_same_on_the_loop_and_in_a_thread(apex_app_client: Any, source: Hooked) -> None:
    async with apex_app_client(sources=[source]) as client:
        body, _ = signed({"id": "e1"})
        bad = await client.post("/webhooks/src", content=body, headers={"x-signature": "0" * 64})
        assert bad.status_code == 401
        assert bad.json() == {"error": "src webhook rejected: the signature does not match", "source": "src"}
        source.fail = SettingsError("APEX_SRC_SECRET is too short")
        misconfigured = await client.post("/webhooks/src", content=body, headers={"x-signature": "0" * 64})
        assert misconfigured.status_code == 503
        assert misconfigured.headers["retry-after"] == "60"
        source.fail = None
        body, headers = signed({"id": "e1"})
        assert (await client.post("/webhooks/src", content=body, headers=headers)).status_code == 202


async def test_a_source_registered_again_is_asked_again(apex_app_client: Any) -> None:
    """What the route knows of a source is kept per connector object: a new object under the
    same name (a test, a reload) is worked out afresh."""
    first = Local("src")
    async with apex_app_client(sources=[first]) as client:
        body, headers = signed({"id": "e1"})
        assert (await client.post("/webhooks/src", content=body, headers=headers)).status_code == 202
        registry = client.app.dependencies["runtime"].dependency().registry  # the app's runtime
        second = Hooked("src")
        registry.sources["src"] = second
        body, headers = signed({"id": "e2"})
        assert (await client.post("/webhooks/src", content=body, headers=headers)).status_code == 202
        assert first.on_loop == [True]
        assert second.on_loop == [False]
