"""A worker's first connection to Temporal: it waits for a server that is not up yet, and
stops at once, saying why, when the server refuses it in a way waiting cannot mend."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from apex_platform.errors import SettingsError
from apex_platform.plugins import Registry
from apex_platform.runtime import Runtime
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.client import temporal_unreachable
from apex_platform.temporal.worker import connect_when_up


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def runtime_for(settings: TemporalSettings) -> Runtime:
    return Runtime(registry=Registry(), core=None, temporal=settings, saga=None, codec=None)  # type: ignore[arg-type]


async def failure_of(address: str, **kwargs: Any) -> BaseException:
    try:
        await Client.connect(address, **kwargs)
    except Exception as exc:
        return exc
    raise AssertionError(f"connecting to {address} with {kwargs} succeeded")


async def test_the_sdks_real_failures_are_told_apart(apex_temporal_server: Any) -> None:
    """The errors are the SDK's own, from real attempts: nothing listening is worth waiting
    for; TLS against the dev server's plaintext port (or an API key, which implies TLS) is
    not."""
    refused = await failure_of(f"127.0.0.1:{closed_port()}")
    assert temporal_unreachable(refused), refused
    unresolved = await failure_of("temporal.invalid:7233")
    assert temporal_unreachable(unresolved), unresolved
    tls_on_plaintext = await failure_of(apex_temporal_server.address, tls=True)
    assert not temporal_unreachable(tls_on_plaintext), tls_on_plaintext
    api_key = await failure_of(apex_temporal_server.address, api_key="not-a-key")
    assert not temporal_unreachable(api_key), api_key


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (RPCStatusCode.UNAVAILABLE, True),
        (RPCStatusCode.DEADLINE_EXCEEDED, True),
        (RPCStatusCode.RESOURCE_EXHAUSTED, True),
        (RPCStatusCode.UNKNOWN, True),  # "transport error": a connection broken off as Temporal went down
        (RPCStatusCode.UNAUTHENTICATED, False),
        (RPCStatusCode.PERMISSION_DENIED, False),
        (RPCStatusCode.INVALID_ARGUMENT, False),
        (RPCStatusCode.NOT_FOUND, False),
    ],
)
def test_grpc_statuses(status: RPCStatusCode, transient: bool) -> None:
    assert temporal_unreachable(RPCError("refused", status, b"")) is transient


def test_other_exceptions_are_not_waited_for() -> None:
    assert not temporal_unreachable(ValueError("connection refused"))
    assert not temporal_unreachable(RuntimeError("Failed client connect: something new"))


async def test_a_refused_worker_stops_at_once_naming_the_settings(
    apex_temporal_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = runtime_for(TemporalSettings(address=apex_temporal_server.address, tls=True))
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING), pytest.raises(SettingsError) as caught:
        await asyncio.wait_for(connect_when_up(runtime, stop), timeout=30)
    message = str(caught.value)
    assert apex_temporal_server.address in message
    assert "APEX_TEMPORAL_TLS" in message
    assert "InvalidContentType" in message  # the SDK's own reason is kept
    assert "cannot be reached" not in caplog.text  # not one retry


async def test_a_worker_waits_for_an_absent_server_until_stopped(caplog: pytest.LogCaptureFixture) -> None:
    address = f"127.0.0.1:{closed_port()}"
    runtime = runtime_for(TemporalSettings(address=address))
    stop = asyncio.Event()

    async def stop_after_two_attempts() -> None:
        while caplog.text.count("cannot be reached") < 2:
            await asyncio.sleep(0.05)
        stop.set()

    with caplog.at_level(logging.WARNING):
        stopper = asyncio.create_task(stop_after_two_attempts())
        client = await asyncio.wait_for(connect_when_up(runtime, stop), timeout=60)
        await stopper
    assert client is None
    assert f"Temporal at {address} cannot be reached (attempt 1" in caplog.text
    assert "(attempt 2" in caplog.text


async def test_a_worker_connects_once_the_server_answers(
    apex_temporal_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """No failure, no warning: the first attempt connects and says nothing."""
    runtime = runtime_for(TemporalSettings(address=apex_temporal_server.address))
    with caplog.at_level(logging.INFO):
        client = await asyncio.wait_for(connect_when_up(runtime, asyncio.Event()), timeout=30)
    assert client is not None
    assert "cannot be reached" not in caplog.text
    assert "connected to Temporal" not in caplog.text
