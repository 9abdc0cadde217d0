"""Properties: the stored state is what the rule says, whatever the writes and batching;
any JSON record reads back identical."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_platform.models import Record, RecordKey
from apex_sink_redis import RedisSink

RecordFactory = Callable[..., Record]

writes = st.lists(
    st.tuples(
        st.integers(0, 4) | st.integers(min_value=0, max_value=2**70),
        st.booleans(),  # deleted
        st.sampled_from(["", "alt", "other"]),  # content variant
        st.booleans(),  # with an embedding
    ),
    min_size=1,
    max_size=12,
)


def expected_after(records: list[Record]) -> Record:
    """The rule, written the plain way: apply each write in order."""
    state: Record | None = None
    for new in records:
        if (
            state is None
            or new.version > state.version
            or (new.version == state.version and not state.deleted and (new.deleted or new != state))
        ):
            state = new
    assert state is not None
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=writes, batch_size=st.integers(min_value=1, max_value=4))
async def test_any_sequence_of_writes_ends_in_the_rules_state(
    record: RecordFactory, sink: RedisSink, writes: list[tuple[int, bool, str, bool]], batch_size: int
) -> None:
    key_id = uuid.uuid4().hex  # examples share the sink: one fresh key each
    records = [
        record(key_id, version, deleted=deleted, text=f"v{version}{variant}", embedding=(0.5,) if emb else None)
        for version, deleted, variant, emb in writes
    ]
    for start in range(0, len(records), batch_size):
        await sink.write(records[start : start + batch_size])

    want = expected_after(records)
    key = RecordKey("turvo", key_id)
    got = (await sink.read([key]))[key]
    if want.deleted:
        assert (got.deleted, got.version, got.text, got.embedding) == (True, want.version, "", None)
    else:
        assert got == want


json_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)  # NUL included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | json_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_text, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    attributes=st.dictionaries(json_text, json_values, max_size=5),
    title=json_text,
    text=json_text,
    embedding=st.none() | st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=64),
)
async def test_any_json_record_reads_back_identical(
    record: RecordFactory,
    sink: RedisSink,
    attributes: dict[str, Any],
    title: str,
    text: str,
    embedding: list[float] | None,
) -> None:
    written = record(
        uuid.uuid4().hex,
        1,
        attributes=attributes,
        title=title,
        text=text or "-",
        embedding=None if embedding is None else tuple(embedding),
    )
    await sink.write([written])
    back = (await sink.read([written.key]))[written.key]
    assert back == written
    assert back.content_hash() == written.content_hash()
