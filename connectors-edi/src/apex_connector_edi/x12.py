"""A streaming X12 tokenizer: delimiters from each ISA header, segments out.

The file is read in chunks; at most one chunk plus one segment is held in memory, so a
file of any size streams. Nothing here knows about envelopes or transaction sets (that
is `envelope.py`): this module only turns characters into segments, and reports what it
could not tokenize as `Problem`s between them instead of raising.

Delimiters (X12.5 / X12.6):
- element separator: the character right after `ISA`;
- component separator: ISA16, the single character after the 16th element separator;
- segment terminator: the character after ISA16 (spaces or tabs before it are padding,
  and CR/LF after it are line breaks, not data).

The ISA segment is fixed-width (106 characters with its terminator). A header that is
not (hand-edited files, padding trimmed) is read by counting separators instead.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from apex_platform.errors import PayloadError

ISA_LENGTH = 106
#: the ISA header is searched for this far when it is not fixed-width
_ISA_MAX_CHARS = 512
_PADDING = " \t"
#: trimmed around segments: line breaks between segments, indentation, NULs, BOMs
_NOISE = " \t\r\n\x00\ufeff\x0b\x0c"
_ENCODING = "utf-8"


class X12Error(PayloadError):
    """Nothing can be read: the data is not X12 (no usable ISA header)."""


@dataclass(frozen=True)
class Delimiters:
    element: str = "*"
    component: str = ">"
    segment: str = "~"
    #: ISA11 from version 00402 on (a letter `U` before that, which is not a separator)
    repetition: str | None = None


@dataclass(frozen=True)
class Segment:
    """One segment: `elements[0]` is its id (`ISA`, `ST`, `B10` …)."""

    elements: tuple[str, ...]
    #: position in the file, 1-based, counting every segment read
    number: int
    delimiters: Delimiters

    @property
    def id(self) -> str:
        return self.elements[0]

    def get(self, index: int) -> str:
        """Element `index` (1-based, as X12 numbers them), "" when absent."""
        return self.elements[index] if 0 < index < len(self.elements) else ""

    def values(self) -> list[str | list[str]]:
        """The elements with composites split into their components: the same data gives
        the same values whatever delimiters the file used."""
        sep = self.delimiters.component
        out: list[str | list[str]] = [self.elements[0]]
        for value in self.elements[1:]:
            out.append(value.split(sep) if sep in value else value)
        return out


@dataclass(frozen=True)
class Problem:
    """Something that could not be tokenized; reading goes on after it."""

    message: str
    #: number of the last segment read before the problem (0: before the first)
    after: int


def _printable(text: str, limit: int = 40) -> str:
    shown = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return shown + ("…" if len(text) > limit else "")


def parse_isa(head: str) -> tuple[Delimiters, int]:
    """The delimiters of an interchange from the text that starts with its ISA segment,
    and the index of the ISA's segment terminator in `head`. Raises `X12Error`."""
    if not head.startswith("ISA"):
        raise X12Error(f"not an X12 interchange: expected 'ISA', found {_printable(head, 20)!r}")
    if len(head) < 4:
        raise X12Error("the ISA segment is truncated")
    element = head[3]
    if element.isalnum() or element in "\r\n ":
        raise X12Error(f"the ISA element separator {element!r} is not a separator character")
    if len(head) >= ISA_LENGTH and head[103] == element and head.count(element, 0, 104) == 16:
        at = 104  # fixed width, as the standard has it
    else:
        at = _isa16_index(head, element)
    component = head[at]
    end = at + 1
    while end < len(head) and head[end] in _PADDING:
        end += 1
    if end >= len(head):
        raise X12Error("the ISA segment is truncated: no segment terminator after ISA16")
    segment = head[end]
    for name, char in (("component separator (ISA16)", component), ("segment terminator", segment)):
        if char.isalnum() or char == " ":
            raise X12Error(f"the ISA {name} {char!r} is not a separator character")
    if len({element, component, segment}) < 3:
        raise X12Error(
            f"the ISA delimiters are not distinct: element {element!r}, component {component!r}, segment {segment!r}"
        )
    fields = head[:at].split(element)
    repetition = fields[11] if len(fields) > 11 else ""
    rep = repetition if len(repetition) == 1 and not repetition.isalnum() and repetition != " " else None
    if rep is not None and rep in (element, component, segment):
        rep = None
    return Delimiters(element, component, segment, rep), end


def _isa16_index(head: str, element: str) -> int:
    """Where ISA16 is when the header is not fixed-width: after the 16th separator."""
    at = 3
    for _ in range(16):
        at = head.find(element, at, _ISA_MAX_CHARS)
        if at < 0:
            raise X12Error("the ISA segment is truncated or malformed: it has fewer than 16 elements")
        at += 1
    if at >= len(head):
        raise X12Error("the ISA segment is truncated: ISA16 is missing")
    return at


class X12Reader:
    """Iterate over the segments of a binary stream, chunk by chunk.

    Yields `Segment`s and `Problem`s. Raises `X12Error` only when the stream does not
    begin with an ISA header (after whitespace): then nothing at all can be read.
    A later interchange may use other delimiters: each ISA is read afresh.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        chunk_bytes: int = 64 * 1024,
        max_segment_chars: int = 1_000_000,
    ) -> None:
        self._stream = stream
        self._chunk = max(16, chunk_bytes)
        self._max_segment = max(ISA_LENGTH, max_segment_chars)
        self._decoder = codecs.getincrementaldecoder(_ENCODING)(errors="replace")
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._count = 0
        self.delimiters: Delimiters | None = None

    def _fill(self) -> bool:
        """Read one more chunk into the buffer; False at the end of the stream."""
        if self._eof:
            return False
        data = self._stream.read(self._chunk)
        if self._pos:
            self._buf = self._buf[self._pos :]
            self._pos = 0
        if not data:
            self._eof = True
            self._buf += self._decoder.decode(b"", final=True)
            return False
        self._buf += self._decoder.decode(data)
        return True

    def _skip_noise(self) -> bool:
        """Skip whitespace between segments; False when only whitespace is left."""
        while True:
            buf, pos = self._buf, self._pos
            while pos < len(buf) and buf[pos] in _NOISE:
                pos += 1
            self._pos = pos
            if pos < len(buf):
                return True
            if not self._fill():
                return False

    def _segment(self, text: str, delimiters: Delimiters) -> Segment:
        self._count += 1
        return Segment(tuple(text.split(delimiters.element)), self._count, delimiters)

    def __iter__(self) -> Iterator[Segment | Problem]:
        previous: Delimiters | None = None
        while True:
            if self.delimiters is None:
                if not self._skip_noise():
                    return
                while len(self._buf) - self._pos < _ISA_MAX_CHARS and self._fill():
                    pass
                head = self._buf[self._pos : self._pos + _ISA_MAX_CHARS]
                try:
                    delimiters, end = parse_isa(head)
                except X12Error as exc:
                    if previous is None:
                        raise
                    # Not a new interchange: go on with the last delimiters; the envelope
                    # reader reports the segments that stand outside any interchange.
                    yield Problem(f"after IEA: {exc}", self._count)
                    self.delimiters = previous
                    continue
                self.delimiters = previous = delimiters
                text = head[:end].rstrip(_PADDING)
                self._pos += end + 1
                yield self._segment(text, delimiters)
                continue

            delimiters = self.delimiters
            if not self._skip_noise():
                return
            end = self._buf.find(delimiters.segment, self._pos)
            while end < 0:
                if len(self._buf) - self._pos > self._max_segment:
                    yield Problem(
                        f"a segment is longer than {self._max_segment} characters "
                        f"(no {delimiters.segment!r} terminator); skipped up to the next terminator",
                        self._count,
                    )
                    if not self._skip_to_terminator(delimiters.segment):
                        return
                    break
                searched = len(self._buf) - self._pos
                if not self._fill():
                    rest = self._buf[self._pos :].strip(_NOISE)
                    self._pos = len(self._buf)
                    if rest:
                        yield Problem(
                            f"the file ends without a segment terminator {delimiters.segment!r} "
                            f"after {_printable(rest)!r}",
                            self._count,
                        )
                        yield self._segment(rest, delimiters)
                    return
                end = self._buf.find(delimiters.segment, self._pos + searched)
            if end < 0:
                continue  # an oversized segment was skipped
            text = self._buf[self._pos : end].strip(_noise_for(delimiters))
            self._pos = end + 1
            if not text:
                continue
            segment = self._segment(text, delimiters)
            if segment.id == "IEA":
                self.delimiters = None  # the next interchange brings its own delimiters
            yield segment

    def _skip_to_terminator(self, terminator: str) -> bool:
        """Drop characters up to and including the next terminator; False at the end."""
        while True:
            end = self._buf.find(terminator, self._pos)
            if end >= 0:
                self._pos = end + 1
                return True
            self._pos = len(self._buf)
            if not self._fill():
                return False


_NOISE_CACHE: dict[Delimiters, str] = {}


def _noise_for(delimiters: Delimiters) -> str:
    """Whitespace to trim around a segment, except characters that are delimiters here
    (a tab can be an element separator: trimming it would drop an empty element)."""
    noise = _NOISE_CACHE.get(delimiters)
    if noise is None:
        used = {delimiters.element, delimiters.component, delimiters.segment}
        noise = _NOISE_CACHE[delimiters] = "".join(c for c in _NOISE if c not in used)
    return noise
