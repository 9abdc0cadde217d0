"""A fake vendor API served for real: an ASGI app (a Litestar app of a connector's
`fake_vendor.py`) under uvicorn on a free local port, in a background thread.

Tests and `apex-platform demo` talk to it over TCP exactly as the connector talks to
the vendor, so timeouts, status codes and bodies go through the real HTTP stack.
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from apex_platform.stack.ports import free_port, port_accepts

if TYPE_CHECKING:
    import uvicorn

_PORT_ATTEMPTS = 3
"""Free ports to try: another process may take the one `free_port` picked before uvicorn binds it."""


class FakeVendorServer:
    """Serves `app` with uvicorn on `host` in a daemon thread.

    `start()` returns the base URL once the server accepts connections; `stop()` returns
    only when the thread has ended (it raises if the thread will not end). Also a context
    manager. The port is a free one picked at start unless `port` is given.
    """

    def __init__(
        self,
        app: Any,
        *,
        name: str = "fake vendor",
        host: str = "127.0.0.1",
        port: int | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.name = name
        self.host = host
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port of the last `start()`."""
        if self._port is None:
            raise RuntimeError(f"the {self.name} server has not been started; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """`http://host:port` of the last `start()` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> str:
        """Start serving and wait until the server accepts connections; return the base URL."""
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} server is already running at {self.base_url}")
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for _ in range(attempts):
            port = self._requested_port or free_port(self.host)
            outcome = self._serve(port)
            if outcome == "started":
                self._port = port
                return self.base_url
            self.stop()
            if outcome == "timeout":
                raise RuntimeError(
                    f"the {self.name} server did not start on {self.host}:{port} within {self.start_timeout:g}s"
                )
        raise RuntimeError(f"the {self.name} server did not start on {self.host} (tried {attempts} port(s))")

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread; a no-op when it is not running."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(self.stop_timeout)
        if thread.is_alive():  # connections that will not close: drop them
            server.force_exit = True
            thread.join(self.stop_timeout)
        if thread.is_alive():
            raise RuntimeError(f"the {self.name} server thread did not stop within {2 * self.stop_timeout:g}s")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self, port: int) -> Literal["started", "died", "timeout"]:
        import uvicorn

        config = uvicorn.Config(
            self.app, host=self.host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=_run, args=(server,), name=f"{self.name} :{port}", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not (server.started and port_accepts(port, self.host)):
            if not thread.is_alive():
                return "died"  # uvicorn logged why, e.g. the port was taken meanwhile
            if time.monotonic() > deadline:
                return "timeout"
            time.sleep(0.02)
        return "started"


def _run(server: uvicorn.Server) -> None:
    # uvicorn leaves with sys.exit() when it cannot bind; in a thread that only ends the
    # thread, which `start()` sees, so keep it from reaching threading.excepthook.
    with contextlib.suppress(SystemExit):
        server.run()
