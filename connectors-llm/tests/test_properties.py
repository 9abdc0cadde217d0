"""Properties over random input: only PayloadError escapes receive; growth raises versions."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from apex_connector_llm import LlmConnector, LlmSettings
from apex_platform.errors import PayloadError

CONNECTOR = LlmConnector(LlmSettings(max_messages=50))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "function", "developer", "robot", ""])
message = st.fixed_dictionaries(
    {"role": roles},
    optional={
        "content": st.none() | st.text(max_size=50) | st.lists(json_values, max_size=3),
        "name": st.text(max_size=10) | st.integers(),
        "tool_call_id": st.text(max_size=10),
        "tool_calls": json_values,
    },
)
body = st.fixed_dictionaries(
    {},
    optional={
        "messages": st.lists(message, max_size=6) | json_values,
        "model": json_values,
        "metadata": json_values,
        "conversation_id": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=300))
def test_random_bytes_are_payload_errors_or_events(raw: bytes) -> None:
    with contextlib.suppress(PayloadError):
        CONNECTOR.receive({}, raw)


@settings(max_examples=400, deadline=None)
@given(doc=body)
def test_random_bodies_are_payload_errors_or_parse(doc: dict[str, Any]) -> None:
    try:
        event = CONNECTOR.receive({}, json.dumps(doc).encode())
    except PayloadError:
        return
    records = CONNECTOR.parse(event)
    assert records[0].kind == "llm.conversation"
    assert records[0].version == len(doc["messages"]) * 1_000_000
    json.dumps([r.model_dump(mode="json") for r in records])


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(st.text(max_size=30), min_size=2, max_size=12))
def test_appending_messages_raises_the_version_and_changes_the_event(texts: list[str]) -> None:
    messages = [{"role": "user", "content": t} for t in texts]
    previous = None
    for n in range(1, len(messages) + 1):
        event = CONNECTOR.receive({}, json.dumps({"conversation_id": "c", "messages": messages[:n]}).encode())
        (record,) = CONNECTOR.parse(event)
        if previous is not None:
            assert record.version > previous[0]
            assert event.event_id != previous[1]
        previous = (record.version, event.event_id)
