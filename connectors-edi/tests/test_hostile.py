"""Hostile files: split either raises PayloadError (nothing readable) or yields warnings,
never crashes and never hangs; parse of whatever split yields never crashes either."""

from __future__ import annotations

import os
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_connector_edi import EdiConnector, EdiSettings
from apex_platform.contracts import BatchUnit, BatchWarning
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent
from apex_platform.safefiles import UnsafeFile
from apex_platform.testing.mutations import deadline

CONNECTOR = EdiConnector(EdiSettings(max_segment_chars=4096, read_chunk_bytes=1024))


def run(path: Path) -> tuple[int, int]:
    """Split and parse everything; PayloadError is the only error allowed."""
    units = warnings = 0
    with deadline(20):
        try:
            for item in CONNECTOR.split(path):
                if isinstance(item, BatchWarning):
                    warnings += 1
                    assert item.message.startswith(path.name)
                    continue
                assert isinstance(item, BatchUnit)
                units += 1
                event = InboundEvent(
                    source="edi", event_id=f"x:{item.id}"[:256], received_at=datetime.now(UTC), payload=item.payload
                )
                with suppress(PayloadError):
                    CONNECTOR.parse(event)
        except PayloadError:
            return -1, -1
    return units, warnings


def test_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(256)) * 4000)
    assert run(path) == (-1, -1)


def test_truncated_isa(tmp_path: Path, sample_214: Path) -> None:
    path = tmp_path / "cut.x12"
    for n in (3, 4, 50, 104, 105):
        path.write_bytes(sample_214.read_bytes()[:n])
        assert run(path) == (-1, -1), n


def test_huge_single_segment(tmp_path: Path, sample_214: Path) -> None:
    text = sample_214.read_text()
    path = tmp_path / "huge.x12"
    path.write_text(text.replace("L11*55555555*EQ", "L11*" + "5" * 5_000_000 + "*EQ"))
    units, warnings = run(path)
    assert units == 0  # the set holding it is not read...
    assert warnings >= 2  # ...and that is said, with the envelope's own warnings


def test_no_segment_terminator(tmp_path: Path, sample_214: Path) -> None:
    text = sample_214.read_text().replace("\n", "")
    path = tmp_path / "noterm.x12"
    path.write_text(text.replace("~", ""))  # ISA16 is followed by data: no terminator at all
    assert run(path) == (-1, -1)
    path.write_text(text[:106] + text[106:].replace("~", ""))  # only the ISA is terminated
    units, warnings = run(path)
    assert units == 0
    assert warnings >= 2


def test_utf8_and_latin1_text_is_not_a_crash(tmp_path: Path, sample_210: Path) -> None:
    path = tmp_path / "accents.x12"
    path.write_bytes(sample_210.read_bytes().replace(b"GUELPH*ON", "GUÉLPH*ON".encode("latin-1")))
    units, _ = run(path)
    assert units == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "random.x12"
    path.write_bytes(data)
    run(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 40), st.binary(max_size=8)), max_size=6))
def test_mutated_samples(
    tmp_path: Path, sample_210: Path, sample_214: Path, cuts: list[tuple[int, int, bytes]]
) -> None:
    data = bytearray(sample_214.read_bytes() + b"\n" + sample_210.read_bytes())
    for at, length, insert in cuts:
        at %= len(data) + 1
        data[at : at + length] = insert
    path = tmp_path / "mutated.x12"
    path.write_bytes(bytes(data))
    run(path)


@pytest.mark.parametrize("pad", ["\ufeff", "\n\n   \t", "\x00\x00"])
def test_leading_noise_before_isa(tmp_path: Path, sample_214: Path, pad: str) -> None:
    path = tmp_path / "pad.x12"
    path.write_bytes(pad.encode() + sample_214.read_bytes())
    assert run(path)[0] == 1


def test_a_link_or_a_fifo_is_refused_unread(tmp_path: Path) -> None:
    """`split` of a link (to a file that is not X12: its first bytes would be quoted in
    the error) or of a FIFO (an open that would wait for a writer) refuses it at once and
    quotes nothing of it."""
    secret = tmp_path / "id_rsa"
    secret.write_text("secret-marker-51d0 and more")
    link = tmp_path / "carrier.x12"
    link.symlink_to(secret)
    with deadline(10), pytest.raises(UnsafeFile, match=r"carrier\.x12: a symbolic link; not followed") as caught:
        list(CONNECTOR.split(link))
    assert "secret-marker" not in str(caught.value)
    fifo = tmp_path / "pipe.x12"
    os.mkfifo(fifo)
    with deadline(10), pytest.raises(UnsafeFile, match=r"pipe\.x12: a FIFO; nothing read"):
        list(CONNECTOR.split(fifo))
