"""A guard that makes I/O fail loudly while a pure function runs (`parse`, `enrich`).

Opening a file, connecting or resolving a name, or starting a process inside the guard
raises `IOAttempted`, a `BaseException` so that a connector's `except Exception` cannot
swallow it; the attempts are also kept, so a check can report one even when the code
caught it anyway. Imports still work: the import system reads modules through
`io.open_code` and `FileIO`, which the guard leaves alone.
"""

from __future__ import annotations

import builtins
import io
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class IOAttempted(BaseException):
    """Raised by the I/O guard: the code under test tried to do I/O."""


@contextmanager
def no_io(what: str) -> Iterator[list[str]]:
    """Within the block, I/O raises `IOAttempted`; yields the list of attempts made."""
    attempts: list[str] = []
    thread = threading.get_ident()
    #: (owner, name) -> the attribute the owner itself held, or None when it inherited it
    originals: dict[tuple[int, str], Any] = {}

    def refuse(owner: Any, name: str, kind: str) -> Callable[..., Any]:
        original = getattr(owner, name)
        originals[(id(owner), name)] = vars(owner).get(name)

        def blocked(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != thread:  # another thread (a fake vendor's server) is not under test
                return original(*args, **kwargs)
            target = next((repr(a) for a in args if isinstance(a, str | bytes | tuple | os.PathLike)), "")
            attempt = f"{kind}({target})" if target else kind
            attempts.append(attempt)
            raise IOAttempted(f"{what} tried to do I/O: {attempt}")

        return blocked

    patches: list[tuple[Any, str, Any]] = [
        (builtins, "open", refuse(builtins, "open", "open")),
        (io, "open", refuse(io, "open", "open")),
        (os, "open", refuse(os, "open", "os.open")),
        (socket.socket, "connect", refuse(socket.socket, "connect", "socket.connect")),
        (socket.socket, "connect_ex", refuse(socket.socket, "connect_ex", "socket.connect")),
        (socket.socket, "sendto", refuse(socket.socket, "sendto", "socket.sendto")),
        (socket, "create_connection", refuse(socket, "create_connection", "socket.create_connection")),
        (socket, "getaddrinfo", refuse(socket, "getaddrinfo", "socket.getaddrinfo")),
        (subprocess.Popen, "__init__", refuse(subprocess.Popen, "__init__", "subprocess")),
        (os, "system", refuse(os, "system", "os.system")),
    ]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield attempts
    finally:
        for owner, name, _ in patches:
            own = originals[(id(owner), name)]
            if own is None:
                delattr(owner, name)
            else:
                setattr(owner, name, own)
