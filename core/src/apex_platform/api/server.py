"""The HTTP server of the API: uvicorn with limits, and deadlines for reading a request.

uvicorn bounds what is in flight (`limit_concurrency`: 503 above it), the accept queue
(`backlog`) and idle keep-alive connections, but nothing bounds how long a client may
take to send a request: a connection that sends nothing, or its headers a byte at a
time, or a body that never ends, holds a connection slot for ever (slowloris). So the
protocol below gives every request `APEX_API_HEADER_TIMEOUT` for its request line and
headers (408 after it) and `APEX_API_BODY_TIMEOUT` for its body (the connection is then
closed), and refuses headers larger than `APEX_API_MAX_HEADER_BYTES` (431), for
httptools and h11 alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from apex_platform.settings import ApiSettings

_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def limited_protocol(settings: ApiSettings, base: type[Any] = AutoHTTPProtocol) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools or h11) with read deadlines and a header limit."""
    header_timeout, body_timeout, max_header_bytes = (
        settings.header_timeout,
        settings.body_timeout,
        settings.max_header_bytes,
    )

    class LimitedHTTPProtocol(base):  # type: ignore[misc]
        _apex_timer: asyncio.TimerHandle | None = None
        _apex_reading: str | None = None  # "headers", "body" or None (nothing expected now)
        _apex_header_bytes = 0
        _apex_tail = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._apex_expect("headers")

        def connection_lost(self, exc: Exception | None) -> None:
            self._apex_expect(None)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            if self._apex_waiting_for_headers(before) and self._apex_reading != "headers":
                self._apex_expect("headers")
            if self._apex_reading == "headers" and self._apex_headers_too_large(data):
                self._apex_refuse(_TOO_LARGE)  # before the parser holds them
                return
            super().data_received(data)
            if self.transport.is_closing():
                self._apex_expect(None)
                return
            cycle = self.cycle
            if cycle is not before and cycle is not None:  # a request's headers are complete
                self._apex_expect("body" if cycle.more_body else None)
            elif self._apex_reading == "body" and cycle is not None and not cycle.more_body:
                self._apex_expect(None)

        def _apex_headers_too_large(self, data: bytes) -> bool:
            """Count the bytes up to the blank line that ends the headers (it may span chunks)."""
            window = self._apex_tail + data
            end = window.find(b"\r\n\r\n")
            self._apex_header_bytes += end + 4 - len(self._apex_tail) if end >= 0 else len(data)
            self._apex_tail = window[-3:]
            return self._apex_header_bytes > max_header_bytes

        @staticmethod
        def _apex_waiting_for_headers(cycle: Any) -> bool:
            return cycle is None or bool(cycle.response_complete)

        def _apex_expect(self, what: str | None) -> None:
            if self._apex_timer is not None:
                self._apex_timer.cancel()
                self._apex_timer = None
            self._apex_reading = what
            self._apex_header_bytes, self._apex_tail = 0, b""
            if what is not None:
                delay = header_timeout if what == "headers" else body_timeout
                self._apex_timer = asyncio.get_running_loop().call_later(delay, self._apex_expired)

        def _apex_expired(self) -> None:
            self._apex_timer = None
            if self._apex_reading == "headers" and self._apex_waiting_for_headers(self.cycle):
                self._apex_refuse(_TIMEOUT)
            elif not self.transport.is_closing():
                self.transport.close()  # a body that did not come in time: the handler sees a disconnect

        def _apex_refuse(self, answer: bytes) -> None:
            self._apex_expect(None)
            if not self.transport.is_closing():
                self.transport.write(answer)
                self.transport.close()

    return LimitedHTTPProtocol


def api_event_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop `apex-platform api` runs on: uvloop's where it is installed (uvicorn's
    `standard` extra brings it; its sockets, timers and callbacks are C), else asyncio's own
    (None). The API process is CPU-bound at a fleet's rate, and most of a request's time
    outside Apex's own code is the loop's."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def uvicorn_config(app: Any, settings: ApiSettings, *, host: str, port: int) -> uvicorn.Config:
    """The API's uvicorn configuration: logging left to the process, limits from `settings`."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        http=limited_protocol(settings),
        limit_concurrency=settings.limit_concurrency,
        backlog=settings.backlog,
        timeout_keep_alive=settings.timeout_keep_alive,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
