"""Fixtures of the Samsara connector tests: a connector with a fixed clock, an independent
signer, the fake Samsara server over TCP, and a sink that counts new versions per id."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apex_connector_samsara import SamsaraConnector, SamsaraSettings
from apex_connector_samsara.fake_vendor import FakeSamsara, FakeServer
from apex_platform.models import InboundEvent
from apex_platform.testing.signing import HmacScheme
from apex_platform.testing.sinks import CountingSink

SECRET_BYTES = b"samsara-webhook-secret-for-tests-32b"
#: as Samsara shows a webhook's Secret Key: base64
SECRET = base64.b64encode(SECRET_BYTES).decode()
# 2026-03-10 14:05:12 UTC
NOW = 1773151512
TOKEN = "samsara-api-token-for-tests"


#: Samsara's scheme, written here independently of the connector: HMAC-SHA256(base64-decoded
#: secret, "v1:<timestamp>:" + body) as lowercase hex in `v1=<hex>`
SAMSARA_SIGNING = HmacScheme(
    "X-Samsara-Signature", "X-Samsara-Timestamp", message="v1:{timestamp}:{body}", prefix="v1="
)


def sign_as_samsara(body: bytes, timestamp: int | str = NOW, key: bytes = SECRET_BYTES) -> dict[str, str]:
    """The headers Samsara sends with `body`, signed by the kit's generic HMAC signer."""
    return SAMSARA_SIGNING.sign(body, key, timestamp=str(timestamp))


def encode(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


@pytest.fixture
def connector() -> SamsaraConnector:
    return SamsaraConnector(SamsaraSettings(webhook_secret=SECRET, api_token=TOKEN), clock=lambda: float(NOW))


@pytest.fixture
def secret() -> str:
    """The webhook secret as Samsara shows it (base64)."""
    return SECRET


@pytest.fixture
def sign() -> Callable[..., dict[str, str]]:
    return sign_as_samsara


@pytest.fixture
def deliver(connector: SamsaraConnector) -> Callable[[dict[str, Any]], InboundEvent]:
    """Sign a body as Samsara would, verify it and receive it: the path of a real delivery."""

    def _deliver(doc: dict[str, Any]) -> InboundEvent:
        body = encode(doc)
        headers = sign_as_samsara(body)
        connector.verify(headers, body)
        result = connector.receive(headers, body)
        assert isinstance(result, InboundEvent), result
        return result

    return _deliver


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeServer]]:
    """Start fake Samsara servers (uvicorn, 127.0.0.1, free port); stopped after the test."""
    started: list[FakeServer] = []

    def _start(**options: Any) -> FakeServer:
        options.setdefault("token", TOKEN)
        server = FakeServer(FakeSamsara(**options))
        server.start()
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


@pytest.fixture
def counting_sink() -> CountingSink:
    return CountingSink()


@pytest.fixture
def new_counting_sink() -> Callable[[], CountingSink]:
    return CountingSink
