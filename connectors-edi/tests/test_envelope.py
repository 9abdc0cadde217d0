"""Envelopes: one unit per transaction set, and warnings that name file and control numbers."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apex_connector_edi import EdiConnector, EdiSettings, samples
from apex_platform.contracts import BatchUnit
from apex_platform.errors import PayloadError

Split = Callable[[Path], Any]
Write = Callable[[str, str], Path]


def test_214_sample_unit_and_its_envelope_warnings(split: Split, sample_214: Path) -> None:
    result = split(sample_214)
    assert [u.id for u in result.units] == ["000000263:000000001:0006"]
    payload = result.units[0].payload
    assert payload["interchange"]["sender"] == "SENDER1"
    assert payload["interchange"]["date"] == "071216"
    assert payload["group"]["functional_id"] == "IN"
    assert payload["group"]["version"] == "004010"
    assert payload["set"] == {"type": "214", "control_number": "0006"}
    assert payload["segments"][0] == ["ST", "214", "0006"]
    assert payload["segments"][-1] == ["SE", "12", "0006"]
    assert len(payload["segments"]) == 12
    assert [w for w in result.warnings if "GE01" in w] == [
        "edifabric_214_shipment_status.x12, interchange 000000263, group 000000001: "
        "GE01 says 2 sets but the group holds 1"
    ]
    gs01 = [w for w in result.warnings if "GS01" in w]
    assert len(gs01) == 1
    assert "interchange 000000263, group 000000001, set 0006 (214)" in gs01[0]
    assert "GS01 is 'IN'" in gs01[0]
    assert "expected 'QM'" in gs01[0]
    assert len(result.warnings) == 2


def test_210_sample_unit_and_its_gs01_warning(split: Split, sample_210: Path) -> None:
    result = split(sample_210)
    assert [u.id for u in result.units] == ["000000263:000000001:00000001"]
    assert len(result.units[0].payload["segments"]) == 30
    assert len(result.warnings) == 1
    assert "edifabric_210_freight_invoice.x12, interchange 000000263" in result.warnings[0]
    assert "GS01 is 'IN'" in result.warnings[0]
    assert "expected 'IM'" in result.warnings[0]


def _file(*sets: list[list[str]], functional_id: str = "QM", trailer: list[str] | None = None) -> str:
    text = "".join(samples.interchange_lines(list(sets), functional_id=functional_id))
    if trailer is not None:
        text = text.replace("GE*", "\n".join(trailer) + "\nGE*", 1) if trailer else text
    return text


def _set(control: int, pro: str = "1001") -> list[list[str]]:
    return samples.status_set(control, pro=pro)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda t: t.replace("SE*12*0002", "SE*9*0002"), "set 0002 (214): SE01 says 9 segments but the set has 12"),
        (lambda t: t.replace("SE*12*0002", "SE*12*0099"), "set 0002 (214): SE02 '0099' does not match ST02 '0002'"),
        (lambda t: t.replace("GE*3*1", "GE*3*7"), "group 1: GE02 '7' does not match GS06 '1'"),
        (lambda t: t.replace("GE*3*1", "GE*4*1"), "group 1: GE01 says 4 sets but the group holds 3"),
        (
            lambda t: t.replace("IEA*1*", "IEA*2*"),
            "interchange 000000001: IEA01 says 2 groups but the interchange holds 1",
        ),
        (
            lambda t: t.replace("IEA*1*000000001", "IEA*1*000000005"),
            "interchange 000000001: IEA02 '000000005' does not match ISA13 '000000001'",
        ),
    ],
)
def test_count_and_control_number_mismatches_are_warnings(
    split: Split, x12_file: Write, change: Callable[[str], str], says: str
) -> None:
    path = x12_file("counts.x12", change(_file(_set(1), _set(2), _set(3))))
    result = split(path)
    assert len(result.units) == 3  # all sets still read
    assert [w for w in result.warnings if says in w], result.warnings
    assert all(w.startswith("counts.x12, ") for w in result.warnings)


def test_a_set_without_se_is_reported_and_the_others_are_kept(split: Split, x12_file: Write) -> None:
    broken = _set(2)[:-1]  # no SE
    result = split(x12_file("broken.x12", _file(_set(1), broken, _set(3))))
    assert [u.id.rsplit(":", 1)[1] for u in result.units] == ["0001", "0003"]
    assert any("set 0002 (214): not read: no SE trailer before the next ST" in w for w in result.warnings)


def test_garbage_inside_a_set_skips_that_set_only(split: Split, x12_file: Write) -> None:
    bad = _set(2)
    bad.insert(3, ["\x00\x01garbage!!"])
    bad[-1] = ["SE", "13", "0002"]
    result = split(x12_file("garbage.x12", _file(_set(1), bad, _set(3))))
    assert [u.id.rsplit(":", 1)[1] for u in result.units] == ["0001", "0003"]
    assert any("set 0002 (214): not read: segment" in w and "is not an X12 segment" in w for w in result.warnings)


def test_missing_trailers_at_the_end_of_the_file(split: Split, x12_file: Write) -> None:
    text = _file(_set(1), _set(2))
    cut = text[: text.index("ST*214*0002")] + "ST*214*0002~B10*1*2*APXL~"
    result = split(x12_file("cut.x12", cut))
    assert len(result.units) == 1
    joined = "\n".join(result.warnings)
    assert "set 0002 (214): not read: the file ends inside the set" in joined
    assert "the file ends without a GE trailer" in joined
    assert "the file ends without an IEA trailer" in joined


def test_repeated_control_numbers_keep_both_sets(split: Split, x12_file: Write) -> None:
    result = split(x12_file("dupe.x12", _file(_set(1, "1"), _set(1, "2"))))
    assert [u.id for u in result.units] == ["000000001:1:0001", "000000001:1:0001#2"]
    assert any("repeat" in w for w in result.warnings)


def test_segments_outside_sets_and_unknown_set_types(split: Split, x12_file: Write) -> None:
    other = [["ST", "204", "0009"], ["B2", "", "APXL"], ["SE", "3", "0009"]]
    text = _file(_set(1), other).replace("ST*214*0001", "ZZZ*1~\x00\x07~ST*214*0001")
    result = split(x12_file("mixed.x12", text))
    assert [u.payload["set"]["type"] for u in result.units] == ["214", "204"]
    assert any("(ZZZ) is outside any transaction set" in w for w in result.warnings)
    assert any("(unreadable data '\\x07') is outside any transaction set" in w for w in result.warnings)
    assert any("GS01 is 'QM' but the group holds 204 sets (expected 'SM')" in w for w in result.warnings)


def test_not_x12_raises_payload_error(connector: EdiConnector, x12_file: Write) -> None:
    with pytest.raises(PayloadError, match="ISA"):
        list(connector.split(x12_file("notes.txt", "Dear carrier, please find attached...\n")))


def test_an_interchange_with_no_set_yields_only_warnings(split: Split, x12_file: Write) -> None:
    result = split(x12_file("empty.x12", samples.isa(1) + "~IEA*0*000000001~"))
    assert result.units == []
    assert result.warnings == ["empty.x12: no transaction set could be read"]


def test_one_thousand_sets_stream_in_bounded_memory(tmp_path: Path) -> None:
    path = samples.write_statuses(tmp_path / "thousand.x12", 1000, references=40)
    size = path.stat().st_size
    assert size > 1_000_000
    connector = EdiConnector(EdiSettings(read_chunk_bytes=16 * 1024))
    count = 0
    tracemalloc.start()
    try:
        for item in connector.split(path):
            if isinstance(item, BatchUnit):
                count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 1000
    assert peak < size / 4, (peak, size)  # a chunk, one set, and the ids seen so far


def test_max_set_segments_guards_memory(x12_file: Write) -> None:
    big = _set(1)
    big[1:1] = [["L11", str(n), "BM"] for n in range(50)]
    big[-1] = ["SE", str(len(big)), "0001"]
    connector = EdiConnector(EdiSettings(max_set_segments=20))
    items = list(connector.split(x12_file("long.x12", _file(big, _set(2)))))
    units = [i for i in items if isinstance(i, BatchUnit)]
    assert [u.id for u in units] == ["000000001:1:0002"]
    assert any("APEX_EDI_MAX_SET_SEGMENTS" in getattr(i, "message", "") for i in items)
