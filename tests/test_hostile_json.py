"""Every connector that takes bodies at the edge decodes them through the one strict
decoder (`apex_platform.payloads.decode_json`): a hostile literal anywhere in a real
body — `1e999`, an integer of thousands of digits, NaN/Infinity, a lone surrogate
escape, a key twice — is a `PayloadError` (400) naming the reason, for every source
alike; byte soup around real bodies is an answer or a `PayloadError`, never anything
else (which the API would answer 500). The same over HTTP through the real Litestar app.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FRONT_SECRET, front_event, front_headers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from apex_connector_frontapp import FrontConnector, FrontSettings
from apex_connector_frontapp import samples as front_samples
from apex_connector_llm import LlmConnector, LlmSettings
from apex_connector_llm import samples as llm_samples
from apex_connector_plaid import PlaidConnector, PlaidSettings
from apex_connector_plaid import samples as plaid_samples
from apex_connector_samsara import SamsaraConnector, SamsaraSettings
from apex_connector_samsara import samples as samsara_samples
from apex_connector_sonar import SonarConnector, SonarSettings
from apex_connector_sonar import samples as sonar_samples
from apex_connector_turvo import TurvoConnector, TurvoSettings
from apex_connector_turvo import samples as turvo_samples
from apex_platform import hookimpl
from apex_platform.api import create_app
from apex_platform.contracts import PollTrigger, WebhookReply
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent
from apex_platform.runtime import Runtime
from apex_platform.settings import CoreSettings
from apex_platform.testing.hostile_json import HOSTILE, hostile_bodies, inject

NOW = 1773151512.5
ITEM = plaid_samples.DEMO_ITEM_ID


def _connectors() -> dict[str, tuple[Any, list[dict[str, Any]]]]:
    """Each edge connector with real bodies of its vendor (decoded, to inject into)."""
    return {
        "frontapp": (
            FrontConnector(FrontSettings(), clock=lambda: NOW),
            [front_samples.INBOUND_RECEIVED, front_samples.TAG_ADDED, front_samples.NEW_COMMENT_ADDED],
        ),
        "samsara": (SamsaraConnector(SamsaraSettings()), samsara_samples.events()),
        "plaid": (
            PlaidConnector(PlaidSettings(access_tokens={ITEM: "access-sandbox-x"}), clock=lambda: NOW),
            [
                json.loads(plaid_samples.sync_updates_available_body()),
                json.loads(plaid_samples.webhook_body(ITEM, "ITEM_LOGIN_REQUIRED", webhook_type="ITEM")),
            ],
        ),
        "sonar": (SonarConnector(SonarSettings()), sonar_samples.alerts()),
        "turvo": (
            TurvoConnector(TurvoSettings(), clock=lambda: NOW),
            [json.loads(b) for b in turvo_samples.webhook_bodies()],
        ),
        "llm": (
            LlmConnector(LlmSettings(), clock=lambda: NOW),
            [llm_samples.conversation(), llm_samples.conversation(True)],
        ),
    }


CONNECTORS = _connectors()


def test_the_real_bodies_are_accepted_as_they_are() -> None:
    for name, (connector, docs) in CONNECTORS.items():
        for doc in docs:
            received = connector.receive({"content-type": "application/json"}, json.dumps(doc).encode())
            assert isinstance(received, InboundEvent | WebhookReply | PollTrigger), name


@pytest.mark.parametrize("source", sorted(CONNECTORS))
@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_each_hostile_literal_is_refused_by_each_connector_naming_the_reason(source: str, hostile: str) -> None:
    connector, docs = CONNECTORS[source]
    literal, phrase = HOSTILE[hostile]
    for as_member in (False, True):
        body = inject(docs[0], (next(iter(docs[0])),), literal, as_member=as_member)
        with pytest.raises(PayloadError) as info:
            connector.receive({}, body)
        assert phrase in str(info.value), (source, hostile, str(info.value))


@pytest.mark.parametrize("source", sorted(CONNECTORS))
def test_hostile_literals_anywhere_in_real_bodies_are_refused_naming_the_reason(source: str) -> None:
    connector, docs = CONNECTORS[source]

    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(hostile_bodies(docs))
    def check(case: tuple[bytes, str, str]) -> None:
        body, name, phrase = case
        with pytest.raises(PayloadError) as info:
            connector.receive({}, body)
        assert phrase in str(info.value), (source, name, str(info.value))

    check()


@pytest.mark.parametrize("source", sorted(CONNECTORS))
def test_bytes_spliced_into_real_bodies_give_an_answer_or_a_reason(source: str) -> None:
    connector, docs = CONNECTORS[source]
    bodies = [json.dumps(doc).encode() for doc in docs]

    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(st.sampled_from(bodies), st.integers(min_value=0), st.integers(0, 8), st.binary(max_size=12))
    def check(body: bytes, at: int, cut: int, junk: bytes) -> None:
        at %= len(body) + 1
        mutated = body[:at] + junk + body[at + cut :]
        try:
            received: object = connector.receive({}, mutated)
        except PayloadError as exc:
            received = str(exc)
        if isinstance(received, str):
            assert received.strip(), "a refusal must say why"
        else:
            assert isinstance(received, InboundEvent | WebhookReply | PollTrigger)

    check()


# -- over HTTP: the real app answers 400 naming the reason, never 500 -------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    front = FrontConnector(FrontSettings(signing_secret=FRONT_SECRET))

    class Plugin:
        @hookimpl
        def apex_register_sources(self, register: Callable[[Any], None]) -> None:
            register(front)

    home: Path = tmp_path_factory.mktemp("hostile-json")
    runtime = Runtime.build([], modules=[Plugin()], use_entry_points=False, core=CoreSettings(home=home))
    with TestClient(create_app(runtime, open_sinks=False)) as http:
        yield http


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_a_signed_front_delivery_with_a_hostile_literal_is_400_naming_the_reason(
    client: TestClient[Any], hostile: str
) -> None:
    literal, phrase = HOSTILE[hostile]
    event = front_event(text="Where is PRO 4417?")
    body = inject(event, ("payload", "conversation"), literal, as_member=True)
    resp = client.post("/webhooks/frontapp", content=body, headers=front_headers(body))
    assert resp.status_code == 400, resp.text
    assert phrase in resp.json()["error"], resp.text
