"""`EdiConnector`: carrier X12 files (214 shipment status, 210 freight invoice) as a batch source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic_settings import BaseSettings

from apex_connector_edi.common import SOURCE
from apex_connector_edi.envelope import EnvelopeReader
from apex_connector_edi.records import build_records
from apex_connector_edi.settings import EdiSettings
from apex_platform.contracts import BatchUnit, BatchWarning
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent, Priority, Record, SourceMode
from apex_platform.safefiles import display_name, open_input
from apex_platform.settings import load

if TYPE_CHECKING:
    from apex_platform.testing.conformance.samples import ConformanceSamples


class EdiConnector:
    """Carrier EDI files: one unit per X12 transaction set, envelope problems as warnings.

    `settings=None` reads `APEX_EDI_*` on first use, so registration does no I/O.
    """

    name = SOURCE
    mode: SourceMode = "batch"
    priority: Priority = "P2"
    settings_model: ClassVar[type[BaseSettings] | None] = EdiSettings

    def __init__(self, settings: EdiSettings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> EdiSettings:
        if self._settings is None:
            self._settings = load(EdiSettings)
        return self._settings

    def demo_files(self, folder: Path) -> list[Path]:
        """`DemoFilesSource`: the demo's sample X12 files, written into `folder`."""
        from apex_connector_edi.samples import demo_files

        return demo_files(folder)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def conformance_samples(self) -> ConformanceSamples:
        """What the conformance suite runs with (`ConformanceProvider`)."""
        from apex_connector_edi.conformance import EdiSamples

        return EdiSamples()

    def inbox(self) -> Path | None:
        """The drop folder to watch (APEX_EDI_INBOX), or None."""
        return self.settings.inbox

    # -- BatchSource -----------------------------------------------------------------------

    def split(self, path: Path) -> Iterator[BatchUnit | BatchWarning]:
        """Stream the file's transaction sets as units (id `ISA13:GS06:ST02`) with envelope
        warnings between them. `PayloadError` only when the file is not X12 at all, or is
        not a file to read (`UnsafeFile`: a link, a FIFO; nothing of it is read)."""
        settings = self.settings
        with open_input(path) as stream:
            yield from EnvelopeReader(
                stream,
                display_name(Path(path).name),
                max_set_segments=settings.max_set_segments,
                chunk_bytes=settings.read_chunk_bytes,
                max_segment_chars=settings.max_segment_chars,
            )

    def parse(self, event: InboundEvent) -> list[Record]:
        """The records of one transaction set (pure)."""
        if event.payload is None:
            where = f" (stored as {event.payload_ref}; resolve it before parsing)" if event.payload_ref else ""
            raise PayloadError(f"EDI unit {event.event_id} has no payload{where}")
        return build_records(event.payload)

    def read(self, path: Path) -> Iterator[Record]:
        """The records of one file, lazily (split + parse). Warnings and sets that do not
        parse are dropped here: use `split` to see them."""
        for item in self.split(path):
            if isinstance(item, BatchUnit):
                try:
                    yield from build_records(item.payload)
                except PayloadError:
                    continue
