"""`apex-platform ingest edi FILE --json` as a child process, against a worker child
process, the session's Temporal dev server and PostgreSQL (through apex-sink-postgres)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CLI = str(Path(sys.executable).parent / "apex-platform")


@pytest.fixture(scope="module")
def stack_env(
    tmp_path_factory: pytest.TempPathFactory, apex_temporal_server: Any, apex_postgres_server: Any
) -> Iterator[dict[str, str]]:
    """A worker child process; the environment the CLI shares with it (same APEX_HOME:
    the blob store the file is put into lives there)."""
    pytest.importorskip("apex_sink_postgres")
    base = tmp_path_factory.mktemp("edi-cli")
    prefix = f"edicli{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "APEX_HOME": str(base / "home"),
        "APEX_TEMPORAL_ADDRESS": apex_temporal_server.address,
        "APEX_TEMPORAL_TASK_QUEUE_PREFIX": prefix,
        "APEX_PLUGINS": "edi,postgres",
        "APEX_POSTGRES_DSN": apex_postgres_server.dsn,
        "APEX_INBOX_SCHEMA": f"inbox_{prefix}",
        "APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS": "5",
        "APEX_LOG_LEVEL": "INFO",
    }
    log = base / "worker.log"
    with log.open("ab") as fh:
        worker = subprocess.Popen([CLI, "worker"], env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield env
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)


def ingest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "ingest", "edi", *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


async def test_ingest_prints_one_json_line_per_record_and_warnings_on_stderr(
    stack_env: dict[str, str], sample_214: Path, sample_210: Path, apex_postgres_server: Any
) -> None:
    done = ingest(stack_env, str(sample_214), str(sample_210), "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert lines == [
        {"source": "edi", "id": "BAWC:123456:X3:199709250830", "kind": "edi.shipment_status"},
        {"source": "edi", "id": "NLMI:3410889", "kind": "edi.freight_invoice"},
    ]
    assert "GE01 says 2 sets but the group holds 1" in done.stderr
    assert "GS01 is 'IN'" in done.stderr
    conn = await asyncpg.connect(apex_postgres_server.dsn)
    try:
        rows = await conn.fetch(
            "select id, kind from apex.records where source = 'edi' and id = any($1::text[]) order by id",
            ["BAWC:123456:X3:199709250830", "NLMI:3410889"],
        )
    finally:
        await conn.close()
    assert [(r["id"], r["kind"]) for r in rows] == [
        ("BAWC:123456:X3:199709250830", "edi.shipment_status"),
        ("NLMI:3410889", "edi.freight_invoice"),
    ]


def test_a_file_that_is_not_x12_exits_1(stack_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "not-edi.txt"
    path.write_text("this is not an X12 interchange\n")
    done = ingest(stack_env, str(path), "--json")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout.strip() == ""
    # core prints "Error: WorkflowFailureError: Workflow execution failed" without the
    # cause ("not an X12 interchange: expected 'ISA' ..."): see the README
    assert "Error" in done.stderr


def test_a_folder_with_a_link_and_a_hostile_name_ingests_the_rest(
    stack_env: dict[str, str], sample_214: Path, tmp_path: Path
) -> None:
    """`ingest edi FOLDER`: a link in it is refused unread (the error names it, quotes
    nothing of its target), a name with a newline and rich markup is printed escaped, and
    the folder's other file is ingested."""
    folder = tmp_path / "drop"
    folder.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("secret-marker-2b7e is not X12\n")
    (folder / "a-link.x12").symlink_to(secret)
    hostile = "b\n[bold red]forged line.x12"
    (folder / hostile).write_bytes(sample_214.read_bytes())
    done = ingest(stack_env, str(folder))
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "a-link.x12: a symbolic link; not followed, nothing read" in done.stderr
    assert "secret-marker" not in done.stdout + done.stderr
    assert "b\\n[bold red]forged line.x12" in done.stdout + done.stderr
    assert "\nforged" not in done.stdout + done.stderr
