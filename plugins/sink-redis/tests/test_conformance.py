"""The Apex sink conformance suite against the real Redis (the session's server; `sink`
and `make_settings` come from conftest.py). It holds the fenced contract checks that
test_fenced_contract.py ran before. Redis holds every valid record (NUL characters and
lone surrogates included), so there is no `unholdable_record`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr

from apex_platform.contracts import Sink
from apex_platform.stack.ports import free_port
from apex_platform.testing.conformance import SinkConformance
from apex_sink_redis import RedisSink, RedisSinkSettings


class TestConformance(SinkConformance):
    @pytest.fixture
    def unreachable_sink(self, make_settings: Callable[..., RedisSinkSettings]) -> Sink | None:
        url = SecretStr(f"redis://127.0.0.1:{free_port()}/0")
        return RedisSink(make_settings(url=url, connect_timeout_seconds=1.0, health_timeout_seconds=1.0))
