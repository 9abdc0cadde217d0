"""Records of one pushed conversation: the conversation, and each tool output.

Versions: a conversation grows by appending messages, so its version is the number of
messages times 1,000,000. Appending makes the version strictly higher whatever else changed;
two pushes with the same number of messages (an edited or regenerated last message) have
the same version, and the sinks' rule makes the later write win, which is what an edit
means. The factor leaves room below it for a finer tie-breaker without renumbering.
A push that trims old messages (a sliding context window) has fewer messages and is
ignored as older: push whole transcripts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apex_connector_llm.conversation import Conversation, Message
from apex_platform.models import Entity, Record, Relation

SOURCE = "llm"
KIND_CONVERSATION = "llm.conversation"
KIND_TOOL_OUTPUT = "llm.tool_output"
VERSION_STEP = 1_000_000
_TITLE_CHARS = 120


def _title(conversation: Conversation) -> str:
    title = conversation.metadata.get("title")
    if isinstance(title, str) and title.strip():
        return " ".join(title.split())[:_TITLE_CHARS]
    first = next((m.text for m in conversation.messages if m.role == "user" and m.text.strip()), "")
    if first:
        line = " ".join(first.split())
        return line if len(line) <= _TITLE_CHARS else line[: _TITLE_CHARS - 1] + "…"
    return f"Conversation {conversation.record_id}"


def _line(message: Message, conversation: Conversation) -> str:
    who = message.role
    if message.role in ("tool", "function"):
        tool = message.name or conversation.tool_name(message.tool_call_id)
        who = f"{message.role} ({tool})" if tool else message.role
    elif message.name:
        who = f"{message.role} ({message.name})"
    parts = [message.text] if message.text else []
    if message.refusal:
        parts.append(f"[refusal] {message.refusal}")
    parts += [call.describe() for call in message.calls]
    parts += [f"[{kind}]" for kind in message.other_parts]
    return f"{who}: " + "\n".join(parts)


def _tool_names(conversation: Conversation) -> list[str]:
    names: dict[str, None] = {}
    for message in conversation.messages:
        for call in message.calls:
            if call.name:
                names.setdefault(call.name)
        if message.role == "function" and message.name:
            names.setdefault(message.name)
    return list(names)


def build_records(conversation: Conversation, received_at: datetime) -> list[Record]:
    cid = conversation.record_id
    conv_ref = f"Conversation:{cid}"
    entities = [Entity(type="Conversation", key=cid, properties={"title": _title(conversation)})]
    relations: list[Relation] = []
    if conversation.model:
        entities.append(Entity(type="Model", key=conversation.model[:512]))
        relations.append(Relation(src=conv_ref, type="USED_MODEL", dst=f"Model:{conversation.model[:512]}"))
    roles: dict[str, int] = {}
    for message in conversation.messages:
        roles[message.role] = roles.get(message.role, 0) + 1
    other_parts = [{"message": m.index, "type": kind} for m in conversation.messages for kind in m.other_parts]
    attributes: dict[str, Any] = {
        "conversation_id": conversation.conversation_id,
        "model": conversation.model or None,
        "metadata": conversation.metadata,
        "message_count": len(conversation.messages),
        "roles": roles,
        "tool_names": _tool_names(conversation),
        "messages_sha256": conversation.messages_hash,
        "messages": [m.as_dict() for m in conversation.messages],
    }
    if other_parts:
        attributes["non_text_parts"] = other_parts
    refusals = [{"message": m.index, "refusal": m.refusal} for m in conversation.messages if m.refusal is not None]
    if refusals:
        attributes["refusals"] = refusals
    if conversation.warnings:
        attributes["parse_warnings"] = conversation.warnings
    records = [
        Record(
            source=SOURCE,
            kind=KIND_CONVERSATION,
            id=cid,
            version=len(conversation.messages) * VERSION_STEP,
            occurred_at=received_at,
            title=_title(conversation),
            text="\n".join(_line(m, conversation) for m in conversation.messages),
            attributes=attributes,
            entities=tuple(entities),
            relations=tuple(relations),
        )
    ]
    for message in conversation.messages:
        if message.role != "tool":
            continue
        tool = message.name or conversation.tool_name(message.tool_call_id)
        call = conversation.tool_call(message.tool_call_id)
        records.append(
            Record(
                source=SOURCE,
                kind=KIND_TOOL_OUTPUT,
                id=f"{cid}:{message.tool_call_id}",
                # its place in the conversation: appending messages never moves it
                version=message.index + 1,
                occurred_at=received_at,
                title=f"Tool output of {tool or 'a tool'} ({message.tool_call_id})",
                text=message.text,
                attributes={
                    "conversation_id": conversation.conversation_id,
                    "tool_call_id": message.tool_call_id,
                    "tool_name": tool or None,
                    "arguments": call.arguments if call else None,
                    **({"tool_type": call.type} if call and call.type != "function" else {}),
                    "model": conversation.model or None,
                    "message_index": message.index,
                    **({"non_text_parts": list(message.other_parts)} if message.other_parts else {}),
                },
                entities=(Entity(type="Conversation", key=cid),),
            )
        )
    return records
