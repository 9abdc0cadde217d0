"""Fixtures of the LLM connector tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from apex_connector_llm import LlmConnector, LlmSettings
from apex_platform.models import InboundEvent, Record

NOW = 1773151512.5  # 2026-03-10 14:05:12.5 UTC


@pytest.fixture
def connector() -> LlmConnector:
    return LlmConnector(LlmSettings(), clock=lambda: NOW)


@pytest.fixture
def push(connector: LlmConnector) -> Callable[[Any], InboundEvent]:
    """Receive a body (an object is encoded as JSON) as the push API does."""

    def _push(body: Any) -> InboundEvent:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return connector.receive({"content-type": "application/json"}, raw)

    return _push


@pytest.fixture
def records_of(connector: LlmConnector, push: Callable[[Any], InboundEvent]) -> Callable[[Any], list[Record]]:
    return lambda body: connector.parse(push(body))
