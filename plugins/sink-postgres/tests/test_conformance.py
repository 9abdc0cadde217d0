"""The Apex sink conformance suite against the real PostgreSQL (the session's server;
`sink` and `make_settings` come from conftest.py). It holds the fenced contract checks
that test_fenced_contract.py ran before."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from apex_platform.contracts import Sink
from apex_platform.models import Record
from apex_platform.stack.ports import free_port
from apex_platform.testing.conformance import SinkConformance
from apex_platform.testing.sink_contract import record
from apex_sink_postgres import PostgresSink, PostgresSinkSettings


class TestConformance(SinkConformance):
    @pytest.fixture
    def unholdable_record(self) -> Record | None:
        return record("nul\x00in-the-id", 1)  # PostgreSQL text cannot hold NUL, and the id is the identity

    @pytest.fixture
    def unreachable_sink(self) -> Sink | None:
        dsn = SecretStr(f"postgresql://apex@127.0.0.1:{free_port()}/apex")
        return PostgresSink(PostgresSinkSettings(dsn=dsn, connect_timeout=2.0, health_timeout=1.0))
