"""Decoding and strict validation of a pushed conversation in the OpenAI chat format.

    {"model": "gpt-4o", "conversation_id": "thr_42", "metadata": {...},
     "messages": [{"role": "user", "content": "..."},
                  {"role": "assistant", "content": null, "tool_calls": [
                      {"id": "call_1", "type": "function",
                       "function": {"name": "get_status", "arguments": "{\\"pro\\": \\"123\\"}"}}]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "..."}]}

`content` is a string, null (an assistant message that only calls tools), or a list of
parts: `{"type": "text", "text"}` and `{"type": "refusal", "refusal"}` are text; other
parts (images, audio, files) are noted by type, never stored (a data: URL can be megabytes).

An assistant message may also carry (OpenAI's `ChatCompletionAssistantMessageParam`):
- `tool_calls[]`: `{id, type: "function", function: {name, arguments}}` (`type` may be
  left out) or `{id, type: "custom", custom: {name, input}}`; a call of any other type is
  kept as it came (`raw`) with a parse warning, never a reason to refuse the conversation;
- `refusal`: the model's refusal text (string or null);
- `function_call`: `{name, arguments}`, the deprecated form of one function tool call.

Every error names the field: `messages[3].role`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from apex_connector_llm.settings import LlmSettings
from apex_platform.errors import PayloadError
from apex_platform.payloads import decode_json, json_type

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_TEXT_PARTS = {"text": "text", "refusal": "refusal"}
#: conversation and tool-call ids become parts of record and workflow ids
_ID = re.compile(r"[\x21-\x7e]{1,128}")
_MAX_NAME = 256
_MAX_MODEL = 200


#: tool call types whose fields are read; any other type is kept raw
FUNCTION = "function"
CUSTOM = "custom"
#: the legacy `function_call` of an assistant message, kept as a call of this type
LEGACY_FUNCTION_CALL = "function_call"


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    #: `function.arguments` (JSON text), or `custom.input` (free text)
    arguments: str
    type: str = FUNCTION
    #: the call as it came, for a type this connector does not read
    raw: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.raw is not None:
            return {"id": self.id, "type": self.type, "raw": self.raw}
        if self.type == CUSTOM:
            return {"id": self.id, "type": CUSTOM, "name": self.name, "input": self.arguments}
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    def describe(self) -> str:
        """The call in the transcript: `→ name(arguments)`."""
        if self.raw is not None:
            return f"→ [tool call of type {self.type!r}]"
        return f"→ {self.name}({self.arguments})"


@dataclass(frozen=True)
class Message:
    index: int
    role: str
    text: str
    name: str = ""
    tool_call_id: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    #: types of the parts that are not text (image_url, input_audio, file …)
    other_parts: tuple[str, ...] = ()
    #: the assistant's top-level `refusal` (None when absent or null)
    refusal: str | None = None
    #: the deprecated `function_call` of an assistant message
    function_call: ToolCall | None = None
    #: what was kept without being understood (`messages[2].tool_calls[0]: …`)
    warnings: tuple[str, ...] = ()

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """Every call the message makes: `tool_calls`, then the legacy `function_call`."""
        return self.tool_calls + ((self.function_call,) if self.function_call is not None else ())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.text}
        if self.name:
            out["name"] = self.name
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            out["tool_calls"] = [c.as_dict() for c in self.tool_calls]
        if self.function_call is not None:
            out["function_call"] = {"name": self.function_call.name, "arguments": self.function_call.arguments}
        if self.refusal is not None:
            out["refusal"] = self.refusal
        if self.other_parts:
            out["other_parts"] = list(self.other_parts)
        return out


@dataclass(frozen=True)
class Conversation:
    #: the client's conversation_id, or None
    conversation_id: str | None
    model: str
    messages: tuple[Message, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: SHA-256 of the messages as sent (canonical JSON)
    messages_hash: str = ""

    @property
    def warnings(self) -> list[str]:
        return [w for m in self.messages for w in m.warnings]

    @property
    def record_id(self) -> str:
        """The client's id; without one, the hash of the whole transcript (every distinct
        transcript is then its own record: nothing is merged by guess)."""
        return self.conversation_id or f"sha256:{self.messages_hash[:32]}"

    @property
    def event_id(self) -> str:
        """Conversation and content: the same push twice is a duplicate, a conversation
        that grew (or changed) is a new event."""
        return f"{self.record_id}:{self.messages_hash[:32]}"

    def tool_call(self, tool_call_id: str) -> ToolCall | None:
        for message in self.messages:
            for call in message.tool_calls:
                if call.id and call.id == tool_call_id:
                    return call
        return None

    def tool_name(self, tool_call_id: str) -> str:
        call = self.tool_call(tool_call_id)
        return call.name if call is not None else ""


#: what json.loads itself decodes before its RecursionError: the structure check adds no depth limit
_MAX_DECODED_DEPTH = 10_000


def decode_body(body: bytes) -> Any:
    """The body as JSON through the platform's one strict decoder (`decode_json`): NaN and
    Infinity, numbers out of range (`1e999`), integers over 100 digits, duplicate keys and
    lone surrogate escapes are refused (400) naming the reason, never a 500."""
    return decode_json(body, what="the body", max_depth=_MAX_DECODED_DEPTH)


def _optional_string(doc: dict[str, Any], key: str, where: str, limit: int) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{where}{key} must be a string, not {json_type(value)}")
    if len(value) > limit:
        raise PayloadError(f"{where}{key} is longer than {limit} characters")
    return value


def _an_id(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be a string, not {json_type(value)}")
    if not _ID.fullmatch(value):
        raise PayloadError(f"{where} must be 1 to 128 printable ASCII characters without spaces")
    return value


def _content(value: Any, where: str) -> tuple[str, tuple[str, ...]]:
    if value is None:
        return "", ()
    if isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        raise PayloadError(f"{where}.content must be a string, null or a list of parts, not {json_type(value)}")
    texts: list[str] = []
    others: list[str] = []
    for n, part in enumerate(value):
        at = f"{where}.content[{n}]"
        if not isinstance(part, dict):
            raise PayloadError(f"{at} must be an object with a type, not {json_type(part)}")
        kind = part.get("type")
        if not isinstance(kind, str) or not kind:
            raise PayloadError(f"{at}.type must be a non-empty string")
        if kind in _TEXT_PARTS:
            text = part.get(_TEXT_PARTS[kind])
            if not isinstance(text, str):
                raise PayloadError(f"{at}.{_TEXT_PARTS[kind]} must be a string, not {json_type(text)}")
            texts.append(text)
        else:
            others.append(kind[:64])
    return "\n".join(texts), tuple(others)


def _named_call(value: Any, at: str, text_key: str, what: str) -> tuple[str, str]:
    """`name` and the text under `text_key` of a function (`arguments`) or custom (`input`) call."""
    if not isinstance(value, dict):
        raise PayloadError(f"{at} must be an object with a name, not {json_type(value)}")
    name = value.get("name")
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
        raise PayloadError(f"{at}.name must be a non-empty string of at most {_MAX_NAME} characters")
    text = value.get(text_key, "")
    if isinstance(text, dict | list):  # some clients send the object itself
        text = json.dumps(text, sort_keys=True, ensure_ascii=False)
    if not isinstance(text, str):
        raise PayloadError(f"{at}.{text_key} must be a string{what}, not {json_type(text)}")
    return name, text


def _tool_calls(value: Any, where: str, limit: int) -> tuple[tuple[ToolCall, ...], tuple[str, ...]]:
    """The calls, and a warning for each call of a type that is kept raw."""
    if value is None:
        return (), ()
    if not isinstance(value, list):
        raise PayloadError(f"{where}.tool_calls must be a list, not {json_type(value)}")
    if len(value) > limit:
        raise PayloadError(f"{where}.tool_calls has {len(value)} calls, more than {limit} (APEX_LLM_MAX_TOOL_CALLS)")
    calls: list[ToolCall] = []
    warnings: list[str] = []
    for n, call in enumerate(value):
        at = f"{where}.tool_calls[{n}]"
        if not isinstance(call, dict):
            raise PayloadError(f"{at} must be an object, not {json_type(call)}")
        kind = call.get("type")
        if kind is None and "function" in call:
            kind = FUNCTION  # older clients leave the type out
        if kind == FUNCTION or kind is None:
            name, arguments = _named_call(call.get("function"), f"{at}.function", "arguments", " of JSON")
            calls.append(ToolCall(_an_id(call.get("id"), f"{at}.id"), name, arguments))
        elif kind == CUSTOM:
            name, text = _named_call(call.get("custom"), f"{at}.custom", "input", "")
            calls.append(ToolCall(_an_id(call.get("id"), f"{at}.id"), name, text, type=CUSTOM))
        else:
            # a type this connector does not know (yet): kept as it came, never a reason to
            # refuse the whole conversation
            shown = kind[:64] if isinstance(kind, str) else json_type(kind)
            call_id = call.get("id")
            usable_id = call_id if isinstance(call_id, str) and _ID.fullmatch(call_id) else ""
            calls.append(ToolCall(usable_id, "", "", type=shown, raw=call))
            warnings.append(f"{at}: tool call of unknown type {shown!r} kept as it came (not read)")
    return tuple(calls), tuple(warnings)


def _function_call(value: Any, where: str) -> ToolCall | None:
    """The deprecated `function_call: {name, arguments}` of an assistant message."""
    if value is None:
        return None
    name, arguments = _named_call(value, f"{where}.function_call", "arguments", " of JSON")
    return ToolCall("", name, arguments, type=LEGACY_FUNCTION_CALL)


def _message(value: Any, index: int, settings: LlmSettings) -> Message:
    where = f"messages[{index}]"
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object with a role and content, not {json_type(value)}")
    role = value.get("role")
    if not isinstance(role, str) or role not in ROLES:
        shown = repr(role[:32]) if isinstance(role, str) else json_type(role)
        raise PayloadError(f"{where}.role {shown} is not one of {', '.join(ROLES)}")
    if "content" not in value and role != "assistant":
        raise PayloadError(f"{where}.content is missing")
    text, others = _content(value.get("content"), where)
    refusal = value.get("refusal")
    if refusal is not None and not isinstance(refusal, str):
        raise PayloadError(f"{where}.refusal must be a string or null, not {json_type(refusal)}")
    if len(text) + len(refusal or "") > settings.max_message_chars:
        raise PayloadError(
            f"{where}.content is longer than {settings.max_message_chars} characters (APEX_LLM_MAX_MESSAGE_CHARS)"
        )
    name = _optional_string(value, "name", f"{where}.", _MAX_NAME)
    tool_call_id = ""
    if role == "tool":
        tool_call_id = _an_id(value.get("tool_call_id"), f"{where}.tool_call_id")
    elif value.get("tool_call_id") is not None:
        raise PayloadError(f"{where}.tool_call_id is only allowed on tool messages")
    calls, warnings = _tool_calls(value.get("tool_calls"), where, settings.max_tool_calls)
    function_call = _function_call(value.get("function_call"), where)
    for key, present in (("tool_calls", calls), ("function_call", function_call), ("refusal", refusal)):
        if present and role != "assistant":
            raise PayloadError(f"{where}.{key} is only allowed on assistant messages")
    if role == "function" and not name:
        raise PayloadError(f"{where}.name is required on function messages (the function's name)")
    return Message(index, role, text, name, tool_call_id, calls, others, refusal, function_call, warnings)


def read_conversation(doc: Any, settings: LlmSettings) -> Conversation:
    """Validate a decoded body; `PayloadError` names the first problem."""
    if not isinstance(doc, dict):
        raise PayloadError(f"the body must be a JSON object with messages, not {json_type(doc)}")
    if "messages" not in doc:
        raise PayloadError("messages is missing: expected a list of {role, content} objects")
    raw = doc["messages"]
    if not isinstance(raw, list):
        raise PayloadError(f"messages must be a list, not {json_type(raw)}")
    if not raw:
        raise PayloadError("messages is empty")
    if len(raw) > settings.max_messages:
        raise PayloadError(f"too many messages: {len(raw)}, at most {settings.max_messages} (APEX_LLM_MAX_MESSAGES)")
    messages = tuple(_message(m, i, settings) for i, m in enumerate(raw))
    total = sum(len(m.text) + len(m.refusal or "") for m in messages)
    if total > settings.max_total_chars:
        raise PayloadError(
            f"the conversation is too long: {total} characters, at most {settings.max_total_chars} "
            "(APEX_LLM_MAX_TOTAL_CHARS)"
        )
    model = _optional_string(doc, "model", "", _MAX_MODEL)
    conversation_id = doc.get("conversation_id")
    if conversation_id is not None:
        conversation_id = _an_id(conversation_id, "conversation_id")
    metadata = doc.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise PayloadError(f"metadata must be an object, not {json_type(metadata)}")
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > settings.max_metadata_bytes:
        raise PayloadError(
            f"metadata is {size} bytes as JSON, more than {settings.max_metadata_bytes} (APEX_LLM_MAX_METADATA_BYTES)"
        )
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Conversation(
        conversation_id=conversation_id,
        model=model,
        messages=messages,
        metadata=metadata,
        messages_hash=hashlib.sha256(canonical.encode()).hexdigest(),
    )
