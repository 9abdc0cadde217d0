"""Workflows call activities by method reference, never by a string name, so mypy checks
each call's input and result against the activity's own signature (issue 14, item 5)."""

from __future__ import annotations

import ast
from pathlib import Path

import apex_platform.temporal

TEMPORAL = Path(apex_platform.temporal.__file__).parent
CALLS = {
    "execute_activity",
    "start_activity",
    "execute_local_activity",
    "start_local_activity",
    "execute_activity_method",
    "start_activity_method",
    "execute_local_activity_method",
    "start_local_activity_method",
}


def activity_calls(path: Path) -> tuple[list[str], int]:
    """(calls naming their activity by a string, calls passing the activity itself)."""
    by_name, by_reference = [], 0
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CALLS):
            continue
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            by_name.append(f"{path.name}:{node.lineno}: {node.func.attr}({first.value!r}, …)")
        else:
            by_reference += 1
    return by_name, by_reference


def test_workflow_modules_call_activities_by_reference() -> None:
    modules = sorted(TEMPORAL.glob("*workflow*.py"))
    assert {p.name for p in modules} >= {"workflows.py", "reconcile_workflow.py"}
    by_name: list[str] = []
    by_reference = 0
    for path in modules:
        names, references = activity_calls(path)
        by_name += names
        by_reference += references
    assert not by_name, "call the activity method itself (execute_activity_method(Class.method, …)):\n" + "\n".join(
        by_name
    )
    assert by_reference >= 20  # the check saw the calls it is about


def test_the_check_finds_a_call_by_name(tmp_path: Path) -> None:
    sample = tmp_path / "sample_workflow.py"
    sample.write_text(
        "async def run(workflow, Acts):\n"
        '    await workflow.execute_activity("apex.parse", None)\n'
        "    await workflow.execute_activity_method(Acts.parse, None)\n"
    )
    assert activity_calls(sample) == (["sample_workflow.py:2: execute_activity('apex.parse', …)"], 1)
