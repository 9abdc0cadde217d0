from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from apex_connector_example.connector import ExampleConnector
from apex_connector_example.settings import ExampleSettings
from apex_platform.contracts import WebhookSource
from apex_platform.errors import PayloadError, SignatureError


def signed(doc: dict[str, object], secret: str = "example-signing-secret") -> tuple[dict[str, str], bytes]:
    body = json.dumps(doc).encode()
    return {"X-Example-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}, body


def connector() -> ExampleConnector:
    return ExampleConnector(ExampleSettings(signing_secret="example-signing-secret"))  # type: ignore[arg-type]


def test_is_a_webhook_source() -> None:
    assert isinstance(connector(), WebhookSource)


def test_signed_delivery_becomes_a_record() -> None:
    headers, body = signed({"id": "e1", "title": "PRO 123 delivered", "shipments": ["123"]})
    c = connector()
    c.verify(headers, body)
    (record,) = c.parse(c.receive(headers, body))  # type: ignore[arg-type]
    assert (record.id, record.kind, record.entities[0].key) == ("e1", "example.event", "123")


def test_tampered_body_is_refused() -> None:
    headers, _ = signed({"id": "e1"})
    with pytest.raises(SignatureError):
        connector().verify(headers, b'{"id": "e2"}')


@pytest.mark.parametrize("body", [b"", b"[]", b'{"id": 5}', b"\xff"])
def test_malformed_bodies_name_the_problem(body: bytes) -> None:
    with pytest.raises(PayloadError):
        connector().receive({}, body)
