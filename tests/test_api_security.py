"""The API's authentication and public surface over HTTP (issue 11, items 1, 9, 11, 13), with
the real API process:

- the admin token: `Bearer ` with nothing after it used to pass when APEX_ADMIN_TOKEN was
  empty; now an empty token is refused at start and an empty bearer never matches; several
  tokens at once for a rotation;
- push keys scoped to sources, checked before the source is looked up (no enumeration);
- `/readyz` and `/v1/plugins` without internals unless the admin token is given;
- the HTTP server's limits: concurrency, header and body deadlines, header size.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Deployment, front_event, front_headers
from support.procs import CLI, wait_http

from apex_platform.stack.ports import free_port

pytestmark = pytest.mark.timeout(240)

OLD_ADMIN = "admin-token-old-" + uuid.uuid4().hex
NEW_ADMIN = "admin-token-new-" + uuid.uuid4().hex
ANY_KEY = "push-key-any-" + uuid.uuid4().hex
LLM_KEY = "push-key-llm-" + uuid.uuid4().hex
CRM_KEY = "push-key-crm-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, apex_temporal_server: Any, apex_postgres_server: Any
) -> Iterator[str]:
    dep = Deployment(
        tmp_path_factory.mktemp("api-security"),
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGINS="frontapp,llm,postgres",
        APEX_ADMIN_TOKEN=f"{OLD_ADMIN},{NEW_ADMIN}",
        APEX_API_KEYS=f"{ANY_KEY},llm:{LLM_KEY},crm:{CRM_KEY}",
    )
    dep.api.start()
    try:
        wait_http(f"{dep.url}/healthz", proc=dep.api)
        yield dep.url
    finally:
        dep.stop()


@pytest.fixture(scope="module")
def degraded(tmp_path_factory: pytest.TempPathFactory, apex_postgres_server: Any) -> Iterator[str]:
    """Temporal unreachable, a plugin module that does not import, a Front secret too short,
    and tight server limits."""
    dep = Deployment(
        tmp_path_factory.mktemp("api-degraded"),
        f"127.0.0.1:{free_port()}",
        apex_postgres_server.dsn,
        APEX_PLUGINS="frontapp,postgres",
        APEX_PLUGIN_MODULES="apex_no_such_module_for_tests",
        APEX_ADMIN_TOKEN=NEW_ADMIN,
        APEX_FRONTAPP_SIGNING_SECRET="too-short",
        APEX_API_LIMIT_CONCURRENCY="4",
        APEX_API_HEADER_TIMEOUT="1",
        APEX_API_BODY_TIMEOUT="2",
        APEX_API_MAX_HEADER_BYTES="4096",
    )
    dep.api.start()
    try:
        wait_http(f"{dep.url}/healthz", proc=dep.api)
        yield dep.url
    finally:
        dep.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the admin token ---------------------------------------------------------------------

ADMIN_CALLS = [
    ("GET", "/v1/trace?source=frontapp&id=x"),
    ("GET", "/v1/dead-letters"),
    ("GET", "/v1/dead-letters/1"),
    ("POST", "/v1/dead-letters/1/replay"),
    ("POST", "/v1/dead-letters/1/discard"),
    ("GET", "/v1/inbox"),
]


def status(url: str, method: str, path: str, authorization: str | None) -> int:
    """With http.client: httpx refuses to send `Bearer ` (a trailing space), a client may not."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, headers={} if authorization is None else {"Authorization": authorization})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize(("method", "path"), ADMIN_CALLS)
def test_an_empty_or_wrong_bearer_never_passes(api: str, method: str, path: str) -> None:
    for header in ("Bearer ", "Bearer    ", "Bearer", "bearer x", f"Basic {NEW_ADMIN}", f"Bearer {NEW_ADMIN}x", None):
        assert status(api, method, path, header) == 401, header


def test_both_admin_tokens_of_a_rotation_pass(api: str) -> None:
    for token in (OLD_ADMIN, NEW_ADMIN):
        resp = httpx.get(f"{api}/v1/dead-letters", headers=bearer(token), timeout=30)
        assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("APEX_ADMIN_TOKEN", ""),
        ("APEX_ADMIN_TOKEN", "Zq7-tiny"),
        ("APEX_API_KEYS", "llm:Zq7-tiny"),
        ("APEX_API_KEYS", " "),
    ],
)
def test_the_api_does_not_start_with_an_empty_or_short_secret(variable: str, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}
    env.update(
        {
            variable: value,
            "APEX_PLUGINS": "frontapp",
            "APEX_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "APEX_PAYLOAD_ENCRYPTION": "off",
        }
    )
    out = subprocess.run([CLI, "api", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert variable in out.stderr
    assert "Traceback" not in out.stderr
    if value.strip():
        assert value.split(":")[-1] not in out.stderr.replace(variable, "")


# -- push keys ---------------------------------------------------------------------------


def push(api: str, source: str, key: str | None, conversation: str | None = None) -> httpx.Response:
    doc = {
        "conversation_id": conversation or f"c-{uuid.uuid4().hex[:12]}",
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"Content-Type": "application/json", **(bearer(key) if key else {})}
    return httpx.post(f"{api}/v1/records/{source}", content=json.dumps(doc), headers=headers, timeout=30)


def test_credentials_come_before_the_source_lookup(api: str) -> None:
    """An unknown source answers 401 to a caller without a valid key, like a known one:
    the installed sources cannot be found by trying names."""
    for source in ("llm", "no-such-source", "frontapp"):
        assert push(api, source, None).status_code == 401
        assert push(api, source, "not-a-key-of-this-deployment").status_code == 401
    assert push(api, "no-such-source", ANY_KEY).status_code == 404


def test_a_scoped_key_pushes_to_its_sources_only(api: str) -> None:
    assert push(api, "llm", LLM_KEY).status_code == 202
    assert push(api, "llm", ANY_KEY).status_code == 202  # an unscoped key: every push source
    refused = push(api, "llm", CRM_KEY)
    assert refused.status_code == 403
    assert "may not push to 'llm'" in refused.json()["error"]
    assert push(api, "no-such-source", LLM_KEY).status_code == 403  # scope before existence too


# -- the public endpoints ----------------------------------------------------------------


def test_readyz_shows_statuses_only_without_the_admin_token(degraded: str) -> None:
    public = httpx.get(f"{degraded}/readyz", timeout=30)
    assert public.status_code == 503
    checks = public.json()["checks"]
    assert checks["temporal"] == "error"
    assert set(checks.values()) <= {"ok", "error"}
    detailed = httpx.get(f"{degraded}/readyz", headers=bearer(NEW_ADMIN), timeout=30).json()["checks"]
    assert detailed["temporal"].startswith("error: ")  # the exception, for operators


def test_plugins_hide_module_paths_and_errors_without_the_admin_token(degraded: str) -> None:
    public = httpx.get(f"{degraded}/v1/plugins", timeout=30)
    assert public.status_code == 200
    text = public.text
    assert "apex_no_such_module_for_tests" not in text
    assert "ModuleNotFoundError" not in text
    doc = public.json()
    assert {p["module"] for p in doc["plugins"]} == {None}
    assert doc["problems"]  # said to exist, not what they are
    assert {s["name"] for s in doc["sources"]} == {"frontapp"}
    full = httpx.get(f"{degraded}/v1/plugins", headers=bearer(NEW_ADMIN), timeout=30).text
    assert "apex_no_such_module_for_tests" in full


def test_a_misconfigured_source_is_503_not_500(degraded: str) -> None:
    body = json.dumps(front_event()).encode()
    resp = httpx.post(f"{degraded}/webhooks/frontapp", content=body, headers=front_headers(body), timeout=30)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"]
    assert "misconfigured" in resp.json()["error"]
    assert "APEX_FRONTAPP_SIGNING_SECRET" not in resp.text  # the log says which setting


# -- the HTTP server's limits ------------------------------------------------------------


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_silent_connection_or_slow_headers_get_408(degraded: str) -> None:
    with _connect(degraded) as silent:
        started = time.monotonic()
        answer = _read_all(silent)
        assert answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 5
    with _connect(degraded) as slow:
        started = time.monotonic()
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # a header line every 0.5 s: always busy, never done
            time.sleep(0.5)
            try:
                slow.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
        assert _read_all(slow).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 5


def test_a_body_that_never_ends_is_cut_off(degraded: str) -> None:
    """A webhook's body is read before anything else: one that never comes held the
    connection (and the request's slot) for ever."""
    with _connect(degraded) as sock:
        sock.sendall(b"POST /webhooks/frontapp HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        _read_all(sock)  # the server closes the connection (the socket's own timeout is 10 s)
        assert 1.5 < time.monotonic() - started < 6


def test_oversized_headers_get_431(degraded: str) -> None:
    with _connect(degraded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431")
    assert httpx.get(f"{degraded}/healthz", timeout=10).status_code == 200


def test_connections_beyond_the_concurrency_limit_get_503(degraded: str) -> None:
    idle = [_connect(degraded) for _ in range(4)]
    try:
        time.sleep(0.2)
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{degraded}/healthz").status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{degraded}/healthz", timeout=10).status_code == 200
