"""The Apex sink conformance suite against Qdrant in local mode (`sink` comes from
conftest.py). It holds the fenced contract checks that test_fenced_contract.py ran
before."""

from __future__ import annotations

import pytest

from apex_platform.contracts import Sink
from apex_platform.models import Record
from apex_platform.stack.ports import free_port
from apex_platform.testing.conformance import SinkConformance
from apex_platform.testing.sink_contract import record
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings


class TestConformance(SinkConformance):
    @pytest.fixture
    def unholdable_record(self) -> Record | None:
        # beyond Qdrant's 64-bit integer payload
        return record("too-new", 1).model_copy(update={"version": 2**63})

    @pytest.fixture
    def unreachable_sink(self) -> Sink | None:
        settings = QdrantSinkSettings(
            url=f"http://127.0.0.1:{free_port()}", embedding_dim=4, timeout=2, health_timeout=1.0
        )
        return QdrantSink(settings)
