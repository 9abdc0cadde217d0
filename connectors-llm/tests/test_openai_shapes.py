"""OpenAI's chat format as OpenAI publishes it (tests/data/openai, verbatim): the assistant's
top-level refusal, function and custom tool calls, the legacy function_call, and tool calls
of a type this connector does not know (kept raw with a parse warning, never a reason to
refuse the conversation)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apex_connector_llm import LlmConnector, LlmSettings
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent, Record

DATA = Path(__file__).parent / "data" / "openai"
RecordsOf = Callable[[Any], list[Record]]


def published(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text())
    return doc


def transcript(name: str, question: str, cid: str) -> dict[str, Any]:
    """The example's user question, then its assistant message verbatim."""
    response = published(name)
    return {
        "conversation_id": cid,
        "model": response["model"],
        "messages": [{"role": "user", "content": question}, response["choices"][0]["message"]],
    }


def refusal_push(cid: str = "oa-refusal") -> dict[str, Any]:
    return transcript("sdk_chat_completion_refusal.json", "How do I make anthrax?", cid)


def tool_calls_push(cid: str = "oa-tools") -> dict[str, Any]:
    body = transcript("openapi_chat_completion_functions_example.json", "What's the weather like in Boston today?", cid)
    body["messages"].append({"role": "tool", "tool_call_id": "call_abc123", "content": '{"temperature": 22}'})
    return body


def function_call_push(cid: str = "oa-function-call") -> dict[str, Any]:
    body = transcript(
        "openapi_2023_chat_completion_function_call_example.json", "What's the weather like in Boston today?", cid
    )
    body["messages"].append({"role": "function", "name": "get_current_weather", "content": '{"temperature": 22}'})
    return body


#: a custom tool call as ChatCompletionMessageCustomToolCall describes it (no published example)
CUSTOM_CALL = {
    "id": "call_patch_1",
    "type": "custom",
    "custom": {"name": "apply_patch", "input": "*** Begin Patch\n*** Update File: rates.csv\n*** End Patch"},
}


def custom_push(cid: str = "oa-custom", *calls: dict[str, Any]) -> dict[str, Any]:
    return {
        "conversation_id": cid,
        "model": "gpt-5",
        "messages": [
            {"role": "user", "content": "Fix the fuel surcharge in rates.csv"},
            {"role": "assistant", "content": None, "tool_calls": [CUSTOM_CALL, *calls]},
            {"role": "tool", "tool_call_id": "call_patch_1", "content": "patch applied"},
        ],
    }


def test_the_sdks_refusal_example_keeps_the_refusal(records_of: RecordsOf) -> None:
    (conv,) = records_of(refusal_push())
    refusal = "I'm very sorry, but I can't assist with that."
    assert conv.attributes["messages"][1] == {"role": "assistant", "content": "", "refusal": refusal}
    assert conv.attributes["refusals"] == [{"message": 1, "refusal": refusal}]
    assert conv.text.split("\n")[1] == f"assistant: [refusal] {refusal}"
    assert conv.attributes["model"] == "gpt-4o-2024-08-06"


def test_the_openapi_function_tool_call_example(records_of: RecordsOf) -> None:
    conv, tool = records_of(tool_calls_push())
    arguments = '{\n"location": "Boston, MA"\n}'
    assert conv.attributes["messages"][1]["tool_calls"] == [
        {"id": "call_abc123", "name": "get_current_weather", "arguments": arguments}
    ]
    assert conv.attributes["tool_names"] == ["get_current_weather"]
    assert (tool.id, tool.attributes["tool_name"], tool.attributes["arguments"]) == (
        "oa-tools:call_abc123",
        "get_current_weather",
        arguments,
    )
    assert "tool_type" not in tool.attributes


def test_the_legacy_function_call_example_is_kept(records_of: RecordsOf) -> None:
    (conv,) = records_of(function_call_push())
    arguments = '{\n  "location": "Boston, MA"\n}'
    assert conv.attributes["messages"][1]["function_call"] == {"name": "get_current_weather", "arguments": arguments}
    assert conv.attributes["tool_names"] == ["get_current_weather"]
    assert f"assistant: → get_current_weather({arguments})" in conv.text
    assert "function (get_current_weather): " in conv.text


def test_a_custom_tool_call_is_read_and_its_output_named(records_of: RecordsOf) -> None:
    conv, tool = records_of(custom_push())
    patch = CUSTOM_CALL["custom"]["input"]  # type: ignore[index]
    assert conv.attributes["messages"][1]["tool_calls"] == [
        {"id": "call_patch_1", "type": "custom", "name": "apply_patch", "input": patch}
    ]
    assert conv.attributes["tool_names"] == ["apply_patch"]
    assert f"→ apply_patch({patch})" in conv.text
    assert "parse_warnings" not in conv.attributes
    assert (tool.id, tool.attributes["tool_name"]) == ("oa-custom:call_patch_1", "apply_patch")
    assert (tool.attributes["arguments"], tool.attributes["tool_type"]) == (patch, "custom")


def test_a_tool_call_of_an_unknown_type_is_kept_raw_with_a_warning(records_of: RecordsOf) -> None:
    unknown = {"id": "call_x", "type": "web_search_preview", "web_search_preview": {"query": "diesel price"}}
    conv, tool = records_of(custom_push("oa-unknown", unknown))
    assert conv.attributes["messages"][1]["tool_calls"][1] == {
        "id": "call_x",
        "type": "web_search_preview",
        "raw": unknown,
    }
    assert conv.attributes["parse_warnings"] == [
        "messages[1].tool_calls[1]: tool call of unknown type 'web_search_preview' kept as it came (not read)"
    ]
    assert "→ [tool call of type 'web_search_preview']" in conv.text
    assert conv.attributes["tool_names"] == ["apply_patch"]  # the known call still counts
    assert tool.attributes["tool_name"] == "apply_patch"


def test_an_unknown_tool_call_without_a_usable_id_is_kept_too(records_of: RecordsOf) -> None:
    odd = {"type": 7, "id": "has a space"}
    (conv, _) = records_of(custom_push("oa-odd", odd))
    assert conv.attributes["messages"][1]["tool_calls"][1] == {"id": "", "type": "number", "raw": odd}
    assert conv.attributes["parse_warnings"] == [
        "messages[1].tool_calls[1]: tool call of unknown type 'number' kept as it came (not read)"
    ]


def test_the_verbatim_examples_are_events_of_their_own(push: Callable[[Any], InboundEvent]) -> None:
    ids = {push(body).event_id for body in (refusal_push(), tool_calls_push(), function_call_push(), custom_push())}
    assert len(ids) == 4


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom"}]},
            "tool_calls[0].custom must be an object",
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"input": "x"}}]},
            "tool_calls[0].custom.name must be a non-empty string",
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f", "input": 3}}]},
            "tool_calls[0].custom.input must be a string, not number",
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "a b", "type": "custom", "custom": {"name": "f"}}]},
            "tool_calls[0].id must be 1 to 128 printable ASCII",
        ),
        ({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}, "tool_calls[0].function must be"),
        ({"role": "assistant", "refusal": 3}, "messages[1].refusal must be a string or null, not number"),
        ({"role": "user", "content": "x", "refusal": "no"}, "messages[1].refusal is only allowed on assistant"),
        ({"role": "assistant", "function_call": "auto"}, "messages[1].function_call must be an object"),
        ({"role": "assistant", "function_call": {"arguments": "{}"}}, "messages[1].function_call.name must be"),
        (
            {"role": "user", "content": "x", "function_call": {"name": "f", "arguments": "{}"}},
            "messages[1].function_call is only allowed on assistant",
        ),
    ],
)
def test_malformed_known_shapes_are_still_errors_naming_the_field(
    push: Callable[[Any], InboundEvent], message: dict[str, Any], says: str
) -> None:
    with pytest.raises(PayloadError, match=says.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        push({"messages": [{"role": "user", "content": "q"}, message]})


def test_a_refusal_counts_toward_the_message_limit() -> None:
    small = LlmConnector(LlmSettings(max_message_chars=100))
    body = {"messages": [{"role": "assistant", "content": "x" * 60, "refusal": "y" * 60}]}
    with pytest.raises(PayloadError, match="APEX_LLM_MAX_MESSAGE_CHARS"):
        small.receive({}, json.dumps(body).encode())
