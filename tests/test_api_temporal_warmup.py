"""The API opens its Temporal connection at start, in the background.

A soak (seed 4012) saw an API process gain seven descriptors at minute six — the Temporal
client's connection and runtime, opened at the first Plaid trigger — which read as a
rising series. The connection is now opened at start; intake never waits for it (with
Temporal down the API still starts and answers 202: `test_chaos_e2e.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
from conftest import Deployment
from support.procs import wait_for, wait_http


def _connected_to(pid: int, port: int) -> bool:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return any(
        c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
        for p in procs
        for c in p.net_connections(kind="tcp")
    )


def test_the_api_connects_to_temporal_before_any_request_needs_it(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any
) -> None:
    port = int(apex_temporal_server.address.rsplit(":", 1)[1])
    dep = Deployment(tmp_path, apex_temporal_server.address, apex_postgres_server.dsn)
    dep.api.start()  # no worker, no request but /healthz: nothing asks for Temporal
    try:
        wait_http(f"{dep.url}/healthz", proc=dep.api)
        assert dep.api.proc is not None
        pid = dep.api.proc.pid
        wait_for(lambda: _connected_to(pid, port), timeout=30, what="the API's connection to Temporal")
    finally:
        dep.stop()
