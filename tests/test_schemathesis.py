"""The API against its own OpenAPI document: schemathesis (`st run … --checks all`) over the
real API process (webhook and push sources, the PostgreSQL sink, admin endpoints with the
admin token), bounded and seeded so that it runs in CI in well under two minutes.

Every status a route really answers (401, 403, 404, 409, 413, 503, `/metrics`'s text/plain)
must be in the document: `status_code_conformance` and `content_type_conformance` fail
otherwise, and `not_a_server_error` fails on any 500.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ADMIN_TOKEN, Deployment
from support.procs import wait_http

pytestmark = pytest.mark.timeout(300)

SEED = 20261111
PUSH_KEY = "fuzz-push-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, apex_temporal_server: Any, apex_postgres_server: Any
) -> Iterator[str]:
    dep = Deployment(
        tmp_path_factory.mktemp("schemathesis"),
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGINS="frontapp,llm,postgres",
        APEX_API_KEYS=PUSH_KEY,
    )
    dep.api.start()
    try:
        wait_http(f"{dep.url}/healthz", proc=dep.api)
        yield dep.url
    finally:
        dep.stop()


def schemathesis(url: str, report: Path, *args: str) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).parent / "st"
    return subprocess.run(
        [
            str(st),
            "run",
            f"{url}/schema/openapi.json",
            "--checks",
            "all",
            "--seed",
            str(SEED),
            "--max-examples",
            "40",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--no-shrink",
            "--report",
            "junit",
            "--report-dir",
            str(report),
            # the Temporal codec endpoint (another part of issue 11, in progress) is left out
            # until its document describes its base64 payload fields
            "--exclude-path-regex",
            "^/codec/",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=150,
        env={"NO_COLOR": "1", "PATH": str(Path(sys.executable).parent)},
        cwd=report,  # its cache folder (.schemathesis) goes there, not into the working tree
    )


def test_every_check_is_clean_with_the_admin_token(api: str, tmp_path: Path) -> None:
    out = schemathesis(api, tmp_path, "-H", f"Authorization: Bearer {ADMIN_TOKEN}")
    assert out.returncode == 0, out.stdout[-12000:] + out.stderr[-3000:]
    assert "generated" in out.stdout, out.stdout[-3000:]


def test_every_check_is_clean_without_credentials(api: str, tmp_path: Path) -> None:
    """What anyone on the internet reaches: every answer documented, no 500."""
    out = schemathesis(api, tmp_path)
    assert out.returncode == 0, out.stdout[-12000:] + out.stderr[-3000:]
