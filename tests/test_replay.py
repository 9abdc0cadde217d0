"""Recorded histories replay against the current workflow code (issue 13, item 6).

Every workflow type the worker registers has at least one history recorded from a real
run on the Temporal dev server (`tests/data/histories/record.py` writes them; older
recordings in `tests/histories/` and `core/tests/histories/` replay too). The
`Replayer` runs each through today's code, in the worker's sandbox and with the
platform's data converter: a workflow change that is not deterministic (an activity
added, removed or reordered without `workflow.patched`) fails here, before a deploy
meets running workflows. No server is needed: replay is local."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from apex_platform.settings import TemporalSettings
from apex_platform.temporal.client import data_converter
from apex_platform.temporal.inputs import DrainBatchInput, DrainBatchResult, DrainInput
from apex_platform.temporal.worker import sandbox_runner, workflows

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "data" / "histories"
KEPT = [RECORDED, ROOT / "tests" / "histories", ROOT / "core" / "tests" / "histories"]


def history_files() -> list[Path]:
    return sorted(p for folder in KEPT for p in folder.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def workflow_type(path: Path) -> str:
    first = json.loads(path.read_text())["events"][0]
    return str(first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


def registered() -> set[str]:
    return {getattr(cls, "__temporal_workflow_definition").name for cls in workflows()}


def test_every_registered_workflow_type_has_a_recorded_history() -> None:
    recorded = {workflow_type(p) for p in RECORDED.glob("*.json")}
    assert registered() - recorded == set(), "record them: python tests/data/histories/record.py --tag vN"
    assert recorded <= registered(), "a recorded type is no longer registered: runs of it could not finish"


@pytest.mark.parametrize("path", history_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_a_recorded_history_replays_against_the_current_code(path: Path) -> None:
    # the platform's converter (encryption on, the session's key): the recorded plaintext
    # payloads pass through it, as histories written before encryption do
    converter = data_converter(TemporalSettings())
    replayer = Replayer(workflows=workflows(), data_converter=converter, workflow_runner=sandbox_runner())
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} ({workflow_type(path)}): {result.replay_failure}"


@workflow.defn(name="DrainWorkflow", sandboxed=False)
class ReorderedDrain:
    """What a careless edit of `DrainWorkflow` could look like: a timer before the first
    batch, without `workflow.patched` (a run recorded before it has no such timer)."""

    @workflow.run
    async def run(self, inp: DrainInput) -> None:
        await workflow.sleep(timedelta(seconds=1))
        await workflow.execute_activity(
            "apex.drain_inbox",
            DrainBatchInput(
                source=inp.source,
                max_count=inp.max_count,
                max_bytes=inp.max_bytes,
                idle_wait_seconds=inp.idle_wait_seconds,
            ),
            result_type=DrainBatchResult,
            start_to_close_timeout=timedelta(seconds=60),
        )


async def test_a_non_deterministic_change_fails_the_replay() -> None:
    """The check can fail: the recorded drain against a changed drain is a nondeterminism error."""
    path = RECORDED / "drain_v1.json"
    replayer = Replayer(
        workflows=[ReorderedDrain], data_converter=data_converter(TemporalSettings()), workflow_runner=sandbox_runner()
    )
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure
