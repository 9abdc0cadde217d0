"""parse: one conversation record, one record per tool output; versions grow with the conversation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from apex_connector_llm import VERSION_STEP, LlmConnector, samples
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent, Record

RecordsOf = Callable[[Any], list[Record]]


def test_sample_conversation(records_of: RecordsOf) -> None:
    conv, tool = records_of(samples.conversation())
    assert (conv.source, conv.kind, conv.id) == ("llm", "llm.conversation", "demo-dispatch-0001")
    assert conv.version == 5 * VERSION_STEP
    assert conv.occurred_at == datetime(2026, 3, 10, 14, 5, 12, 500000, tzinfo=UTC)
    assert conv.title == "Load 4471823 delivery ETA"
    lines = conv.text.split("\n")
    assert lines[0] == "system: You are the dispatch assistant of Apex Logistics. Use the tools to answer."
    assert lines[1].startswith("user: Where is load 4471823")
    assert lines[2] == 'assistant: → track_shipment({"pro": "0286-55431"})'
    assert lines[3].startswith('tool (track_shipment): {"pro": "0286-55431"')
    a = conv.attributes
    assert a["model"] == "gpt-4o"
    assert a["message_count"] == 5
    assert a["roles"] == {"system": 1, "user": 1, "assistant": 2, "tool": 1}
    assert a["tool_names"] == ["track_shipment"]
    assert a["metadata"] == {"title": "Load 4471823 delivery ETA", "agent": "dispatch-assistant", "channel": "web"}
    assert a["messages"][2]["tool_calls"] == [
        {"id": "call_track_4471823", "name": "track_shipment", "arguments": '{"pro": "0286-55431"}'}
    ]
    assert {(e.type, e.key) for e in conv.entities} == {("Conversation", "demo-dispatch-0001"), ("Model", "gpt-4o")}
    assert [(r.src, r.type, r.dst) for r in conv.relations] == [
        ("Conversation:demo-dispatch-0001", "USED_MODEL", "Model:gpt-4o")
    ]
    assert (tool.kind, tool.id, tool.version) == ("llm.tool_output", "demo-dispatch-0001:call_track_4471823", 4)
    assert tool.attributes["tool_name"] == "track_shipment"
    assert tool.attributes["arguments"] == '{"pro": "0286-55431"}'
    assert '"city": "Albert Lea"' in tool.text
    assert [(e.type, e.key) for e in tool.entities] == [("Conversation", "demo-dispatch-0001")]


def test_versions_grow_with_the_conversation(records_of: RecordsOf) -> None:
    first = records_of(samples.conversation())
    grown = records_of(samples.conversation(grown=True))
    assert grown[0].id == first[0].id
    assert grown[0].version > first[0].version
    assert grown[0].attributes["message_count"] == 7
    assert "user: Can they deliver before noon instead?" in grown[0].text
    # the tool output did not move: same id, same version
    assert (grown[1].id, grown[1].version) == (first[1].id, first[1].version)


def test_growth_always_raises_the_version(records_of: RecordsOf) -> None:
    messages: list[dict[str, Any]] = []
    last = -1
    for n in range(1, 30):
        messages.append({"role": "user" if n % 2 else "assistant", "content": "x" * (100 - n)})
        (conv,) = records_of({"conversation_id": "grow", "messages": messages})
        assert conv.version > last
        last = conv.version


def test_title_falls_back_to_the_first_user_message(records_of: RecordsOf) -> None:
    long = "Please check   the appointment\nfor load 77 " + "and more " * 30
    (conv,) = records_of({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": long}]})
    assert conv.title.startswith("Please check the appointment for load 77 and more")
    assert len(conv.title) == 120
    assert conv.title.endswith("…")
    (none,) = records_of({"messages": [{"role": "system", "content": "only a prompt"}]})
    assert none.title == f"Conversation {none.id}"


def test_anonymous_conversations_are_keyed_by_content(records_of: RecordsOf) -> None:
    body = {"messages": [{"role": "user", "content": "hello"}]}
    (a,) = records_of(body)
    (b,) = records_of(body)
    assert a.id == b.id
    assert a.id.startswith("sha256:")
    assert a.attributes["conversation_id"] is None
    assert a.attributes["model"] is None
    assert {e.type for e in a.entities} == {"Conversation"}


def test_non_text_parts_are_noted_not_stored(records_of: RecordsOf) -> None:
    (conv,) = records_of(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "See the photo of the damaged pallet."},
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + "A" * 5000}},
                    ],
                }
            ]
        }
    )
    assert conv.attributes["non_text_parts"] == [{"message": 0, "type": "image_url"}]
    assert "base64" not in conv.text
    assert "base64" not in str(conv.attributes["messages"])
    assert conv.text == "user: See the photo of the damaged pallet.\n[image_url]"


def test_tool_outputs_without_a_matching_call(records_of: RecordsOf) -> None:
    records = records_of(
        {
            "conversation_id": "t1",
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "tool", "tool_call_id": "orphan", "content": "42"},
                {"role": "tool", "tool_call_id": "named", "name": "calc", "content": "43"},
            ],
        }
    )
    assert [(r.id, r.attributes.get("tool_name")) for r in records[1:]] == [("t1:orphan", None), ("t1:named", "calc")]


def _event(payload: Any, ref: str | None = None) -> InboundEvent:
    return InboundEvent(source="llm", event_id="x:y", received_at=datetime.now(UTC), payload=payload, payload_ref=ref)


@pytest.mark.parametrize(
    ("payload", "ref", "says"),
    [
        (None, None, "no payload"),
        (None, "sha256:abc", "resolve it"),
        ([], None, "JSON object"),
        ({"messages": [{"role": "x", "content": ""}]}, None, "role"),
    ],
)
def test_parse_checks_the_payload_again(connector: LlmConnector, payload: Any, ref: str | None, says: str) -> None:
    with pytest.raises(PayloadError, match=says):
        connector.parse(_event(payload, ref))
