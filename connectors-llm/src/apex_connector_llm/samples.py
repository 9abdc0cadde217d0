"""Sample pushes for the demo and the tests: a dispatch assistant answering a shipper
about a load, calling a tracking tool; pushed once, then again after it grew.
Names, numbers and domains are made up."""

from __future__ import annotations

import copy
import json
from typing import Any

CONVERSATION_ID = "demo-dispatch-0001"
MODEL = "gpt-4o"

_CALL_ID = "call_track_4471823"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are the dispatch assistant of Apex Logistics. Use the tools to answer."},
    {
        "role": "user",
        "content": "Where is load 4471823 (PRO 0286-55431)? The consignee in Minneapolis, MN is asking.",
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": _CALL_ID,
                "type": "function",
                "function": {"name": "track_shipment", "arguments": json.dumps({"pro": "0286-55431"})},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": _CALL_ID,
        "content": json.dumps(
            {
                "pro": "0286-55431",
                "scac": "APXL",
                "status": "X6",
                "description": "En route to delivery location",
                "city": "Albert Lea",
                "state": "MN",
                "eta": "2026-03-02T14:00:00-06:00",
            }
        ),
    },
    {
        "role": "assistant",
        "content": "Load 4471823 is en route, last seen in Albert Lea, MN; expected in Minneapolis at 2 PM CST.",
    },
]
FOLLOW_UP: list[dict[str, Any]] = [
    {"role": "user", "content": [{"type": "text", "text": "Can they deliver before noon instead?"}]},
    {"role": "assistant", "content": "I asked the carrier; the driver can be there by 11:30 AM."},
]


def conversation(grown: bool = False) -> dict[str, Any]:
    """The body of one push (a fresh copy)."""
    messages = MESSAGES + (FOLLOW_UP if grown else [])
    return {
        "model": MODEL,
        "conversation_id": CONVERSATION_ID,
        "metadata": {"title": "Load 4471823 delivery ETA", "agent": "dispatch-assistant", "channel": "web"},
        "messages": copy.deepcopy(messages),
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def bodies() -> list[bytes]:
    """The demo's pushes: the conversation, then the same one after two more messages."""
    return [encode(conversation()), encode(conversation(grown=True))]
