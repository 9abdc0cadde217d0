"""Dead letters against the four real stores and the real PostgreSQL dead-letter table:
one per batch, resolved by a later success, rolled back over HTTP-free operations
(the same functions the API and the CLI call)."""

# The `stores` fixture is imported from test_saga_stores; test parameters of that name use it.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from test_saga_stores import Stores, rec, same_everywhere, stores  # noqa: F401 - the `stores` fixture

from apex_platform import operations
from apex_platform.errors import ApexError
from apex_platform.models import RecordKey
from apex_platform.plugins import Registry
from apex_platform.runtime import Runtime
from apex_platform.saga import SagaWriteError
from apex_platform.testing.sinks import Faults

pytestmark = [pytest.mark.timeout(180)]


def runtime_of(stores: Stores) -> Runtime:
    saga = stores.saga()
    return Runtime(registry=Registry(sinks=dict(stores.faulty)), core=None, temporal=None, saga=saga, codec=None)  # type: ignore[arg-type]


async def test_a_failed_batch_keeps_one_letter_across_attempts_and_a_later_success_resolves_it(
    stores: Stores,
) -> None:
    saga = stores.saga()
    stores.faulty["qdrant"].faults = Faults(fail_writes_forever=True)
    stores.faulty["redis"].faults = Faults(fail_restores_forever=True)
    ids = set()
    for version in (1, 2, 3):  # the batch grows between attempts, as a drain's does
        with pytest.raises(SagaWriteError) as info:
            await saga.write([rec("a", version), rec("b", 1)], batch_id="apex:drain:trk@41")
        ids.add(info.value.dead_letter_id)
    assert len(ids) == 1
    pg: Any = stores.real["postgres"]
    (letter,) = await pg.list_dead_letters(status=None)
    assert (letter.batch_id, letter.status, letter.attempts) == ("apex:drain:trk@41", "open", 2)
    assert [r.version for r in letter.records if r.id == "a"] == [3]
    assert set(letter.previous) == {"redis"}
    stores.faulty["qdrant"].faults = Faults()
    stores.faulty["redis"].faults = Faults()
    await saga.write([rec("a", 3), rec("b", 1)], batch_id="apex:drain:trk@41")
    (letter,) = await pg.list_dead_letters(status=None)
    assert letter.status == "resolved"
    assert same_everywhere(await stores.state(["a", "b"])) == {
        RecordKey("trk", "a"): (3, False),
        RecordKey("trk", "b"): (1, False),
    }


async def test_rollback_undoes_what_could_not_be_undone_and_spares_a_newer_version(stores: Stores) -> None:
    saga = stores.saga()
    await saga.write([rec("a", 1)])
    stores.faulty["qdrant"].faults = Faults(fail_writes_forever=True)
    stores.faulty["postgres"].faults = Faults(fail_restores_forever=True)
    with pytest.raises(SagaWriteError) as info:
        await saga.write([rec("a", 2), rec("b", 1), rec("c", 1)], batch_id="page-9")
    letter_id = info.value.dead_letter_id
    assert letter_id is not None
    stores.faulty["qdrant"].faults = Faults()
    stores.faulty["postgres"].faults = Faults()
    # the stores disagree: postgres kept the batch it could not undo
    state = await stores.state(["a", "b", "c"])
    assert state["postgres"][RecordKey("trk", "a")].version == 2
    assert RecordKey("trk", "b") not in state["redis"]
    # meanwhile a newer version of c committed everywhere
    await saga.write([rec("c", 5)])
    runtime = runtime_of(stores)
    shown = await operations.dlq_show(runtime, letter_id)
    assert shown["rollback"] == {"postgres": 3}
    done = await operations.dlq_rollback(runtime, letter_id)
    assert done == {"id": letter_id, "status": "rolled_back", "restored": {"postgres": 3}}
    assert same_everywhere(await stores.state(["a", "b", "c"])) == {
        RecordKey("trk", "a"): (1, False),
        RecordKey("trk", "c"): (5, False),
    }
    with pytest.raises(ApexError, match="not open"):
        await operations.dlq_rollback(runtime, letter_id)


async def test_a_quarantine_letter_has_nothing_to_roll_back(stores: Stores) -> None:
    saga = stores.saga()
    stores.faulty["graph"].faults = Faults(refuse_ids={"poison"})
    result = await saga.write([rec("poison", 1), rec("a", 1)], batch_id="q-1")
    assert result.quarantined == 1
    pg: Any = stores.real["postgres"]
    (letter,) = await pg.list_dead_letters(status="open")
    assert letter.batch_id == "q-1:quarantine"
    assert "graph: injected refusal of poison" in letter.error
    with pytest.raises(ApexError, match="nothing to roll back"):
        await operations.dlq_rollback(runtime_of(stores), letter.id)
    assert same_everywhere(await stores.state(["poison", "a"])) == {RecordKey("trk", "a"): (1, False)}
