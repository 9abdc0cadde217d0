"""The API's codec endpoint (Temporal's codec-server protocol): it round-trips payloads
with the process's own codec, needs the admin token, answers CORS preflight for the
configured Temporal UI origin only, and is in the OpenAPI spec."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from apex_platform.api import create_app
from apex_platform.api.codec import CodecSettings
from apex_platform.errors import SettingsError
from apex_platform.runtime import Runtime
from apex_platform.settings import CoreSettings, TemporalSettings

TOKEN = "codec-endpoint-admin-token-42-42-42"
KEYS = "k1:" + base64.b64encode(bytes(range(32))).decode()
UI = "http://127.0.0.1:8233"
MARKER = "codec-endpoint-marker-Q7"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def json_payload(value: Any) -> dict[str, Any]:
    return {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(json.dumps(value).encode())}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("APEX_PAYLOAD_KEYS_FILE", raising=False)
    monkeypatch.setenv("APEX_PAYLOAD_KEYS", KEYS)
    monkeypatch.setenv("APEX_ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv("APEX_CODEC_CORS_ORIGINS", raising=False)
    return monkeypatch


async def open_client(tmp_path: Path) -> AsyncTestClient[Any]:
    # a Temporal address nothing listens on: the codec needs no server (lazy client)
    runtime = Runtime.build(
        [],
        use_entry_points=False,
        core=CoreSettings(home=tmp_path),
        temporal=TemporalSettings(address="127.0.0.1:9"),
    )
    return AsyncTestClient(create_app(runtime, open_sinks=False))


@pytest.fixture
async def http(env: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    env.setenv("APEX_CODEC_CORS_ORIGINS", f"{UI}, https://temporal.internal.test")
    async with await open_client(tmp_path) as client:
        yield client


async def test_encode_then_decode_round_trips_and_the_encoded_form_is_ciphertext(
    http: AsyncTestClient[Any],
) -> None:
    plain = [json_payload({"note": MARKER}), json_payload([1, 2, 3])]
    encoded = await http.post("/codec/encode", json={"payloads": plain}, headers=AUTH)
    assert encoded.status_code == 200, encoded.text
    sealed = encoded.json()["payloads"]
    assert len(sealed) == 2
    for payload in sealed:
        assert base64.b64decode(payload["metadata"]["encoding"]) == b"binary/encrypted"
        assert base64.b64decode(payload["metadata"]["encryption-key-id"]) == b"k1"
        assert MARKER.encode() not in base64.b64decode(payload["data"])
    decoded = await http.post("/codec/decode", json={"payloads": sealed}, headers={**AUTH, "X-Namespace": "default"})
    assert decoded.status_code == 200, decoded.text
    assert decoded.json() == {"payloads": plain}
    # a payload that is not encrypted (an older history) comes back as it is
    again = await http.post("/codec/decode", json={"payloads": plain}, headers=AUTH)
    assert again.json() == {"payloads": plain}


async def test_without_the_admin_token_it_is_401(http: AsyncTestClient[Any]) -> None:
    body = {"payloads": [json_payload({"note": MARKER})]}
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token-wrong"}, {"Authorization": TOKEN}):
        for route in ("/codec/decode", "/codec/encode"):
            resp = await http.post(route, json=body, headers=headers)
            assert resp.status_code == 401, (route, headers, resp.text)
            assert MARKER not in resp.text


async def test_a_tampered_or_foreign_payload_is_400_saying_why(http: AsyncTestClient[Any]) -> None:
    sealed = (await http.post("/codec/encode", json={"payloads": [json_payload("x")]}, headers=AUTH)).json()
    payload = sealed["payloads"][0]
    raw = bytearray(base64.b64decode(payload["data"]))
    raw[-1] ^= 1
    tampered = {**payload, "data": b64(bytes(raw))}
    resp = await http.post("/codec/decode", json={"payloads": [tampered]}, headers=AUTH)
    assert resp.status_code == 400
    assert "key 'k1' failed authentication" in resp.json()["detail"]
    foreign = {**payload, "metadata": {**payload["metadata"], "encryption-key-id": b64(b"gone")}}
    resp = await http.post("/codec/decode", json={"payloads": [foreign]}, headers=AUTH)
    assert resp.status_code == 400
    assert "key 'gone' cannot be decrypted" in resp.json()["detail"]
    resp = await http.post("/codec/decode", json={"payloads": [{"data": "%%% not base64"}]}, headers=AUTH)
    assert resp.status_code == 400
    assert "malformed payloads" in resp.json()["detail"]


async def test_cors_preflight_is_answered_for_the_configured_origin_only(http: AsyncTestClient[Any]) -> None:
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    ok = await http.options("/codec/decode", headers={"Origin": UI, **ask})
    assert ok.status_code == 204, ok.text
    assert ok.headers["access-control-allow-origin"] == UI
    assert "POST" in ok.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in ok.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-namespace"} <= allowed
    assert "access-control-allow-credentials" not in ok.headers
    for origin in ("http://evil.test", "http://127.0.0.1:8234", "https://127.0.0.1:8233"):
        refused = await http.options("/codec/decode", headers={"Origin": origin, **ask})
        assert refused.status_code == 400, origin
        assert "access-control-allow-origin" not in refused.headers
    # the answer itself carries the header for the UI, and for no one else
    post = await http.post("/codec/decode", json={"payloads": []}, headers={**AUTH, "Origin": UI})
    assert post.status_code == 200
    assert post.headers["access-control-allow-origin"] == UI
    other = await http.post("/codec/decode", json={"payloads": []}, headers={**AUTH, "Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in other.headers


async def test_without_configured_origins_there_is_no_cors(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async with await open_client(tmp_path) as http:
        ask = {"Origin": UI, "Access-Control-Request-Method": "POST"}
        resp = await http.options("/codec/decode", headers=ask)
        assert "access-control-allow-origin" not in resp.headers
        post = await http.post("/codec/decode", json={"payloads": []}, headers={**AUTH, "Origin": UI})
        assert post.status_code == 200
        assert "access-control-allow-origin" not in post.headers


@pytest.mark.parametrize(
    "value", ["*", "http://127.0.0.1:8233/", "https://*.example.test", "127.0.0.1:8233", "ftp://host", "http://a@b"]
)
def test_an_origin_that_is_not_exactly_scheme_host_port_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="APEX_CODEC_CORS_ORIGINS"):
        CodecSettings(cors_origins=value).origins()


async def test_the_routes_are_in_the_openapi_spec_with_their_refusals(http: AsyncTestClient[Any]) -> None:
    spec = (await http.get("/schema/openapi.json")).json()
    for route, operation in (("/codec/decode", "codecDecode"), ("/codec/encode", "codecEncode")):
        post = spec["paths"][route]["post"]
        assert post["operationId"] == operation
        assert {"200", "400", "401", "403", "413"} <= set(post["responses"])
        assert post["requestBody"]["content"]["application/json"]
    assert "payloads" in spec["components"]["schemas"]["CodecPayloads"]["properties"]
