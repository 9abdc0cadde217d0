"""Apex push source for LLM agents and applications: conversations and tool outputs."""

from __future__ import annotations

from apex_connector_llm.connector import PUSH_PATH, LlmConnector
from apex_connector_llm.conversation import Conversation, Message, ToolCall, read_conversation
from apex_connector_llm.records import KIND_CONVERSATION, KIND_TOOL_OUTPUT, VERSION_STEP
from apex_connector_llm.settings import LlmSettings

__all__ = [
    "KIND_CONVERSATION",
    "KIND_TOOL_OUTPUT",
    "PUSH_PATH",
    "VERSION_STEP",
    "Conversation",
    "LlmConnector",
    "LlmSettings",
    "Message",
    "ToolCall",
    "read_conversation",
]
