"""falkordb_params writes the parameter header the `falkordb` client itself writes."""

from __future__ import annotations

import math
from typing import Any

import pytest
from falkordb.asyncio.graph import AsyncGraph
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_platform.testing.records import make_record
from apex_sink_graph import plan
from apex_sink_graph.falkordb_params import params_header


def _client(params: dict[str, Any]) -> str:
    graph = AsyncGraph.__new__(AsyncGraph)  # the header needs no connection
    return graph._build_params_header(params)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(), st.binary(max_size=4)
)
keys = st.text(min_size=1).filter(lambda k: "`" not in k)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=4))
def test_same_header_as_the_client(params: dict[str, Any]) -> None:
    assert params_header(params) == _client(params)


def test_same_header_for_claim_rows() -> None:
    record = make_record(
        title='quote " back \\ nul \x00 é', attributes={"x": 1.5, "y": [1, "a"], "z": {"n": None}}, embedding=(0.5,) * 4
    )
    rows = [plan.plan(record).claim_row(), {"uid": "u", "flag": True, "n": math.inf, "none": None}]
    params = {"rows": rows, "stamp": "s", "writer": None}
    assert params_header(params) == _client(params)


@pytest.mark.parametrize("bad", [{"": 1}, {"a`b": 1}, {"rows": [{"": 1}]}, {"rows": {"a`": 1}}])
def test_refuses_what_the_client_refuses(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as ours:
        params_header(bad)
    with pytest.raises(ValueError) as theirs:
        _client(bad)
    assert str(ours.value) == str(theirs.value)
