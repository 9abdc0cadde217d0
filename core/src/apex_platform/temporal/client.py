"""Connecting to Temporal (dev server, self-hosted cluster or Temporal Cloud)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, TLSConfig
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)
from temporalio.service import RPCError, RPCStatusCode

from apex_platform.models import Priority
from apex_platform.settings import TemporalSettings, load
from apex_platform.temporal.encryption import PayloadEncryption, PayloadSettings

log = logging.getLogger(__name__)

SOURCE_ATTR = SearchAttributeKey.for_keyword("ApexSource")
RECORD_ID_ATTR = SearchAttributeKey.for_keyword_list("ApexRecordId")
STATUS_ATTR = SearchAttributeKey.for_keyword("ApexStatus")
SEARCH_ATTRIBUTES = (SOURCE_ATTR, RECORD_ID_ATTR, STATUS_ATTR)


def task_queue(priority: Priority, settings: TemporalSettings | None = None) -> str:
    prefix = settings.task_queue_prefix if settings else "apex"
    return f"{prefix}-{priority.lower()}"


def _tls(settings: TemporalSettings) -> TLSConfig | bool:
    if not (settings.tls or settings.tls_ca_cert or settings.tls_client_cert):
        # Temporal Cloud API keys require TLS; the SDK turns it on when an api_key is set.
        return bool(settings.api_key)
    return TLSConfig(
        server_root_ca_cert=settings.tls_ca_cert.read_bytes() if settings.tls_ca_cert else None,
        client_cert=settings.tls_client_cert.read_bytes() if settings.tls_client_cert else None,
        client_private_key=settings.tls_client_key.read_bytes() if settings.tls_client_key else None,
        domain=settings.tls_server_name,
    )


#: rule 2 of intake: nothing near Temporal's 2 MB limit ever crosses it (references only)
DEFAULT_MAX_PAYLOAD_BYTES = 128 * 1024
GUARD_FILE_ENV = "APEX_PAYLOAD_GUARD_FILE"


class PayloadTooLarge(ValueError):
    """A payload bound for Temporal is larger than references-only intake allows."""


class PayloadGuard(PayloadCodec):
    """Fails loudly when any payload bound for Temporal exceeds `limit` bytes: a body, a
    page or a file travelling inline instead of by reference is a defect, found here
    rather than as Temporal's 2 MB `PayloadLimitViolation` under load. With
    `APEX_PAYLOAD_GUARD_FILE` set (the test suite does), every violation is also
    appended to that file, so a session can fail on one even when it was retried away."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        for payload in payloads:
            size = len(payload.data)
            if size > self.limit:
                message = (
                    f"a Temporal payload of {size} bytes exceeds APEX_TEMPORAL_MAX_PAYLOAD_BYTES={self.limit}: "
                    f"bodies, pages and files must travel by reference (starts {payload.data[:120]!r})"
                )
                log.error("%s", message)
                path = os.environ.get(GUARD_FILE_ENV)
                if path:
                    with Path(path).open("a", encoding="utf-8") as fh:  # noqa: ASYNC230 - rare, tiny, tests only
                        fh.write(message + "\n")
                raise PayloadTooLarge(message)
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


_C = TypeVar("_C", bound=PayloadCodec)


class CodecChain(PayloadCodec):
    """Codecs applied in order on the way to Temporal and in reverse on the way back:
    the guard sees the plaintext size, then encryption seals it; decoding decrypts first."""

    def __init__(self, codecs: Sequence[PayloadCodec]) -> None:
        self.codecs = tuple(codecs)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = list(payloads)
        for codec in self.codecs:
            out = await codec.encode(out)
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = list(payloads)
        for codec in reversed(self.codecs):
            out = await codec.decode(out)
        return out


def find_codec(converter: DataConverter, kind: type[_C]) -> _C | None:
    """The codec of type `kind` in a converter built by `data_converter`, if any."""
    codec = converter.payload_codec
    for candidate in codec.codecs if isinstance(codec, CodecChain) else (codec,):
        if isinstance(candidate, kind):
            return candidate
    return None


def data_converter(settings: TemporalSettings, payloads: PayloadSettings | None = None) -> DataConverter:
    """Pydantic JSON; every payload through the payload guard (0 turns it off), then
    encrypted (`APEX_PAYLOAD_KEYS`; refuses without a key unless encryption is off). With
    encryption on, failure messages and stack traces are encoded (and so encrypted) too."""
    encryption = PayloadEncryption.from_settings(payloads or load(PayloadSettings))
    codecs: list[PayloadCodec] = []
    if settings.max_payload_bytes:
        codecs.append(PayloadGuard(settings.max_payload_bytes))
    codecs.append(encryption)
    failures = DefaultFailureConverterWithEncodedAttributes if encryption.encrypting else DefaultFailureConverter
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=CodecChain(codecs), failure_converter_class=failures
    )


async def connect(settings: TemporalSettings, *, lazy: bool = False, payloads: PayloadSettings | None = None) -> Client:
    """A client with the pydantic data converter (records cross Temporal as JSON),
    behind the payload guard and payload encryption (`data_converter`); with tracing on
    (`OTEL_*`, see `apex_platform.tracing`) the OpenTelemetry interceptor, which the
    workers built on this client use too."""
    from apex_platform import tracing

    tracing.configure()
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        tls=_tls(settings),
        data_converter=data_converter(settings, payloads),
        interceptors=tracing.temporal_interceptors(),
        lazy=lazy,
    )


#: gRPC statuses that mean "not now", not "never": a server starting, restarting or
#: overloaded, a network blip (UNKNOWN: "transport error", a connection Temporal broke off
#: as it went down). The one set every caller retries on or answers 503 for: the worker's
#: start, the API's sync triggers, the drop folder's file starts.
TRANSIENT_STATUSES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.UNKNOWN,
    }
)

#: what the SDK's core says (inside "Failed client connect: ...") when nothing answers
#: yet: refused or reset connections, a name not resolvable yet, time-outs, a peer gone
#: mid-handshake. A TLS client on a plaintext port ("InvalidContentType"), a certificate
#: refused or an unknown issuer are not among them: waiting does not mend those.
TRANSIENT_CONNECT_ERRORS = (
    "tcp connect error",
    "dns error",
    "connectionrefused",
    "connection refused",
    "connectionreset",
    "connection reset",
    "connectionaborted",
    "timedout",
    "timed out",
    "deadline",
    "brokenpipe",
    "broken pipe",
    "connection closed",
    "unexpectedeof",
)


def temporal_unreachable(exc: BaseException) -> bool:
    """Whether a failure to reach Temporal is one that waiting mends (the server is not up
    yet, restarting or overloaded), as opposed to a refusal of this client (TLS, keys,
    certificates) that only a change of settings does."""
    if isinstance(exc, RPCError):
        return exc.status in TRANSIENT_STATUSES
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(marker in text for marker in TRANSIENT_CONNECT_ERRORS)
    return False


async def ensure_search_attributes(client: Client) -> None:
    """Create Apex's search attributes where missing (needs operator rights; on Temporal
    Cloud they are created in the namespace settings, so a refusal is only logged)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    kinds = {
        "ApexSource": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "ApexRecordId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
        "ApexStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    }
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        missing = {k: v for k, v in kinds.items() if k not in existing.custom_attributes}
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
            )
            log.info("created search attributes %s", ", ".join(sorted(missing)))
    except Exception as exc:  # noqa: BLE001 - cloud namespaces refuse operator calls
        log.warning("could not check or create search attributes (%s); create them by hand: %s", exc, ", ".join(kinds))
