"""The tokenizer: delimiters from the ISA, streaming, and what it does with bad input."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import pytest

from apex_connector_edi import samples
from apex_connector_edi.x12 import Delimiters, Problem, Segment, X12Error, X12Reader, parse_isa

ISA = samples.isa(1)


def tokens(data: bytes, **kw: int) -> list[Segment | Problem]:
    return list(X12Reader(io.BytesIO(data), **kw))


def ids(data: bytes, **kw: int) -> list[str]:
    return [t.id for t in tokens(data, **kw) if isinstance(t, Segment)]


def test_delimiters_come_from_the_fixed_width_isa() -> None:
    d, end = parse_isa(ISA + "~\n")
    assert (d.element, d.component, d.segment) == ("*", ">", "~")
    assert end == 105


@pytest.mark.parametrize(
    ("element", "component", "segment"),
    [("|", "^", "\n"), ("^", ":", "'"), ("\x1d", "\x1f", "\x1e"), ("*", ":", "\r"), ("!", "@", "#")],
)
def test_any_delimiters(element: str, component: str, segment: str) -> None:
    d = Delimiters(element, component, segment)
    text = (
        samples.isa(7, d) + segment + f"GS{element}QM{element}A{element}B{segment}ST{element}214{element}0001{segment}"
    )
    out = tokens(text.encode())
    assert [t.id for t in out if isinstance(t, Segment)] == ["ISA", "GS", "ST"]
    first = out[0]
    assert isinstance(first, Segment)
    assert first.delimiters == d
    assert first.get(13) == "000000007"


def test_isa_that_is_not_fixed_width_is_read_by_counting_separators() -> None:
    short = "ISA*00**00**ZZ*SENDER*ZZ*RECEIVER*260301*0915*U*00401*000000001*0*P*:~GS*QM*A*B~"
    d, _ = parse_isa(short)
    assert (d.element, d.component, d.segment) == ("*", ":", "~")
    assert ids(short.encode()) == ["ISA", "GS"]


def test_padding_after_isa16_and_line_breaks_are_not_delimiters() -> None:
    text = ISA.replace("*>", "*>  ") + "~\r\n   GS*QM*A*B~\r\n\r\n\tST*214*0001~\n"
    assert ids(text.encode()) == ["ISA", "GS", "ST"]
    crlf_terminator = ISA + "\r\nGS*QM*A*B\r\nST*214*0001\r\n"  # terminator CR, LF is noise
    assert ids(crlf_terminator.encode()) == ["ISA", "GS", "ST"]


def test_composites_are_split_with_the_component_separator() -> None:
    seg = [t for t in tokens((ISA + "~N7*A>B>C*X~").encode()) if isinstance(t, Segment)][1]
    assert seg.values() == ["N7", ["A", "B", "C"], "X"]


def test_repetition_separator_from_isa11_in_00402_and_later() -> None:
    d, _ = parse_isa(samples.isa(1, Delimiters("*", ":", "~", "^")) + "~")
    assert d.repetition == "^"
    assert parse_isa(ISA + "~")[0].repetition is None  # ISA11 'U' (00401) is not a separator


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", None),
        (b"hello, world\n", "ISA"),
        (b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 50, "ISA"),
        (b"ISA*00*   ", "truncated"),
        (b"ISA", "truncated"),
        (ISA.replace("*>", "*A").encode() + b"~", "component"),
        (ISA.encode() + b"A", "terminator"),
        (ISA.replace("*>", "**").encode() + b"~", "distinct"),
        (b"ISA1" + ISA[4:].encode() + b"~", "separator"),
        (b'{"messages": []}', "ISA"),
    ],
)
def test_not_x12_is_an_error_that_says_why(data: bytes, says: str | None) -> None:
    if says is None:
        assert tokens(data) == []  # empty: nothing to read, nothing wrong
        return
    with pytest.raises(X12Error, match=says):
        tokens(data)


def test_a_huge_segment_is_reported_and_skipped_without_being_held() -> None:
    huge = b"B10*" + b"x" * 3_000_000
    data = ISA.encode() + b"~GS*QM*A*B~" + huge + b"~ST*214*0001~"
    tracemalloc.start()
    try:
        out = tokens(data, max_segment_chars=100_000, chunk_bytes=16_384)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [t.id for t in out if isinstance(t, Segment)] == ["ISA", "GS", "ST"]
    problems = [t for t in out if isinstance(t, Problem)]
    assert len(problems) == 1
    assert "longer than 100000" in problems[0].message
    assert peak < 1_500_000  # the 3 MB segment was never in memory (the input bytes are not traced)


def test_no_terminator_at_the_end_is_reported_and_the_rest_is_kept() -> None:
    out = tokens((ISA + "~GS*QM*A*B~IEA*1*000000001").encode())
    assert [t.id for t in out if isinstance(t, Segment)] == ["ISA", "GS", "IEA"]
    assert any(isinstance(t, Problem) and "without a segment terminator" in t.message for t in out)


def test_no_terminator_anywhere_is_one_oversized_segment() -> None:
    out = tokens((ISA + "~" + "GS*QM*A*B" * 50_000).encode(), max_segment_chars=10_000)
    assert [t.id for t in out if isinstance(t, Segment)] == ["ISA"]
    assert any(isinstance(t, Problem) for t in out)


def test_each_interchange_brings_its_own_delimiters() -> None:
    other = Delimiters("|", "^", "\n")
    text = ISA + "~GS*QM*A*B~IEA*1*000000001~\n" + samples.isa(2, other) + "\nGS|QM|A|B\nIEA|1|000000002\n"
    out = [t for t in tokens(text.encode()) if isinstance(t, Segment)]
    assert [t.id for t in out] == ["ISA", "GS", "IEA", "ISA", "GS", "IEA"]
    assert out[4].delimiters == other
    assert out[4].get(1) == "QM"


def test_garbage_after_iea_is_reported_and_read_with_the_last_delimiters() -> None:
    text = ISA + "~GS*QM*A*B~IEA*1*000000001~ junk*1~"
    out = tokens(text.encode())
    assert any(isinstance(t, Problem) and "after IEA" in t.message for t in out)
    assert [t.id for t in out if isinstance(t, Segment)][-1] == "junk"


class OnlySmallReads(io.RawIOBase):
    """A file that produces data on demand and fails if anyone reads it whole."""

    def __init__(self, pieces: list[bytes], limit: int) -> None:
        self._pieces = iter(pieces)
        self._pending = b""
        self.limit = limit
        self.largest = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > self.limit:
            raise AssertionError(f"read({size}) would load the file whole")
        self.largest = max(self.largest, size)
        while len(self._pending) < size:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._pending += piece
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


def test_reads_in_chunks_only(tmp_path: Path) -> None:
    path = samples.write_statuses(tmp_path / "many.x12", 300)
    data = path.read_bytes()
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    stream = OnlySmallReads(pieces, limit=8192)
    out = list(X12Reader(stream, chunk_bytes=8192))  # type: ignore[arg-type]
    assert sum(1 for t in out if isinstance(t, Segment) and t.id == "ST") == 300
    assert stream.largest == 8192
