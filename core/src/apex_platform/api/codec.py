"""The codec endpoint: Temporal's codec-server protocol (`POST /codec/decode`,
`POST /codec/encode`, `{"payloads": [...]}` with base64 metadata values and data), so
operators can read encrypted histories in the Temporal UI or with
`temporal workflow show --codec-endpoint <api>/codec --codec-auth "Bearer <admin token>"`.

It runs the process's own codec (the payload guard, then payload encryption) and needs
the admin bearer token (`APEX_ADMIN_TOKEN`). Browsers may call it from the origins in
`APEX_CODEC_CORS_ORIGINS` (the Temporal UI's), and from no other."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from google.protobuf import json_format
from litestar import Controller, Response, post
from litestar.config.cors import CORSConfig
from litestar.exceptions import ClientException
from litestar.openapi import ResponseSpec
from litestar.params import Body
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings
from temporalio.api.common.v1 import Payload, Payloads

from apex_platform.api.admin import admin_guard
from apex_platform.api.deps import RuntimeDep
from apex_platform.errors import ApexError, SettingsError
from apex_platform.settings import apex_config, load

CORS_ENV = "APEX_CODEC_CORS_ORIGINS"


class CodecSettings(BaseSettings):
    """Who may call the codec endpoint from a browser (`APEX_CODEC_*`)."""

    model_config = apex_config("APEX_CODEC_")

    cors_origins: str = Field(
        default="",
        description="Origins of the Temporal UI allowed to call /codec from a browser, comma-separated",
    )

    def origins(self) -> list[str]:
        """The configured origins, each exactly `scheme://host[:port]` (no wildcard, no path)."""
        found = []
        for origin in (o.strip() for o in self.cors_origins.split(",")):
            if not origin:
                continue
            try:
                parts = urlsplit(origin)
                port_ok = parts.port is None or 0 < parts.port < 65536
            except ValueError:
                port_ok = False
            if (
                not port_ok
                or parts.scheme not in ("http", "https")
                or not parts.hostname
                or "*" in origin
                or parts.username is not None
                or origin != f"{parts.scheme}://{parts.netloc}"
            ):
                raise SettingsError(
                    f"{CORS_ENV}: {origin[:100]!r} is not an origin; give exactly scheme://host[:port] "
                    "of the Temporal UI (no wildcard, path or trailing slash), comma-separated"
                )
            found.append(origin)
        return found


def codec_cors() -> CORSConfig | None:
    """Litestar's CORS for the Temporal UI's origins (None when none is configured):
    POST with the headers the UI and the CLI send, no cookies (the token is a header)."""
    origins = load(CodecSettings).origins()
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["POST"],
        allow_headers=["authorization", "content-type", "x-namespace"],
        allow_credentials=False,
    )


class CodecPayload(BaseModel):
    """A Temporal payload in proto3 JSON."""

    metadata: dict[str, str] = Field(default_factory=dict, description="Metadata values, base64")
    data: str = Field(default="", description="The payload's bytes, base64")


class CodecPayloads(BaseModel):
    """The body of both codec endpoints, asked and answered."""

    payloads: list[CodecPayload] = Field(default_factory=list)


class ErrorDetail(BaseModel):
    """Litestar's error body: the status, what was wrong, and for a malformed body where."""

    status_code: int
    detail: str
    extra: Any = None


def _answer(description: str) -> ResponseSpec:
    return ResponseSpec(ErrorDetail, description=description, generate_examples=False)


_ERRORS = {
    400: _answer("Malformed payloads, or a payload that cannot be decoded (the detail says which and why)"),
    401: _answer("No valid admin bearer token"),
    403: _answer("Admin endpoints are disabled (APEX_ADMIN_TOKEN unset)"),
    413: _answer("The body is larger than APEX_MAX_BODY_BYTES"),
}


def _to_proto(body: CodecPayloads) -> Payloads:
    return json_format.ParseDict(body.model_dump(), Payloads())


def _from_proto(payloads: list[Payload]) -> CodecPayloads:
    docs = [json_format.MessageToDict(p) for p in payloads]
    return CodecPayloads(payloads=[CodecPayload(metadata=d.get("metadata", {}), data=d.get("data", "")) for d in docs])


class CodecController(Controller):
    path = "/codec"
    tags = ["admin"]
    guards = [admin_guard]

    @post("/decode", operation_id="codecDecode", status_code=200, responses=_ERRORS, summary="Decode payloads")
    async def decode(
        self, runtime: RuntimeDep, data: Annotated[CodecPayloads, Body(description="Payloads as Temporal holds them")]
    ) -> Response[CodecPayloads]:
        """Decrypt payloads as Temporal holds them (a payload that is not encrypted comes back as it is)."""
        return await _apply(runtime, data, encode=False)

    @post("/encode", operation_id="codecEncode", status_code=200, responses=_ERRORS, summary="Encode payloads")
    async def encode(
        self, runtime: RuntimeDep, data: Annotated[CodecPayloads, Body(description="Plain payloads")]
    ) -> Response[CodecPayloads]:
        """Encode payloads as this process hands them to Temporal (the guard, then encryption)."""
        return await _apply(runtime, data, encode=True)


async def _apply(runtime: Any, data: CodecPayloads, *, encode: bool) -> Response[CodecPayloads]:
    try:
        payloads = list(_to_proto(data).payloads)
    except json_format.ParseError as exc:
        raise ClientException(f"malformed payloads: {exc}") from None
    client = await runtime.connect(lazy=True)
    codec = client.data_converter.payload_codec
    try:
        if codec is not None:
            payloads = await (codec.encode(payloads) if encode else codec.decode(payloads))
    except (ApexError, ValueError) as exc:
        raise ClientException(str(exc)) from None
    return Response(_from_proto(payloads))
