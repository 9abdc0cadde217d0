"""A lone UTF-16 surrogate escape in a push is malformed (400), not an internal error:
found by the chaos harness (tests/chaos), where such a push was answered 500 forever."""

from __future__ import annotations

import json

import pytest

from apex_connector_llm import LlmConnector, LlmSettings, samples
from apex_platform.errors import PayloadError


@pytest.mark.parametrize("where", ["content", "metadata", "key"])
def test_a_lone_surrogate_escape_is_refused_as_malformed(where: str) -> None:
    doc = samples.conversation()
    if where == "content":
        doc["messages"][1]["content"] = "Where is load \ud83d 4471823?"
    elif where == "metadata":
        doc["metadata"]["title"] = "ETA \udc00"
    else:
        doc["metadata"]["\ud800"] = "x"
    body = json.dumps(doc).encode()  # ASCII escapes: valid UTF-8, valid JSON
    assert b"\\ud" in body
    connector = LlmConnector(LlmSettings())
    with pytest.raises(PayloadError, match="unpaired UTF-16 surrogate"):
        connector.receive({}, body)


def test_a_paired_surrogate_escape_is_an_ordinary_character() -> None:
    doc = samples.conversation()
    doc["messages"][1]["content"] = "Delivered \ud83d\ude9a"  # 🚚 written as a JSON surrogate pair
    event = LlmConnector(LlmSettings()).receive({}, json.dumps(doc).encode())
    assert event.payload["messages"][1]["content"] == "Delivered \U0001f69a"
