"""What a source connector, an enricher and a sink must provide.

These are structural protocols: a plugin does not need to inherit from anything,
though `WebhookSource` and friends are convenient bases.  The host (core) only ever
talks to plugins through these methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic_settings import BaseSettings

from apex_platform.models import InboundEvent, Page, Priority, Record, RecordKey, SourceMode


@dataclass(frozen=True)
class WebhookReply:
    """An immediate answer to a webhook request that starts no workflow (e.g. a set-up handshake)."""

    status_code: int = 200
    content: Any = None
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PollTrigger:
    """A webhook that only says "there is new data for `account`": the API signals (or
    starts) that account's poller to sync now instead of starting an ingest workflow."""

    account: str
    event_id: str = ""


@runtime_checkable
class SourceConnector(Protocol):
    """Every source: a name, a mode and a priority (which picks the Temporal task queue)."""

    name: str
    mode: SourceMode
    priority: Priority
    settings_model: ClassVar[type[BaseSettings] | None]

    def parse(self, event: InboundEvent) -> list[Record]:
        """Turn one accepted event into records. Pure: no I/O except `fetch` below."""
        ...


@runtime_checkable
class WebhookSource(SourceConnector, Protocol):
    """A source that receives HTTP deliveries at `POST /webhooks/{name}`."""

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `SignatureError` unless the raw body is authentic and fresh."""
        ...

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent | WebhookReply | PollTrigger:
        """Decode a verified delivery; raise `PayloadError` naming what is malformed.

        Returns the event to ingest (its `event_id` is the inbox key: the same id twice is
        one delivery), a reply to send at once without ingesting anything (handshakes,
        pings), or a `PollTrigger` asking the account's poller to sync now.

        Called twice for an ingested delivery: at the edge (to answer 400 or take the
        event id) and again by the drain, on the body as stored in the inbox. So it must
        be deterministic and do no I/O; the drain keeps the stored arrival time and event id.

        Values that must never be kept (a token that can be exchanged for access, like
        Plaid's `public_token`): the optional capability `capabilities.RedactingSource`
        (`redacted_keys`) names JSON keys whose string values the platform replaces by
        "[redacted]" before the body is stored.
        """
        ...


@runtime_checkable
class PushSource(SourceConnector, Protocol):
    """A source that our own clients push to at `POST /v1/records/{name}` (LLM agents).

    Authentication is the platform's (`APEX_API_KEYS`, bearer); the connector only decodes.
    """

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """Decode a pushed body; raise `PayloadError` naming what is malformed. The event id
        must be derived from the content (a client retry gives the same id)."""
        ...


@dataclass(frozen=True)
class BatchUnit:
    """One independently parseable part of a file (an X12 transaction set)."""

    id: str
    payload: Any


@dataclass(frozen=True)
class BatchWarning:
    """Something wrong in a file that did not stop the rest from being read; the message
    names the file and where (e.g. interchange and set control numbers)."""

    message: str
    unit_id: str | None = None


@runtime_checkable
class FetchingSource(Protocol):
    """A webhook source whose deliveries only name an object that must be fetched first."""

    async def fetch(self, event: InboundEvent) -> InboundEvent:
        """Return the event with its full payload, fetched from the vendor's API (I/O)."""
        ...


@runtime_checkable
class PollSource(SourceConnector, Protocol):
    """A source read page by page from a cursor: pollers (Plaid, HubSpot, QuickBooks,
    SONAR: `mode = "poll"`) and feeds (Samsara's stats feed: `mode = "stream"`).

    `PollWorkflow` / `StreamWorkflow` call `poll` in an activity, write each page through
    the saga as one batch, and advance the cursor only after the saga acknowledged it.

    A pagination loop runs from a cursor at which the last page said `has_more=False` to
    the next such page. `RestartPagination` sends the workflow back to the loop's first
    cursor. By default the pages read before it are already in the stores. A record that
    only those pages held stays there, even though the vendor has voided it.

    Two optional capabilities change this (`apex_platform.capabilities`; not members of
    this protocol, so sources that lack them still pass `isinstance`):

    - `AtomicPaginationSource` (`atomic_pagination = True`), when the vendor can void a
      whole loop, as Plaid does with TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION. Each page
      of a loop of several pages is then staged in the platform's blob store and not
      written. Temporal only sees the page's reference and counts. When `has_more` is
      false, the pages are written through the saga one page per activity, in order, and
      only then does the cursor move. A loop of one page is written at once, since there
      is nothing to void.

      When `RestartPagination` arrives, the staged blobs are deleted and the loop is read
      again from its first cursor, so nothing of the void pages reaches a store. A
      `stop`, or a staged page that is missing when it is written, also discards the
      staging. Staged references survive activity retries, worker restarts and
      continue-as-new. The workflow keeps one reference per 100 pages. A loop longer than
      100,000 pages is written up to that point and goes on, no longer all-or-nothing.
      Use this only for loops that end: a feed whose `has_more` never turns false would
      stage forever.
    - `LoopCursorAgeSource` (`pagination_cursor_max_age_seconds`, default 3600). This
      applies to staged loops only. It is how long a mid-loop cursor may wait before it is
      read from, for example after an error, the wait that follows it, or a long run of
      retries. Past this age, the staging is discarded and the loop restarts from its
      first cursor. Vendors keep a loop's final cursor for a long time, but cursors inside
      a loop for a short time.
    """

    #: seconds between runs once a run is complete (poll) / between empty pages (stream)
    poll_interval_seconds: float

    def accounts(self) -> list[str]:
        """The accounts (items, tenants, feeds) configured for this source; no I/O."""
        ...

    async def poll(self, account: str, cursor: str | None) -> Page:
        """Read the page after `cursor` for `account`.

        Raise `VendorError` (with `retry_after` for 429), or `RestartPagination` to go
        back to the cursor the current loop began with. Never put secrets in the cursor:
        it is kept in workflow history.
        """
        ...


@runtime_checkable
class BatchSource(SourceConnector, Protocol):
    """A source read from files (EDI). `BatchFileWorkflow` runs one workflow per file and
    fans out over chunks of its units; `parse` gets one unit per event (payload = unit
    payload, event id = unit id)."""

    def split(self, path: Path) -> Iterator[BatchUnit | BatchWarning]:
        """Yield the file's units lazily (never load a large file whole), with warnings
        between them. Raise `PayloadError` only when nothing at all can be read."""
        ...

    def read(self, path: Path) -> Iterable[Record]:
        """Stream the records of one file, lazily (split + parse, warnings dropped)."""
        ...


@runtime_checkable
class Enricher(Protocol):
    """Adds entities, relations or embeddings to records. Must be idempotent."""

    name: str

    async def enrich(self, records: Sequence[Record]) -> list[Record]: ...


#: What a write replaced: for every key whose stored content the write changed, the
#: state stored just before (None: the key was absent). Read atomically with the change.
Previous = dict[RecordKey, Record | None]


@runtime_checkable
class Sink(Protocol):
    """A store that holds records. Every write is an idempotent upsert by `RecordKey`.

    Contract every sink keeps (the rule is `apex_platform.saga.supersedes`):

    - `write`: a higher `version` wins; at an equal version a tombstone (`deleted=True`)
      wins and stays; between live records of equal version the later write (a
      correction) wins, and an identical record changes nothing. A batch holding one key
      several times is reduced by the same rule. A tombstone keeps key, kind and version
      so an older version cannot resurrect the record; it is gone from every search.
    - Fencing: `write(records, writer=token)` stamps every key it is given with
      `touched_by = token` — the ones it wins, and also those where the stored record is
      identical or newer (a write that changes nothing still counts as a writer: an
      undo by an earlier writer must leave the key alone, or it would take away what
      this write committed); a key whose content it changes also gets `changed_by =
      token`. It returns `Previous`: for each key whose content it changed, what was
      stored before (read atomically with the change: a statement, a script, a
      compare-and-set). A record the sink can never hold is
      refused per record with `RecordsRefused(sink, refused, previous=...)` after the
      rest is written.
    - `read` returns what is stored now: live records exactly as written, tombstones as
      minimal records with `deleted=True`; absent keys are missing from the result.
    - `restore(previous, writer=token)` is the saga's compensation and is conditional:
      a key is put back to `previous[key]` (a record, a tombstone, or None: removed
      completely) only where the store still holds that writer's change — `changed_by`
      and `touched_by` both equal `token` — and is left alone otherwise (a newer version
      or another writer's identical write came since). Restored keys carry no tokens.
      Without `writer` (an operator's rollback of a dead letter) it puts back exactly
      `previous`, ignoring versions and tokens.
    """

    name: str

    async def open(self) -> None:
        """Connect and create schema / collections / indexes if missing."""
        ...

    async def close(self) -> None: ...

    async def health(self) -> None:
        """Raise if the store does not answer."""
        ...

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous: ...

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]: ...

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None: ...


@runtime_checkable
class Coordinator(Protocol):
    """Optional capability of a sink (the Redis sink has it): locks and the commit ledger.

    The saga uses the first registered sink that has it.  Without one, the saga still
    works (sinks are idempotent) but concurrent writers of one key are not serialised.
    """

    def lock(self, keys: Sequence[RecordKey], *, ttl_seconds: float) -> AbstractAsyncContextManager[None]:
        """Hold an exclusive lock on every key (sorted, to avoid deadlocks) for the block."""
        ...

    async def committed(self, idempotency_keys: Sequence[str]) -> set[str]:
        """The subset of keys already committed to every sink."""
        ...

    async def mark_committed(self, idempotency_keys: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class DeadLetter:
    """A batch an operator must look at: a compensation that failed (the stores may
    disagree until a later attempt of the batch succeeds, which resolves the letter), or
    records quarantined because a sink refused them for good (`batch_id` ends in
    `:quarantine`). It holds what is needed to finish the write (`records`: replay) or to
    undo it (`writers` and `previous`: rollback, a conditional restore per sink)."""

    id: int | None
    batch_id: str
    records: list[Record]
    succeeded: list[str]
    failed: list[str]
    error: str
    status: str = "open"
    attempts: int = 0
    created_at: Any = None
    #: per sink whose undo failed: the writer token of its write (see `Sink`); a rollback
    #: restores only that write's changes
    writers: dict[str, str] = field(default_factory=dict)
    #: per sink whose undo failed: the state before the write, for every key it changed
    previous: dict[str, Previous] = field(default_factory=dict)


@runtime_checkable
class DeadLetterQueue(Protocol):
    """Optional capability of a sink (the PostgreSQL sink has it): the dead-letter table."""

    async def add_dead_letter(self, letter: DeadLetter) -> int:
        """Keep `letter`: one open letter per `batch_id` (a later failure of the same batch
        updates it and counts the attempt). Returns its id."""
        ...

    async def resolve_dead_letters(self, batch_id: str) -> int:
        """Mark the open letters of `batch_id` resolved (a later attempt succeeded); how many."""
        ...

    async def list_dead_letters(self, status: str | None = None, limit: int = 100) -> list[DeadLetter]: ...

    async def get_dead_letter(self, letter_id: int) -> DeadLetter | None: ...

    async def mark_dead_letter(self, letter_id: int, status: str) -> None: ...


@dataclass(frozen=True)
class SampleDelivery:
    """One request of a connector's sample traffic, signed as the vendor would sign it."""

    path: str
    body: bytes
    headers: dict[str, str]
    method: str = "POST"


@runtime_checkable
class DemoSource(Protocol):
    """Optional: a source that can produce sample traffic for `apex-platform demo`."""

    def demo_deliveries(self) -> list[SampleDelivery]: ...
