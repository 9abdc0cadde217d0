"""The Apex sink conformance suite against the real FalkorDB (the session's Redis with
the module; `sink` and `make_settings` come from conftest.py). It holds the fenced
contract checks that test_fenced_contract.py ran before."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from apex_platform.contracts import Sink
from apex_platform.models import Record
from apex_platform.stack.ports import free_port
from apex_platform.testing.conformance import SinkConformance
from apex_platform.testing.sink_contract import record
from apex_sink_graph import GraphSink, GraphSinkSettings


class TestConformance(SinkConformance):
    @pytest.fixture
    def unholdable_record(self) -> Record | None:
        return record("nul\x00in-the-id", 1)  # a NUL in a node's identity cannot be stored

    @pytest.fixture
    def unreachable_sink(self) -> Sink | None:
        uri = SecretStr(f"falkordb://127.0.0.1:{free_port()}/conformance")
        return GraphSink(GraphSinkSettings(uri=uri, connect_timeout=1.0, health_timeout=1.0, retry_seconds=0.5))
