"""No Turvo secret reaches a log record: the connector's real client against the fake Turvo
over TCP, every secret a unique marker, every logger (httpx and httpcore included) at
DEBUG. The client credentials travel in the token request's JSON body (as Turvo's token
request is documented), never in its URL; and the platform's log redaction
(`install_log_redaction`, installed by the logging setup) hides query values besides."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from apex_connector_turvo import TurvoConnector, TurvoSettings, samples
from apex_connector_turvo.fake_vendor import FakeTurvo, start
from apex_platform.errors import VendorError
from apex_platform.vendor_http import install_log_redaction, uninstall_log_redaction

MARK = f"mark{uuid.uuid4().hex}"
SECRETS = {
    "client_secret": f"{MARK}-client-secret",
    "password": f"{MARK}-password",
    "api_key": f"{MARK}-api-key",
    "webhook_token": f"{MARK}-webhook-token",
}


class Everything(logging.Handler):
    """Keeps every record, formatted as a handler would write it (traceback included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + repr(record.args) + repr(record.__dict__))


@pytest.fixture
def fake_with_markers() -> Iterator[tuple[FakeTurvo, str]]:
    state, server = start(
        FakeTurvo(
            api_key=SECRETS["api_key"],
            client_secret=SECRETS["client_secret"],
            password=SECRETS["password"],
            webhook_token=SECRETS["webhook_token"],
        )
    )
    try:
        yield state, server.base_url + "/v1"
    finally:
        server.stop()


@pytest.fixture
def captured() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", "httpx", "httpcore", "apex_connector_turvo")}
    root.addHandler(handler)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


async def _exercise(fake: FakeTurvo, base_url: str) -> None:
    connector = TurvoConnector(
        TurvoSettings(
            base_url=base_url,
            api_key=SECRETS["api_key"],
            client_id=fake.client_id,
            client_secret=SECRETS["client_secret"],
            username=fake.username,
            password=SECRETS["password"],
            webhook_token=SECRETS["webhook_token"],
            http_retries=1,
        )
    )
    body, headers = fake.webhook(samples.WEBHOOKS[0])
    connector.verify(headers, body)
    event = connector.receive(headers, body)
    assert "entity" in (await connector.fetch(event)).payload  # password grant, then the read
    fake.revoke_access_tokens()
    assert "entity" in (await connector.fetch(event)).payload  # 401, refresh grant, read again
    fake.fail_next(500, times=5)
    with pytest.raises(VendorError):
        await connector.fetch(event)  # 5xx, retried, then an error naming the endpoint
    assert fake.grants == ["password", "refresh_token"]


@pytest.mark.parametrize("redaction", [False, True], ids=["client-alone", "with-log-redaction"])
async def test_no_secret_in_any_log_record_at_debug(
    fake_with_markers: tuple[FakeTurvo, str], captured: Everything, redaction: bool
) -> None:
    fake, base_url = fake_with_markers
    if redaction:
        install_log_redaction()
    try:
        await _exercise(fake, base_url)
    finally:
        if redaction:
            uninstall_log_redaction()
    assert any("oauth/token" in line for line in captured.lines), "httpx logged no request: nothing was checked"
    leaked = [line for line in captured.lines if MARK in line]
    assert not leaked, leaked[:3]


async def test_the_token_request_has_no_query_string(fake_with_markers: tuple[FakeTurvo, str]) -> None:
    fake, base_url = fake_with_markers
    await _exercise(fake, base_url)
    assert fake.token_queries == [{}, {}]


async def test_the_fake_refuses_credentials_in_the_url(fake_with_markers: tuple[FakeTurvo, str]) -> None:
    import httpx

    fake, base_url = fake_with_markers
    doc: dict[str, Any] = {"grant_type": "password", "username": fake.username, "password": SECRETS["password"]}
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            f"{base_url}/oauth/token",
            params={"client_id": fake.client_id, "client_secret": SECRETS["client_secret"]},
            json=doc,
            headers={"x-api-key": SECRETS["api_key"]},
        )
    assert resp.status_code == 400
    assert "query string" in resp.text
