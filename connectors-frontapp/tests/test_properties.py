"""Property tests: whatever arrives, the connector answers or raises its own errors, never crashes."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_connector_frontapp import FrontConnector, FrontSettings, samples
from apex_connector_frontapp.html_text import html_to_text
from apex_platform.contracts import WebhookReply
from apex_platform.errors import PayloadError, SignatureError
from apex_platform.models import InboundEvent, Record
from apex_platform.testing.mutations import json_paths

CONNECTOR = FrontConnector(FrontSettings(signing_secret="front-properties-secret"), clock=lambda: 1773151512.5)
FRONT_KEYS = [
    "id", "type", "emitted_at", "payload", "authorization", "conversation", "source", "target", "data",
    "_meta", "recipients", "recipient", "handle", "role", "tags", "assignee", "body", "text", "blurb",
    "author", "name", "email", "subject", "status", "created_at", "posted_at", "is_inbound", "attachments",
]  # fmt: skip
keys = st.sampled_from(FRONT_KEYS) | st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["evt_1", "cnv_1", "msg_1", "com_1", "tea_1", "tag_1", "message", "comment", "inboxes"])
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)
json_objects = st.dictionaries(keys, json_values, max_size=8)


def _parse(payload: Any) -> list[Record] | None:
    event = InboundEvent(source="frontapp", event_id="evt_x", received_at=datetime.now(UTC), payload=payload)
    try:
        return CONNECTOR.parse(event)
    except PayloadError:
        return None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_objects)
def test_parse_never_raises_anything_but_payload_error(doc: dict[str, Any]) -> None:
    records = _parse(doc)
    if records is not None:
        assert records[0].kind == "frontapp.event"
        assert len({r.key for r in records}) == len(records)
        json.loads(json.dumps([r.model_dump(mode="json") for r in records]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_objects, json_objects)
def test_parse_of_envelopes_with_arbitrary_event_parts(event: dict[str, Any], envelope: dict[str, Any]) -> None:
    event = {**event, "id": "evt_p", "emitted_at": 1773151512.25}
    records = _parse({**envelope, "payload": event})
    # type / authorization may be given wrong types by the strategy; otherwise the event record exists.
    if records is not None:
        assert records[0].id == "evt_p"
        assert records[0].version == 1773151512250000


SAMPLE_PATHS = [(name, path) for name, event in samples.EVENTS.items() for path in json_paths(event) if path]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLE_PATHS), json_values)
def test_any_part_of_a_real_event_can_be_anything(where: tuple[str, tuple[Any, ...]], value: Any) -> None:
    name, path = where
    doc = copy.deepcopy(samples.EVENTS[name])
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    records = _parse(doc)
    # The parts whose wrong type is a PayloadError by design; anything else must still parse.
    checked = {("payload",), ("payload", "id"), ("payload", "emitted_at"), ("payload", "type"), ("type",)}
    checked |= {("authorization",), ("authorization", "id")}
    if path not in checked:
        assert records is not None
        assert records[0].id == samples.EVENTS[name]["payload"]["id"]


@settings(max_examples=300)
@given(st.binary(max_size=400) | json_objects.map(lambda d: json.dumps(d).encode()))
def test_receive_of_arbitrary_bytes(body: bytes) -> None:
    try:
        result = CONNECTOR.receive({}, body)
    except PayloadError:
        return
    assert isinstance(result, InboundEvent | WebhookReply)
    if isinstance(result, InboundEvent):
        result.model_dump_json()  # crosses Temporal as JSON


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["X-Front-Signature", "x-front-request-timestamp", "X-Other"]), st.text()))
def test_verify_of_arbitrary_headers(headers: dict[str, str]) -> None:
    try:
        CONNECTOR.verify(headers, b"{}")
    except SignatureError:
        return
    raise AssertionError("an unsigned request was accepted")


@settings(max_examples=300)
@given(st.text() | st.sampled_from(["<![if x]>", "<!DOCTYPE", "<![CDATA[x", "<a <b>>", "&#xD800;", "&#0;", "</"]))
def test_html_to_text_never_raises(html: str) -> None:
    text = html_to_text(html)
    assert "\x00" not in text
    text.encode("utf-8")
