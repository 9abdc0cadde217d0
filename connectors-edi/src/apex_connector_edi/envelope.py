"""Envelopes: ISA → GS → ST … SE → GE → IEA, checked as they stream by.

`split_stream` turns segments into one `BatchUnit` per transaction set and reports
what is wrong with the envelopes as `BatchWarning`s (each naming the file and the
interchange, group and set control numbers), keeping every set that can be read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from apex_connector_edi.x12 import Problem, Segment, X12Reader
from apex_platform.contracts import BatchUnit, BatchWarning

#: GS01 functional identifier each transaction set belongs in (X12 element 479)
FUNCTIONAL_IDS: dict[str, str] = {
    "204": "SM",  # motor carrier load tender
    "210": "IM",  # motor carrier freight details and invoice
    "214": "QM",  # transportation carrier shipment status
    "810": "IN",  # invoice
    "850": "PO",  # purchase order
    "856": "SH",  # ship notice
    "990": "GF",  # response to a load tender
    "997": "FA",  # functional acknowledgment
}
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}")


@dataclass
class _Interchange:
    control: str
    info: dict[str, str]
    groups: int = 0


@dataclass
class _Group:
    control: str
    info: dict[str, str]
    sets: int = 0
    warned_types: set[str] = field(default_factory=set)


@dataclass
class _Set:
    type: str
    control: str
    segments: list[list[str | list[str]]]
    count: int = 1
    broken: str | None = None


def _same(a: str, b: str) -> bool:
    """Control numbers match: equal, or equal as numbers (zero padding differs)."""
    a, b = a.strip(), b.strip()
    return a == b or (a.isdigit() and b.isdigit() and int(a) == int(b))


def _number(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() else None


class EnvelopeReader:
    """State machine over one file's segments. Iterate over it once."""

    def __init__(self, stream: BinaryIO, name: str, *, max_set_segments: int = 100_000, **reader: Any) -> None:
        self.name = name
        self.max_set_segments = max_set_segments
        self._segments = X12Reader(stream, **reader)
        self._isa: _Interchange | None = None
        self._gs: _Group | None = None
        self._st: _Set | None = None
        self._seen_ids: dict[str, int] = {}
        self.units = 0

    # -- naming ----------------------------------------------------------------------------

    def _where(self, st: _Set | None = None) -> str:
        parts = [self.name]
        if self._isa is not None:
            parts.append(f"interchange {self._isa.control or '?'}")
        if self._gs is not None:
            parts.append(f"group {self._gs.control or '?'}")
        if st is not None:
            parts.append(f"set {st.control or '?'} ({st.type or '?'})")
        return ", ".join(parts)

    def _warn(self, message: str, st: _Set | None = None) -> BatchWarning:
        return BatchWarning(f"{self._where(st)}: {message}", unit_id=self._unit_id(st) if st else None)

    def _unit_id(self, st: _Set) -> str:
        isa = self._isa.control if self._isa else ""
        gs = self._gs.control if self._gs else ""
        return f"{isa}:{gs}:{st.control}"

    # -- the state machine ----------------------------------------------------------------

    def __iter__(self) -> Iterator[BatchUnit | BatchWarning]:
        for item in self._segments:
            if isinstance(item, Problem):
                if self._st is not None and self._st.broken is None:
                    self._st.broken = item.message
                yield self._warn(item.message, self._st)
                continue
            yield from self._segment(item)
        yield from self._finish()

    def _segment(self, seg: Segment) -> Iterator[BatchUnit | BatchWarning]:
        if seg.id == "ISA":
            yield from self._on_isa(seg)
        elif seg.id == "GS":
            yield from self._on_gs(seg)
        elif seg.id == "ST":
            yield from self._on_st(seg)
        elif seg.id == "SE":
            yield from self._on_se(seg)
        elif seg.id == "GE":
            yield from self._on_ge(seg)
        elif seg.id == "IEA":
            yield from self._on_iea(seg)
        elif self._st is not None:
            st = self._st
            st.count += 1
            if not _SEGMENT_ID.fullmatch(seg.id):
                if st.broken is None:
                    st.broken = f"segment {seg.number} is not an X12 segment: {seg.id[:20]!r}"
            elif len(st.segments) >= self.max_set_segments:
                if st.broken is None:
                    st.broken = f"more than {self.max_set_segments} segments (APEX_EDI_MAX_SET_SEGMENTS)"
            else:
                st.segments.append(seg.values())
        else:
            what = seg.id[:20] if _SEGMENT_ID.fullmatch(seg.id) else f"unreadable data {seg.id[:20]!r}"
            yield self._warn(f"segment {seg.number} ({what}) is outside any transaction set; ignored")

    def _on_isa(self, seg: Segment) -> Iterator[BatchWarning]:
        if self._isa is not None:
            yield from self._close_group(missing="IEA")
            yield self._warn("no IEA trailer before the next ISA")
        self._isa = _Interchange(
            control=seg.get(13).strip(),
            info={
                "sender_qualifier": seg.get(5).strip(),
                "sender": seg.get(6).strip(),
                "receiver_qualifier": seg.get(7).strip(),
                "receiver": seg.get(8).strip(),
                "date": seg.get(9).strip(),
                "time": seg.get(10).strip(),
                "version": seg.get(12).strip(),
                "control_number": seg.get(13).strip(),
                "usage": seg.get(15).strip(),
            },
        )
        if len(seg.elements) != 17:
            yield self._warn(f"the ISA segment has {len(seg.elements) - 1} elements, not 16")

    def _on_gs(self, seg: Segment) -> Iterator[BatchWarning]:
        if self._gs is not None:
            yield from self._close_group(missing="GE")
        if self._isa is None:
            yield self._warn(f"segment {seg.number} (GS) is outside any interchange (no ISA before it)")
        else:
            self._isa.groups += 1
        self._gs = _Group(
            control=seg.get(6).strip(),
            info={
                "functional_id": seg.get(1).strip(),
                "sender": seg.get(2).strip(),
                "receiver": seg.get(3).strip(),
                "date": seg.get(4).strip(),
                "time": seg.get(5).strip(),
                "control_number": seg.get(6).strip(),
                "agency": seg.get(7).strip(),
                "version": seg.get(8).strip(),
            },
        )

    def _on_st(self, seg: Segment) -> Iterator[BatchUnit | BatchWarning]:
        if self._st is not None:
            yield from self._drop_set(self._st, f"no SE trailer before the next ST (segment {seg.number})")
        st = _Set(type=seg.get(1).strip(), control=seg.get(2).strip(), segments=[seg.values()])
        self._st = st
        if self._gs is None:
            yield self._warn(f"ST at segment {seg.number} is outside any functional group (no GS before it)", st)
            return
        self._gs.sets += 1
        expected = FUNCTIONAL_IDS.get(st.type)
        gs01 = self._gs.info["functional_id"]
        if expected is not None and gs01 != expected and st.type not in self._gs.warned_types:
            self._gs.warned_types.add(st.type)
            yield self._warn(
                f"GS01 is {gs01!r} but the group holds {st.type} sets (expected {expected!r}); read as {st.type}",
                st,
            )

    def _on_se(self, seg: Segment) -> Iterator[BatchUnit | BatchWarning]:
        st = self._st
        if st is None:
            yield self._warn(f"segment {seg.number} (SE) has no ST before it; ignored")
            return
        self._st = None
        st.count += 1
        st.segments.append(seg.values())
        if st.broken is not None:
            yield self._warn(f"not read: {st.broken}", st)
            return
        declared = _number(seg.get(1))
        if declared is None:
            yield self._warn(f"SE01 {seg.get(1)!r} is not a segment count (the set has {st.count})", st)
        elif declared != st.count:
            yield self._warn(f"SE01 says {declared} segments but the set has {st.count}", st)
        if not _same(seg.get(2), st.control):
            yield self._warn(f"SE02 {seg.get(2).strip()!r} does not match ST02 {st.control!r}", st)
        yield from self._emit(st)

    def _on_ge(self, seg: Segment) -> Iterator[BatchWarning]:
        if self._st is not None:
            yield from self._drop_set(self._st, f"no SE trailer before GE (segment {seg.number})")
        gs = self._gs
        if gs is None:
            yield self._warn(f"segment {seg.number} (GE) has no GS before it; ignored")
            return
        declared = _number(seg.get(1))
        if declared != gs.sets:
            yield self._warn(f"GE01 says {seg.get(1).strip() or 'nothing'} sets but the group holds {gs.sets}")
        if not _same(seg.get(2), gs.control):
            yield self._warn(f"GE02 {seg.get(2).strip()!r} does not match GS06 {gs.control!r}")
        self._gs = None

    def _on_iea(self, seg: Segment) -> Iterator[BatchWarning]:
        yield from self._close_group(missing="GE")
        isa = self._isa
        if isa is None:
            yield self._warn(f"segment {seg.number} (IEA) has no ISA before it; ignored")
            return
        declared = _number(seg.get(1))
        if declared != isa.groups:
            yield self._warn(
                f"IEA01 says {seg.get(1).strip() or 'nothing'} groups but the interchange holds {isa.groups}"
            )
        if not _same(seg.get(2), isa.control):
            yield self._warn(f"IEA02 {seg.get(2).strip()!r} does not match ISA13 {isa.control!r}")
        self._isa = None

    def _close_group(self, *, missing: str) -> Iterator[BatchWarning]:
        """An open set or group where a trailer should have closed it."""
        if self._st is not None:
            yield from self._drop_set(self._st, f"no SE trailer before {missing}")
        if self._gs is not None:
            yield self._warn(f"no GE trailer before {missing}")
            self._gs = None

    def _drop_set(self, st: _Set, reason: str) -> Iterator[BatchWarning]:
        self._st = None
        yield self._warn(f"not read: {st.broken or reason}", st)

    def _finish(self) -> Iterator[BatchWarning]:
        if self._st is not None:
            yield from self._drop_set(self._st, "the file ends inside the set (no SE trailer)")
        if self._gs is not None:
            yield self._warn("the file ends without a GE trailer")
            self._gs = None
        if self._isa is not None:
            yield self._warn("the file ends without an IEA trailer")
            self._isa = None
        if self.units == 0:
            yield BatchWarning(f"{self.name}: no transaction set could be read")

    def _emit(self, st: _Set) -> Iterator[BatchUnit | BatchWarning]:
        unit_id = self._unit_id(st)
        seen = self._seen_ids.get(unit_id, 0) + 1
        self._seen_ids[unit_id] = seen
        if seen > 1:
            yield self._warn(f"the control numbers repeat an earlier set's; read as {unit_id}#{seen}", st)
            unit_id = f"{unit_id}#{seen}"
        self.units += 1
        payload = {
            "interchange": dict(self._isa.info) if self._isa else {},
            "group": dict(self._gs.info) if self._gs else {},
            "set": {"type": st.type, "control_number": st.control},
            "segments": st.segments,
        }
        yield BatchUnit(id=unit_id, payload=payload)
