"""FakeVendorServer: starts on a free port, answers over real TCP, stops without leaving a thread."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import pytest
from litestar import Litestar, get

from apex_platform.stack.ports import port_accepts
from apex_platform.testing.vendor_server import FakeVendorServer


def make_app() -> Litestar:
    @get("/ping", sync_to_thread=False)
    def ping() -> dict[str, Any]:
        return {"pong": True}

    return Litestar(route_handlers=[ping], logging_config=None, openapi_config=None)


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name)]


def test_starts_on_a_free_port_answers_and_stops() -> None:
    server = FakeVendorServer(make_app(), name="fake ping")
    base_url = server.start()
    try:
        assert base_url == f"http://127.0.0.1:{server.port}" == server.base_url
        assert server.running
        assert httpx.get(f"{base_url}/ping").json() == {"pong": True}
    finally:
        server.stop()
    assert not server.running
    assert not port_accepts(server.port)
    assert threads_named("fake ping") == []


def test_context_manager_stops_even_with_a_kept_alive_connection() -> None:
    with FakeVendorServer(make_app(), name="fake keepalive") as server, httpx.Client() as client:
        assert client.get(f"{server.base_url}/ping").status_code == 200
    assert threads_named("fake keepalive") == []


def test_two_servers_get_different_ports() -> None:
    with FakeVendorServer(make_app()) as one, FakeVendorServer(make_app()) as two:
        assert one.port != two.port
        assert httpx.get(f"{two.base_url}/ping").status_code == 200


def test_stop_is_idempotent_and_a_no_op_before_start() -> None:
    server = FakeVendorServer(make_app())
    server.stop()
    server.start()
    server.stop()
    server.stop()
    assert not server.running


def test_restarts_after_stop() -> None:
    server = FakeVendorServer(make_app(), name="fake restart")
    server.start()
    server.stop()
    try:
        assert httpx.get(f"{server.start()}/ping").status_code == 200
    finally:
        server.stop()


def test_base_url_before_start_says_to_start() -> None:
    with pytest.raises(RuntimeError, match=r"fake thing server has not been started"):
        _ = FakeVendorServer(make_app(), name="fake thing").base_url


def test_starting_twice_is_refused() -> None:
    with FakeVendorServer(make_app(), name="fake twice") as server, pytest.raises(RuntimeError, match="running"):
        server.start()
    assert threads_named("fake twice") == []


def test_a_taken_port_fails_clearly_and_leaves_no_thread() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = FakeVendorServer(make_app(), name="fake busy", port=port, start_timeout=5)
        with pytest.raises(RuntimeError, match=r"the fake busy server did not start on 127\.0\.0\.1"):
            server.start()
    assert not server.running
    assert threads_named("fake busy") == []
