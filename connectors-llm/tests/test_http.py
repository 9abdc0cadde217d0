"""Over real HTTP: `apex-platform api` and `apex-platform worker` as child processes, the
session's Temporal dev server, PostgreSQL through apex-sink-postgres."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from apex_connector_llm import LlmConnector, LlmSettings, samples
from apex_platform.stack.ports import free_port
from apex_platform.testing.inbox import produced, wait_delivered
from apex_platform.testing.processes import ApexProcess, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

KEY = "llm-test-key-" + uuid.uuid4().hex
PREFIX = f"llm{uuid.uuid4().hex[:6]}"
INBOX_SCHEMA = f"inbox_{PREFIX}"
DRAIN = f"{PREFIX}:drain:llm"
ROWS = "select id, kind, version from apex.records where source = 'llm' and id = any($1::text[]) order by id"


def environment(base: Path, temporal: Any, postgres: Any, **extra: str) -> dict[str, str]:
    # none of the caller's APEX_* settings, but the session's payload guard log and payload keys
    kept = {"APEX_PAYLOAD_GUARD_FILE", "APEX_PAYLOAD_KEYS", "APEX_PAYLOAD_KEYS_FILE", "APEX_PAYLOAD_ENCRYPTION"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("APEX_") or k in kept}
    env.update(
        {
            "APEX_HOME": str(base / "home"),
            "APEX_TEMPORAL_ADDRESS": temporal.address,
            "APEX_TEMPORAL_TASK_QUEUE_PREFIX": PREFIX,
            "APEX_POSTGRES_DSN": postgres.dsn,
            "APEX_INBOX_SCHEMA": INBOX_SCHEMA,
            "APEX_INBOX_IDLE_WAIT_SECONDS": "5",
            "APEX_PLUGINS": "llm,postgres",
            "APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS": "5",
            "APEX_LLM_MAX_MESSAGES": "50",
            **extra,
        }
    )
    return env


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, apex_temporal_server: Any, apex_postgres_server: Any
) -> Iterator[str]:
    """An API with a configured key, and a worker."""
    pytest.importorskip("apex_sink_postgres")
    base = tmp_path_factory.mktemp("llm-http")
    port = free_port()
    env = environment(base, apex_temporal_server, apex_postgres_server, APEX_API_KEYS=f"other-key-0123456789,{KEY}")
    env["APEX_API_PORT"] = str(port)
    procs = [ApexProcess([cmd], env, base / f"{cmd}.log", inherit=False).start() for cmd in ("api", "worker")]
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", timeout=90, proc=procs[0])
        yield url
    finally:
        for p in procs:
            p.stop()


@pytest.fixture(scope="module")
def api_without_keys(
    tmp_path_factory: pytest.TempPathFactory, apex_temporal_server: Any, apex_postgres_server: Any
) -> Iterator[str]:
    base = tmp_path_factory.mktemp("llm-http-nokeys")
    port = free_port()
    env = environment(base, apex_temporal_server, apex_postgres_server, APEX_API_PORT=str(port))
    proc = ApexProcess(["api"], env, base / "api.log", inherit=False).start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", timeout=90, proc=proc)
        yield url
    finally:
        proc.stop()


def post(url: str, body: bytes, key: str | None = KEY, **headers: str) -> httpx.Response:
    hdrs = {"Content-Type": "application/json", **headers}
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}".strip()
    return httpx.post(f"{url}/v1/records/llm", content=body, headers=hdrs, timeout=30)


def conversation(cid: str, grown: bool = False) -> dict[str, Any]:
    body = samples.conversation(grown=grown)
    body["conversation_id"] = cid
    return body


def event_id(body: dict[str, Any]) -> str:
    return LlmConnector(LlmSettings()).receive({}, json.dumps(body).encode()).event_id


async def in_inbox(dsn: str, eid: str) -> bool:
    """Whether the inbox holds this key (the table must exist: the API made it at start)."""
    conn = await asyncpg.connect(dsn)
    try:
        n = await conn.fetchval(
            f'SELECT count(*) FROM "{INBOX_SCHEMA}".deliveries WHERE source = $1 AND event_id = $2', "llm", eid
        )
    finally:
        await conn.close()
    return bool(n)


async def rows(dsn: str, ids: list[str], count: int, within: float = 60) -> list[Any]:
    deadline = time.monotonic() + within
    found: list[Any] = []
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(dsn)
        try:
            found = await conn.fetch(ROWS, ids)
        except asyncpg.UndefinedTableError:
            found = []
        finally:
            await conn.close()
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{count} rows for {ids} not there in {within}s: {found}")


async def test_push_lands_once_and_growth_is_a_new_version(api: str, apex_postgres_server: Any) -> None:
    cid = f"thr-{uuid.uuid4().hex[:12]}"
    body = json.dumps(conversation(cid)).encode()
    first = post(api, body)
    assert first.status_code == 202, first.text
    eid = event_id(conversation(cid))
    assert first.json() == {"status": "accepted", "event_id": eid, "workflow_id": DRAIN}
    tool_id = f"{cid}:call_track_4471823"
    found = await rows(apex_postgres_server.dsn, [cid, tool_id], 2)
    assert {(r["id"], r["kind"], r["version"]) for r in found} == {
        (cid, "llm.conversation", 5_000_000),
        (tool_id, "llm.tool_output", 4),
    }
    await wait_delivered(apex_postgres_server.dsn, "llm", [eid], schema=INBOX_SCHEMA, within=60)
    assert await produced(apex_postgres_server.dsn, "llm", eid, schema=INBOX_SCHEMA) == [
        {"id": cid, "version": 5_000_000},
        {"id": tool_id, "version": 4},
    ]

    again = post(api, body)
    assert again.status_code == 200, again.text
    assert again.json() == {"status": "duplicate", "event_id": eid, "workflow_id": DRAIN}

    grown = post(api, json.dumps(conversation(cid, grown=True)).encode())
    assert grown.status_code == 202, grown.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (conv,) = [r for r in await rows(apex_postgres_server.dsn, [cid], 1) if r["id"] == cid]
        if conv["version"] == 7_000_000:
            break
        await asyncio.sleep(0.2)
    assert conv["version"] == 7_000_000


OPENAI = Path(__file__).parent / "data" / "openai"


def openai_push(cid: str, example: str, question: str) -> dict[str, Any]:
    """A transcript: the example's user question, then its assistant message verbatim
    (tests/data/openai/README.md names where each example comes from)."""
    response = json.loads((OPENAI / example).read_text())
    return {
        "conversation_id": cid,
        "model": response["model"],
        "messages": [{"role": "user", "content": question}, response["choices"][0]["message"]],
    }


async def test_openais_published_shapes_land_through_the_push_api(api: str, apex_postgres_server: Any) -> None:
    """The SDK's recorded refusal, the OpenAPI spec's legacy function_call, a custom tool
    call and one of a type nobody knows yet: each push is 202 and lands with the refusal,
    the calls and the parse warning in the record (a custom call was a 400 before)."""
    tag = uuid.uuid4().hex[:10]
    refusal = openai_push(f"oa-r-{tag}", "sdk_chat_completion_refusal.json", "How do I make anthrax?")
    legacy = openai_push(
        f"oa-f-{tag}", "openapi_2023_chat_completion_function_call_example.json", "What's the weather like in Boston?"
    )
    custom = {
        "conversation_id": f"oa-c-{tag}",
        "model": "gpt-5",
        "messages": [
            {"role": "user", "content": "Fix the fuel surcharge in rates.csv"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_p1", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}},
                    {"id": "call_w1", "type": "web_search_preview", "web_search_preview": {}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_p1", "content": "patch applied"},
        ],
    }
    for body in (refusal, legacy, custom):
        resp = post(api, json.dumps(body).encode())
        assert resp.status_code == 202, resp.text
    ids = [refusal["conversation_id"], legacy["conversation_id"], custom["conversation_id"], f"oa-c-{tag}:call_p1"]
    await rows(apex_postgres_server.dsn, ids, 4)
    conn = await asyncpg.connect(apex_postgres_server.dsn)
    try:
        found = {
            r["id"]: json.loads(r["attributes"])
            for r in await conn.fetch(
                "select id, attributes from apex.records where source = 'llm' and id = any($1::text[])", ids
            )
        }
    finally:
        await conn.close()
    assert found[refusal["conversation_id"]]["refusals"] == [
        {"message": 1, "refusal": "I'm very sorry, but I can't assist with that."}
    ]
    assert found[legacy["conversation_id"]]["messages"][1]["function_call"] == {
        "name": "get_current_weather",
        "arguments": '{\n  "location": "Boston, MA"\n}',
    }
    conv = found[custom["conversation_id"]]
    assert [c.get("type") for c in conv["messages"][1]["tool_calls"]] == ["custom", "web_search_preview"]
    assert conv["parse_warnings"] == [
        "messages[1].tool_calls[1]: tool call of unknown type 'web_search_preview' kept as it came (not read)"
    ]
    assert found[f"oa-c-{tag}:call_p1"]["tool_name"] == "apply_patch"


@pytest.mark.parametrize(
    "key",
    [None, "wrong-key", "", f"{KEY}x"],
    ids=["missing", "wrong", "empty", "longer"],
)
async def test_missing_or_wrong_key_is_401_and_stores_nothing(
    api: str, apex_postgres_server: Any, key: str | None
) -> None:
    body_doc = conversation(f"thr-{uuid.uuid4().hex[:12]}")
    resp = post(api, json.dumps(body_doc).encode(), key=key)
    assert resp.status_code == 401, resp.text
    assert "API key" in resp.json()["error"]
    assert KEY not in resp.text
    assert not await in_inbox(apex_postgres_server.dsn, event_id(body_doc))


def test_other_schemes_are_401(api: str) -> None:
    resp = httpx.post(
        f"{api}/v1/records/llm",
        content=json.dumps(conversation("x")).encode(),
        headers={"Authorization": f"Basic {KEY}"},
        timeout=30,
    )
    assert resp.status_code == 401


async def test_api_without_keys_is_disabled(api_without_keys: str, apex_postgres_server: Any) -> None:
    body_doc = conversation(f"thr-{uuid.uuid4().hex[:12]}")
    resp = post(api_without_keys, json.dumps(body_doc).encode())
    assert resp.status_code == 401
    assert "APEX_API_KEYS" in resp.json()["error"]
    assert not await in_inbox(apex_postgres_server.dsn, event_id(body_doc))


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"messages": [{"role": "user", "content": "x"}], "metadata": {"n": ' + b"9" * 4301 + b"}}", "4301 digits"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "surrogate"),
        (b"[]", "must be a JSON object"),
        (b'{"model": "gpt-4o"}', "messages is missing"),
        (b'{"messages": []}', "messages is empty"),
        (b'{"messages": [{"role": "robot", "content": "hi"}]}', "messages[0].role 'robot'"),
        (b'{"messages": [{"role": "user", "content": 7}]}', "messages[0].content must be"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}] * 51}).encode(), "APEX_LLM_MAX_MESSAGES"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_pushes_are_400_naming_the_problem(api: str, body: bytes, says: str) -> None:
    resp = post(api, body)
    assert resp.status_code == 400, resp.text
    assert says in resp.json()["error"]
    assert resp.json()["source"] == "llm"


def test_oversized_push_is_413(api: str) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "x" * (1024 * 1024 + 10)}]}).encode()
    assert post(api, body).status_code == 413


def test_unknown_push_source_is_404(api: str) -> None:
    resp = httpx.post(f"{api}/v1/records/nosuch", content=b"{}", headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status_code == 404
    assert "nosuch" in resp.json()["error"]
