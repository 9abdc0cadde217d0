"""receive: strict decoding of the OpenAI chat format, with errors that name the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from apex_connector_llm import LlmConnector, LlmSettings, samples
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent

Push = Callable[[Any], InboundEvent]


def test_sample_push(push: Push) -> None:
    event = push(samples.conversation())
    assert event.source == "llm"
    assert event.event_id.startswith("demo-dispatch-0001:")
    assert len(event.event_id.split(":")[1]) == 32
    assert event.payload == samples.conversation()
    assert event.headers == {}
    assert event.received_at.year == 2026


def test_retry_is_the_same_event_and_growth_is_a_new_one(push: Push) -> None:
    first, retry = push(samples.conversation()), push(samples.conversation())
    assert first.event_id == retry.event_id
    # key order and whitespace of the body do not matter: the messages' content does
    reordered = json.dumps(samples.conversation(), indent=2, sort_keys=True).encode()
    assert push(reordered).event_id == first.event_id
    grown = push(samples.conversation(grown=True))
    assert grown.event_id != first.event_id
    assert grown.event_id.split(":")[0] == first.event_id.split(":")[0]
    edited = samples.conversation()
    edited["messages"][-1]["content"] += " (edited)"
    assert push(edited).event_id != first.event_id


def test_without_conversation_id_the_id_is_a_content_hash(push: Push) -> None:
    body = samples.conversation()
    del body["conversation_id"]
    event = push(body)
    assert event.event_id.startswith("sha256:")
    assert push(body).event_id == event.event_id


def test_content_parts_and_optional_fields(push: Push) -> None:
    body = {
        "messages": [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "name": "dana",
                "content": [
                    {"type": "text", "text": "What does this BOL say?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot read images."}]},
            {"role": "function", "name": "legacy_fn", "content": "{}"},
        ]
    }
    assert push(body).payload == body


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"messages": [{"role": "user", "content": NaN}]}', "NaN"),
        (b'{"messages": [{"role": "user", "content": "x"}], "metadata": {"t": 1e999}}', "number out of range"),
        (b'{"messages": [{"role": "user", "content": "x"}], "metadata": {"n": ' + b"9" * 4301 + b"}}", "4301 digits"),
        (b'{"messages": [{"role": "user", "content": "x", "content": "y"}]}', "'content' twice"),
        (b"[" * 100_000 + b"]" * 100_000, "nests deeper than"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"hello"', "not string"),
        (b"{}", "messages is missing"),
        (b'{"messages": {"role": "user"}}', "messages must be a list, not object"),
        (b'{"messages": null}', "messages must be a list, not null"),
        (b'{"messages": []}', "messages is empty"),
        (b'{"messages": ["hi"]}', "messages[0] must be an object"),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', "messages[0].role 'robot' is not one of"),
        (b'{"messages": [{"content": "x"}]}', "messages[0].role null is not one of"),
        (b'{"messages": [{"role": "user"}]}', "messages[0].content is missing"),
        (b'{"messages": [{"role": "user", "content": 42}]}', "messages[0].content must be a string, null or a list"),
        (b'{"messages": [{"role": "user", "content": {"text": "x"}}]}', "not object"),
        (b'{"messages": [{"role": "user", "content": ["x"]}]}', "messages[0].content[0] must be an object"),
        (b'{"messages": [{"role": "user", "content": [{"text": "x"}]}]}', "content[0].type"),
        (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}', "content[0].text must be"),
        (b'{"messages": [{"role": "user", "content": "x", "name": 7}]}', "messages[0].name must be a string"),
        (b'{"messages": [{"role": "tool", "content": "x"}]}', "messages[0].tool_call_id must be a string"),
        (b'{"messages": [{"role": "tool", "content": "x", "tool_call_id": "a b"}]}', "printable"),
        (b'{"messages": [{"role": "user", "content": "x", "tool_call_id": "c1"}]}', "only allowed on tool"),
        (b'{"messages": [{"role": "function", "content": "x"}]}', "name is required on function"),
        (b'{"messages": [{"role": "assistant", "tool_calls": {}}]}', "tool_calls must be a list"),
        (b'{"messages": [{"role": "assistant", "tool_calls": [{"id": "c1"}]}]}', "tool_calls[0].function"),
        (
            b'{"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": ""}}]}]}',
            "function.name",
        ),
        (
            b'{"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 3}}]}]}',  # noqa: E501
            "arguments must be a string",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]}',
            "only allowed on assistant",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "model": 4}', "model must be a string"),
        (b'{"messages": [{"role": "user", "content": "x"}], "metadata": []}', "metadata must be an object"),
        (b'{"messages": [{"role": "user", "content": "x"}], "conversation_id": 12}', "conversation_id must be a str"),
        (b'{"messages": [{"role": "user", "content": "x"}], "conversation_id": ""}', "conversation_id must be 1 to"),
        (b'{"messages": [{"role": "user", "content": "x"}], "conversation_id": "a\\nb"}', "printable"),
    ],
)
def test_malformed_bodies_name_the_problem(push: Push, body: bytes, says: str) -> None:
    with pytest.raises(PayloadError, match=says.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        push(body)


def test_limits_are_settings_and_named_in_errors() -> None:
    connector = LlmConnector(
        LlmSettings(max_messages=3, max_message_chars=100, max_total_chars=250, max_tool_calls=1, max_metadata_bytes=64)
    )

    def receive(body: dict[str, Any]) -> None:
        connector.receive({}, json.dumps(body).encode())

    user = {"role": "user", "content": "x" * 90}
    with pytest.raises(PayloadError, match=r"too many messages: 4, at most 3 \(APEX_LLM_MAX_MESSAGES\)"):
        receive({"messages": [user] * 4})
    with pytest.raises(PayloadError, match=r"messages\[0\].content is longer than 100 .*APEX_LLM_MAX_MESSAGE_CHARS"):
        receive({"messages": [{"role": "user", "content": "x" * 101}]})
    with pytest.raises(PayloadError, match=r"too long: 270 characters, at most 250 .*APEX_LLM_MAX_TOTAL_CHARS"):
        receive({"messages": [user] * 3})
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with pytest.raises(PayloadError, match="APEX_LLM_MAX_TOOL_CALLS"):
        receive({"messages": [{"role": "assistant", "content": None, "tool_calls": [call, call]}]})
    with pytest.raises(PayloadError, match="APEX_LLM_MAX_METADATA_BYTES"):
        receive({"messages": [user], "metadata": {"note": "y" * 100}})
    with pytest.raises(PayloadError, match=r"1 to 128"):
        receive({"messages": [user], "conversation_id": "c" * 129})


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_LLM_MAX_MESSAGES", "2")
    connector = LlmConnector()
    with pytest.raises(PayloadError, match="APEX_LLM_MAX_MESSAGES"):
        connector.receive({}, json.dumps({"messages": [{"role": "user", "content": "x"}] * 3}).encode())
