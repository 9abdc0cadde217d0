"""The optional capabilities of sources, enrichers and sinks, each a protocol.

`contracts` says what every plugin object must have; this module says what one may add
to change how the platform treats it. Each capability is a runtime-checkable protocol, so
an object has it by having the member (no base class, no registration), and the platform
asks with ``isinstance`` or with the small accessor next to it, never with a bare
``getattr``. A member the platform reads is always declared here (or in `contracts` or
`apex_platform.reconcile`), documented in docs/plugins.md, and a test
(core/tests/test_contract_docs.py) fails when one is not.

Data members (``redacted_keys``, ``atomic_pagination`` …) may be class attributes or
properties. ``isinstance`` evaluates a property (Python 3.11), so one that reads settings
should not raise unless the error belongs there (a broken setting is better reported
where it is used).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from apex_platform.contracts import PollTrigger, WebhookReply
    from apex_platform.models import InboundEvent

#: how long a mid-loop cursor of an all-or-nothing source may wait before it is read from,
#: unless the source says otherwise (`LoopCursorAgeSource`)
DEFAULT_LOOP_CURSOR_MAX_AGE_SECONDS = 3600.0


# -- any plugin object ---------------------------------------------------------------------


@runtime_checkable
class Configurable(Protocol):
    """A plugin object whose settings are one pydantic-settings class (env prefix
    ``APEX_<NAME>_``). Every `SourceConnector` has `settings_model` (None: no settings);
    enrichers and sinks may. ``apex-platform plugins settings`` lists its fields: the
    variable, type, default (a secret's never), whether it is a secret (`SecretStr`, or
    ``json_schema_extra={"secret": True}``) and the field's ``description``.

    Example::

        class AcmeSink:
            settings_model: ClassVar[type[BaseSettings] | None] = AcmeSinkSettings
    """

    settings_model: type[BaseSettings] | None


# -- sources -------------------------------------------------------------------------------


@runtime_checkable
class DeliverySource(Protocol):
    """A source that takes deliveries: webhook sources (``POST /webhooks/{name}``) and push
    sources (``POST /v1/records/{name}``). Each has a drain loop over the inbox, started by
    every worker serving its priority, which calls `receive` again on the stored body.

    Example::

        class AcmeSource(WebhookSource):
            def receive(self, headers, body):
                doc = decode_json_object(body, what="Acme webhook body")
                return InboundEvent(source=self.name, event_id=doc["id"], payload=doc, ...)
    """

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent | WebhookReply | PollTrigger:
        """See `WebhookSource.receive` and `PushSource.receive`."""
        ...


@runtime_checkable
class RedactingSource(Protocol):
    """A delivery source whose bodies hold values that must never be kept (a token that can
    be exchanged for access, like Plaid's ``public_token``).

    The platform replaces the string values of these JSON keys, at any depth, by
    "[redacted]" before the body is stored: the inbox, the drain's second `receive`,
    ``apex.unparsed`` records and every store see only that copy. The event id is taken at
    the edge, from the body as received.

    Example::

        class PlaidConnector:
            redacted_keys: ClassVar[frozenset[str]] = frozenset({"public_token"})
    """

    redacted_keys: frozenset[str]


@runtime_checkable
class LocalVerification(Protocol):
    """A webhook source whose `verify` only computes — an HMAC or a token compared with
    configured secrets, over the headers and the raw body — with no I/O and nothing that
    waits (once its settings are loaded). The API then checks such a signature on its event
    loop for bodies up to `apex_platform.api.controllers.INLINE_VERIFY_BYTES`, instead of in
    a worker thread: handing a request to a thread and back costs more CPU than the HMAC of
    a few kilobytes. A source whose `verify` may fetch a key (Plaid's JWKs) must not say so.

    Example::

        class SamsaraConnector:
            verify_is_local: ClassVar[bool] = True
    """

    verify_is_local: bool


def verifies_locally(source: object) -> bool:
    """The source's `LocalVerification.verify_is_local`, else False (a thread checks it)."""
    return isinstance(source, LocalVerification) and source.verify_is_local is True


def redacted_keys(source: object) -> frozenset[str]:
    """The source's `RedactingSource.redacted_keys`, or none."""
    if not isinstance(source, RedactingSource):
        return frozenset()
    keys = source.redacted_keys
    return frozenset(str(k) for k in keys) if keys else frozenset()


@runtime_checkable
class AtomicPaginationSource(Protocol):
    """A poll source whose vendor can void a whole pagination loop (Plaid's
    TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION), so a loop is all-or-nothing.

    With ``atomic_pagination = True`` each page of a loop of several pages is staged in the
    blob store, not written; when a page says ``has_more=False`` the staged pages are
    written through the saga, one page per activity, in order, and only then does the
    cursor move. `RestartPagination` discards the staging and reads the loop again from
    its first cursor (see `PollSource` for the details and limits). Only for loops that
    end: a feed whose ``has_more`` never turns false would stage forever.

    Example::

        class PlaidConnector:
            atomic_pagination: ClassVar[bool] = True
    """

    atomic_pagination: bool


def atomic_pagination(source: object) -> bool:
    """Whether the source declares its pagination loops all-or-nothing."""
    return isinstance(source, AtomicPaginationSource) and source.atomic_pagination is True


@runtime_checkable
class LoopCursorAgeSource(Protocol):
    """An `AtomicPaginationSource` that says how long a mid-loop cursor may wait (after an
    error, its back-off, a long run of retries) before it is read from; past it the staging
    is discarded and the loop restarts from its first cursor. Default 3600 seconds.

    Example::

        class PlaidConnector:
            @property
            def pagination_cursor_max_age_seconds(self) -> float:
                return self.settings.loop_cursor_max_age_seconds
    """

    pagination_cursor_max_age_seconds: float


def loop_cursor_max_age(source: object) -> float:
    """The source's `LoopCursorAgeSource` value when it is a positive number, else the default."""
    if isinstance(source, LoopCursorAgeSource):
        value = source.pagination_cursor_max_age_seconds
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return DEFAULT_LOOP_CURSOR_MAX_AGE_SECONDS


@runtime_checkable
class DropFolderSource(Protocol):
    """A batch source that may name a drop folder: ``apex-platform dev`` (and ``serve`` with
    a worker) watches it and ingests every file put there through `BatchFileWorkflow`.
    In production run ``apex-platform ingest SOURCE --watch DIR`` instead.

    Example::

        class EdiConnector:
            def inbox(self) -> Path | None:
                return self.settings.inbox  # APEX_EDI_INBOX, None when unset
    """

    def inbox(self) -> Path | None:
        """The folder to watch, or None; no I/O."""
        ...


@runtime_checkable
class DemoEnvironmentSource(Protocol):
    """A source that needs settings to produce its sample traffic (a signing secret):
    ``apex-platform demo`` sets each variable it returns unless it is set already.

    Example::

        def demo_environment(self) -> dict[str, str]:
            return {"APEX_ACME_SIGNING_SECRET": secrets.token_urlsafe(32)}
    """

    def demo_environment(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class FakeVendor:
    """A fake of the vendor's API started for the demo: where it listens, how to stop it,
    and the settings that point the connector at it."""

    base_url: str
    stop: Callable[[], None]
    environment: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class FakeVendorSource(Protocol):
    """A source that reads from a vendor's API (a poller, a reconciler, a fetch) and can run
    against a fake of it: ``apex-platform demo`` starts it before the stack, applies its
    `environment` (overriding what is set) and stops it at the end.

    Example::

        def start_fake_vendor(self) -> FakeVendor:
            server = FakeVendorServer(fake_acme_app(), name="fake Acme")
            base_url = server.start()
            return FakeVendor(base_url, server.stop, {"APEX_ACME_BASE_URL": base_url})
    """

    def start_fake_vendor(self) -> FakeVendor: ...


@runtime_checkable
class DemoFilesSource(Protocol):
    """A batch source with sample files: ``apex-platform demo`` writes them into `folder`
    and ingests each through `BatchFileWorkflow`.

    Example::

        def demo_files(self, folder: Path) -> list[Path]:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "sample.edi"
            path.write_text(SAMPLE)
            return [path]
    """

    def demo_files(self, folder: Path) -> list[Path]: ...


# -- enrichers -----------------------------------------------------------------------------


@runtime_checkable
class EmbeddingProducer(Protocol):
    """An enricher that sets `Record.embedding`: at start the platform checks that its
    `dimension` equals every `EmbeddingStore`'s `embedding_dim` (a mismatch stops the
    start, naming each setting, instead of failing every batch in every store).

    Example::

        @property
        def dimension(self) -> int:
            return self.settings.dim  # APEX_EMBEDDINGS_DIM
    """

    dimension: int


# -- sinks ---------------------------------------------------------------------------------


@runtime_checkable
class EmbeddingStore(Protocol):
    """A sink that stores embeddings in a column or collection of a fixed size
    (`embedding_dim`), checked against every `EmbeddingProducer` at start.

    Example::

        @property
        def embedding_dim(self) -> int:
            return self.settings.embedding_dim  # APEX_POSTGRES_EMBEDDING_DIM
    """

    embedding_dim: int


@runtime_checkable
class SingleProcessSink(Protocol):
    """A sink that only one process may open (Qdrant's local mode: a folder one process
    locks). When ``single_process`` is true the worker owns it; a standalone API process
    leaves it closed and `/readyz` and ``apex-platform status`` report it as the worker's.

    Example::

        @property
        def single_process(self) -> bool:
            return self.settings.url is None
    """

    single_process: bool


def single_process(sink: object) -> bool:
    """Whether only one process may open the sink."""
    return isinstance(sink, SingleProcessSink) and sink.single_process is True
